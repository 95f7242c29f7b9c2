"""National benchmark settings (env prefix PCM_, see pcm_common.settings for the shared ones)."""

from __future__ import annotations

from pcm_common.settings import Settings
from pydantic import Field, SecretStr


class BenchmarkSettings(Settings):
    benchmark_month: str = Field(
        "", description="Month assessed, YYYY-MM (empty: the last complete month in Lima)."
    )
    benchmark_indicators_target: str = Field(
        "127.0.0.1:50053", description="The indicators service the reported values come from."
    )
    benchmark_token: SecretStr = Field(
        SecretStr(""), description="A national credential (reads every entity's reports)."
    )
    benchmark_time_zone: str = Field("America/Lima", description="Zone of the periods.")
