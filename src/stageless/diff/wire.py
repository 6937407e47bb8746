"""A collector's state as JSON: how a proxy sends its diff counts to the control plane.

The proxy reports the :class:`~stageless.diff.collector.CollectorState` it gathered since its
last report (a delta); the control plane stores it and merges deltas with
:meth:`~stageless.diff.collector.DiffCollector.merge`. The JSON form::

    {"untracked_requests": 0,
     "endpoints": {"GET /api/orders": {
         "total": 120, "differing": 3, "noise_sampled": 120, "untracked_differences": 0,
         "fields": {"body.total": {"raw": 3, "noise": 0, "kinds": {"PrimitiveDifference": 3},
                                   "examples": [["GET /api/orders/7", "12", "13"]]}}}}}

:func:`state_from_json` validates it and names every bad path (``diff.endpoints['GET /'].total:
-1 is not a count``), as the API answers a bad report with 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stageless.diff.collector import CollectorState, EndpointTally, FieldTally
from stageless.errors import Issue, ValidationError

__all__ = ["state_from_json", "state_to_json"]

_ENDPOINT_COUNTS = ("total", "differing", "noise_sampled", "untracked_differences")


def state_to_json(state: CollectorState) -> dict[str, Any]:
    """The JSON-ready form of ``state`` (plain dicts, lists, strings and integers)."""
    return {
        "untracked_requests": state.untracked_requests,
        "endpoints": {
            name: {
                "total": tally.total,
                "differing": tally.differing,
                "noise_sampled": tally.noise_sampled,
                "untracked_differences": tally.untracked_differences,
                "fields": {
                    path: {
                        "raw": counts.raw,
                        "noise": counts.noise,
                        "kinds": dict(counts.kinds),
                        "examples": [list(example) for example in counts.examples],
                    }
                    for path, counts in tally.fields.items()
                },
            }
            for name, tally in state.endpoints.items()
        },
    }


def state_from_json(raw: Any, *, where: str = "diff") -> CollectorState:
    """The state a JSON object describes; :class:`ValidationError` naming every bad path."""
    reader = _Reader()
    state = reader.state(raw, where)
    if reader.issues:
        raise ValidationError(reader.issues)
    return state


class _Reader:
    """Collects every issue, so that one answer lists them all."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def mapping(self, raw: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.fail(path, f"expected a JSON object, got {_kind(raw)}")
            return {}
        return raw

    def count(self, raw: Mapping[str, Any], key: str, path: str) -> int:
        return self.whole(raw.get(key, 0), f"{path}.{key}")

    def whole(self, value: Any, path: str) -> int:
        if type(value) is not int or value < 0:
            self.fail(path, f"{value!r} is not a count; expected a whole number >= 0")
            return 0
        return value

    def unknown(self, raw: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
        for key in raw:
            if key not in known:
                self.fail(f"{path}.{key}", f"unknown key; expected one of {', '.join(known)}")

    def state(self, raw: Any, path: str) -> CollectorState:
        data = self.mapping(raw, path)
        self.unknown(data, ("untracked_requests", "endpoints"), path)
        endpoints = {
            name: self.endpoint(value, f"{path}.endpoints[{name!r}]")
            for name, value in self.mapping(data.get("endpoints", {}), f"{path}.endpoints").items()
        }
        return CollectorState(endpoints, self.count(data, "untracked_requests", path))

    def endpoint(self, raw: Any, path: str) -> EndpointTally:
        data = self.mapping(raw, path)
        self.unknown(data, (*_ENDPOINT_COUNTS, "fields"), path)
        total, differing, sampled, untracked = (
            self.count(data, key, path) for key in _ENDPOINT_COUNTS
        )
        if differing > total:
            self.fail(f"{path}.differing", f"{differing} exceeds total ({total})")
        fields = {
            name: self.field(value, f"{path}.fields[{name!r}]")
            for name, value in self.mapping(data.get("fields", {}), f"{path}.fields").items()
        }
        return EndpointTally(total, differing, sampled, untracked, fields)

    def field(self, raw: Any, path: str) -> FieldTally:
        data = self.mapping(raw, path)
        self.unknown(data, ("raw", "noise", "kinds", "examples"), path)
        kinds = {
            str(kind): self.whole(n, f"{path}.kinds[{kind!r}]")
            for kind, n in self.mapping(data.get("kinds", {}), f"{path}.kinds").items()
        }
        examples: list[tuple[str, str, str]] = []
        raw_examples = data.get("examples", [])
        if not isinstance(raw_examples, list):
            self.fail(f"{path}.examples", f"expected a list, got {_kind(raw_examples)}")
            raw_examples = []
        for index, example in enumerate(raw_examples):
            if (
                isinstance(example, list)
                and len(example) == 3
                and all(isinstance(part, str) for part in example)
            ):
                examples.append((example[0], example[1], example[2]))
            else:
                self.fail(
                    f"{path}.examples[{index}]",
                    "expected [request, primary, candidate], three strings",
                )
        return FieldTally(
            self.count(data, "raw", path), self.count(data, "noise", path), kinds, examples
        )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
