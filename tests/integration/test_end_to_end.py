"""The whole path an entity's event takes: gRPC intake → Kafka → processor → KPIs in ClickHouse.

Events are pushed through the real intake server exactly as an entity would (compressed by the
intake's producer, read by the processor's consumer), so a mismatch between the two ends
(codec, envelope, topic, key) fails here even when each side passes its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from clickhouse_driver import Client
from pcm.monitoring.v1 import attention_pb2, intake_service_pb2, intake_service_pb2_grpc
from pcm_common.auth import TokenStore
from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.migrate import migrate
from pcm_common.settings import Settings
from pcm_intake.server import create_server
from pcm_intake.settings import IntakeSettings
from pcm_testkit.events import attention
from pcm_testkit.processor import caught_up, processor_for
from pcm_testkit.waiting import wait_until

Kind = attention_pb2.AttentionEventKind
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def at(minutes: float | None) -> datetime | None:
    return None if minutes is None else HOUR + timedelta(minutes=minutes)


def ticket(
    kind: int, issued: float, called: float | None, finished: float | None
) -> attention_pb2.AttentionEvent:
    """A RENIEC ticket, times in minutes after HOUR (None: unset)."""
    return attention(
        "RENIEC",
        kind=kind,
        service_id="RENIEC_DNI_DUPLICADO",
        issued_at=at(issued),
        called_at=at(called),
        finished_at=at(finished),
    )


@pytest.fixture(scope="module")
def pipeline(
    isolated_settings: Settings, clickhouse: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A running intake (in-process) and processor (own process) on this module's topics."""
    migrate(clickhouse, isolated_settings.clickhouse_database)
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    token = TokenStore(token_file).issue("RENIEC")
    settings = IntakeSettings(
        **{
            **isolated_settings.model_dump(),
            "token_file": token_file,
            "intake_address": "127.0.0.1:0",
        }
    )
    server, port, kit = create_server(settings)
    server.start()
    with processor_for(isolated_settings, tmp_path_factory.mktemp("processor")):
        yield f"127.0.0.1:{port}", token
    server.stop(grace=1).wait()
    kit.close()


def hour_kpi(clickhouse: Client, database: str, code: str) -> float | None:
    rows = clickhouse.execute(
        f"SELECT argMax(value, version) FROM {database}.kpi_values WHERE entity_id = 'RENIEC' "
        "AND kpi_code = %(code)s AND grain = 'HOUR' AND period_start = %(start)s "
        "AND channel = '' AND service_id = '' GROUP BY kpi_code",
        {"code": code, "start": HOUR.replace(tzinfo=None)},
    )
    return float(rows[0][0]) if rows else None


def test_events_pushed_over_grpc_become_kpis(
    pipeline: tuple[str, str], isolated_settings: Settings, clickhouse: Client
) -> None:
    target, token = pipeline
    # RENIEC_DNI_DUPLICADO targets a 20-minute wait: 5 and 10 are within, 30 is not.
    events = [
        ticket(Kind.ATTENTION_EVENT_KIND_TICKET_SERVED, 0, 5, 12),
        ticket(Kind.ATTENTION_EVENT_KIND_TICKET_SERVED, 1, 11, 20),
        ticket(Kind.ATTENTION_EVENT_KIND_TICKET_SERVED, 2, 32, 40),
        ticket(Kind.ATTENTION_EVENT_KIND_TICKET_ABANDONED, 3, None, 50),
    ]
    stub = intake_service_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(target))
    response = stub.PushAttentions(
        intake_service_pb2.PushAttentionsRequest(events=events),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    assert response.result.accepted == 4
    caught_up(isolated_settings, timeout_s=90)
    database = isolated_settings.clickhouse_database
    wait_until(
        lambda: hour_kpi(clickhouse, database, "ATTENTIONS") is not None, 20, "no KPI written"
    )
    assert hour_kpi(clickhouse, database, "SERVED_WITHIN_TARGET_PCT") == pytest.approx(200 / 3)
    assert hour_kpi(clickhouse, database, "WAIT_MEAN_S") == pytest.approx((5 + 10 + 30) * 60 / 3)
    assert hour_kpi(clickhouse, database, "ABANDONMENT_PCT") == pytest.approx(25.0)
    # Three served tickets are far below WAIT_MEAN_S's minimum sample (kpis.yaml): the value is
    # stored and published for the entity, flagged, under the catalogue versions it used.
    flags = clickhouse.execute(
        "SELECT kpi_code, argMax(insufficient_sample, version), argMax(catalogue_version, version)"
        f" FROM {database}.kpi_values WHERE entity_id = 'RENIEC' AND grain = 'HOUR'"
        " AND period_start = %(start)s AND channel = '' AND service_id = ''"
        " AND kpi_code IN ('WAIT_MEAN_S', 'ATTENTIONS') GROUP BY kpi_code ORDER BY kpi_code",
        {"start": HOUR.replace(tzinfo=None)},
    )
    version = load_catalogues().version_label
    assert flags == [("ATTENTIONS", 0, version), ("WAIT_MEAN_S", 1, version)]
