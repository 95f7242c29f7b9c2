"""The gRPC BenchmarkService: benchmark results read back from ClickHouse (``reads.py``) by role,
an entity's anonymised view of its peers, and improvement plans (``plans.py``, ``plans_book.py``)
with their progress computed from the newest KPI values at every answer.

Who may do what (``pcm_common.auth.authorize``): an entity credential reads its own results,
peer view and plans, and registers and advances its own plans (write access to its own data);
the national role reads every entity's and every ranking, exports, and comments on and closes
plans (review access); anything else is PERMISSION_DENIED with its ErrorReason.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from pcm.monitoring.v1 import benchmark_service_pb2, benchmark_service_pb2_grpc, common_pb2
from pcm_common.auth import Access, Principal, Role, TokenStore, authorize, denial_message
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import period_start as period_of
from pcm_common.grpc_server import abort_with
from pcm_common.push.reading import invalid_argument, page_size
from pcm_common.validation import check_id, timestamp_problem

from pcm_benchmark import reads
from pcm_benchmark.guard import Guarded, StoreDown, observed, status_name
from pcm_benchmark.messages import message_of, trend_message
from pcm_benchmark.metrics import (
    DENIED,
    PLAN_CHANGES,
    PLAN_MOVES_REFUSED,
    PLANS_REGISTERED,
    REQUEST_SECONDS,
    REQUESTS,
    RESULTS_EXPORTED,
)
from pcm_benchmark.national import OVERALL
from pcm_benchmark.plan_kpis import LatestKpi, latest_kpis
from pcm_benchmark.plan_messages import STAGE_OF, plan_message
from pcm_benchmark.plans import (
    MAX_NOTE,
    Proposal,
    check_proposal,
    progress,
    target_problem,
)
from pcm_benchmark.plans_book import (
    Actor,
    MoveRefused,
    NewPlan,
    PlanBook,
    PlanExists,
    PlanNotFound,
    StoredPlan,
)

GRAINS: dict[int, str] = {
    common_pb2.GRAIN_MONTH: "MONTH",
    common_pb2.GRAIN_QUARTER: "QUARTER",
    common_pb2.GRAIN_YEAR: "YEAR",
}
T = TypeVar("T")


class ResultStore:
    """ClickHouse for the service: one client per thread (clickhouse-driver clients are not
    thread-safe), reconnected after an error."""

    def __init__(self, connect: Callable[[], Client], database: str) -> None:
        self._connect = connect
        self._database = database
        self._local = threading.local()

    def run(self, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``read(client, database, *args, **kwargs)``; StoreDown when ClickHouse fails."""
        try:
            client = getattr(self._local, "client", None)
            if client is None:
                client = self._local.client = self._connect()
            return read(client, self._database, *args, **kwargs)
        except (ClickHouseError, OSError, EOFError) as error:
            self._local.client = None
            raise StoreDown(
                "clickhouse", f"results store (ClickHouse) unavailable: {error}"
            ) from error


@dataclass(frozen=True)
class ServiceConfig:
    time_zone: str = "America/Lima"
    page_size: int = 100
    min_peers: int = 5
    tolerance_points: float = 10.0
    retry_after_s: float = 5.0


@dataclass(frozen=True)
class Period:
    grain: str
    start: dt.date
    version: str


