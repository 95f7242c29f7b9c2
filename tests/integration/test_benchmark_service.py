"""The BenchmarkService on the real stack (ClickHouse 18.16, PostgreSQL): a month assessed by
``assess_month``, read back by role (an entity its own, the national role everything), the
entity's anonymised peer view, and improvement plans whose progress follows the KPI values."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pcm.monitoring.v1 import (
    benchmark_pb2,
    benchmark_service_pb2,
    benchmark_service_pb2_grpc,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    common_pb2,
    improvement_plan_pb2,
    indicator_pb2,
)
from pcm_benchmark.job import assess_month, assess_period
from pcm_benchmark.server import create_server
from pcm_benchmark.settings import BenchmarkSettings
from pcm_common.auth import Role, TokenStore
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.grpc_server import error_reason
from pcm_common.postgres.client import connect as postgres
from pcm_testkit.isolation import isolated
from pcm_testkit.waiting import wait_until
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

LIMA = ZoneInfo("America/Lima")
OCTOBER = dt.date(2026, 10, 1)
GROUP = "ORGANISMO_NACIONAL_ALTA_DEMANDA"
REGISTRATION = dt.date(2026, 11, 1)
DEADLINE = dt.date(2027, 2, 9)  # 100 days after the registration
PLAN = improvement_plan_pb2
CODE = grpc.StatusCode


def midnight(day: dt.date) -> Timestamp:
    return Timestamp(seconds=int(dt.datetime.combine(day, dt.time(), LIMA).timestamp()))


def kpi_row(
    entity: str, code: str, value: float, month: dt.date = OCTOBER, version: int = 1
) -> dict[str, object]:
    start = dt.datetime.combine(month, dt.time(), LIMA)
    return {
        "entity_id": entity,
        "kpi_code": code,
        "grain": "MONTH",
        "period_start": start,
        "channel": "",
        "service_id": "",
        "value": value,
        "numerator": value * 10,
        "denominator": 1_000.0,
        "computed_at": start,
        "version": version,
        "insufficient_sample": 0,
    }


@dataclass
class Clock:
    """The service's clock (plans are judged by it): a local day, moved by the tests."""

    today: dt.date = REGISTRATION

    def now(self) -> dt.datetime:
        return dt.datetime.combine(self.today, dt.time(12), LIMA)


