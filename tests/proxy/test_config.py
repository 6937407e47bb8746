"""The proxy configuration: every validation message with its exact path, derived values, secret
redaction and the shipped example (the reload rules: test_configdiff.py)."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stageless.errors import ValidationError
from stageless.proxy.config import (
    DEFAULT_ROUTE,
    ProxyConfig,
    load_config,
    parse_address,
    parse_config,
)
from stageless.routing.split import split_threshold

SECRET = "0123456789abcdef0123456789abcdef-secret"  # noqa: S105  # a test key
ENV = {"STAGELESS_TEST_KEY": "k" * 32}


def base() -> dict[str, Any]:
    """A valid two-service document the cases below break one field at a time."""
    return {
        "listen": "127.0.0.1:8080",
        "admin": "127.0.0.1:9901",
        "signing_keys": [{"id": "k1", "secret": SECRET}],
        "services": [
            {
                "name": "checkout",
                "hosts": [],
                "stable": {"addresses": ["127.0.0.1:9001"]},
                "candidate": {"addresses": ["127.0.0.1:9002"]},
                "testers": True,
            },
            {
                "name": "search",
                "hosts": ["search.example.com"],
                "stable": {"addresses": ["127.0.0.1:9011"]},
                "candidate": {"addresses": ["127.0.0.1:9012"]},
            },
        ],
    }


_STEP = re.compile(r"\.?([A-Za-z_]+)|\[(\d+)\]")
_DELETE = object()


def edited(path: str, value: Any) -> dict[str, Any]:
    """``base()`` with the value at ``path`` (``services[0].split.weight``) set or deleted."""
    document = base()
    steps = [int(index) if index else name for name, index in _STEP.findall(path)]
    node: Any = document
    for step in steps[:-1]:
        if isinstance(step, str) and step not in node:
            node[step] = {}
        node = node[step]
    if value is _DELETE:
        del node[steps[-1]]
    else:
        node[steps[-1]] = copy.deepcopy(value)
    return document


def problems(document: Any, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_config(yaml.safe_dump(document), source="test.yaml", environ=environ or {})
    return [str(issue) for issue in caught.value.issues]


def load(document: Any, environ: dict[str, str] | None = None) -> ProxyConfig:
    return parse_config(yaml.safe_dump(document), source="test.yaml", environ=environ or {})


# (path, value, the exact issue expected among the problems)
CASES: list[tuple[str, Any, str]] = [
    # split
    ("services[0].split.weight", 140, "services[0].split.weight: 140 is not between 0 and 100"),
    ("services[0].split.weight", -1, "services[0].split.weight: -1 is not between 0 and 100"),
    (
        "services[0].split.weight",
        5.0005,
        "services[0].split.weight: 5.0005 is not a multiple of 0.001",
    ),
    ("services[0].split.weight", "5", "services[0].split.weight: expected a number, got '5'"),
    ("services[0].split.weight", True, "services[0].split.weight: expected a number, got true"),
    ("services[0].split", [1], "services[0].split: expected a mapping, got a list"),
    (
        "services[0].split.sticky",
        {},
        "services[0].split.sticky: expected exactly one of cookie, header or client_address, "
        "got none",
    ),
    (
        "services[0].split.sticky",
        {"cookie": "a", "header": "b"},
        "services[0].split.sticky: expected exactly one of cookie, header or client_address, "
        "got cookie and header",
    ),
    (
        "services[0].split.sticky",
        {"client_address": False},
        "services[0].split.sticky: expected exactly one of cookie, header or client_address, "
        "got none",
    ),
    (
        "services[0].split.sticky",
        {"header": "X-Stageless-User"},
        "services[0].split.sticky.header: 'x-stageless-user' starts with x-stageless-, which "
        "the proxy strips from every request",
    ),
    (
        "services[0].split.sticky",
        {"cookie": "stageless-route"},
        "services[0].split.sticky.cookie: 'stageless-route' is the routing-token cookie",
    ),
    (
        "services[0].split.sticky.cookie",
        "a b",
        "services[0].split.sticky.cookie: 'a b' is not a valid cookie name",
    ),
    # services, names and hosts
    ("services[1].name", "checkout", "services[1].name: 'checkout' is used twice"),
    (
        "services[1].name",
        "bad name",
        "services[1].name: 'bad name' is not a valid name; expected 1-63 letters, digits, '.', "
        "'_' or '-', starting with a letter or digit",
    ),
    (
        "services[1].hosts",
        [],
        "services[1].hosts: [] makes 'search' a second default service (services[0] "
        "'checkout' is the default); list its hosts",
    ),
    (
        "services[0].hosts",
        ["Search.Example.com"],
        "services[1].hosts[0]: 'search.example.com' is already served by services[0] ('checkout')",
    ),
    ("services[0].hosts", ["a.com", "A.COM"], "services[0].hosts[1]: 'a.com' is used twice"),
    (
        "services[0].hosts",
        ["a.com:80"],
        "services[0].hosts[0]: 'a.com:80' has a port; hosts match the Host header without its "
        "port (IPv6 addresses go in brackets)",
    ),
    (
        "services[0].hosts",
        ["*.example.com"],
        "services[0].hosts[0]: '*.example.com': '*.example.com' is not a valid hostname or IP "
        "address",
    ),
    ("services", [], "services: expected at least one service"),
    ("services", _DELETE, "services: is required"),
    ("services[0].stable", _DELETE, "services[0].stable: is required"),
    (
        "services[0].testers",
        "yes",
        "services[0].testers: expected true or false, got 'yes'",
    ),
    (
        "signing_keys",
        [],
        "services[0].testers: is true but signing_keys is empty, so no routing token could be "
        "verified; add a key or set testers: false",
    ),
    # addresses
    (
        "listen",
        "localhost",
        "listen: 'localhost' has no port; expected host:port, e.g. 127.0.0.1:8080",
    ),
    (
        "listen",
        "127.0.0.1:70000",
        "listen: '127.0.0.1:70000' has port '70000'; expected a number between 0 and 65535",
    ),
    ("listen", "::1:8080", "listen: '::1:8080': an IPv6 address goes in brackets, e.g. [::1]:8080"),
    ("listen", "[::1]8080", "listen: '[::1]8080' is not [IPv6]:port, e.g. [::1]:8080"),
    ("listen", "[zz]:80", "listen: '[zz]:80': 'zz' is not a valid IPv6 address"),
    (
        "listen",
        "999.1.1.1:80",
        "listen: '999.1.1.1:80': '999.1.1.1' is not a valid IPv4 address",
    ),
    (
        "listen",
        "bad!host:80",
        "listen: 'bad!host:80': 'bad!host' is not a valid hostname or IP address",
    ),
    ("listen", ":80", "listen: ':80' has no host; expected host:port, e.g. 127.0.0.1:8080"),
    ("listen", 8080, "listen: expected a string, got 8080"),
    ("admin", "127.0.0.1:8080", "admin: '127.0.0.1:8080' collides with listen '127.0.0.1:8080'"),
    ("admin", "0.0.0.0:8080", "admin: '0.0.0.0:8080' collides with listen '127.0.0.1:8080'"),
    (
        "services[0].stable.addresses",
        ["127.0.0.1:0"],
        "services[0].stable.addresses[0]: '127.0.0.1:0' has port '0'; expected a number "
        "between 1 and 65535",
    ),
    (
        "services[0].stable.addresses",
        ["127.0.0.1:9001", "127.0.0.1:9001"],
        "services[0].stable.addresses[1]: '127.0.0.1:9001' is used twice",
    ),
    ("services[0].stable.addresses", [], "services[0].stable: expected at least one address"),
    (
        "services[0].candidate.adresses",
        ["127.0.0.1:9002"],
        "services[0].candidate.adresses: unknown key; did you mean 'addresses'?",
    ),
    # routes
    (
        "services[0].routes",
        [{"name": "api", "prefix": "api/"}],
        "services[0].routes[0].prefix: 'api/' does not start with '/'",
    ),
    (
        "services[0].routes",
        [{"name": "api", "prefix": "/a b"}],
        "services[0].routes[0].prefix: '/a b' contains spaces or control characters; expected "
        "a path prefix",
    ),
    (
        "services[0].routes",
        [{"name": "api", "prefix": "/api?x=1"}],
        "services[0].routes[0].prefix: '/api?x=1' contains '?' or '#'; a prefix matches the "
        "path only",
    ),
    (
        "services[0].routes",
        [{"name": "api", "prefix": "/api/"}, {"name": "api", "prefix": "/b/"}],
        "services[0].routes[1].name: 'api' is used twice",
    ),
    (
        "services[0].routes",
        [{"name": "api", "prefix": "/api/"}, {"name": "v1", "prefix": "/api/v1/"}],
        "services[0].routes[1].prefix: '/api/v1/' can never match: routes[0] ('/api/') comes "
        "first and matches every such path",
    ),
    (
        "services[0].routes",
        [{"name": "default", "prefix": "/api/"}],
        "services[0].routes[0].name: 'default' is the implicit catch-all route (prefix '/'); "
        "pick another name",
    ),
    (
        "services[0].routes",
        [{"name": "api", "prefix": "/api/", "shadow_methods": ["POST"]}],
        "services[0].routes[0].shadow_methods: is set but the service has no shadow",
    ),
    (
        "services[0].routes",
        [{"name": "api"}],
        "services[0].routes[0].prefix: is required",
    ),
    # shadow
    (
        "services[0].shadow",
        {"methods": ["get"]},
        "services[0].shadow.methods[0]: 'get' is not upper-case (methods are case-sensitive); "
        "did you mean 'GET'?",
    ),
    (
        "services[0].shadow",
        {"methods": ["GE T"]},
        "services[0].shadow.methods[0]: 'GE T' is not an HTTP method token",
    ),
    (
        "services[0].shadow",
        {"methods": ["CONNECT"]},
        "services[0].shadow.methods[0]: CONNECT requests cannot be shadowed",
    ),
    (
        "services[0].shadow",
        {"methods": ["GET", "GET"]},
        "services[0].shadow.methods[1]: 'GET' is used twice",
    ),
    (
        "services[0].shadow",
        {"share": 101},
        "services[0].shadow.share: 101 is not between 0 and 100",
    ),
    (
        "services[0].shadow",
        {"noise_share": -0.5},
        "services[0].shadow.noise_share: -0.5 is not between 0 and 100",
    ),
    (
        "services[0].shadow",
        {"queue": 0},
        "services[0].shadow.queue: 0 is not between 1 and 1000000",
    ),
    (
        "services[0].shadow",
        {"pipeline": 65},
        "services[0].shadow.pipeline: 65 is not between 1 and 64",
    ),
    (
        "services[0].shadow",
        {"compare": {"headers": ["bad header"]}},
        "services[0].shadow.compare.headers[0]: 'bad header' is not a valid HTTP header name",
    ),
    (
        "services[0].shadow",
        {"compare": {"ignore_fields": [""]}},
        "services[0].shadow.compare.ignore_fields[0]: is empty",
    ),
    # health checks
    (
        "services[0].health_check",
        {"path": "healthz"},
        "services[0].health_check.path: 'healthz' does not start with '/'",
    ),
    (
        "services[0].health_check",
        {"host": "a\r\nX-Evil: 1"},
        "services[0].health_check.host: 'a\\r\\nX-Evil: 1' is not a valid Host header value; "
        "expected host or host:port",
    ),
    (
        "services[0].health_check",
        {"unhealthy_threshold": 0},
        "services[0].health_check.unhealthy_threshold: 0 is not between 1 and 1000",
    ),
    (
        "services[1].stable.addresses",
        ["127.0.0.1:9001"],  # shared with services[0], whose health_check differs (set below)
        "services[1].stable.addresses[0]: '127.0.0.1:9001' is also an address of services[0] "
        "('checkout') with another health_check; an address has one health check",
    ),
    # signing keys
    (
        "signing_keys[0].secret",
        "short",
        "signing_keys[0].secret: is 5 bytes long; expected at least 32 bytes",
    ),
    (
        "signing_keys[0]",
        {"id": "k1"},
        "signing_keys[0]: expected exactly one of secret or secret_env",
    ),
    (
        "signing_keys[0]",
        {"id": "k1", "secret": SECRET, "secret_env": "STAGELESS_TEST_KEY"},
        "signing_keys[0]: expected exactly one of secret or secret_env",
    ),
    (
        "signing_keys[0]",
        {"id": "k1", "secret_env": "STAGELESS_UNSET"},
        "signing_keys[0].secret_env: the environment variable STAGELESS_UNSET is not set",
    ),
    (
        "signing_keys[0]",
        {"id": "k1", "secret_env": "SHORT_KEY"},
        "signing_keys[0].secret_env: the value of SHORT_KEY is 3 bytes long; expected at least "
        "32 bytes",
    ),
    (
        "signing_keys[0]",
        {"id": "k1", "secret_env": "1BAD"},
        "signing_keys[0].secret_env: '1BAD' is not an environment variable name",
    ),
    (
        "signing_keys",
        [{"id": "k1", "secret": SECRET}, {"id": "k1", "secret": SECRET}],
        "signing_keys[1].id: 'k1' is used twice",
    ),
    (
        "signing_keys[0].id",
        "a/b",
        "signing_keys[0].id: 'a/b' is not a valid key id; expected 1-64 of A-Z a-z 0-9 . _ : -",
    ),
    # top level and the other sections
    ("workres", 2, "workres: unknown key; did you mean 'workers'?"),
    (
        "zzz",
        1,
        "zzz: unknown key; expected one of listen, admin, workers, signing_keys, batches, "
        "timeouts, limits, pool, services, control_plane",
    ),
    (
        "services[0].split.wieght",
        5,
        "services[0].split.wieght: unknown key; did you mean 'weight'?",
    ),
    ("workers", 0, "workers: 0 is not between 1 and 1024"),
    ("workers", 1.5, "workers: expected an integer, got 1.5"),
    ("workers", "2", "workers: expected an integer, got '2'"),
    (
        "timeouts.connect_s",
        0,
        "timeouts.connect_s: 0 is not positive; expected a number of seconds > 0",
    ),
    (
        "timeouts.connect_s",
        100,
        "timeouts.connect_s: 100 is more than total_s (60); it could never fire",
    ),
    ("timeouts.read_s", float("nan"), "timeouts.read_s: expected a finite number, got nan"),
    ("timeouts.read_s", float("inf"), "timeouts.read_s: expected a finite number, got inf"),
    (
        "limits.max_header_bytes",
        100,
        "limits.max_header_bytes: 100 is not between 1024 and 1048576",
    ),
    (
        "pool.idle_timeout_s",
        -1,
        "pool.idle_timeout_s: -1 is not positive; expected a number of seconds > 0",
    ),
    ("batches.path", "", "batches.path: is empty"),
    (
        "batches.interval_s",
        0,
        "batches.interval_s: 0 is not positive; expected a number of seconds > 0",
    ),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[2][:60] for c in CASES])
def test_each_problem_is_reported_with_its_path(path: str, value: Any, expected: str) -> None:
    document = edited(path, value)
    if path == "services[1].stable.addresses":
        document["services"][0]["health_check"] = {"path": "/healthz"}
    found = problems(document, environ={**ENV, "SHORT_KEY": "abc"})
    assert expected in found, found


def test_the_base_document_is_valid() -> None:
    config = load(base())
    assert [s.name for s in config.services] == ["checkout", "search"]


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    document = base()
    document["services"][0]["split"] = {"weight": 140}
    document["services"][1]["split"] = {"weight": 5.0005}
    document["listen"] = "nowhere"
    document["workres"] = 1
    found = problems(document)
    assert found == [
        "listen: 'nowhere' has no port; expected host:port, e.g. 127.0.0.1:8080",
        "services[0].split.weight: 140 is not between 0 and 100",
        "services[1].split.weight: 5.0005 is not a multiple of 0.001",
        "workres: unknown key; did you mean 'workers'?",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the document is empty; expected a mapping with at least 'services'"),
        ("- 1\n- 2\n", "expected a mapping of proxy settings, got a list"),
        ("listen: [\n", "invalid YAML at line 2, column 1: expected the node content"),
        ("workers: 1\nworkers: 2\n", "invalid YAML: line 2: duplicate key 'workers'"),
    ],
)
def test_documents_that_are_not_a_mapping_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_config(text, source="bad.yaml")
    (issue,) = caught.value.issues
    assert issue.path == ""
    assert issue.message.startswith(expected), issue.message
    assert str(caught.value).startswith("bad.yaml: 1 problem")


def test_load_config_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ValidationError) as caught:
        load_config(missing)
    assert (
        str(caught.value)
        == f"{missing}: 1 problem\n  cannot read the file: No such file or directory"
    )
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert load_config(path) == load(base())


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_never_show_in_repr_str_or_dumps() -> None:
    config = load(base())
    (key,) = config.signing_keys
    for text in (repr(config), str(config), config.model_dump_json(), repr(key), str(key)):
        assert SECRET not in text
        assert "'**********'" in text or '"**********"' in text
    assert key.key == SECRET.encode()
    assert key.signing_key().secret == SECRET.encode()
    assert config.verify_keys == {"k1": SECRET.encode()}


def test_secrets_never_show_in_errors() -> None:
    document = edited("signing_keys[0].secret", "tiny-secret-value")
    document["workers"] = 0  # and another problem, so pydantic reports a mix
    with pytest.raises(ValidationError) as caught:
        load(document)
    assert "tiny-secret-value" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "tiny-secret-value" not in str(caught.value.__context__)
    found = problems(edited("signing_keys[0].secret", 12345678))
    assert "signing_keys[0].secret: expected a string, got something else" in found


def test_secret_env_is_read_at_load() -> None:
    document = edited("signing_keys[0]", {"id": "k1", "secret_env": "STAGELESS_TEST_KEY"})
    config = load(document, environ=ENV)
    assert config.verify_keys == {"k1": b"k" * 32}
    assert config.signing_keys[0].secret is None
    assert "k" * 32 not in repr(config)


def test_secret_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGELESS_TEST_KEY", "e" * 40)
    document = edited("signing_keys[0]", {"id": "k1", "secret_env": "STAGELESS_TEST_KEY"})
    config = parse_config(yaml.safe_dump(document), source="t")
    assert config.signer is not None
    assert config.signer.key == b"e" * 40


# -- derived values ----------------------------------------------------------------------------


def test_defaults_fill_every_optional_section() -> None:
    config = load(base())
    service = config.services[0]
    assert config.workers == 1
    assert config.admin == "127.0.0.1:9901"
    assert config.batches.path is None and config.batches.file is None
    assert config.timeouts.total_s == 60
    assert service.split.weight == 0
    assert service.split.sticky.cookie == "stageless-key"
    assert service.split.sticky.source == "cookie"
    assert service.health_check is None and service.shadow is None
    assert service.all_routes == (DEFAULT_ROUTE,)


def test_addresses_are_parsed_once() -> None:
    document = edited("services[0].stable.addresses", ["127.0.0.1:9001", "[::1]:9003", "up:80"])
    document["listen"] = "0.0.0.0:0"
    document["admin"] = "[::1]:0"
    config = load(document)
    assert config.services[0].stable.endpoints == (
        ("127.0.0.1", 9001),
        ("::1", 9003),
        ("up", 80),
    )
    assert config.services[0].stable.parsed() == list(config.services[0].stable.endpoints)
    assert config.listen_address() == ("0.0.0.0", 0)  # noqa: S104
    assert config.admin_address() == ("::1", 0)
    assert load(edited("admin", None)).admin is None
    with pytest.raises(ValueError, match="admin is null"):
        load(edited("admin", None)).admin_address()


def test_hosts_find_their_service_in_any_case_and_with_any_port() -> None:
    document = base()
    document["services"][1]["hosts"] = ["Search.Example.com", "[::1]", "10.0.0.1"]
    config = load(document)
    search, checkout = config.services_by_name["search"], config.services_by_name["checkout"]
    assert config.services[1].hosts == ("search.example.com", "[::1]", "10.0.0.1")
    for host in (
        b"search.example.com",
        b"SEARCH.example.COM",
        b"search.example.com:8080",
        b"search.example.com.",
        b"[::1]:8080",
        b"[::1]",
        b"10.0.0.1:80",
    ):
        assert config.service_for_host(host) is search, host
    for host in (b"other.example.com", b"", b"search.example.co", b"[::2]:80"):
        assert config.service_for_host(host) is checkout, host
    no_default = edited("services[0].hosts", ["shop.example.com"])
    assert load(no_default).service_for_host(b"nobody.example.com") is None


def test_routes_match_the_first_prefix_then_the_default() -> None:
    routes = [
        {"name": "api", "prefix": "/api/"},
        {"name": "static", "prefix": "/static/"},
    ]
    service = load(edited("services[0].routes", routes)).services[0]
    assert service.route_for(b"/api/users?id=1").name == "api"
    assert service.route_for(b"/static/a.css").name == "static"
    assert service.route_for(b"/api").name == "default"
    assert service.route_for(b"/").name == "default"
    assert service.route_for(b"*").name == "default"
    assert [r.name for r in service.all_routes] == ["api", "static", "default"]
    catch_all = [{"name": "api", "prefix": "/api/"}, {"name": "rest", "prefix": "/"}]
    service = load(edited("services[0].routes", catch_all)).services[0]
    assert service.route_for(b"/x").name == "rest"
    assert [r.name for r in service.all_routes] == ["api", "rest"]


def test_shadow_methods_per_route() -> None:
    document = edited(
        "services[0].routes",
        [
            {"name": "api", "prefix": "/api/", "shadow_methods": ["GET", "POST"]},
            {"name": "upload", "prefix": "/upload/", "shadow_methods": []},
            {"name": "pages", "prefix": "/pages/"},
        ],
    )
    document["services"][0]["shadow"] = {"methods": ["GET", "HEAD"]}
    service = load(document).services[0]
    assert service.shadow is not None
    assert service.shadow.method_set == {b"GET", b"HEAD"}
    assert dict(service.shadow_methods) == {
        "api": {b"GET", b"POST"},
        "upload": frozenset(),
        "pages": {b"GET", b"HEAD"},
        "default": {b"GET", b"HEAD"},
    }
    plain = load(base()).services[0]
    assert dict(plain.shadow_methods) == {"default": frozenset()}


def test_sticky_sources_and_split_threshold() -> None:
    header = load(edited("services[0].split", {"weight": 12.345, "sticky": {"header": "X-User"}}))
    split = header.services[0].split
    assert split.sticky.source == "header"
    assert split.sticky.key_name == b"x-user"
    assert split.threshold == split_threshold(12.345)
    by_address = load(edited("services[0].split.sticky", {"client_address": True}))
    sticky = by_address.services[0].split.sticky
    assert (sticky.source, sticky.key_name) == ("client_address", b"")


def test_health_checks_are_indexed_by_address() -> None:
    document = edited("services[0].health_check", {"path": "/ready", "interval_s": 0.5})
    document["services"][1]["stable"]["addresses"] = ["127.0.0.1:9001"]  # shared, both checked
    document["services"][1]["health_check"] = {"path": "/ready", "interval_s": 0.5}
    config = load(document)
    assert set(config.health_checks) == {
        ("127.0.0.1", 9001),
        ("127.0.0.1", 9002),
        ("127.0.0.1", 9012),
    }
    assert config.health_checks["127.0.0.1", 9001].path == "/ready"


def test_the_models_are_frozen() -> None:
    config = load(base())
    with pytest.raises(Exception, match="frozen"):
        config.workers = 2


# -- the shipped example and a full round trip -------------------------------------------------


EXAMPLE = resources.files("stageless") / "examples" / "proxy.yaml"
FULL = """
listen: 0.0.0.0:8080
admin: null
workers: 2
signing_keys:
  - {id: k2, secret_env: STAGELESS_TEST_KEY}
  - {id: k1, secret_env: STAGELESS_TEST_KEY}
