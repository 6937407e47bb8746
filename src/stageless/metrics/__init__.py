"""Metric sources: where the batches the judges read come from (an edge package).

- :class:`MetricSource`: the Protocol every source implements; :class:`SourceError` its failure.
- :class:`BatchFile`: the proxy's batches as JSON lines, followed as the file grows.
- :class:`PrometheusSource`: PromQL templates per version over Prometheus' HTTP API.
- :func:`fetch_user_batches`: a window of user traffic, or the reason it cannot be judged.
- :func:`judge_window`, :class:`SourceFeed`: feed a judge from a source; no data is
  INCONCLUSIVE with the reason, never a PASS.
"""

from stageless.metrics.batchfile import BatchFile
from stageless.metrics.feed import SourceFeed, inconclusive, judge_window
from stageless.metrics.prometheus import PrometheusConfig, PrometheusSource, PromQLTemplates
from stageless.metrics.source import (
    Fetched,
    MetricSource,
    SourceError,
    fetch_user_batches,
    missing_data,
)

__all__ = [
    "BatchFile",
    "Fetched",
    "MetricSource",
    "PromQLTemplates",
    "PrometheusConfig",
    "PrometheusSource",
    "SourceError",
    "SourceFeed",
    "fetch_user_batches",
    "inconclusive",
    "judge_window",
    "missing_data",
]
