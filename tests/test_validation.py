"""Pydantic's errors as path-level Issues (``stageless.validation``), on a small model of its own.

The rollout plan (tests/rollout/test_plan.py) and the proxy configuration
(tests/proxy/test_config.py) check the same translation on their real models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from stageless.errors import Issue, IssuesError
from stageless.validation import issues_from


def _even(value: int) -> int:
    if value % 2:
        raise ValueError(f"{value} is not even")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Wait(_Strict):
    kind: Literal["wait"]
    seconds: Annotated[int, AfterValidator(_even)]


class Call(_Strict):
    kind: Literal["call"]
    url: str
    secret: str = ""

    @pydantic.model_validator(mode="after")
    def _both(self) -> Call:
        if self.url == "both":
            raise IssuesError([Issue("url", "is bad"), Issue("secret", "is bad too")])
        return self


class Doc(_Strict):
    name: str
    mode: Literal["fast", "slow"] = "fast"
    steps: list[Annotated[Wait | Call, Field(discriminator="kind")]] = []
    labels: dict[str, int] = {}


def issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(pydantic.ValidationError) as caught:
        Doc.model_validate(raw)
    return [str(issue) for issue in issues_from(caught.value, Doc)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, ["name: is required"]),
        ({"name": 3}, ["name: expected a string, got 3"]),
        ({"name": "a", "nmae": 1}, ["nmae: unknown key; did you mean 'name'?"]),
        ({"name": "a", "zzz": 1}, ["zzz: unknown key; expected one of name, mode, steps, labels"]),
        ({"name": "a", "mode": "turbo"}, ["mode: 'turbo' is not one of 'fast', 'slow'"]),
        ({"name": "a", "steps": {}}, ["steps: expected a list, got a mapping"]),
        (
            {"name": "a", "steps": [{"seconds": 2}]},
            ["steps[0].kind: is required; expected one of wait, call"],
        ),
        (
            {"name": "a", "steps": [{"kind": "nap"}]},
            ["steps[0].kind: 'nap' is not one of wait, call"],
        ),
        (
            {"name": "a", "steps": [{"kind": "wait", "seconds": 3}]},
            ["steps[0].seconds: 3 is not even"],
        ),
        (
            {"name": "a", "steps": [{"kind": "wait", "seconds": 2}, {"kind": "call", "ur": "x"}]},
            ["steps[1].url: is required", "steps[1].ur: unknown key; did you mean 'url'?"],
        ),
        (
            {"name": "a", "steps": [{"kind": "call", "url": "both"}]},
            ["steps[0].url: is bad", "steps[0].secret: is bad too"],
        ),
        ({"name": "a", "labels": {"a-b": "x"}}, ["labels['a-b']: expected an integer, got 'x'"]),
    ],
)
def test_each_problem_names_its_path(raw: dict[str, Any], expected: list[str]) -> None:
    assert issues(raw) == expected


def test_a_secret_is_never_shown() -> None:
    found = issues({"name": "a", "steps": [{"kind": "call", "url": "u", "secret": 12345}]})
    assert found == ["steps[0].secret: expected a string, got something else"]
    assert "12345" not in " ".join(found)
