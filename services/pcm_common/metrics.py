"""Serving the Prometheus metrics of a service.

Each service declares its own metrics in its own module (``pcm_intake.metrics``,
``pcm_processor.metrics``; push services through ``pcm_common.push.PushMetrics``) and imports
only that module, so a service exports only its own series.
"""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose the default registry on http://host:port/metrics from a daemon thread."""
    start_http_server(port, addr=host)
