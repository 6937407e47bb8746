"""Helpers shared by the provider tests: an event recorder and flag-file writers."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.event import EventDetails, ProviderEvent

WAIT = 10.0  # upper bound for any event; a passing test waits only as long as the reload takes


class Events:
    """Records provider events delivered through the real OpenFeature API, in order."""

    def __init__(self, provider_name: str = "stageless") -> None:
        self.provider_name = provider_name
        self.seen: list[tuple[ProviderEvent, EventDetails]] = []
        self._condition = threading.Condition()

    def handler(self, event: ProviderEvent) -> Callable[[EventDetails], None]:
        def record(details: EventDetails) -> None:
            if details.provider_name != self.provider_name:
                return  # the no-op default provider's immediate READY, for instance
            with self._condition:
                self.seen.append((event, details))
                self._condition.notify_all()

        return record

    def register(self) -> None:
        for event in ProviderEvent:
            api.add_handler(event, self.handler(event))

    def wait_for(self, event: ProviderEvent, *, after: int = 0) -> EventDetails:
        """The first ``event`` at index >= ``after``, waiting at most WAIT seconds for it."""

        def find() -> EventDetails | None:
            for kind, details in self.seen[after:]:
                if kind is event:
                    return details
            return None

        with self._condition:
            found = self._condition.wait_for(find, timeout=WAIT)
        assert found is not None, f"no {event} within {WAIT}s; seen: {self.kinds()}"
        return found

    def kinds(self) -> list[ProviderEvent]:
        with self._condition:
            return [kind for kind, _ in self.seen]

    def __len__(self) -> int:
        with self._condition:
            return len(self.seen)


def flag(variants: Mapping[str, Any], default: str | None, **extra: Any) -> dict[str, Any]:
    """A flag definition in flagd format."""
    return {"state": "ENABLED", "variants": dict(variants), "defaultVariant": default, **extra}


BOOL = {"on": True, "off": False}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document))


def replace_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write a new version the way editors and config management do: temp file, then rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)