@dataclass
class Bench:
    settings: BenchmarkSettings
    stub: benchmark_service_pb2_grpc.BenchmarkServiceStub
    channel: grpc.Channel
    tokens: dict[str, str]
    clock: Clock

    def call(self, method: str, token: str, **fields: Any) -> Any:
        rpc = getattr(self.stub, method)
        request = getattr(benchmark_service_pb2, f"{method}Request")(**fields)
        metadata = (("authorization", f"Bearer {self.tokens[token]}"),)
        return rpc(request, metadata=metadata, timeout=30)

    def refused(self, method: str, token: str, **fields: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            answer = self.call(method, token, **fields)
            if method == "ExportResults":
                list(answer)
        return caught.value

    def insert_kpis(self, rows: Iterable[dict[str, object]]) -> None:
        client = connect(self.settings)
        rows = list(rows)
        columns = ", ".join(rows[0])
        client.execute(
            f"INSERT INTO {self.settings.clickhouse_database}.kpi_values ({columns}) VALUES", rows
        )


@pytest.fixture(scope="module")
def bench(catalogues: Catalogues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    token_file = tmp_path_factory.mktemp("secrets") / "tokens.json"
    store = TokenStore(token_file)
    tokens = {
        entity: store.issue(entity)
        for entity in ("RENIEC", "SUNARP", "ONP", "OSINERGMIN", "OSIPTEL")
    }
    tokens["national"] = store.issue("PCM-SGP", Role.NATIONAL)
    tokens["operator"] = store.issue("OPERATIONS", Role.OPERATOR)
    with isolated("bsvc") as shared:
        settings = BenchmarkSettings(
            **{
                **shared.model_dump(),
                "token_file": token_file,
                "benchmark_address": "127.0.0.1:0",
                "benchmark_metrics_port": 0,
                "benchmark_page_size": 2,
            }
        )
        migrate(connect(settings, database="default"), settings.clickhouse_database)
        clock = Clock()
        server, port, life = create_server(settings, clock.now)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        bench = Bench(
            settings,
            benchmark_service_pb2_grpc.BenchmarkServiceStub(channel),
            channel,
            tokens,
            clock,
        )
        bench.insert_kpis(
            [
                kpi_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", 95),
                kpi_row("RENIEC", "ABANDONMENT_PCT", 4),
                kpi_row("RENIEC", "SATISFACTION_PCT_TIEMPO", 80),
                kpi_row("SUNARP", "SERVED_WITHIN_TARGET_PCT", 85),
                kpi_row("SUNARP", "ABANDONMENT_PCT", 4),
                kpi_row("ONP", "SERVED_WITHIN_TARGET_PCT", 60),
                kpi_row("ONP", "ABANDONMENT_PCT", 12),
            ]
        )
        start = int(dt.datetime.combine(dt.date(2026, 1, 1), dt.time(), LIMA).timestamp())
        verified = indicator_pb2.IndicatorValue(
            indicator_code="RESPONSIBLE_UNIT_DESIGNATED",
            value=1,
            grain=common_pb2.GRAIN_YEAR,
            period_start=Timestamp(seconds=start),
            status=indicator_pb2.INDICATOR_STATUS_VERIFIED,
        )

        def reports(entity_id: str) -> list[indicator_pb2.IndicatorValue]:
            return [verified] if entity_id == "RENIEC" else []

        assess_month(settings, catalogues, OCTOBER, reports)
        try:
            yield bench
        finally:
            channel.close()
            server.stop(grace=None)
            life.on_stop()


def test_health_and_an_entity_reads_its_own_assessment_with_the_evidence(
    bench: Bench, catalogues: Catalogues
) -> None:
    health = health_pb2_grpc.HealthStub(bench.channel)
    serving = health.Check(
        health_pb2.HealthCheckRequest(service="pcm.monitoring.v1.BenchmarkService"), timeout=10
    )
    assert serving.status == health_pb2.HealthCheckResponse.SERVING
    results = bench.call("GetEntityAssessment", "RENIEC").results  # newest month by default
    codes = [r.standard_code for r in results]
    assert codes == [s.code for s in catalogues.standards] + ["OVERALL"]
    assert {r.entity_id for r in results} == {"RENIEC"}
    on_time = next(r for r in results if r.standard_code == "PUNTUALIDAD")
    assert on_time.level == benchmark_pb2.STANDARD_LEVEL_AVANZADO
    assert on_time.period_start == midnight(OCTOBER) and on_time.rank == 1
    checks = {c.criterion_id: c for c in on_time.criteria}
    assert checks["E07-B1"].kpi_code == "SERVED_WITHIN_TARGET_PCT"
    assert (checks["E07-B1"].value, checks["E07-B1"].denominator) == (95, 1_000)
    assert checks["E07-B1"].outcome == benchmark_pb2.CRITERION_OUTCOME_MET
    organisation = next(r for r in results if r.standard_code == "ORGANIZACION_INTERNA")
    assert any(c.verified for c in organisation.criteria)  # the verified report's evidence
    explicit = bench.call(
        "GetEntityAssessment", "national", entity_id="RENIEC", period_start=midnight(OCTOBER)
    ).results
    assert [r.score for r in explicit] == [r.score for r in results]
    served = REGISTRY.get_sample_value(
        "pcm_benchmark_requests_total", {"method": "GetEntityAssessment", "code": "OK"}
    )
    assert served is not None and served >= 2


def test_a_foreign_entity_and_the_wrong_roles_are_refused(bench: Bench) -> None:
    foreign = bench.refused("GetEntityAssessment", "RENIEC", entity_id="SUNARP")
    assert foreign.code() == CODE.PERMISSION_DENIED
    assert error_reason(foreign) == "ERROR_REASON_FOREIGN_ENTITY"
    peers = bench.refused("GetPeerComparison", "RENIEC", entity_id="SUNARP")
    assert peers.code() == CODE.PERMISSION_DENIED
    for method in ("ListPeerRanking", "ExportResults"):
        refused = bench.refused(method, "RENIEC")
        assert refused.code() == CODE.PERMISSION_DENIED, method
        assert error_reason(refused) == "ERROR_REASON_ROLE_NOT_ALLOWED"
    assert bench.refused("GetEntityAssessment", "operator").code() == CODE.PERMISSION_DENIED
    unnamed = bench.refused("GetEntityAssessment", "national")
    assert unnamed.code() == CODE.INVALID_ARGUMENT
    assert unnamed.details().startswith("entity_id:")


def test_periods_invalid_or_never_assessed(bench: Bench) -> None:
    never = bench.refused(
        "GetEntityAssessment", "RENIEC", period_start=midnight(dt.date(2026, 9, 1))
    )
    assert never.code() == CODE.NOT_FOUND and never.details().startswith("period_start:")
    mid_month = bench.refused(
        "GetEntityAssessment", "RENIEC", period_start=midnight(dt.date(2026, 10, 15))
    )
    assert mid_month.code() == CODE.INVALID_ARGUMENT
    assert mid_month.details().startswith("period_start:")
    daily = bench.refused("ListPeerRanking", "national", grain=common_pb2.GRAIN_DAY)
    assert daily.code() == CODE.INVALID_ARGUMENT and daily.details().startswith("grain:")
    unknown = bench.refused("ListPeerRanking", "national", standard_code="NOPE")
    assert unknown.details().startswith("standard_code:")
    quarter = bench.refused("ExportResults", "national", grain=common_pb2.GRAIN_QUARTER)
    assert quarter.code() == CODE.NOT_FOUND


def test_periods_outside_the_valid_instants_are_invalid_argument(bench: Bench) -> None:
    """Year 1 became year 0 in Lima: "date value out of range" ended the call UNKNOWN (found by
    tests/abuse). Far but valid periods are simply never assessed."""
    for seconds, nanos in ((-62_135_596_800, 0), (253_402_300_800, 0), (0, -1)):
        stamp = Timestamp(seconds=seconds, nanos=nanos)
        for method, token in (("GetEntityAssessment", "RENIEC"), ("ListPeerRanking", "national")):
            refused = bench.refused(method, token, period_start=stamp)
            assert refused.code() == CODE.INVALID_ARGUMENT, (method, seconds, refused)
            assert refused.details().startswith("period_start:")
        export = bench.refused("ExportResults", "national", period_start=stamp)
        assert export.code() == CODE.INVALID_ARGUMENT
    for far in (dt.date(2200, 1, 1), dt.date(9999, 12, 1)):
        never = bench.refused("GetPeerComparison", "RENIEC", period_start=midnight(far))
        assert never.code() == CODE.NOT_FOUND, (far, never)


def test_undecodable_bytes_on_the_streaming_export_are_invalid_argument(bench: Bench) -> None:
    """The decode guard covered unary methods only: ExportResults answered undecodable bytes
    INTERNAL "Exception deserializing request!" (found by tests/abuse)."""
    export = bench.channel.unary_stream(
        "/pcm.monitoring.v1.BenchmarkService/ExportResults",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    metadata = (("authorization", f"Bearer {bench.tokens['national']}"),)
    with pytest.raises(grpc.RpcError) as refused:
        list(export(b"\x0a\xff\xff\xff\xff\x0f", metadata=metadata, timeout=10))
    assert refused.value.code() == CODE.INVALID_ARGUMENT
    assert error_reason(refused.value) == "ERROR_REASON_UNDECODABLE_REQUEST"
    assert "not a valid /pcm.monitoring.v1.BenchmarkService/ExportResults" in str(
        refused.value.details()
    )


def test_the_national_role_reads_rankings_and_exports(bench: Bench, catalogues: Catalogues) -> None:
    ranked = bench.call(
        "ListPeerRanking", "national", peer_group=GROUP, standard_code="PUNTUALIDAD"
    ).results
    assert [(r.entity_id, r.rank) for r in ranked[:3]] == [("RENIEC", 1), ("SUNARP", 2), ("ONP", 3)]
    assert {r.peer_group for r in ranked} == {GROUP}
    overall = bench.call("ListPeerRanking", "national").results  # every entity, OVERALL
    assert len(overall) == len(catalogues.entities)
    assert overall[0].entity_id == "RENIEC" and overall[0].national_rank == 1
    assert {r.standard_code for r in overall} == {"OVERALL"}
    exported = [m.result for m in bench.call("ExportResults", "national")]
    assert len(exported) == len(catalogues.entities) * (len(catalogues.standards) + 1)


def test_the_peer_view_shows_the_distribution_never_another_entity(
    bench: Bench, catalogues: Catalogues
) -> None:
    answer = bench.call("GetPeerComparison", "SUNARP")
    assert len(answer.comparisons) == len(catalogues.standards) + 1
    assert {c.own.entity_id for c in answer.comparisons} == {"SUNARP"}
    on_time = next(c for c in answer.comparisons if c.own.standard_code == "PUNTUALIDAD")
    assert on_time.peers.peer_group == GROUP and on_time.peers.shown
    assert on_time.peers.count == on_time.own.peer_count >= 5
    assert on_time.peers.p90 == 100 and on_time.peers.p10 == 0  # RENIEC's top, others' nothing
    assert on_time.peers.p10 <= on_time.peers.p50 <= on_time.peers.p90
    assert not on_time.own.criteria  # the evidence is GetEntityAssessment's
    text = text_format.MessageToString(answer)
    others = {e.entity_id for e in catalogues.entities} - {"SUNARP"}
    leaked = {e for e in others if re.search(rf"(?<![A-Z0-9_-]){re.escape(e)}(?![A-Z0-9_-])", text)}
    assert not leaked
    # A group of two: its percentiles would give the other's score away; withheld.
    small = bench.call("GetPeerComparison", "OSINERGMIN").comparisons
    regulators = [e for e in catalogues.entities if e.peer_group == "ORGANISMO_REGULADOR"]
    assert len(regulators) == 2
    overall = next(c for c in small if c.own.standard_code == "OVERALL")
    assert overall.peers.count == 2 and not overall.peers.shown and overall.peers.p90 == 0


def plan_request(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "plan_id": "onp-puntualidad-2026",
        "standard_code": "PUNTUALIDAD",
        "criterion_id": "E07-I1",  # SERVED_WITHIN_TARGET_PCT >= 80: the default target
        "deadline": DEADLINE.isoformat(),
        "owner_role": "Jefe de la Oficina de Atención al Ciudadano",
        "title": "Atender dentro del objetivo",
        "actions": [
            PLAN.PlanAction(
                description="Abrir dos ventanillas en horas punta",
                start_date="2026-11-02",
                due_date="2026-12-15",
            )
        ],
    }
    fields.update(changes)
    return fields


def plans_of(bench: Bench, token: str, **fields: Any) -> list[Any]:
    found: list[Any] = []
    token_ = ""
    while True:
        page = bench.call("ListPlans", token, page_token=token_, **fields)
        found += page.plans
        token_ = page.next_page_token
        if not token_:
            return found


def test_plan_registration_and_its_refusals(bench: Bench) -> None:
    bench.clock.today = REGISTRATION
    plan = bench.call("RegisterPlan", "ONP", **plan_request()).plan
    assert (plan.entity_id, plan.kpi_code, plan.baseline, plan.target) == (
        "ONP",
        "SERVED_WITHIN_TARGET_PCT",
        60,
        80,
    )
    assert plan.baseline_period_start == midnight(OCTOBER) and plan.stage == PLAN.PLAN_STAGE_PLAN
    assert plan.registered_on == REGISTRATION.isoformat()
    assert plan.progress.has_value and plan.progress.progress_pct == 0
    assert not plan.progress.off_track and plan.progress.tolerance_points == 10
    (registered,) = plan.history
    assert (registered.change, registered.actor, registered.actor_role) == (
        PLAN.PLAN_CHANGE_REGISTERED,
        "ONP",
        "entity",
    )
    again = bench.refused("RegisterPlan", "ONP", **plan_request())
    assert again.code() == CODE.ALREADY_EXISTS
    foreign = bench.refused("RegisterPlan", "ONP", **plan_request(entity_id="SUNAT"))
    assert foreign.code() == CODE.PERMISSION_DENIED
    national = bench.refused("RegisterPlan", "national", **plan_request(entity_id="ONP"))
    assert national.code() == CODE.PERMISSION_DENIED
    no_value = bench.refused("RegisterPlan", "SUNARP", **plan_request(criterion_id="E07-A3"))
    assert no_value.code() == CODE.FAILED_PRECONDITION
    assert no_value.details().startswith("kpi_code:")
    backwards = bench.refused(
        "RegisterPlan",
        "ONP",
        **plan_request(plan_id="worse", criterion_id="", kpi_code="ABANDONMENT_PCT", target=15),
    )
    assert backwards.code() == CODE.INVALID_ARGUMENT
    assert backwards.details() == "target: 15 is above the baseline 12 (lower is better)"
    bad = bench.refused("RegisterPlan", "ONP", **plan_request(plan_id="bad plan", deadline="soon"))
    assert bad.code() == CODE.INVALID_ARGUMENT
    assert bad.details().startswith("plan_id: must be letters")
    assert "deadline: 'soon' is not a date YYYY-MM-DD" in bad.details()


def progress_of(bench: Bench, plan_id: str = "onp-puntualidad-2026") -> Any:
    (plan,) = [p for p in plans_of(bench, "ONP") if p.plan_id == plan_id]
    return plan.progress


def test_text_with_a_nul_character_is_refused_never_an_unknown_error(bench: Bench) -> None:
    """NUL in text reached PostgreSQL, which refuses it (in JSON too): UNKNOWN (tests/abuse)."""
    action = PLAN.PlanAction(description="x\x00", start_date="2026-11-02", due_date="2026-12-15")
    for method, token, fields, field in (
        ("RegisterPlan", "ONP", plan_request(plan_id="nul-plan", actions=[action]), "actions[0]"),
        ("RegisterPlan", "ONP", plan_request(plan_id="nul-title", title="t\x00"), "title"),
        ("ListPlans", "national", {"entity_id": "ONP\x00"}, "entity_id"),
        ("CommentPlan", "national", {"entity_id": "ONP", "plan_id": "p", "comment": "\x00"}, "c"),
    ):
        refused = bench.refused(method, token, **fields)
        assert refused.code() == CODE.INVALID_ARGUMENT, (method, refused)
        assert refused.details().startswith(field), refused.details()
        assert refused.details().endswith("contains a NUL character (U+0000)")
    assert not [p for p in plans_of(bench, "national") if p.plan_id.startswith("nul-")]


def test_progress_follows_the_kpi_and_flags_off_track_and_overdue(bench: Bench) -> None:
    # Day 50 of 100: 50 % expected. November's value 70 is half way from 60 to 80: on track.
    bench.clock.today = REGISTRATION + dt.timedelta(days=50)
    bench.insert_kpis([kpi_row("ONP", "SERVED_WITHIN_TARGET_PCT", 70, dt.date(2026, 11, 1))])
    now = wait_until(
        lambda: (p := progress_of(bench)).progress_pct == 50 and p,
        30,
        "November's KPI value not read",
    )
    assert (now.latest_value, now.expected_pct, now.off_track) == (70, 50, False)
    assert now.latest_period_start == midnight(dt.date(2026, 11, 1))
    # A newer version of November (the processor recomputed it) and December's 66: 30 %.
    bench.insert_kpis(
        [
            kpi_row("ONP", "SERVED_WITHIN_TARGET_PCT", 71, dt.date(2026, 11, 1), version=2),
            kpi_row("ONP", "SERVED_WITHIN_TARGET_PCT", 66, dt.date(2026, 12, 1)),
        ]
    )
    behind = progress_of(bench)
    assert (behind.progress_pct, behind.off_track, behind.overdue) == (30, True, False)
    # The day after the deadline, target not reached.
    bench.clock.today = DEADLINE + dt.timedelta(days=1)
    late = progress_of(bench)
    assert (late.expected_pct, late.off_track, late.overdue) == (100, True, True)
    flagged = [p.plan_id for p in plans_of(bench, "national") if p.progress.overdue]
    assert flagged == ["onp-puntualidad-2026"]
    bench.clock.today = REGISTRATION


def test_the_pdca_cycle_comments_closing_and_history(bench: Bench) -> None:
    plan_id = "onp-puntualidad-2026"
    moved = bench.call("AdvancePlan", "ONP", plan_id=plan_id, stage=PLAN.PLAN_STAGE_DO).plan
    assert moved.stage == PLAN.PLAN_STAGE_DO
    skipped = bench.refused("AdvancePlan", "ONP", plan_id=plan_id, stage=PLAN.PLAN_STAGE_ACT)
    assert skipped.code() == CODE.FAILED_PRECONDITION
    assert (
        skipped.details() == "stage: DO -> ACT is not a PDCA step; from DO the plan moves to CHECK"
    )
    for stage in (PLAN.PLAN_STAGE_CHECK, PLAN.PLAN_STAGE_ACT):
        bench.call("AdvancePlan", "ONP", plan_id=plan_id, stage=stage, note="done")
    theirs = bench.refused("AdvancePlan", "SUNARP", entity_id="ONP", plan_id=plan_id,
                           stage=PLAN.PLAN_STAGE_PLAN)  # fmt: skip
    assert theirs.code() == CODE.PERMISSION_DENIED
    for method in ("CommentPlan", "ClosePlan"):
        by_entity = bench.refused(method, "ONP", entity_id="ONP", plan_id=plan_id, comment="ok")
        assert by_entity.code() == CODE.PERMISSION_DENIED, method
        assert error_reason(by_entity) == "ERROR_REASON_ROLE_NOT_ALLOWED"
    commented = bench.call(
        "CommentPlan", "national", entity_id="ONP", plan_id=plan_id, comment="Sustentar la meta"
    ).plan
    assert commented.stage == PLAN.PLAN_STAGE_ACT
    missing = bench.refused("CommentPlan", "national", entity_id="ONP", plan_id="nope", comment="x")
    assert missing.code() == CODE.NOT_FOUND
    closed = bench.call(
        "ClosePlan", "national", entity_id="ONP", plan_id=plan_id, comment="Meta revisada"
    ).plan
    assert closed.stage == PLAN.PLAN_STAGE_CLOSED
    assert not closed.progress.off_track and not closed.progress.overdue
    reopened = bench.refused("AdvancePlan", "ONP", plan_id=plan_id, stage=PLAN.PLAN_STAGE_PLAN)
    assert reopened.code() == CODE.FAILED_PRECONDITION
    assert [
        (e.change, e.from_stage, e.to_stage, e.actor, e.comment) for e in closed.history
    ] == [
        (PLAN.PLAN_CHANGE_REGISTERED, PLAN.PLAN_STAGE_UNSPECIFIED, PLAN.PLAN_STAGE_PLAN, "ONP", ""),
        (PLAN.PLAN_CHANGE_ADVANCED, PLAN.PLAN_STAGE_PLAN, PLAN.PLAN_STAGE_DO, "ONP", ""),
        (PLAN.PLAN_CHANGE_ADVANCED, PLAN.PLAN_STAGE_DO, PLAN.PLAN_STAGE_CHECK, "ONP", "done"),
        (PLAN.PLAN_CHANGE_ADVANCED, PLAN.PLAN_STAGE_CHECK, PLAN.PLAN_STAGE_ACT, "ONP", "done"),
        (PLAN.PLAN_CHANGE_COMMENTED, PLAN.PLAN_STAGE_ACT, PLAN.PLAN_STAGE_ACT, "PCM-SGP",
         "Sustentar la meta"),
        (PLAN.PLAN_CHANGE_CLOSED, PLAN.PLAN_STAGE_ACT, PLAN.PLAN_STAGE_CLOSED, "PCM-SGP",
         "Meta revisada"),
    ]  # fmt: skip
    assert {e.actor_token_id for e in closed.history[4:]} == {
        bench.tokens["national"].split("_")[1]
    }
    with postgres(bench.settings) as conn:
        rows = conn.execute(
            "SELECT change, actor_role, changed_at IS NOT NULL FROM improvement_plan_history "
            "WHERE entity_id = 'ONP' AND plan_id = %s ORDER BY id",
            (plan_id,),
        ).fetchall()
    assert [r[0] for r in rows] == [
        "REGISTERED", "ADVANCED", "ADVANCED", "ADVANCED", "COMMENTED", "CLOSED"
    ]  # fmt: skip
    assert rows[-1][1:] == ("national", True)


def test_plans_are_listed_by_role_filtered_and_paged(bench: Bench) -> None:
    bench.clock.today = REGISTRATION
    bench.call(
        "RegisterPlan",
        "RENIEC",
        **plan_request(plan_id="reniec-abandono", criterion_id="", kpi_code="ABANDONMENT_PCT",
                       target=2),
    )  # fmt: skip
    bench.call(
        "RegisterPlan",
        "SUNARP",
        **plan_request(plan_id="sunarp-puntualidad", criterion_id="E07-A1"),  # target 90
    )
    everyone = plans_of(bench, "national", include_history=True)  # pages of 2
    assert {(p.entity_id, p.plan_id) for p in everyone} >= {
        ("ONP", "onp-puntualidad-2026"),
        ("RENIEC", "reniec-abandono"),
        ("SUNARP", "sunarp-puntualidad"),
    }
    assert all(p.history for p in everyone)
    assert [p.plan_id for p in plans_of(bench, "RENIEC")] == ["reniec-abandono"]
    assert not plans_of(bench, "RENIEC")[0].history  # only when asked for
    closed = plans_of(bench, "national", stage=PLAN.PLAN_STAGE_CLOSED)
    assert [p.plan_id for p in closed] == ["onp-puntualidad-2026"]
    on_time = plans_of(bench, "national", standard_code="PUNTUALIDAD", entity_id="SUNARP")
    assert [(p.plan_id, p.target, p.baseline) for p in on_time] == [("sunarp-puntualidad", 90, 85)]
    assert bench.refused("ListPlans", "RENIEC", entity_id="ONP").code() == CODE.PERMISSION_DENIED
    garbage = bench.refused("ListPlans", "national", page_token="garbage")
    assert garbage.code() == CODE.INVALID_ARGUMENT


def test_an_assessment_carries_its_trends_and_quarters_are_read_alike(
    bench: Bench, catalogues: Catalogues
) -> None:
    september = dt.date(2026, 9, 1)
    bench.insert_kpis([kpi_row("RENIEC", "SERVED_WITHIN_TARGET_PCT", 50, month=september)])
    assess_month(bench.settings, catalogues, september, lambda _: [])
    answer = bench.call("GetEntityAssessment", "RENIEC", period_start=midnight(OCTOBER))
    trends = {t.standard_code: t for t in answer.trends}
    assert list(trends) == [s.code for s in catalogues.standards] + ["OVERALL"]
    on_time = trends["PUNTUALIDAD"]  # NONE (0) in September, AVANZADO (100) in October
    assert (on_time.score, on_time.previous_score) == (100.0, 0.0)
    assert on_time.vs_previous == benchmark_service_pb2.TREND_DIRECTION_IMPROVING
    assert not on_time.HasField("year_before_score")  # October 2025 was never assessed
    assert on_time.vs_year_before == benchmark_service_pb2.TREND_DIRECTION_UNKNOWN
    # The fourth quarter, on its months so far (October): read by grain like a month.
    assess_period(bench.settings, catalogues, "QUARTER", OCTOBER, lambda _: [])
    quarter = bench.call("GetEntityAssessment", "RENIEC", grain=common_pb2.GRAIN_QUARTER)
    result = next(r for r in quarter.results if r.standard_code == "PUNTUALIDAD")
    assert result.grain == common_pb2.GRAIN_QUARTER and result.period_start == midnight(OCTOBER)
    assert result.level == benchmark_pb2.STANDARD_LEVEL_AVANZADO
    quarter_trend = next(t for t in quarter.trends if t.standard_code == "PUNTUALIDAD")
    assert quarter_trend.vs_previous == benchmark_service_pb2.TREND_DIRECTION_UNKNOWN


# --- CatalogueService (served beside the BenchmarkService) ---------------------------------


def publish(bench: Bench, token: str, **fields: Any) -> Any:
    stub = catalogue_service_pb2_grpc.CatalogueServiceStub(bench.channel)
    metadata = (("authorization", f"Bearer {bench.tokens[token]}"),)
    if "ListCatalogueVersions" in fields.pop("method", ""):
        request = catalogue_service_pb2.ListCatalogueVersionsRequest(**fields)
        return stub.ListCatalogueVersions(request, metadata=metadata, timeout=30)
    request = catalogue_service_pb2.PublishCataloguesRequest(**fields)
    return stub.PublishCatalogues(request, metadata=metadata, timeout=30)


def kpis_file(catalogues: Catalogues, version: str, edit: str = "") -> Any:
    text = (catalogues.directory / "kpis.yaml").read_text(encoding="utf-8")
    old = catalogues.versions["kpis"]
    text = text.replace(f'version: "{old}"', f'version: "{version}"', 1) + edit
    return catalogue_service_pb2.CatalogueFile(name="kpis", content=text)


def recorded(bench: Bench) -> list[tuple[str, str, str, str]]:
    with postgres(bench.settings) as conn:
        rows = conn.execute(
            "SELECT catalogue, version, author, note FROM catalogue_versions ORDER BY 1, 2"
        ).fetchall()
    return [tuple(str(v) for v in row) for row in rows]  # type: ignore[misc]


def test_the_national_role_publishes_a_catalogue_version_through_the_api(
    bench: Bench, catalogues: Catalogues
) -> None:
    # An entity may read the rules but not publish them.
    denied = pytest.raises(grpc.RpcError)
    with denied as caught:
        publish(bench, "RENIEC", files=[kpis_file(catalogues, "2099.1")], author="A", note="N")
    assert caught.value.code() == CODE.PERMISSION_DENIED
    # A dry run answers as if and records nothing.
    dry = publish(
        bench,
        "national",
        files=[kpis_file(catalogues, "2099.1")],
        author="Ana Quispe",
        note="Umbrales 2099",
        validate_only=True,
    )
    kpis = next(c for c in dry.catalogues if c.catalogue == "kpis")
    assert kpis.version == "2099.1" and not kpis.newly_published
    assert not kpis.HasField("published_at")
    assert recorded(bench) == []
    # Published: the file sent and the service's own others, with the author and credential.
    done = publish(
        bench,
        "national",
        files=[kpis_file(catalogues, "2099.1")],
        author="Ana Quispe",
        note="Umbrales 2099",
    )
    assert {c.catalogue: c.newly_published for c in done.catalogues} == dict.fromkeys(
        catalogues.versions, True
    )
    rows = recorded(bench)
    assert ("kpis", "2099.1", "Ana Quispe (PCM-SGP)", "Umbrales 2099") in rows
    assert len(rows) == len(catalogues.versions)
    again = publish(
        bench, "national", files=[kpis_file(catalogues, "2099.1")], author="B", note="again"
    )
    assert not any(c.newly_published for c in again.catalogues)  # nothing new: unchanged
    # Anyone authenticated reads the history.
    listed = publish(bench, "SUNARP", method="ListCatalogueVersions", catalogue="kpis")
    assert [(v.version, v.author) for v in listed.versions] == [("2099.1", "Ana Quispe (PCM-SGP)")]


def test_a_catalogue_that_would_not_load_or_reuses_a_version_is_refused(
    bench: Bench, catalogues: Catalogues
) -> None:
    def refused(**fields: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            publish(bench, "national", author="Ana Quispe", note="prueba", **fields)
        return caught.value

    before = recorded(bench)
    broken = kpis_file(catalogues, "2099.2", edit="\n  - code: lowercase_code\n")
    error = refused(files=[broken])
    assert error.code() == CODE.INVALID_ARGUMENT
    assert error.details().startswith("files[kpis]")
    standards = (catalogues.directory / "standards.yaml").read_text(encoding="utf-8")
    unknown_kpi = standards.replace("kpi: SERVED_WITHIN_TARGET_PCT", "kpi: NO_SUCH_KPI", 1)
    orphan = catalogue_service_pb2.CatalogueFile(
        name="standards",
        content=unknown_kpi.replace(
            f'version: "{catalogues.versions["standards"]}"', 'version: "2099.9"', 1
        ),
    )
    error = refused(files=[orphan])
    assert error.code() == CODE.INVALID_ARGUMENT and "NO_SUCH_KPI" in error.details()
    # The version in force, edited: refused (the running platform assesses with its own copy).
    edited = kpis_file(catalogues, catalogues.versions["kpis"], edit="\n# otra nota\n")
    error = refused(files=[edited])
    assert error.code() == CODE.INVALID_ARGUMENT and "new version" in error.details()
    assert refused(files=[]).details().startswith("files:")
    assert (
        refused(files=[kpis_file(catalogues, "2099.3")] * 2).details().startswith("files[1].name")
    )
    assert recorded(bench) == before  # nothing recorded by any refusal
    # A published version's content is forever: other content under it is ALREADY_EXISTS.
    publish(bench, "national", files=[kpis_file(catalogues, "2099.4")], author="A", note="N")
    error = refused(files=[kpis_file(catalogues, "2099.4", edit="\n# cambiado\n")])
    assert error.code() == CODE.ALREADY_EXISTS and error.details().startswith("files[kpis]")
