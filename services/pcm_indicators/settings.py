"""Indicators service settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path

from pcm_common.settings import Settings
from pydantic import Field


class IndicatorsSettings(Settings):
    indicators_address: str = Field("127.0.0.1:50053", description="gRPC listen address.")
    indicators_metrics_port: int = Field(9105, description="/metrics port of the gRPC service.")
    indicators_worker_metrics_port: int = Field(
        9106, description="/metrics port of the worker (outbox relay)."
    )
    indicators_workers: int = Field(8, description="gRPC worker threads.")
    indicators_max_batch: int = Field(500, description="Most values accepted in one call.")
    indicators_max_message_bytes: int = Field(
        4 * 1024 * 1024, description="Largest request accepted (bytes)."
    )
    indicators_future_skew_s: int = Field(300, description="Clock-skew allowance (seconds).")
    indicators_max_age_days: int = Field(
        800, description="Oldest report time accepted (annual indicators are reported late)."
    )
    indicators_rate_limit_events_per_s: int = Field(
        1_000, description="Per-entity values per second (per replica); 0 disables."
    )
    indicators_retry_after_s: int = Field(5, description="Retry hint with UNAVAILABLE.")
    indicators_tls_cert: Path | None = Field(None, description="PEM certificate; enables TLS.")
    indicators_tls_key: Path | None = Field(None, description="PEM private key for TLS.")
    indicators_time_zone: str = Field(
        "America/Lima", description="Zone of the local dates periods start on."
    )
    indicators_relay_batch: int = Field(500, description="Outbox rows per acknowledged batch.")
    indicators_relay_idle_s: float = Field(1.0, description="Longest wait for a NOTIFY.")
    indicators_outbox_retention_days: int = Field(
        7, description="Published outbox rows are deleted after this many days."
    )
    indicators_page_size: int = Field(100, description="Values per ListIndicatorValues page.")