class BenchmarkServicer(Guarded, benchmark_service_pb2_grpc.BenchmarkServiceServicer):
    def __init__(
        self,
        tokens: TokenStore,
        catalogues: Catalogues,
        results: ResultStore,
        book: PlanBook,
        config: ServiceConfig,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        super().__init__(tokens, config.retry_after_s)
        self._catalogues = catalogues
        self._results = results
        self._book = book
        self._config = config
        self._zone = ZoneInfo(config.time_zone)
        self._now = now
        self._order = {s.code: n for n, s in enumerate(catalogues.standards)}
        self._order[OVERALL] = len(self._order)

    # --- results -------------------------------------------------------------------------

    @observed
    def GetEntityAssessment(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.GetEntityAssessmentRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.GetEntityAssessmentResponse:
        entity_id = self._reader(context, request.entity_id)
        period = self._period(context, request.grain, request, "period_start")
        own = self._own(context, entity_id, period)
        evidence = self._results.run(
            reads.criteria, period.grain, period.start, period.version, entity_id
        )
        by_standard: dict[str, list[reads.StoredCriterion]] = defaultdict(list)
        for criterion in evidence:
            by_standard[criterion.standard].append(criterion)
        trends = self._results.run(reads.trends, period.grain, period.start, entity_id)
        return benchmark_service_pb2.GetEntityAssessmentResponse(
            results=[
                message_of(r, by_standard.get(r.standard, ()), self._config.time_zone) for r in own
            ],
            trends=sorted(
                (trend_message(t) for t in trends),
                key=lambda t: self._order.get(t.standard_code, len(self._order)),
            ),
        )

    @observed
    def ListPeerRanking(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.ListPeerRankingRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.ListPeerRankingResponse:
        self._national_only(context, "list rankings")
        standard = request.standard_code or OVERALL
        if standard not in self._order:
            invalid_argument(context, f"standard_code: {standard[:40]!r} is not a standard")
        group = request.peer_group
        if group:
            try:
                self._catalogues.peer_group(group)
            except KeyError:
                invalid_argument(context, f"peer_group: {group[:40]!r} is not a peer group")
        period = self._period(context, request.grain, request, "period_start")
        found = self._results.run(
            reads.results,
            period.grain,
            period.start,
            version=period.version,
            standard=standard,
            peer_group=group or None,
        )

        def rank(r: reads.StoredResult) -> int:
            return r.peer_rank if group else r.national_rank

        ordered = sorted(found, key=lambda r: (rank(r) == 0, rank(r), r.entity_id))
        return benchmark_service_pb2.ListPeerRankingResponse(
            results=[message_of(r, (), self._config.time_zone) for r in ordered]
        )

    def ExportResults(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.ExportResultsRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[benchmark_service_pb2.ExportResultsResponse]:
        started = time.perf_counter()
        try:
            with self.stores(context):
                self._national_only(context, "export results")
                period = self._period(context, request.grain, request, "period_start")
                found = self._results.run(
                    reads.results, period.grain, period.start, version=period.version
                )
            for result in found:
                RESULTS_EXPORTED.inc()
                yield benchmark_service_pb2.ExportResultsResponse(
                    result=message_of(result, (), self._config.time_zone)
                )
        finally:
            REQUEST_SECONDS.labels(method="ExportResults").observe(time.perf_counter() - started)
            REQUESTS.labels(method="ExportResults", code=status_name(context)).inc()

    @observed
    def GetPeerComparison(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.GetPeerComparisonRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.GetPeerComparisonResponse:
        entity_id = self._reader(context, request.entity_id)
        period = self._period(context, request.grain, request, "period_start")
        own = self._own(context, entity_id, period)
        group = own[0].peer_group
        stored = self._results.run(
            reads.distributions,
            period.grain,
            period.start,
            period.version,
            peer_group=group,
            measure_kind="standard",
        )
        by_standard = {d.measure: d for d in stored}
        return benchmark_service_pb2.GetPeerComparisonResponse(
            comparisons=[
                benchmark_service_pb2.PeerComparison(
                    own=message_of(r, (), self._config.time_zone),
                    peers=self._distribution(group, by_standard.get(r.standard)),
                )
                for r in own
            ]
        )

    def _distribution(
        self, group: str, found: reads.StoredDistribution | None
    ) -> benchmark_service_pb2.PeerDistribution:
        """The peer group's stored distribution of a standard's scores, withheld below the
        minimum group size (a small group's percentiles would give a peer's score away)."""
        answer = benchmark_service_pb2.PeerDistribution(
            peer_group=group, count=found.count if found else 0
        )
        if found is not None and found.count >= self._config.min_peers:
            answer.shown = True
            answer.p10, answer.p25, answer.p50 = found.p10, found.p25, found.p50
            answer.p75, answer.p90, answer.mean = found.p75, found.p90, found.mean
        return answer

    def _own(
        self, context: grpc.ServicerContext, entity_id: str, period: Period
    ) -> list[reads.StoredResult]:
        """The entity's results of the period, standards in the catalogue's order, OVERALL
        last; NOT_FOUND when it was not assessed."""
        own = self._results.run(
            reads.results,
            period.grain,
            period.start,
            version=period.version,
            entity_id=entity_id,
        )
        if not own:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"entity_id: {entity_id[:40]!r} was not assessed in {period.grain} "
                f"{period.start.isoformat()}",
            )
        return sorted(own, key=lambda r: (self._order.get(r.standard, -1), r.standard))

    def _period(
        self, context: grpc.ServicerContext, grain_number: int, request: Any, field: str
    ) -> Period:
        """The grain and period asked for (default: MONTH, the newest period assessed), and the
        catalogue version of its newest assessment."""
        grain = GRAINS.get(grain_number or common_pb2.GRAIN_MONTH)
        if grain is None:
            invalid_argument(
                context, "grain: GRAIN_MONTH, GRAIN_QUARTER or GRAIN_YEAR (results are kept so)"
            )
        if request.HasField(field):
            stamp = getattr(request, field)
            invalid = timestamp_problem(stamp)
            if invalid:  # before it is converted: a date out of range would end the call UNKNOWN
                invalid_argument(context, f"{field}: {invalid}")
            local = dt.datetime.fromtimestamp(stamp.seconds, self._zone)
            start = local.date()
            if local.time() != dt.time() or stamp.nanos or period_of(start, grain) != start:
                invalid_argument(
                    context,
                    f"{field}: not the first day of a {grain} at local midnight "
                    f"({self._config.time_zone})",
                )
        else:
            assessed = self._results.run(reads.periods, grain)
            if not assessed:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{field}: no {grain} assessed yet")
            start = assessed[0]
        version = self._results.run(reads.newest_version, grain, start)
        if version is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"{field}: {grain} {start.isoformat()} was never assessed",
            )
        return Period(grain, start, version)

    # --- improvement plans ---------------------------------------------------------------

    @observed
    def RegisterPlan(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.RegisterPlanRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.RegisterPlanResponse:
        principal = self._caller(context)
        entity_id = request.entity_id or principal.entity_id
        self._authorize(context, principal, Access.WRITE_EVENTS, entity_id)
        today = self._today()
        proposal = Proposal(
            plan_id=request.plan_id,
            entity_id=entity_id,
            standard_code=request.standard_code,
            criterion_id=request.criterion_id,
            kpi_code=request.kpi_code,
            target=request.target if request.HasField("target") else None,
            deadline=request.deadline,
            owner_role=request.owner_role,
            title=request.title,
            actions=[(a.description, a.start_date, a.due_date) for a in request.actions],
        )
        terms, problems = check_proposal(proposal, self._catalogues, today)
        problems = [f"{e.field}: {e.reason}" for e in check_id(request.plan_id, "plan_id")] + (
            problems
        )
        if problems or terms is None:
            invalid_argument(context, "; ".join(problems[:10]))
        latest = self._latest([(entity_id, terms.kpi_code)]).get((entity_id, terms.kpi_code))
        if latest is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"kpi_code: {entity_id} has no MONTH value of {terms.kpi_code} yet; "
                "a plan starts from one (its baseline)",
            )
        problem = target_problem(latest.value, terms.target, terms.direction)
        if problem is not None:
            invalid_argument(context, problem)
        plan = NewPlan(
            entity_id=entity_id,
            plan_id=request.plan_id,
            title=request.title,
            standard_code=request.standard_code,
            criterion_id=request.criterion_id,
            owner_role=request.owner_role,
            terms=terms,
            baseline=latest.value,
            baseline_period=latest.period_start,
            registered_on=today,
        )
        try:
            stored = self._book.register(plan, _actor(principal))
        except PlanExists as error:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
        PLANS_REGISTERED.labels(standard=stored.standard_code).inc()
        return benchmark_service_pb2.RegisterPlanResponse(plan=self._answer(stored, latest))

    @observed
    def ListPlans(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.ListPlansRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.ListPlansResponse:
        principal = self._caller(context)
        entity_id: str | None = request.entity_id or principal.entity_id
        if not request.entity_id and principal.role is Role.NATIONAL:
            entity_id = None  # every entity's
        else:
            self._authorize(context, principal, Access.READ, str(entity_id))
        stage = None
        if request.stage:
            stage = STAGE_OF.get(request.stage)
            if stage is None:
                invalid_argument(context, f"stage: {request.stage} is not a PlanStage")
        if request.standard_code and request.standard_code not in self._order:
            invalid_argument(context, f"standard_code: {request.standard_code[:40]!r} unknown")
        size = page_size(request.page_size, self._config.page_size)
        try:
            page = self._book.list(
                entity_id,
                request.standard_code,
                stage,
                request.include_history,
                size,
                request.page_token,
            )
        except ValueError as error:
            invalid_argument(context, str(error))
        latest = self._latest([(p.entity_id, p.kpi_code) for p in page.plans])
        return benchmark_service_pb2.ListPlansResponse(
            plans=[self._answer(p, latest.get((p.entity_id, p.kpi_code))) for p in page.plans],
            next_page_token=page.next_token,
        )

    @observed
    def AdvancePlan(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.AdvancePlanRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.AdvancePlanResponse:
        principal = self._caller(context)
        entity_id = request.entity_id or principal.entity_id
        self._authorize(context, principal, Access.WRITE_EVENTS, entity_id)
        self._plan_id(context, request.plan_id)
        wanted = STAGE_OF.get(request.stage)
        if wanted is None:
            invalid_argument(context, "stage: required (the PDCA stage to move to)")
        self._note(context, "note", request.note, required=False)
        stored = self._change(
            context,
            lambda: self._book.advance(
                entity_id, request.plan_id, wanted, request.note, _actor(principal)
            ),
        )
        return benchmark_service_pb2.AdvancePlanResponse(plan=self._answer_now(stored))

    @observed
    def CommentPlan(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.CommentPlanRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.CommentPlanResponse:
        principal = self._reviewer(context, request.entity_id)
        self._plan_id(context, request.plan_id)
        self._note(context, "comment", request.comment, required=True)
        stored = self._change(
            context,
            lambda: self._book.comment(
                request.entity_id, request.plan_id, request.comment, _actor(principal)
            ),
        )
        return benchmark_service_pb2.CommentPlanResponse(plan=self._answer_now(stored))

    @observed
    def ClosePlan(  # noqa: N802 (gRPC method name)
        self,
        request: benchmark_service_pb2.ClosePlanRequest,
        context: grpc.ServicerContext,
    ) -> benchmark_service_pb2.ClosePlanResponse:
        principal = self._reviewer(context, request.entity_id)
        self._plan_id(context, request.plan_id)
        self._note(context, "comment", request.comment, required=False)
        stored = self._change(
            context,
            lambda: self._book.close(
                request.entity_id, request.plan_id, request.comment, _actor(principal)
            ),
        )
        return benchmark_service_pb2.ClosePlanResponse(plan=self._answer_now(stored))

    def _change(
        self, context: grpc.ServicerContext, change: Callable[[], StoredPlan]
    ) -> StoredPlan:
        try:
            stored = change()
        except PlanNotFound as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except MoveRefused as error:
            PLAN_MOVES_REFUSED.inc()
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        last = stored.history[-1]
        PLAN_CHANGES.labels(change=last.change.value, stage=stored.stage.value).inc()
        return stored

    def _answer_now(self, plan: StoredPlan) -> Any:
        key = (plan.entity_id, plan.kpi_code)
        return self._answer(plan, self._latest([key]).get(key))

    def _answer(self, plan: StoredPlan, latest: LatestKpi | None) -> Any:
        measured = progress(
            baseline=plan.baseline,
            target=plan.target,
            registered_on=plan.registered_on,
            deadline=plan.deadline,
            stage=plan.stage,
            latest=latest.value if latest is not None else None,
            today=self._today(),
            tolerance_points=self._config.tolerance_points,
        )
        return plan_message(plan, measured, latest, self._config.time_zone)

    def _latest(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], LatestKpi]:
        return self._results.run(latest_kpis, pairs, self._config.time_zone)

    def _today(self) -> dt.date:
        return self._now().astimezone(self._zone).date()

    @staticmethod
    def _plan_id(context: grpc.ServicerContext, plan_id: str) -> None:
        for error in check_id(plan_id, "plan_id"):
            invalid_argument(context, f"{error.field}: {error.reason}")

    @staticmethod
    def _note(context: grpc.ServicerContext, field: str, text: str, required: bool) -> None:
        if required and not text.strip():
            invalid_argument(context, f"{field}: required")
        if len(text) > MAX_NOTE:
            invalid_argument(context, f"{field}: longer than {MAX_NOTE} characters")

    # --- who may -------------------------------------------------------------------------

    def _authorize(
        self, context: grpc.ServicerContext, principal: Principal, access: Access, entity_id: str
    ) -> None:
        """``pcm_common.push.reading.allowed``'s rule, counted in this service's metrics."""
        denial = authorize(principal, access, entity_id)
        if denial is not None:
            DENIED.labels(reason=denial.value).inc()
            abort_with(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                denial.value,
                denial_message(principal, access, denial),
            )

    def _reader(self, context: grpc.ServicerContext, entity_id: str) -> str:
        """The entity whose results are read (default: the caller's own), if the caller may."""
        principal = self._caller(context)
        if not entity_id and principal.role is not Role.ENTITY:
            self._authorize(context, principal, Access.READ, principal.entity_id)
            invalid_argument(context, "entity_id: required with a national credential")
        chosen = entity_id or principal.entity_id
        self._authorize(context, principal, Access.READ, chosen)
        return chosen

    def _reviewer(self, context: grpc.ServicerContext, entity_id: str) -> Principal:
        principal = self._caller(context)
        self._authorize(context, principal, Access.REVIEW, entity_id)
        if not entity_id:
            invalid_argument(context, "entity_id: required")
        return principal

    def _national_only(self, context: grpc.ServicerContext, what: str) -> Principal:
        return self._national(
            context, what, "read its own results (GetEntityAssessment, GetPeerComparison)"
        )


def _actor(principal: Principal) -> Actor:
    return Actor(principal.entity_id, principal.role.value, principal.token_id)
