"""The indicators service on the real stack: reports with evidence, corrections kept as
history, the oversight body's review, reading back values and KPIs; PostgreSQL, Kafka and
ClickHouse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pcm.monitoring.v1 import (
    common_pb2,
    indicator_pb2,
    indicators_service_pb2,
    indicators_service_pb2_grpc,
)
from pcm_common.auth import Role, TokenStore
from pcm_common.clickhouse.client import connect as clickhouse
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_common.startup import ensure_topics
from pcm_indicators.server import create_server, worker
from pcm_indicators.settings import IndicatorsSettings
from pcm_testkit.events import indicator_value, local_time
from pcm_testkit.kafka import read_envelopes

ENTITY = "ONP"
REPORTED = indicator_pb2.INDICATOR_STATUS_REPORTED
VERIFIED = indicator_pb2.INDICATOR_STATUS_VERIFIED
REJECTED = indicator_pb2.INDICATOR_STATUS_REJECTED
SUPERSEDED = indicator_pb2.INDICATOR_STATUS_SUPERSEDED


@dataclass
class Indicators:
    settings: IndicatorsSettings
    stub: indicators_service_pb2_grpc.IndicatorsServiceStub
    tokens: dict[str, str]

    def _meta(self, token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.tokens[token]}"),)

    def report(self, values: list[Any], token: str = ENTITY) -> Any:
        request = indicators_service_pb2.ReportIndicatorValuesRequest(values=values)
        return self.stub.ReportIndicatorValues(
            request, metadata=self._meta(token), timeout=30
        ).result

    def review(
        self,
        event_id: str,
        verdict: indicator_pb2.IndicatorStatus.ValueType,
        reason: str = "",
        token: str = "national",
    ) -> Any:
        request = indicators_service_pb2.ReviewIndicatorValueRequest(
            entity_id=ENTITY, event_id=event_id, verdict=verdict, reason=reason
        )
        return self.stub.ReviewIndicatorValue(request, metadata=self._meta(token), timeout=30).value

    def list(self, token: str = ENTITY, entity: str = ENTITY, **fields: Any) -> Any:
        request = indicators_service_pb2.ListIndicatorValuesRequest(entity_id=entity, **fields)
        return self.stub.ListIndicatorValues(request, metadata=self._meta(token), timeout=30)

    def kpis(self, token: str = ENTITY, **fields: Any) -> Any:
        request = indicators_service_pb2.ListKpisRequest(**fields)
        return self.stub.ListKpis(request, metadata=self._meta(token), timeout=30)


@pytest.fixture(scope="module")
def service(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Indicators]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    store = TokenStore(token_file)
    tokens = {
        ENTITY: store.issue(ENTITY),
        "SUNAT": store.issue("SUNAT"),
        "national": store.issue("PCM-SGP", Role.NATIONAL),
    }
    settings = IndicatorsSettings(
        topic_prefix=isolated_settings.topic_prefix,
        clickhouse_database=isolated_settings.clickhouse_database,
        postgres_database=isolated_settings.postgres_database,
        token_file=token_file,
        indicators_address="127.0.0.1:0",
        indicators_metrics_port=0,
        indicators_page_size=3,
    )
    ensure_topics(settings)
    migrate(clickhouse(settings, database="default"), settings.clickhouse_database)
    server, port, kit = create_server(settings)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Indicators(
            settings, indicators_service_pb2_grpc.IndicatorsServiceStub(channel), tokens
        )
    finally:
        channel.close()
        server.stop(grace=None)
        kit.close()


def published(settings: IndicatorsSettings, minimum: int) -> list[indicator_pb2.IndicatorValue]:
    worker(settings).work_once()
    topic = topic_for_domain("indicator_value").name(settings.topic_prefix)
    return [e.indicator_value for _, e in read_envelopes(settings.kafka_bootstrap, topic, minimum)]


def test_a_report_is_stored_listed_and_published(service: Indicators) -> None:
    value = indicator_value(ENTITY, indicator_code="ACCESSIBILITY_RAMPS", value=1, unit="boolean")
    assert service.report([value]).accepted == 1
    (listed,) = service.list(indicator_code="ACCESSIBILITY_RAMPS").values
    assert (listed.event_id, listed.value, listed.status) == (value.event_id, 1, REPORTED)
    assert listed.evidence[0].sha256 == value.evidence[0].sha256
    mine = [v for v in published(service.settings, 1) if v.event_id == value.event_id]
    assert [v.status for v in mine] == [REPORTED]


def test_a_correction_supersedes_and_both_stay_in_the_history(service: Indicators) -> None:
    first = indicator_value(ENTITY, indicator_code="STAFF_TRAINED_PCT", value=60)
    correction = indicator_value(ENTITY, indicator_code="STAFF_TRAINED_PCT", value=65)
    assert service.report([first]).accepted == 1
    assert service.report([correction]).accepted == 1
    (current,) = service.list(indicator_code="STAFF_TRAINED_PCT").values
    assert (current.event_id, current.value) == (correction.event_id, 65)
    history = service.list(indicator_code="STAFF_TRAINED_PCT", include_history=True).values
    assert {(v.event_id, v.status) for v in history} == {
        (first.event_id, SUPERSEDED),
        (correction.event_id, REPORTED),
    }
    again = service.report([first])
    assert list(again.duplicate_indexes) == [0]  # a resend of the old one changes nothing
    assert (
        service.list(indicator_code="STAFF_TRAINED_PCT").values[0].event_id == correction.event_id
    )


def test_invalid_values_are_refused_with_reasons_and_neighbours_kept(service: Indicators) -> None:
    fine = indicator_value(
        ENTITY, indicator_code="SIGN_LANGUAGE_INTERPRETER", value=0, unit="boolean"
    )
    mid_month = local_time(2026, 10, 15)
    bad = [
        indicator_value(ENTITY, indicator_code="NOT_AN_INDICATOR"),
        indicator_value(ENTITY, value=120),  # percent above 100
        indicator_value(ENTITY, indicator_code="ACCESSIBILITY_RAMPS", value=2, unit="boolean"),
        indicator_value(ENTITY, evidence=[]),
        indicator_value(ENTITY, evidence=[indicator_pb2.Evidence(url="http://x.pe/a", sha256="z")]),
        indicator_value(ENTITY, period_start=mid_month),
        indicator_value(ENTITY, unit="count"),
    ]
    answer = service.report([fine, *bad])
    assert answer.accepted == 1
    fields = {(r.index, r.field) for r in answer.rejections}
    assert {(1, "indicator_code"), (2, "value"), (3, "value"), (4, "evidence")} <= fields
    assert {
        (5, "evidence[0].url"),
        (5, "evidence[0].sha256"),
        (6, "period_start"),
        (7, "unit"),
    } <= fields


def test_a_value_outside_the_catalogue_range_is_refused_naming_field_and_range(
    service: Indicators,
) -> None:
    values = [
        indicator_value(ENTITY, indicator_code="ACCESSIBILITY_CHECKLIST_PCT", value=100.5),
        indicator_value(ENTITY, indicator_code="EVACUATION_DRILLS", value=-1, unit="count"),
        indicator_value(ENTITY, indicator_code="OPEN_DATA_PUBLISHED", value=2, unit="boolean"),
    ]
    answer = service.report(values)
    assert answer.accepted == 0
    refused = sorted((r.index, r.field, r.reason, r.code) for r in answer.rejections)
    out_of_range = common_pb2.REJECTION_CODE_OUT_OF_RANGE
    assert refused == [
        (0, "value",
         "100.5 is outside 0..100 (percent, the catalogue range of ACCESSIBILITY_CHECKLIST_PCT)",
         out_of_range),
        (1, "value",
         "-1.0 is outside 0 or more (count, the catalogue range of EVACUATION_DRILLS)",
         out_of_range),
        (2, "value",
         "2.0 is outside 0 or 1 (boolean, the catalogue range of OPEN_DATA_PUBLISHED)",
         out_of_range),
    ]  # fmt: skip
    assert not service.list(indicator_code="ACCESSIBILITY_CHECKLIST_PCT").values


def _last_day(year: int, month: int) -> dt.date:
    return (dt.date(year, month, 28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def test_listed_values_say_until_when_they_stay_valid(service: Indicators) -> None:
    today = dt.datetime.now(ZoneInfo("America/Lima")).date()
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    annual = indicator_value(ENTITY, indicator_code="EXTENDED_HOURS", value=1, unit="boolean")
    # The plan's progress stays valid three months: January 2024's expired on 30 April 2024.
    progress = indicator_value(
        ENTITY,
        indicator_code="IMPROVEMENT_PLAN_PROGRESS_PCT",
        value=80,
        period_start=local_time(2024, 1, 1),
    )
    assert service.report([annual, progress]).accepted == 2
    (listed,) = service.list(indicator_code="EXTENDED_HOURS").values
    assert listed.period_start == annual.period_start  # the local midnight reported
    # Last month's value counts for twelve months after the month's last day.
    until = _last_day(last_month.year + 1, last_month.month)
    assert (listed.valid_until, listed.still_valid) == (until.isoformat(), True)
    (old,) = service.list(indicator_code="IMPROVEMENT_PLAN_PROGRESS_PCT").values
    assert (old.valid_until, old.still_valid) == ("2024-04-30", False)
    verified = service.review(annual.event_id, VERIFIED)
    assert (verified.valid_until, verified.still_valid) == (until.isoformat(), True)
    # Published events carry no validity: it is answered on reads, against today.
    mine = [v for v in published(service.settings, 1) if v.event_id == annual.event_id]
    assert mine and all(not v.valid_until and not v.still_valid for v in mine)


def test_review_by_the_oversight_body_only(service: Indicators) -> None:
    value = indicator_value(
        ENTITY, indicator_code="IMPROVEMENT_PLAN_APPROVED", value=1, unit="boolean"
    )
    assert service.report([value]).accepted == 1
    with pytest.raises(grpc.RpcError) as by_entity:
        service.review(value.event_id, VERIFIED, token=ENTITY)
    assert by_entity.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as no_reason:
        service.review(value.event_id, REJECTED)
    assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rejected = service.review(value.event_id, REJECTED, "the resolution is not signed")
    assert (rejected.status, rejected.review_reason) == (REJECTED, "the resolution is not signed")
    listed = service.list(indicator_code="IMPROVEMENT_PLAN_APPROVED").values[0]
    assert listed.status == REJECTED
    review_id = f"pcm-review/rejected/{value.event_id}"
    assert [v.status for v in published(service.settings, 1) if v.event_id == review_id] == [
        REJECTED
    ]
    with pytest.raises(grpc.RpcError) as unknown:
        service.review("no-such-event", VERIFIED)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_foreign_entities_refused_on_write_and_read_national_reads_all(service: Indicators) -> None:
    theirs = indicator_value("SUNAT")
    with pytest.raises(grpc.RpcError) as write:
        service.report([theirs])
    assert write.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert service.report([theirs], token="SUNAT").accepted == 1
    with pytest.raises(grpc.RpcError) as read:
        service.list(entity="SUNAT")
    assert read.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [v.event_id for v in service.list(token="national", entity="SUNAT").values] == [
        theirs.event_id
    ]


def test_list_kpis_reads_own_values_paged_national_any(service: Indicators) -> None:
    db = service.settings.clickhouse_database
    day = dt.datetime(2026, 11, 3, 5, 0)  # 3 Nov 2026 00:00 in Lima, closed
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    rows = [
        (ENTITY, code, "DAY", day, "", "", 10.0 + n, 10.0 + n, 1.0, day, 1, 0, "kpis 2026.11")
        for n, code in enumerate(["ATTENTIONS", "WAIT_MEAN_S", "WAIT_P90_S", "ABANDONMENT_PCT"])
    ]
    rows.append((ENTITY, "ATTENTIONS", "HOUR", today, "", "", 3.0, 3.0, 1.0, today, 1, 0, "kpis"))
    rows.append(("SUNAT", "ATTENTIONS", "DAY", day, "", "", 7.0, 7.0, 1.0, day, 1, 0, "kpis"))
    client = clickhouse(service.settings)
    client.execute(
        f"INSERT INTO {db}.kpi_values (entity_id, kpi_code, grain, period_start, channel, "
        "service_id, value, numerator, denominator, computed_at, version, insufficient_sample, "
        "catalogue_version) VALUES",
        rows,
    )
    first = service.kpis()  # page size 3 (the fixture's)
    assert len(first.values) == 3 and first.next_page_token
    second = service.kpis(page_token=first.next_page_token)
    values = [*first.values, *second.values]
    assert not second.next_page_token and len(values) == 5
    attentions = next(v for v in values if v.kpi_code == "ATTENTIONS" and v.grain == 2)
    assert (attentions.value, attentions.unit, attentions.catalogue_version) == (
        10,
        "count",
        "kpis 2026.11",
    )
    assert not attentions.period_open
    assert next(v for v in values if v.grain == 1).period_open  # this hour is still going on
    with pytest.raises(grpc.RpcError) as foreign:
        service.kpis(entity_id="SUNAT")
    assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
    national = service.kpis(token="national", entity_id="SUNAT").values
    assert [(v.entity_id, v.value) for v in national] == [("SUNAT", 7)]
    with pytest.raises(grpc.RpcError) as bad_token:
        service.kpis(page_token="garbage")
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_kpis_refuses_times_that_are_not_valid_instants(service: Indicators) -> None:
    """Before 1970 ClickHouse refused the query and the call said UNAVAILABLE, "retry" (found by
    tests/abuse); after 2105 it wrapped the time and answered 2026's values for 9999."""
    for field, stamp in (
        ("from_time", Timestamp(seconds=-62_135_596_800)),  # 0001-01-01
        ("to_time", Timestamp(seconds=-1)),
        ("from_time", Timestamp(seconds=0, nanos=-1)),
        ("from_time", Timestamp(seconds=253_402_300_799)),  # 9999 matched 2026 (wrapped)
        ("to_time", Timestamp(seconds=4_291_747_200)),  # 2106-01-01
    ):
        with pytest.raises(grpc.RpcError) as refused:
            service.kpis(**{field: stamp})
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, stamp)
        assert (refused.value.details() or "").startswith(f"{field}: ")
    last = service.kpis(from_time=Timestamp(seconds=4_291_747_199))  # the store's last instant
    assert not last.values


def test_text_with_a_nul_character_is_refused_never_an_unknown_error(service: Indicators) -> None:
    """NUL in text reached PostgreSQL, which refuses it: the call ended UNKNOWN (tests/abuse)."""
    value = indicator_value(ENTITY, indicator_code="ACCESSIBILITY_SIGNAGE", value=1, unit="boolean")
    assert service.report([value]).accepted == 1
    for call in (
        lambda: service.review(value.event_id, REJECTED, reason="falta\x00 evidencia"),
        lambda: service.list(indicator_code="ACCESSIBILITY\x00"),
        lambda: service.list(page_token="WyIyMDI2LTAxLTAxIiwgIlx1MDAwMCJd"),  # a key with NUL
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "NUL character" in refused.value.details() or refused.value.details().startswith(
            "page_token:"
        )
    (listed,) = service.list(indicator_code="ACCESSIBILITY_SIGNAGE").values
    assert listed.status == REPORTED  # the refused review changed nothing
