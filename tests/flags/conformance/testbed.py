"""Where the flagd testbed lives, and which of its scenarios this suite does not run (and why).

The testbed is read in place from ``../shared/spec/flagd-testbed`` relative to the repository
root (CI puts ``shared/`` beside the clone); it is never copied or edited. A missing testbed is
an error, not a skip.

:data:`DESELECTED` is the complete, written list of what is not run. docs/conformance.md shows
the same list and the per-feature counts; ``test_counts.py`` checks that the collection
matches both, so a scenario can neither vanish silently nor be skipped without a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
TESTBED = (REPO_ROOT / ".." / "shared" / "spec" / "flagd-testbed").resolve()

if not (TESTBED / "SOURCES.txt").is_file():
    raise RuntimeError(
        f"the flagd testbed is missing: expected it at {TESTBED} "
        "(../shared/spec/flagd-testbed relative to the repository root); "
        "the conformance suite cannot run without it"
    )

EVALUATOR_FEATURES = TESTBED / "evaluator" / "gherkin"
EVALUATOR_FLAGS = TESTBED / "evaluator" / "flags" / "testkit-flags.json"
DAEMON_FEATURES = TESTBED / "gherkin"
DAEMON_FLAGS = TESTBED / "flags"

# The daemon suite's flags come from every file of flags/ that a default flagd serves; the
# selector files are only reachable through a selector (a flagd sync-source option).
SELECTOR_FLAG_FILES = frozenset({"selector-flags.json", "selector-flag-combined-metadata.json"})


@dataclass(frozen=True, slots=True)
class Deselection:
    """Scenarios not run: in ``feature`` (a path relative to the testbed), those named
    ``scenario`` (all if ``None``) and/or carrying ``tag`` (any if ``None``)."""

    feature: str | None
    scenario: str | None
    tag: str | None
    reason: str

    def matches(self, feature: str, scenario: str, tags: frozenset[str]) -> bool:
        return (
            (self.feature is None or self.feature == feature)
            and (self.scenario is None or self.scenario == scenario)
            and (self.tag is None or self.tag in tags)
        )


NEEDS_FLAGD = "needs a running flagd daemon and a flagd provider"

DESELECTED: tuple[Deselection, ...] = (
    Deselection(
        None,
        None,
        "fractional-v1",
        "legacy v1 bucketing (float, 1 % steps), replaced by v2 in flagd; Stageless implements "
        "v2 (default) and v3",
    ),
    Deselection(
        None,
        None,
        "deprecated",
        "deprecated by the testbed (expects FLAG_NOT_FOUND for a missing default variant); "
        "superseded by the @no-default-variant scenarios, which run",
    ),
    Deselection("gherkin/config.feature", None, None, f"{NEEDS_FLAGD}: provider options"),
    Deselection(
        "gherkin/connection.feature", None, None, f"{NEEDS_FLAGD}: connects and reconnects"
    ),
    Deselection("gherkin/events.feature", None, None, f"{NEEDS_FLAGD}: connection events"),
    Deselection(
        "gherkin/rpc-caching.feature", None, None, f"{NEEDS_FLAGD}: the RPC resolver's cache"
    ),
    Deselection(
        "gherkin/selector.feature", None, None, f"{NEEDS_FLAGD}: selects a flagd sync source"
    ),
    Deselection(
        "gherkin/sync-payload.feature", None, None, f"{NEEDS_FLAGD}: sync payload metadata"
    ),
    Deselection(
        "gherkin/contextEnrichment.feature",
        None,
        None,
        f"{NEEDS_FLAGD}: context enriched from flagd's sync metadata",
    ),
    Deselection(
        "gherkin/disabled.feature",
        "Flag disabled in one flag set, enabled in another",
        None,
        f"{NEEDS_FLAGD}: rows name selector sources (flags/allFlags.json, "
        "rawflags/selector-flags.json)",
    ),
    Deselection(
        "gherkin/metadata.feature",
        None,
        "metadata-provider",
        f"{NEEDS_FLAGD}: rows name a selector source (rawflags/selector-flag-combined-"
        "metadata.json); flag-set metadata merging is covered by tests/flags/test_document.py",
    ),
)


def deselection_for(feature: str, scenario: str, tags: frozenset[str]) -> Deselection | None:
    """The first rule that deselects this scenario, or ``None`` if it runs."""
    return next((rule for rule in DESELECTED if rule.matches(feature, scenario, tags)), None)
