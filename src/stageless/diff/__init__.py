"""Response diffing for dark launches: lifting, differences, Diffy's noise filter, reports.

Pure: no I/O, no clock. The proxy lifts the primary (stable), candidate and optional secondary
(a second stable sample) responses of a shadowed request with :func:`lift`, hands them to a
:class:`DiffCollector` per worker, merges the workers' states and serves :class:`DiffReport`
as JSON. See docs/diff.md.
"""

from stageless.diff.collector import (
    CollectorState,
    DiffCollector,
    EndpointTally,
    FieldTally,
    make_report,
)
from stageless.diff.compare import (
    ABSENT,
    Difference,
    DifferenceKind,
    compare,
    describe,
    differences,
)
from stageless.diff.lift import Array, Digest, Lifted, Marker, lift
from stageless.diff.report import (
    DiffReport,
    EndpointReport,
    Example,
    FieldReport,
    NoiseFilter,
    noise_estimate,
)
from stageless.diff.rules import VOLATILE_HEADERS, CompareRules
from stageless.diff.wire import state_from_json, state_to_json

__all__ = [
    "ABSENT",
    "VOLATILE_HEADERS",
    "Array",
    "CollectorState",
    "CompareRules",
    "DiffCollector",
    "DiffReport",
    "Difference",
    "DifferenceKind",
    "Digest",
    "EndpointReport",
    "EndpointTally",
    "Example",
    "FieldReport",
    "FieldTally",
    "Lifted",
    "Marker",
    "NoiseFilter",
    "compare",
    "describe",
    "differences",
    "lift",
    "make_report",
    "noise_estimate",
    "state_from_json",
    "state_to_json",
]
