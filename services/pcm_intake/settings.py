"""Intake service settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path

from pcm_common.settings import Settings
from pydantic import Field


class IntakeSettings(Settings):
    intake_address: str = Field("127.0.0.1:50051", description="gRPC listen address.")
    intake_metrics_port: int = Field(9101, description="Prometheus /metrics port.")
    intake_workers: int = Field(16, description="gRPC worker threads.")
    intake_max_batch: int = Field(1_000, description="Most events accepted in one call.")
    intake_max_message_bytes: int = Field(
        8 * 1024 * 1024, description="Largest request accepted (bytes); larger: RESOURCE_EXHAUSTED."
    )
    intake_future_skew_s: int = Field(
        300, description="How far in the future a timestamp may be (entity clocks drift)."
    )
    intake_max_age_days: int = Field(
        400, description="Oldest event accepted (late exports of last year still fit)."
    )
    intake_rate_limit_events_per_s: int = Field(
        20_000, description="Per-entity events per second (per replica); 0 disables."
    )
    intake_dedupe_window: int = Field(
        2_000_000, description="Event ids remembered to answer 'duplicate' (per replica)."
    )
    intake_tls_cert: Path | None = Field(None, description="PEM certificate; enables TLS.")
    intake_tls_key: Path | None = Field(None, description="PEM private key for TLS.")
    intake_retry_after_s: int = Field(
        5, description="Retry hint sent with UNAVAILABLE / RESOURCE_EXHAUSTED."
    )
