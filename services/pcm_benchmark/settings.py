"""National benchmark settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pcm_common.settings import Settings
from pydantic import Field, SecretStr


class BenchmarkSettings(Settings):
    benchmark_month: str = Field(
        "", description="Month assessed, YYYY-MM (empty: the last complete month in Lima)."
    )
    benchmark_grain: Literal["MONTH", "QUARTER", "YEAR"] = Field(
        "MONTH",
        description="`assess`: the period assessed is the month, quarter or year holding "
        "benchmark_month (a quarter or year on its months up to that month).",
    )
    benchmark_indicators_target: str = Field(
        "127.0.0.1:50053", description="The indicators service the reported values come from."
    )
    benchmark_indicators_ca: Path | None = Field(
        None, description="PEM CA certificate of the indicators service when it serves TLS."
    )
    benchmark_token: SecretStr = Field(
        SecretStr(""), description="A national credential (reads every entity's reports)."
    )
    benchmark_time_zone: str = Field("America/Lima", description="Zone of the periods.")

    benchmark_web_address: str = Field(
        "127.0.0.1:8088", description="host:port the dashboard (`pcm-benchmark web`) listens on."
    )
    benchmark_web_tls_cert: Path | None = Field(
        None, description="PEM certificate: the dashboard serves HTTPS (with tls_key)."
    )
    benchmark_web_tls_key: Path | None = Field(None, description="PEM key of tls_cert.")
    benchmark_web_behind_tls_proxy: bool = Field(
        False,
        description="A TLS-terminating proxy is in front: session cookies are marked Secure "
        "(as they are when the dashboard serves HTTPS itself) and HSTS is sent.",
    )
    benchmark_web_session_idle_s: float = Field(
        1800.0, description="A dashboard session ends after this long without a request."
    )
    benchmark_web_session_max_s: float = Field(
        28800.0, description="A dashboard session ends this long after sign-in, used or not."
    )

    # --- `pcm-benchmark serve`: the BenchmarkService (gRPC) ---
    benchmark_address: str = Field("127.0.0.1:50055", description="gRPC listen address.")
    benchmark_metrics_port: int = Field(9109, description="/metrics port of the gRPC service.")
    benchmark_workers: int = Field(8, description="gRPC worker threads.")
    benchmark_max_message_bytes: int = Field(
        4 * 1024 * 1024, description="Largest request or answer (bytes)."
    )
    benchmark_tls_cert: Path | None = Field(None, description="PEM certificate; enables TLS.")
    benchmark_tls_key: Path | None = Field(None, description="PEM private key for TLS.")
    benchmark_retry_after_s: int = Field(5, description="Retry hint with UNAVAILABLE.")
    benchmark_page_size: int = Field(100, description="Plans per ListPlans page (the most).")
    benchmark_min_peers: int = Field(
        5,
        description="Smallest peer group whose score percentiles an entity is shown (fewer: "
        "withheld, so no single peer's score can be read off them).",
    )
    benchmark_plan_tolerance_points: float = Field(
        10.0,
        description="How far (percentage points) a plan's progress may lag the straight line "
        "from registration to deadline before it is flagged OFF_TRACK.",
    )

    # --- `pcm-benchmark work`: the refresh worker ---
    benchmark_refresh_s: float = Field(
        30.0, description="How often the worker looks for changed KPIs (results follow within it)."
    )
    benchmark_full_refresh_s: float = Field(
        600.0, description="How often the worker reassesses the current month regardless."
    )
    benchmark_worker_metrics_port: int = Field(9110, description="/metrics port of the worker.")
    benchmark_export_dir: Path = Field(
        Path("open-data"), description="Where `export` writes the open data, one <YYYY-MM>/ each."
    )
    benchmark_export_month: str = Field(
        "", description="Month exported as open data, YYYY-MM (empty: the newest assessed)."
    )