batches: {path: /var/lib/stageless/batches.jsonl, interval_s: 5}
timeouts: {connect_s: 1, read_s: 10, total_s: 20, client_header_s: 5, client_idle_s: 30,
           shutdown_grace_s: 3}
limits: {max_header_bytes: 16384, max_headers: 50, max_connections: 500}
pool: {max_idle_per_address: 8, idle_timeout_s: 4.5}
services:
  - name: checkout
    hosts: [shop.example.com, "[2001:db8::1]"]
    stable: {addresses: ["10.0.0.1:8000", "10.0.0.2:8000"]}
    candidate: {addresses: ["[2001:db8::2]:8000"]}
    health_check: {path: /ready, host: shop.internal, interval_s: 1, timeout_s: 0.5,
                   healthy_threshold: 3, unhealthy_threshold: 1}
    split: {weight: 0.125, sticky: {header: x-user-id}}
    testers: true
    shadow:
      share: 2.5
      methods: [GET]
      queue: 10
      timeout_s: 0.2
      max_body_bytes: 0
      noise_share: 0
      compare: {headers: [content-type, etag], ignore_fields: [body.ts], ignore_headers: [date],
                unordered_arrays: false}
    routes:
      - {name: api, prefix: /api/, shadow_methods: [GET, POST, PUT]}
      - {name: all, prefix: /}
  - name: search
    hosts: [search.example.com]
    stable: {addresses: ["search-stable:80"]}
    candidate: {addresses: ["search-candidate:80"]}
    split: {weight: 100, sticky: {client_address: true}}
