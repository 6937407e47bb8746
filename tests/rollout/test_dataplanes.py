"""The data-plane drivers' settings blocks in a plan: each belongs to its driver, is required
there, and the plan refuses what the driver cannot do (shadowing on HAProxy, tester steps with no
tokens), each problem with its path."""

from __future__ import annotations

import pytest

from stageless.errors import ValidationError
from stageless.rollout.dataplanes import GatewaySettings, HAProxySettings, NginxSettings
from stageless.rollout.plan import parse_plan

BASE = (
    "service: shop\nstable: {addresses: ['127.0.0.1:9001']}\n"
    "candidate: {addresses: ['127.0.0.1:9002']}\n"
)
TESTERS = "{tokens_file: /tmp/tokens, signing_keys: [{id: k1, secret_env: SHOP_KEY}]}"


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_plan(BASE + text)
    return [f"{issue.path}: {issue.message}" for issue in caught.value.issues]


def test_each_driver_reads_its_own_block_with_defaults() -> None:
    plan = parse_plan(
        BASE + "driver: haproxy\nsteps: [{kind: canary, weight: 5}, {kind: promote}]\n"
        "haproxy: {socket: /run/haproxy.sock}\n"
    )
    assert plan.haproxy == HAProxySettings(socket="/run/haproxy.sock")
    assert plan.driver_settings is plan.haproxy
    assert plan.haproxy.listen == "127.0.0.1:8080"
    assert plan.haproxy.interval_s == 10.0
    plan = parse_plan(
        BASE + "driver: nginx\nsteps: [{kind: shadow, share: 5}, {kind: promote}]\n"
        "nginx: {config: /etc/stageless/shop.conf, worker_processes: 2}\n"
    )
    assert plan.nginx == NginxSettings(config="/etc/stageless/shop.conf", worker_processes=2)
    plan = parse_plan(
        BASE + "driver: gateway-api\nsteps: [{kind: testers}, {kind: promote}]\n"
        f"gateway: {{parent_refs: [{{name: edge}}], testers: {TESTERS}}}\n"
    )
    assert isinstance(plan.gateway, GatewaySettings)
    assert plan.gateway.metrics.url == "http://127.0.0.1:9090"
    assert plan.gateway.testers is not None
    assert plan.gateway.testers.signing_keys[0].secret_env == "SHOP_KEY"  # noqa: S105 (a name)
    assert parse_plan(BASE + "steps: [{kind: promote}]\n").driver_settings is None


def test_a_block_belongs_to_its_driver_and_is_required_there() -> None:
    assert problems("driver: nginx\nsteps: [{kind: promote}]\n") == [
        "nginx: is required with driver: nginx"
    ]
    assert problems("steps: [{kind: promote}]\nhaproxy: {socket: /s}\n") == [
        "haproxy: is only used with driver: haproxy (this plan's driver is builtin)"
    ]
    assert problems(
        "driver: gateway-api\nsteps: [{kind: promote}]\ngateway: {parent_refs: [{name: e}]}\n"
        "nginx: {config: /c}\n"
    ) == ["nginx: is only used with driver: nginx (this plan's driver is gateway-api)"]


def test_haproxy_refuses_shadow_steps_and_needs_tokens_and_an_acl_for_testers() -> None:
    assert problems(
        "driver: haproxy\nsteps: [{kind: shadow}, {kind: testers}, {kind: promote}]\n"
        "haproxy: {socket: /s}\n"
    ) == [
        "steps[0].kind: 'shadow' needs a data plane that copies requests; HAProxy has no "
        "request mirroring (use driver builtin, nginx or gateway-api, or drop the step)",
        "haproxy.testers: is required: steps[1] is a testers step, and driver haproxy needs "
        "the tester tokens to route",
    ]
    block = f"haproxy: {{socket: /s, testers: {TESTERS}}}\n"
    assert problems(f"driver: haproxy\nsteps: [{{kind: promote}}]\n{block}") == [
        "haproxy.testers_acl: is required with haproxy.testers"
    ]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("nginx: {config: ''}", "nginx.config: '' is not a file path"),
        (
            "nginx: {config: /c, worker_processes: 300}",
            "nginx.worker_processes: 300 is not between 0 and 256",
        ),
        (
            "nginx: {config: /c, interval_s: 0.5}",
            "nginx.interval_s: 0.5 is not between 1 and 3600",
        ),
        (
            "nginx: {config: /c, listen: 'localhost'}",
            "nginx.listen: 'localhost' is not host:port, e.g. 10.0.0.11:8000",
        ),
        (
            "nginx: {config: /c, testers: {tokens_file: /t, signing_keys: [{id: k1, "
            "secret_env: 9X}]}}",
            "nginx.testers.signing_keys[0].secret_env: '9X' is not valid; expected the name of "
            "an environment variable (letters, digits, _)",
        ),
        (
            "nginx: {config: /c, testers: {tokens_file: /t, signing_keys: [{id: k1, "
            "secret: abc}]}}",
            "nginx.testers.signing_keys[0].secret: unknown key; did you mean 'secret_env'?",
        ),
    ],
)
def test_bad_nginx_settings_name_their_path(block: str, expected: str) -> None:
    assert expected in problems(f"driver: nginx\nsteps: [{{kind: promote}}]\n{block}\n")


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("gateway: {parent_refs: []}", "gateway.parent_refs: "),
        (
            "gateway: {parent_refs: [{name: e}], hostnames: [Shop.example]}",
            "gateway.hostnames[0]: 'Shop.example' is not valid; expected a host name",
        ),
        (
            "gateway: {parent_refs: [{name: e}], stable_backend: {name: s, port: 0}}",
            "gateway.stable_backend.port: 0 is not between 1 and 65535",
        ),
        (
            "gateway: {parent_refs: [{name: e, namespace: Bad_ns}]}",
            "gateway.parent_refs[0].namespace: 'Bad_ns' is not valid; expected a DNS label",
        ),
        (
            "gateway: {parent_refs: [{name: e}], metrics: {interval_s: 0}}",
            "gateway.metrics.interval_s: 0 is not between 1 and 3600",
        ),
    ],
)
def test_bad_gateway_settings_name_their_path(block: str, expected: str) -> None:
    found = problems(f"driver: gateway-api\nsteps: [{{kind: promote}}]\n{block}\n")
    assert any(p.startswith(expected) for p in found), found
