"""Reloads of the proxy configuration: the fields that need a restart, and the readable diff of
what a reload changed (secrets only as "changed")."""

from __future__ import annotations

import yaml

from stageless.proxy.config import parse_config
from stageless.proxy.configdiff import diff_config, reload_problems
from tests.proxy.test_config import FULL, SECRET, base, edited, load

ENV = {"STAGELESS_TEST_KEY": "k" * 32}


def test_a_config_round_tripped_through_yaml_has_no_diff() -> None:
    config = parse_config(FULL, source="full.yaml", environ=ENV)
    again = parse_config(
        yaml.safe_dump(config.model_dump(mode="json")), source="again.yaml", environ=ENV
    )
    assert diff_config(config, again) == []


def test_a_reload_may_change_everything_but_listen_admin_and_workers() -> None:
    old = load(base())
    changed = base()
    changed["services"][0]["split"] = {"weight": 10}
    changed["timeouts"] = {"connect_s": 1}
    changed["services"].append(
        {
            "name": "new",
            "hosts": ["new.example.com"],
            "stable": {"addresses": ["127.0.0.1:9021"]},
            "candidate": {"addresses": ["127.0.0.1:9022"]},
        }
    )
    assert reload_problems(old, load(changed)) == []
    moved = base()
    moved["listen"] = "127.0.0.1:8081"
    moved["admin"] = None
    moved["workers"] = 4
    assert reload_problems(old, load(moved)) == [
        "listen: changed from '127.0.0.1:8080' to '127.0.0.1:8081'; this needs a restart",
        "admin: changed from '127.0.0.1:9901' to null; this needs a restart",
        "workers: changed from 1 to 4; this needs a restart",
    ]


def test_diff_config_says_what_changed() -> None:
    old = load(base())
    document = base()
    checkout, search = document["services"]
    checkout["split"] = {"weight": 10, "sticky": {"header": "x-user"}}
    checkout["shadow"] = {"share": 5}
    checkout["routes"] = [{"name": "api", "prefix": "/api/"}]
    search["hosts"] = ["search.example.com", "www.example.com"]
    document["services"] = [search, checkout]
    document["signing_keys"] = [{"id": "k2", "secret": "n" * 32}, {"id": "k1", "secret": "m" * 32}]
    document["timeouts"] = {"read_s": 12.5}
    new = load(document)
    lines = diff_config(old, new)
    assert lines == [
        "signing_keys: added 'k2'",
        "signing_keys[k1]: secret changed",
        "timeouts.read_s: 30 -> 12.5",
        "services[search].hosts: ['search.example.com'] -> ['search.example.com', "
        "'www.example.com']",
        "services[checkout].split.weight: 0 -> 10",
        "services[checkout].split.sticky.cookie: 'stageless-key' -> null",
        "services[checkout].split.sticky.header: null -> 'x-user'",
        "services[checkout].shadow: added",
        "services[checkout].routes: added 'api'",
        "services: order ['checkout', 'search'] -> ['search', 'checkout']",
    ]
    assert not any("m" * 32 in line or SECRET in line for line in lines)
    back = diff_config(new, old)
    assert "signing_keys: removed 'k2'" in back
    assert "services[checkout].shadow: removed" in back
    assert "services[checkout].routes: removed 'api'" in back


def test_diff_config_notices_a_changed_secret_env_value() -> None:
    document = edited("signing_keys[0]", {"id": "k1", "secret_env": "STAGELESS_TEST_KEY"})
    old = load(document, environ={"STAGELESS_TEST_KEY": "a" * 32})
    new = load(document, environ={"STAGELESS_TEST_KEY": "b" * 32})
    assert diff_config(old, new) == ["signing_keys[k1]: secret changed"]
    assert diff_config(old, old) == []
