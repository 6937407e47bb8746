"""The seam between the provider and wherever flags come from.

A :class:`FlagSource` loads a :class:`~stageless.flags.FlagSet` and then, if it can, tells a
:class:`SourceListener` about every later version. The provider only ever talks to this
Protocol: a file (:class:`~stageless.sdk.file_source.FileSource`), the control plane's
stream (:class:`~stageless.sdk.stream_source.StreamSource`), a fixed in-memory set
(:class:`StaticSource`) for tests and embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stageless.errors import StagelessError
from stageless.flags import FlagSet


class SourceUnavailableError(StagelessError):
    """The source could not be read at all (a missing file, a permission error, a lost stream)."""


class SourceListener(Protocol):
    """What a source calls when something happens after the first load.

    Calls may come from a background thread; implementations must be quick and must not raise.
    """

    def flags_loaded(self, flags: FlagSet, changed: Sequence[str]) -> None:
        """A new good version is in force; ``changed`` lists the keys whose definition changed.

        Also called, with ``changed`` empty, when a source recovers from a failure with
        content identical to the last good version.
        """

    def flags_failed(self, error: StagelessError) -> None:
        """A new version could not be used; the last good flags stay in force.

        ``error`` is a :class:`~stageless.errors.ValidationError` for a bad document, a
        :class:`SourceUnavailableError` when the source cannot be read.
        """

    def flags_stale(self, error: StagelessError) -> None:
        """The source lost its connection; the flags in force may be out of date.

        Sources with a connection (the control plane's stream) call this when it is lost, and
        ``flags_loaded`` (``changed`` empty unless something changed meanwhile) when it is back.
        """


class FlagSource(Protocol):
    """Where a provider's flags come from."""

    @property
    def name(self) -> str:
        """A short description for messages, such as the file path."""

    def load(self) -> FlagSet:
        """Load the current version, or raise ValidationError / SourceUnavailableError."""

    def watch(self, listener: SourceListener) -> None:
        """Start telling ``listener`` about later versions (a no-op for static sources).

        Called after :meth:`load`, whether or not that succeeded, so that a source whose
        first version was broken can still report the fix.
        """

    def close(self) -> None:
        """Stop watching and release resources; :meth:`watch` may be called again later."""


class StaticSource:
    """A source that always holds the same, already parsed, flag set."""

    def __init__(self, flags: FlagSet, *, name: str = "in-memory flags") -> None:
        self._flags = flags
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def load(self) -> FlagSet:
        return self._flags

    def watch(self, listener: SourceListener) -> None:
        """Nothing ever changes, so there is nothing to report."""

    def close(self) -> None:
        """Nothing to release."""