"""


def test_the_shipped_example_loads() -> None:
    config = load_config(Path(str(EXAMPLE)), environ={"STAGELESS_ROUTE_KEY": "r" * 32})
    service = config.services[0]
    assert service.name == "checkout"
    assert service.split.weight == 5
    assert service.shadow is not None and service.shadow.share == 10
    assert [r.name for r in service.all_routes] == ["api", "static", "default"]
    assert config.batches.file == Path("batches.jsonl")


def test_a_full_config_round_trips_through_yaml() -> None:
    config = parse_config(FULL, source="full.yaml", environ=ENV)
    dumped = yaml.safe_dump(config.model_dump(mode="json"))
    again = parse_config(dumped, source="again.yaml", environ=ENV)
    assert again == config
    search = config.services[1]
    assert search.split.threshold == 2**32
    assert config.services[0].shadow is not None
    assert config.services[0].shadow.compare.ignore_headers == ("date",)
    assert config.services[0].stable.endpoints[1] == ("10.0.0.2", 8000)


# -- properties --------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hostnames = (
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not re.fullmatch(r"[0-9.]+", h))
)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)


@given(st.one_of(_hostnames, _ipv4, _ipv6), st.integers(1, 65535))
def test_parse_address_reads_back_what_was_written(host: str, port: int) -> None:
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert parse_address(text) == (host, port)


@given(st.text(max_size=30))
def test_parse_address_accepts_or_says_why(text: str) -> None:
    try:
        host, port = parse_address(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert 1 <= port <= 65535 and host


_prefix = st.from_regex(r"/[a-c/]{0,4}", fullmatch=True)


@given(st.lists(_prefix, max_size=5, unique=True), st.from_regex(r"/?[a-c/]{0,6}", fullmatch=True))
def test_route_for_is_the_first_matching_prefix(prefixes: list[str], path: str) -> None:
    routes = [{"name": f"r{i}", "prefix": prefix} for i, prefix in enumerate(prefixes)]
    try:
        service = load(edited("services[0].routes", routes)).services[0]
    except ValidationError as exc:  # an unreachable route: refused, and said so
        assert all("can never match" in issue.message for issue in exc.issues)
        return
    expected = next((r["name"] for r in routes if path.startswith(r["prefix"])), "default")
    assert service.route_for(path.encode()).name == expected
