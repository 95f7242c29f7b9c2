"""What the dashboard reads from ClickHouse: the benchmark results through ``reads.py``; and what
``reads.py`` does not have: the assessed periods of every grain at once, and the KPI series an
entity page charts (``kpi_values``, entity level, newest version). Blocking calls, made from the
request's worker thread; each thread keeps its own client (clickhouse-driver clients are not
thread-safe)."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from pcm_benchmark import reads
from pcm_benchmark.reads import StoredCriterion, StoredResult
from pcm_benchmark.web.periods import GRAINS, Period, ordered

T = TypeVar("T")


class StoreUnavailable(Exception):
    """ClickHouse did not answer (the page says so with 503)."""


@dataclass(frozen=True)
class KpiPoint:
    period: dt.date
    """Local (Lima) start day of the period."""
    value: float | None
    denominator: float
    insufficient_sample: bool


class Reader:
    def __init__(self, connect: Callable[[], Client], database: str, time_zone: str) -> None:
        self._connect = connect
        self._database = database
        self._zone = ZoneInfo(time_zone)
        self._local = threading.local()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
        return client

    def _call(self, read: Callable[[Client], T]) -> T:
        try:
            return read(self._client())
        except (ClickHouseError, OSError, EOFError) as error:
            self._local.client = None  # reconnect on the next call
            raise StoreUnavailable(type(error).__name__) from error

    def periods(self) -> list[Period]:
        """Every assessed month, quarter and year (``periods.ordered``), read at once: the
        period selector lists all three grains on every page."""
        rows = self._call(
            lambda c: c.execute(
                f"SELECT DISTINCT grain, period_start FROM {self._database}.benchmark_results "
                "WHERE grain IN %(grains)s",
                {"grains": GRAINS},
            )
        )
        return ordered(Period(grain, start) for grain, start in rows)

    def results(
        self,
        period: Period,
        *,
        standard: str | None = None,
        entity_id: str | None = None,
        peer_group: str | None = None,
    ) -> list[StoredResult]:
        return self._call(
            lambda c: reads.results(
                c,
                self._database,
                period.grain,
                period.start,
                standard=standard,
                entity_id=entity_id,
                peer_group=peer_group,
            )
        )

    def level_counts(
        self,
        period: Period,
        *,
        entity_ids: Sequence[str] | None = None,
        peer_group: str | None = None,
    ) -> dict[str, dict[str, int]]:
        """Standard -> level (or NOT_APPLICABLE) -> entities, counted in ClickHouse."""
        if entity_ids is not None and not entity_ids:
            return {}
        return self._call(
            lambda c: reads.level_counts(
                c,
                self._database,
                period.grain,
                period.start,
                entity_ids=entity_ids,
                peer_group=peer_group,
            )
        )

    def score_trends(self, period: Period, entity_id: str) -> list[reads.Trend]:
        return self._call(
            lambda c: reads.trends(c, self._database, period.grain, period.start, entity_id)
        )

    def score_distributions(
        self, period: Period, version: str, peer_group: str
    ) -> dict[str, reads.StoredDistribution]:
        """The peer group's stored distribution of each standard's scores (OVERALL included),
        computed with the assessment by the catalogue's nearest-rank rule."""
        found = self._call(
            lambda c: reads.distributions(
                c, self._database, period.grain, period.start, version, peer_group, "standard"
            )
        )
        return {d.measure: d for d in found}

    def criteria(self, period: Period, version: str, entity_id: str) -> list[StoredCriterion]:
        return self._call(
            lambda c: reads.criteria(
                c, self._database, period.grain, period.start, version, entity_id
            )
        )

    def kpi_series(
        self,
        entity_id: str,
        codes: Sequence[str],
        grain: str,
        first: dt.date,
        end: dt.date,
    ) -> dict[str, list[KpiPoint]]:
        """KPI code -> the entity-level values (all channels, all services) of the periods that
        start on ``first`` .. before ``end`` (local days), oldest first."""
        start = dt.datetime.combine(first, dt.time(), self._zone)
        stop = dt.datetime.combine(end, dt.time(), self._zone)
        rows = self._call(
            lambda c: c.execute(
                "SELECT kpi_code, toUInt32(period_start), argMax(value, version), "
                "argMax(denominator, version), argMax(insufficient_sample, version) "
                f"FROM {self._database}.kpi_values "
                "WHERE entity_id = %(entity)s AND grain = %(grain)s AND kpi_code IN %(codes)s "
                "AND period_start >= %(start)s AND period_start < %(stop)s "
                "AND channel = '' AND service_id = '' "
                "GROUP BY kpi_code, period_start ORDER BY kpi_code, period_start",
                {
                    "entity": entity_id,
                    "grain": grain,
                    "codes": tuple(codes),
                    "start": start,
                    "stop": stop,
                },
            )
        )
        found: dict[str, list[KpiPoint]] = {code: [] for code in codes}
        for code, seconds, value, denominator, insufficient in rows:
            day = dt.datetime.fromtimestamp(seconds, self._zone).date()
            usable = None if value is None or math.isnan(value) else float(value)
            found[code].append(KpiPoint(day, usable, float(denominator), bool(insufficient)))
        return found
