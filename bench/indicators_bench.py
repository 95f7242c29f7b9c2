"""Indicators throughput and outbox latency: reported values/s through the real gRPC service
into PostgreSQL (each a report of its own period: no correction), and how long a committed value
takes to reach Kafka through the worker's relay (``outbox_service.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

from outbox_service import Batch, Service, measure
from pcm.monitoring.v1 import indicators_service_pb2
from pcm_testkit.events import indicator_value

SERVICE = Service(
    title="indicators",
    module="pcm_indicators.cli",
    env_prefix="INDICATORS",
    method="/pcm.monitoring.v1.IndicatorsService/ReportIndicatorValues",
    response=indicators_service_pb2.ReportIndicatorValuesResponse,
    domain="indicator_value",
    unit="values",
    target=1_000,
    port=50074,
)
ENTITIES = ("RENIEC", "SUNAT", "SUNARP", "ONP")
_MONTHS = itertools.count()


def _month(offset: int) -> int:
    """The start of a distinct past month per report (local time), so none is a correction."""
    first = dt.date(2000 + offset // 12, offset % 12 + 1, 1)
    return int(dt.datetime.combine(first, dt.time(), ZoneInfo("America/Lima")).timestamp())


def make_batches(entity: str, count: int, size: int) -> list[Batch]:
    batches = []
    for _ in range(count):
        request = indicators_service_pb2.ReportIndicatorValuesRequest(
            values=[
                indicator_value(entity, period_start=_month(next(_MONTHS) % 300))
                for _ in range(size)
            ]
        )
        batches.append((request.SerializeToString(), [v.event_id for v in request.values]))
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    return measure(SERVICE, ENTITIES, make_batches, args.seconds, args.batch)


if __name__ == "__main__":
    raise SystemExit(main())
