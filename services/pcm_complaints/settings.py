"""Complaints service settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pcm_common.settings import Settings
from pydantic import Field


class ComplaintsSettings(Settings):
    complaints_address: str = Field("127.0.0.1:50052", description="gRPC listen address.")
    complaints_metrics_port: int = Field(9103, description="/metrics port of the gRPC service.")
    complaints_worker_metrics_port: int = Field(
        9104, description="/metrics port of the worker (outbox relay and overdue job)."
    )
    complaints_workers: int = Field(8, description="gRPC worker threads.")
    complaints_max_batch: int = Field(1_000, description="Most events accepted in one call.")
    complaints_max_message_bytes: int = Field(
        4 * 1024 * 1024, description="Largest request accepted (bytes)."
    )
    complaints_future_skew_s: int = Field(
        300, description="How far in the future a timestamp may be (entity clocks drift)."
    )
    complaints_max_age_days: int = Field(
        400, description="Oldest stage time accepted (a filing date may be older)."
    )
    complaints_rate_limit_events_per_s: int = Field(
        5_000, description="Per-entity events per second (per replica); 0 disables."
    )
    complaints_retry_after_s: int = Field(
        5, description="Retry hint sent with UNAVAILABLE / RESOURCE_EXHAUSTED."
    )
    complaints_tls_cert: Path | None = Field(None, description="PEM certificate; enables TLS.")
    complaints_tls_key: Path | None = Field(None, description="PEM private key for TLS.")
    complaints_time_zone: str = Field(
        "America/Lima", description="Zone of the local dates terms count in (filing, answer)."
    )
    complaints_overdue_interval_s: float = Field(
        60.0, description="How often the worker looks for complaints past due."
    )
    complaints_relay_batch: int = Field(
        1_000, description="Most outbox rows published to Kafka in one acknowledged batch."
    )
    complaints_relay_idle_s: float = Field(
        1.0, description="Longest wait for a NOTIFY before the relay looks at the outbox again."
    )
    complaints_outbox_retention_days: int = Field(
        7, description="Published outbox rows are deleted after this many days."
    )
    complaints_today: dt.date | None = Field(
        None,
        description="The overdue job's today (local date) instead of the clock: drills and tests.",
    )
