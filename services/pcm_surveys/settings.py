"""Surveys service settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path

from pcm_common.settings import Settings
from pydantic import Field


class SurveysSettings(Settings):
    surveys_address: str = Field("127.0.0.1:50054", description="gRPC listen address.")
    surveys_metrics_port: int = Field(9107, description="/metrics port of the gRPC service.")
    surveys_worker_metrics_port: int = Field(
        9108, description="/metrics port of the worker (outbox relays)."
    )
    surveys_workers: int = Field(8, description="gRPC worker threads.")
    surveys_max_batch: int = Field(1_000, description="Most items accepted in one call.")
    surveys_max_message_bytes: int = Field(
        8 * 1024 * 1024, description="Largest request accepted (bytes)."
    )
    surveys_future_skew_s: int = Field(300, description="Clock-skew allowance (seconds).")
    surveys_max_age_days: int = Field(400, description="Oldest answer or period end accepted.")
    surveys_rate_limit_events_per_s: int = Field(
        5_000, description="Per-entity items per second (per replica); 0 disables."
    )
    surveys_retry_after_s: int = Field(5, description="Retry hint with UNAVAILABLE.")
    surveys_tls_cert: Path | None = Field(None, description="PEM certificate; enables TLS.")
    surveys_tls_key: Path | None = Field(None, description="PEM private key for TLS.")
    surveys_relay_batch: int = Field(1_000, description="Outbox rows per acknowledged batch.")
    surveys_relay_idle_s: float = Field(1.0, description="Longest wait for a NOTIFY.")
    surveys_outbox_retention_days: int = Field(
        7, description="Published outbox rows are deleted after this many days."
    )
    surveys_page_size: int = Field(
        100, description="Most items per ListSurveyCollections / ListSurveyResponses page."
    )
