"""Processor settings (env prefix PCM_, e.g. PCM_PROCESSOR_METRICS_PORT); shared ones in
``pcm_common.settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pcm_common.settings import Settings
from pydantic import Field

from pcm_processor.domain.registry import DOMAINS

DEFAULT_GROUP = "pcm-processor"


def consumer_group(topic_prefix: str, group: str = DEFAULT_GROUP) -> str:
    """The processor's Kafka consumer group: ``group`` under the topic prefix, so that isolated
    runs (tests, the demo, the benchmark) each have their own offsets. The one place that spells
    it: everything that reads the group's offsets asks here."""
    return f"{topic_prefix}{group}"


class ProcessorSettings(Settings):
    processor_domains: str = Field(
        ",".join(DOMAINS),
        description="Fact domains to consume (comma-separated names of the domain registry; "
        "default: all of them).",
    )
    processor_group_id: str = Field(
        DEFAULT_GROUP, description="Kafka consumer group (prefixed with the topic prefix)."
    )
    processor_time_zone: str = Field(
        "America/Lima", description="Time zone of the hour/day/month KPI buckets."
    )
    processor_batch_max_events: int = Field(
        5_000, description="Largest batch of events per columnar insert."
    )
    processor_batch_max_seconds: float = Field(
        0.25, description="Longest wait to fill a batch before inserting what arrived."
    )
    processor_kpi_interval_s: float = Field(
        1.0,
        description="Under load, the incremental KPIs (counts, sums, means, ratios) are brought "
        "up to the stored facts at most this often.",
    )
    processor_kpi_engine: Literal["incremental", "recompute"] = Field(
        "incremental",
        description="incremental: per flush, only what the batch's tickets and procedures "
        "changed is read (work grows with the batch); recompute: every touched period is "
        "recomputed from all its facts (the original engine, kept for comparison).",
    )
    processor_recomputed_interval_s: float = Field(
        30.0,
        description="With the incremental engine, the KPIs it cannot follow by sums "
        "(percentiles, cross-domain channel KPIs) are recomputed from the facts, the channel "
        "and service slices of the others written (each flush writes their entity-level "
        "values), and offsets committed, at most this often under load (at once when the "
        "stream is idle).",
    )
    processor_state_max_slices: int = Field(
        400_000,
        description="Most KPI state slices (entity, grain, period, channel, service) held in "
        "memory per domain; beyond it the least recently touched periods are dropped, the "
        "finest grain's first, and rebuilt from the facts if touched again.",
    )
    processor_gc_threshold: int = Field(
        50_000,
        description="Allocations between two young collections of Python's cyclic garbage "
        "collector (Python's default is 700). A processor holds hundreds of thousands of KPI "
        "states and rows in flight; with the default, full collections that walk all of them "
        "took a quarter of its time at 2,700 entities (25.5 s of 110 s). The objects made at "
        "start (catalogues, plans) are frozen out of the collections too. 0 keeps Python's "
        "defaults.",
    )
    processor_flush_tick_s: float = Field(
        0.25, description="How often an idle processor checks for KPIs left to recompute."
    )
    processor_query_keys: int = Field(
        1_000,
        description="Most (entity, period) keys per KPI recompute or state-build query. Keys "
        "go to queries sorted by entity, so each query reads only its own entities' granules "
        "and several small queries read no more than one large one; small ones bound the rows "
        "held at once (at 2,700 entities a single query per grain held over 100 MB of results).",
    )
    processor_query_subjects: int = Field(
        5_000,
        description="Most tickets or procedures per incremental KPI query: the rows of one "
        "query are held at once, and a query reads only its subjects' granules.",
    )
    processor_publish_slices: bool = Field(
        False,
        description="Also publish the per-channel/service slices on the KPI topic (about 15 "
        "times more messages); entity-level values are always published, and ClickHouse always "
        "has every slice.",
    )
    processor_period_close_interval_s: float = Field(
        60.0,
        description="How often the term tracker looks for closed days and months whose "
        "snapshot KPIs (open and overdue at close, backlog age) are not taken yet.",
    )
    processor_metrics_port: int = Field(
        9102, description="Prometheus /metrics port (0: do not serve metrics)."
    )
    processor_state_dir: Path | None = Field(
        None,
        description="Faust's data directory (it keeps no state we rely on); default: "
        "<tmp>/pcm-processor/<group id>.",
    )
    processor_lag_refresh_s: float = Field(
        10.0, description="How often the consumer lag gauge is refreshed from the broker."
    )
    processor_retry_max_backoff_s: float = Field(
        10.0, description="Longest wait between retries of ClickHouse or Kafka calls."
    )
    processor_session_timeout_s: float = Field(
        30.0, description="Kafka group session timeout: how soon a dead processor is replaced."
    )
    processor_heartbeat_interval_s: float = Field(
        3.0, description="Kafka group heartbeat interval (under a third of the session timeout)."
    )
    processor_commit_interval_s: float = Field(
        1.0, description="How often released offsets are committed."
    )
    processor_delivery: Literal["batch", "stream"] = Field(
        "batch",
        description="batch: the consumer hands whole fetches to the pipeline (fast); stream: "
        "faust agents take batches from streams (the fallback on an unreviewed faust version).",
    )
    processor_fast_drain: bool = Field(
        True,
        description="Hand fetched messages to the agents without faust's per-message tasks "
        "(see adapters/faust_consumer.py); only used on the reviewed faust version.",
    )

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.processor_domains.split(",") if name.strip())

    @property
    def group_id(self) -> str:
        return consumer_group(self.topic_prefix, self.processor_group_id)


def load_processor_settings() -> ProcessorSettings:
    return ProcessorSettings()
