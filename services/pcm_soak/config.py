"""What one soak does: how long the load lasts, how much data, which faults; the full soak
(``make soak``) and the shortened one CI runs (``--short``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pcm_soak.stack import REPO

DEFAULT_OFFSET = 10_000
"""Added to every port of the stack and of the platform: beside the default ones."""


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 240.0
    """How long the load is spread over (the faults happen within it)."""
    kills: int = 24
    """``kill -9`` of processors, relays and services, each restarted at once."""
    kafka_restart: bool = True
    clickhouse_outage_s: float = 60.0
    postgres_outage_s: float = 30.0
    days: int = 3
    """Business days of national activity (the generator's dataset; complaints span 60 days)."""
    scale: float = 0.4
    """The generator's volume multiplier."""
    seed: int = 20261203
    offset: int = DEFAULT_OFFSET
    stack_dir: Path = REPO / ".stack" / "soak"
    invalid_share: float = 0.01
    """Items made invalid on purpose (they must be refused and never stored)."""
    resend_share: float = 0.01
    """Items sent again later under the same id with other content (a duplicate: the first
    content is kept)."""
    race_share: float = 0.03
    """Batches sent twice at the same moment (as a client whose first call timed out while it
    was still being stored): each item stored once, one answer accepted, the other duplicate."""
    settle_timeout_s: float = 600.0
    """Longest wait for the workers, the processor and the benchmark worker after the load."""
    keep: bool = False
    """Leave the run's databases and topics (and the stack running) for inspection."""
    summary: Path | None = None
    """Also write the summary (JSON) here (besides the run's folder)."""

    @property
    def runs_dir(self) -> Path:
        return self.stack_dir / "runs"


FULL = SoakConfig()
SHORT = replace(
    FULL,
    duration_s=50.0,
    kills=7,
    clickhouse_outage_s=15.0,
    postgres_outage_s=10.0,
    days=1,
    scale=0.1,
    settle_timeout_s=120.0,
)
