"""How far behind the processor is, read from its /metrics page: the public operations API an
operator (or Prometheus) reads too, so the demo needs no access to Kafka's consumer offsets.

The processor refreshes ``pcm_processor_consumer_lag{topic,partition}`` from the broker every
``PCM_PROCESSOR_LAG_REFRESH_S`` and stamps ``pcm_processor_lag_refreshed_timestamp_seconds``
with the moment of that read. Zero lag on every topic in a refresh newer than the last push
means every pushed event is a fact and its KPIs are current (an offset is committed only then).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from pcm_processor.metrics import PROCESSOR_CONSUMER_LAG, PROCESSOR_LAG_REFRESHED
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families


def _name(gauge: Gauge) -> str:
    # The names as the processor declares them: a rename there cannot silently break this.
    (metric,) = gauge.describe()
    return str(metric.name)


LAG = _name(PROCESSOR_CONSUMER_LAG)
REFRESHED = _name(PROCESSOR_LAG_REFRESHED)


@dataclass(frozen=True)
class LagReport:
    refreshed_at: float
    """Unix time of the broker read behind ``lags`` (0: not refreshed yet)."""
    lags: dict[tuple[str, str], int]
    """(topic, partition) -> messages not yet committed by the processor."""

    def behind(self, topics: Iterable[str]) -> int:
        """Messages of ``topics`` the processor has not finished (facts and KPIs) yet."""
        wanted = set(topics)
        return sum(lag for (topic, _), lag in self.lags.items() if topic in wanted)

    def caught_up(self, topics: Iterable[str], since: float) -> bool:
        """Zero lag on every partition of every topic, read after ``since``."""
        wanted = set(topics)
        reported = {topic for topic, _ in self.lags}
        return self.refreshed_at > since and wanted <= reported and self.behind(wanted) == 0


def parse(page: str) -> LagReport:
    refreshed_at, lags = 0.0, {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == REFRESHED:
                refreshed_at = sample.value
            elif sample.name == LAG:
                lags[(sample.labels["topic"], sample.labels["partition"])] = int(sample.value)
    return LagReport(refreshed_at, lags)


def read(metrics_url: str, timeout_s: float = 5) -> LagReport:
    """The processor's latest lag report (OSError while it does not serve /metrics yet)."""
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
        page: bytes = response.read()
    return parse(page.decode())
