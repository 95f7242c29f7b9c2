"""Reading computed KPIs back from ClickHouse (``ListKpis``): one entity's values, newest
version of each (FINAL), filtered and paged by a keyset token."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from pcm.monitoring.v1 import common_pb2, indicators_service_pb2, kpi_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.validation import timestamp_problem

STORE_LATEST_S = 4_291_747_199
"""The last instant the KPI store's ClickHouse reads in a query (2105-12-31T23:59:59Z; later
ones it wraps to 1970)."""
GRAINS = {
    common_pb2.GRAIN_HOUR: "HOUR",
    common_pb2.GRAIN_DAY: "DAY",
    common_pb2.GRAIN_MONTH: "MONTH",
}
_KEY = ("period_start", "kpi_code", "channel", "service_id")


class KpiStoreUnavailable(Exception):
    """ClickHouse did not answer: the call is UNAVAILABLE (retry)."""


@dataclass(frozen=True)
class KpiPage:
    values: list[kpi_pb2.KpiValue]
    next_token: str


class KpiReader:
    def __init__(
        self,
        connect: Callable[[], Client],
        database: str,
        catalogues: Catalogues,
        time_zone: str,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._connect = connect
        self._local = threading.local()  # clickhouse-driver clients are not thread-safe
        self._db = database
        self._units = {kpi.code: kpi.unit.value for kpi in catalogues.kpis}
        self._zone = ZoneInfo(time_zone)
        self._now = now

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
        return client

    def page(
        self, entity_id: str, request: indicators_service_pb2.ListKpisRequest, size: int
    ) -> KpiPage:
        """Raises ValueError (field: reason) for a filter or token this reader cannot take."""
        where, params = self._filters(entity_id, request)
        after = _decode(request.page_token)
        if after is not None:
            where.append(f"({', '.join(_KEY)}) > (%(a0)s, %(a1)s, %(a2)s, %(a3)s)")
            params |= {f"a{i}": value for i, value in enumerate(after)}
        try:
            rows = self._client().execute(
                "SELECT entity_id, kpi_code, toString(grain), period_start, channel, service_id, "
                "value, numerator, denominator, computed_at, version, insufficient_sample, "
                f"catalogue_version FROM {self._db}.kpi_values FINAL WHERE {' AND '.join(where)} "
                f"ORDER BY {', '.join(_KEY)} LIMIT %(limit)s",
                {**params, "limit": size + 1},
            )
        except (ClickHouseError, OSError) as error:
            self._local.client = None  # reconnect on the next call
            raise KpiStoreUnavailable(str(error)) from error
        more = len(rows) > size
        rows = rows[:size]
        token = _encode(rows[-1]) if more else ""
        return KpiPage([self._value(row) for row in rows], token)

    def _filters(
        self, entity_id: str, request: indicators_service_pb2.ListKpisRequest
    ) -> tuple[list[str], dict[str, Any]]:
        where = ["entity_id = %(entity)s"]
        params: dict[str, Any] = {"entity": entity_id}
        if request.grain:
            grain = GRAINS.get(request.grain)
            if grain is None:
                raise ValueError("grain: the processor keeps HOUR, DAY and MONTH")
            where.append("grain = %(grain)s")
            params["grain"] = grain
        if request.kpi_codes:
            unknown = sorted(set(request.kpi_codes) - set(self._units))
            if unknown:
                raise ValueError(f"kpi_codes: unknown {', '.join(unknown[:5])}")
            where.append("kpi_code IN %(codes)s")
            params["codes"] = tuple(request.kpi_codes)
        for field in ("from_time", "to_time"):
            # ClickHouse refuses a time before 1970 (the call was UNAVAILABLE, "retry") and
            # wraps one after 2105 (9999 compared as an earlier time).
            stamp = getattr(request, field)
            invalid = request.HasField(field) and (
                timestamp_problem(stamp)
                or (stamp.seconds > STORE_LATEST_S and "after 2105 (the KPI store's range)")
            )
            if invalid:
                raise ValueError(f"{field}: {invalid}")
        if request.HasField("from_time"):
            where.append("period_start >= %(start)s")
            params["start"] = request.from_time.ToDatetime()
        if request.HasField("to_time"):
            where.append("period_start < %(end)s")
            params["end"] = request.to_time.ToDatetime()
        if not request.all_slices:
            where += ["channel = %(channel)s", "service_id = %(service)s"]
            params |= {"channel": request.channel, "service": request.service_id}
        return where, params

    def _value(self, row: Sequence[Any]) -> kpi_pb2.KpiValue:
        (entity, code, grain, start, channel, service, value, numerator, denominator,
         computed, version, insufficient, catalogue) = row  # fmt: skip
        out = kpi_pb2.KpiValue(
            entity_id=entity,
            kpi_code=code,
            grain=common_pb2.Grain.Value(f"GRAIN_{grain}"),
            channel=channel,
            service_id=service,
            value=value,
            numerator=numerator,
            denominator=denominator,
            unit=self._units.get(code, ""),
            version=version,
            insufficient_sample=bool(insufficient),
            catalogue_version=catalogue,
            period_open=self._open(grain, start),
        )
        out.period_start.FromDatetime(
            start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start
        )
        out.computed_at.FromDatetime(
            computed.replace(tzinfo=dt.UTC) if computed.tzinfo is None else computed
        )
        return out

    def _open(self, grain: str, start: dt.datetime) -> bool:
        """Whether the period has not ended yet (its local end is after now)."""
        begin = (start if start.tzinfo else start.replace(tzinfo=dt.UTC)).astimezone(self._zone)
        if grain == "HOUR":
            end = begin + dt.timedelta(hours=1)
        elif grain == "DAY":
            end = dt.datetime.combine(begin.date() + dt.timedelta(days=1), dt.time(), self._zone)
        else:
            first = (begin.date().replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            end = dt.datetime.combine(first, dt.time(), self._zone)
        return end > self._now()


def _encode(row: Sequence[Any]) -> str:
    key = [row[3].isoformat(), row[1], row[4], row[5]]  # period_start, kpi_code, channel, service
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode(token: str) -> tuple[dt.datetime, str, str, str] | None:
    if not token:
        return None
    try:
        start, code, channel, service = json.loads(base64.urlsafe_b64decode(token.encode()))
        return dt.datetime.fromisoformat(start), str(code), str(channel), str(service)
    except (ValueError, TypeError) as error:
        raise ValueError("page_token: not a token this service gave") from error
