"""Canary analysis: judges that compare candidate and stable from batches of live traffic (pure).

The sequential judge (:class:`SequentialJudge`) is anytime-valid: it may be asked for its verdict
after every batch without inflating false rollbacks. :class:`KayentaJudge` (fixed horizon,
Mann-Whitney) and :class:`ThresholdJudge` (Flagger-style limits) have the same shape (the
:class:`Judge` protocol) for comparison. See docs/analysis.md.
"""

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version, parse_batch
from stageless.analysis.config import DEFAULT_ALPHA_WEIGHTS, JudgeConfig
from stageless.analysis.evalue import RatioGrid, log_beta_mixture
from stageless.analysis.judge import SequentialJudge
from stageless.analysis.kayenta import KayentaConfig, KayentaJudge, KayentaMetric
from stageless.analysis.pairing import Interval, Pairer
from stageless.analysis.protocol import Judge
from stageless.analysis.threshold import ThresholdConfig, ThresholdJudge
from stageless.analysis.verdict import Decision, Evidence, Verdict

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
