"""Read a Prometheus /metrics page the way Prometheus does, with its own text parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout_s: float = 5) -> str:
    """The /metrics page at ``url`` (OSError while the server is not up)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        page: bytes = response.read()
    return page.decode()


def samples(
    text: str, name: str, labels: Mapping[str, str] | None = None
) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` (``x_total``, ``x_count``...) whose
    labels include ``labels``."""
    wanted = dict(labels or {})
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted.items() <= sample.labels.items()
    ]


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of a metric's samples in a /metrics page (optionally filtered by labels); 0 when
    there is none."""
    return sum(value for _, value in samples(text, name, labels))
