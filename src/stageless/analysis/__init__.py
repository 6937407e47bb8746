"""Canary analysis: judges that compare candidate and stable from batches of live traffic (pure).

The sequential judge (:class:`SequentialJudge`) is anytime-valid: it may be asked for its verdict
after every batch without inflating false rollbacks. :class:`KayentaJudge` (fixed horizon,
Mann-Whitney) and :class:`ThresholdJudge` (Flagger-style limits) have the same shape (the
:class:`Judge` protocol) for comparison. See docs/analysis.md.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version, parse_batch
    from stageless.analysis.config import DEFAULT_ALPHA_WEIGHTS, JudgeConfig
    from stageless.analysis.evalue import RatioGrid, log_beta_mixture
    from stageless.analysis.judge import SequentialJudge
    from stageless.analysis.kayenta import KayentaConfig, KayentaJudge, KayentaMetric
    from stageless.analysis.pairing import Interval, Pairer
    from stageless.analysis.protocol import Judge
    from stageless.analysis.threshold import ThresholdConfig, ThresholdJudge
    from stageless.analysis.verdict import Decision, Evidence, Verdict

# The judges need NumPy and SciPy; the batch schema (which the proxy imports) does not. Names are
# imported on first use (PEP 562), so `import stageless.analysis.batch` stays cheap.
_LAZY = {
    "Batch": "stageless.analysis.batch",
    "Histogram": "stageless.analysis.batch",
    "TrafficClass": "stageless.analysis.batch",
    "Version": "stageless.analysis.batch",
    "parse_batch": "stageless.analysis.batch",
    "DEFAULT_ALPHA_WEIGHTS": "stageless.analysis.config",
    "JudgeConfig": "stageless.analysis.config",
    "RatioGrid": "stageless.analysis.evalue",
    "log_beta_mixture": "stageless.analysis.evalue",
    "SequentialJudge": "stageless.analysis.judge",
    "KayentaConfig": "stageless.analysis.kayenta",
    "KayentaJudge": "stageless.analysis.kayenta",
    "KayentaMetric": "stageless.analysis.kayenta",
    "Interval": "stageless.analysis.pairing",
    "Pairer": "stageless.analysis.pairing",
    "Judge": "stageless.analysis.protocol",
    "ThresholdConfig": "stageless.analysis.threshold",
    "ThresholdJudge": "stageless.analysis.threshold",
    "Decision": "stageless.analysis.verdict",
    "Evidence": "stageless.analysis.verdict",
    "Verdict": "stageless.analysis.verdict",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stageless.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ALPHA_WEIGHTS",
    "Batch",
    "Decision",
    "Evidence",
    "Histogram",
    "Interval",
    "Judge",
    "JudgeConfig",
    "KayentaConfig",
    "KayentaJudge",
    "KayentaMetric",
    "Pairer",
    "RatioGrid",
    "SequentialJudge",
    "ThresholdConfig",
    "ThresholdJudge",
    "TrafficClass",
    "Verdict",
    "Version",
    "log_beta_mixture",
    "parse_batch",
]
