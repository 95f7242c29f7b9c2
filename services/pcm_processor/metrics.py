"""Every Prometheus metric of the stream processor, declared in one place.

Alert rules (deploy/prometheus/rules/) and dashboards refer to these names; keeping them here
makes a rename visible in one diff. Only the processor imports this module, so only the
processor exports these series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets in seconds: ClickHouse inserts and KPI recomputations, ms to seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

PROCESSOR_EVENTS = Counter("pcm_processor_events_total", "Events written to ClickHouse.", ["topic"])
PROCESSOR_BATCH_SIZE = Histogram(
    "pcm_processor_batch_size",
    "Events per columnar insert.",
    buckets=(1, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000),
)
PROCESSOR_INSERT_SECONDS = Histogram(
    "pcm_processor_insert_seconds",
    "ClickHouse insert latency per batch.",
    ["table"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSOR_INSERT_RETRIES = Counter(
    "pcm_processor_insert_retries_total", "Insert attempts that failed and were retried."
)
PROCESSOR_DEAD_LETTER = Counter(
    "pcm_processor_dead_letter_total",
    "Poison messages sent to the dead-letter topic.",
    ["topic", "reason"],
)
PROCESSOR_CONSUMER_LAG = Gauge(
    "pcm_processor_consumer_lag",
    "Messages between the committed offset and the end of the partition.",
    ["topic", "partition"],
)
PROCESSOR_LAG_REFRESHED = Gauge(
    "pcm_processor_lag_refreshed_timestamp_seconds",
    "Unix time at which the consumer lag now shown was read from the broker (start of the "
    "read: every message produced before it is counted). Lag 0 with a refresh newer than a "
    "producer's last send means the processor has caught up with it.",
)
PROCESSOR_FRESHNESS_SECONDS = Gauge(
    "pcm_processor_freshness_seconds",
    "Now minus the newest event time written to ClickHouse.",
)
PROCESSOR_KPI_ROWS = Counter(
    "pcm_processor_kpi_rows_total", "KPI rows recomputed and written.", ["grain"]
)
PROCESSOR_KPI_SECONDS = Histogram(
    "pcm_processor_kpi_recompute_seconds",
    "Time to recompute the touched KPI periods of one grain from the facts (one flush).",
    ["domain", "grain"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSOR_KPI_DELTA_SECONDS = Histogram(
    "pcm_processor_kpi_delta_seconds",
    "Time to read what one flush's touched subjects changed, every grain in one pass over their "
    "facts (incremental KPIs).",
    ["domain"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSOR_KPI_BUILD_SECONDS = Histogram(
    "pcm_processor_kpi_build_seconds",
    "Time to build, from their facts, the states of the periods one flush touched and did not "
    "hold (incremental KPIs).",
    ["domain"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSOR_KPI_FLUSH_SECONDS = Histogram(
    "pcm_processor_kpi_flush_seconds",
    "Time of one flush: the deltas, the states built, the entity-level KPI values and the term "
    "tracker's written and published. A value waits for the flush under way and its own, so "
    "event -> KPI latency is about twice this.",
    ["domain"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
)
PROCESSOR_QUERY_ROWS_READ = Histogram(
    "pcm_processor_query_rows_read",
    "Fact rows ClickHouse read for one KPI query, by kind (delta: the subjects one flush touched; "
    "build: periods not held; recompute: the recomputed KPIs' periods). A delta's figure follows "
    "the batch; one that follows the stored history means the fact tables lost their fine "
    "granules (migration 0011).",
    ["query"],
    buckets=(1e3, 1e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8),
)
PROCESSOR_KPI_STATE_BUILDS = Counter(
    "pcm_processor_kpi_state_builds_total",
    "Periods whose incremental KPI state was built from the facts (not held: first touch after "
    "a start, a rebalance or an eviction).",
    ["grain"],
)
PROCESSOR_KPI_STATES_STARTED_EMPTY = Counter(
    "pcm_processor_kpi_states_started_empty_total",
    "Periods not held whose incremental KPI state started from the batch alone, without a "
    "build: an entity's new hour or day, with no fact before the batch.",
    ["domain"],
)
PROCESSOR_KPI_STATE_SLICES = Gauge(
    "pcm_processor_kpi_state_slices",
    "Slices of incremental KPI state held in memory (bounded by processor_state_max_slices).",
    ["domain"],
)
