"""The whole platform in-process for the abuse suite: every gRPC service on a port of its own
(port 0), on one isolated Kafka prefix, ClickHouse database and PostgreSQL database, with valid
data of two entities written through the public APIs before any fuzzing.

The attacker is ``ATTACKER``'s credential; ``VICTIM`` is the other entity whose data must never
change. ``Stores`` fingerprints what every store holds per entity (every PostgreSQL table and
ClickHouse table, grouped by ``entity_id``; the messages on every Kafka topic of the prefix) so a
test can say exactly what a run of calls changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import pkgutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pcm.monitoring.v1
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition
from pcm.monitoring.v1 import (
    benchmark_service_pb2,
    catalogue_service_pb2,
    common_pb2,
    complaints_service_pb2,
    improvement_plan_pb2,
    indicator_pb2,
    indicators_service_pb2,
    intake_service_pb2,
    surveys_service_pb2,
)
from pcm.monitoring.v1.envelope_pb2 import EventEnvelope
from pcm_benchmark import server as benchmark_server
from pcm_benchmark.job import assess_month
from pcm_benchmark.settings import BenchmarkSettings
from pcm_common.auth import Role, TokenStore
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect as clickhouse
from pcm_common.clickhouse.migrate import migrate
from pcm_common.postgres.client import connect as postgres
from pcm_common.settings import Settings
from pcm_common.startup import ensure_topics
from pcm_complaints import server as complaints_server
from pcm_complaints.settings import ComplaintsSettings
from pcm_indicators import server as indicators_server
from pcm_indicators.settings import IndicatorsSettings
from pcm_intake import server as intake_server
from pcm_intake.settings import IntakeSettings
from pcm_surveys import server as surveys_server
from pcm_surveys.settings import SurveysSettings
from pcm_testkit import events
from pcm_testkit.isolation import isolated

ATTACKER = "RENIEC"
VICTIM = "SUNARP"
LIMA = ZoneInfo("America/Lima")
CALL_TIMEOUT_S = 30.0


def token_id(token: str) -> str:
    return token.split("_")[1]


def all_services() -> list[ServiceDescriptor]:
    """Every gRPC service declared in the contracts (every ``*_pb2`` of pcm.monitoring.v1)."""
    found: dict[str, ServiceDescriptor] = {}
    for module in pkgutil.iter_modules(pcm.monitoring.v1.__path__):
        if module.name.endswith("_pb2"):
            loaded = importlib.import_module(f"pcm.monitoring.v1.{module.name}")
            for service in loaded.DESCRIPTOR.services_by_name.values():
                found[service.full_name] = service
    return [found[name] for name in sorted(found)]


def all_methods() -> list[MethodDescriptor]:
    return [m for s in all_services() for m in s.methods]


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass(frozen=True)
class Answer:
    """How a call ended: its status code and message, and the response(s) when OK."""

    code: grpc.StatusCode
    details: str
    responses: tuple[Message, ...] = ()


def metadata_for(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


# --- the stores -----------------------------------------------------------------------------

Key = tuple[str, str, str]
"""(store, table or topic, entity_id or '*' for a table without entities)."""
Print = str | frozenset[str]
"""A digest of an entity's rows, or the row digests of a table without entities."""


class Stores:
    """Fingerprints of everything stored under the isolated prefix and databases."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clickhouse = clickhouse(settings)
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False
        )
        topics = sorted(t for t in self._consumer.topics() if t.startswith(settings.topic_prefix))
        self._partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)
        self.messages: Counter[tuple[str, str]] = Counter()
        """(topic, entity) -> messages read so far."""

    def close(self) -> None:
        self._consumer.close()
        self._clickhouse.disconnect()

    def read_kafka(self) -> Counter[tuple[str, str]]:
        """Messages that arrived since the last read, per (topic, entity of key and envelope)."""
        fresh: Counter[tuple[str, str]] = Counter()
        ends = self._consumer.end_offsets(self._partitions)
        while any(self._consumer.position(p) < ends[p] for p in self._partitions):
            for partition, records in self._consumer.poll(timeout_ms=500).items():
                for record in records:
                    for entity in _entities_of(record.key, record.value):
                        fresh[(partition.topic, entity)] += 1
        self.messages.update(fresh)
        return fresh

    def fingerprint(self) -> dict[Key, Print]:
        prints: dict[Key, Print] = {}
        with postgres(self._settings) as conn:
            tables = conn.execute(
                "SELECT table_name, bool_or(column_name = 'entity_id') FROM "
                "information_schema.columns WHERE table_schema = 'public' GROUP BY 1 ORDER BY 1"
            ).fetchall()
            for table, has_entity in tables:
                if has_entity:
                    for entity, digest in conn.execute(
                        "SELECT entity_id::text, md5(string_agg(t::text, '|' ORDER BY t::text)) "
                        f'FROM "{table}" t GROUP BY 1'
                    ):
                        prints[("postgres", table, entity)] = digest
                else:  # rows of nobody in particular (the event-id ledger's hashed keys)
                    rows = conn.execute(f'SELECT md5(t::text) FROM "{table}" t').fetchall()
                    prints[("postgres", table, "*")] = frozenset(r[0] for r in rows)
        database = self._settings.clickhouse_database
        for (table,) in self._clickhouse.execute(f"SHOW TABLES FROM {database}"):
            columns = [
                c for c, *_ in self._clickhouse.execute(f"DESCRIBE TABLE {database}.{table}")
            ]
            rows = self._clickhouse.execute(f"SELECT * FROM {database}.{table}")
            at = columns.index("entity_id") if "entity_id" in columns else None
            grouped: dict[str, list[str]] = {}
            for row in rows:
                grouped.setdefault("*" if at is None else str(row[at]), []).append(repr(row))
            for entity, found in grouped.items():
                digest = hashlib.sha256("|".join(sorted(found)).encode()).hexdigest()
                prints[("clickhouse", table, entity)] = digest
        return prints


def _entities_of(key: bytes | None, value: bytes | None) -> set[str]:
    """Whose a message is: its key (every producer keys by entity) and its envelope's entity."""
    entities = {key.decode(errors="replace")} if key else set()
    try:
        envelope = EventEnvelope.FromString(value or b"")
    except Exception:  # not an envelope (never expected): the key says whose it is
        return entities or {"?"}
    return entities | ({envelope.entity_id} if envelope.entity_id else set()) or {"?"}


@dataclass(frozen=True)
class Change:
    """What changed between two fingerprints and which Kafka messages arrived."""

    keys: frozenset[Key]
    messages: Counter[tuple[str, str]]
    lost: frozenset[str] = frozenset()
    """Tables without entities where a row present before was changed or deleted."""

    def of(self, entity: str) -> list[str]:
        found = [f"{s}:{t}" for s, t, e in self.keys if e == entity]
        return found + [f"kafka:{t} x{n}" for (t, e), n in self.messages.items() if e == entity]

    def everything(self) -> list[str]:
        found = [f"{s}:{t}[{e}]" for s, t, e in sorted(self.keys)]
        return found + [f"kafka:{t}[{e}] x{n}" for (t, e), n in sorted(self.messages.items())]


# --- the platform ---------------------------------------------------------------------------


@dataclass
class Seeded:
    """Ids of the valid records written before the fuzz, per entity."""

    complaint: str = ""
    indicator_event: str = ""
    collection: str = ""
    response: str = ""
    plan: str = ""
    event_ids: list[str] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [self.complaint, self.indicator_event, self.collection, self.response, self.plan]


@dataclass
class Platform:
    settings: Settings
    catalogues: Catalogues
    token_store: TokenStore
    tokens: dict[str, str]
    targets: dict[str, str]
    """Service full name -> host:port."""
    stores: Stores
    relays: list[Any]
    benchmark_settings: BenchmarkSettings
    seeded: dict[str, Seeded] = field(default_factory=dict)
    month: dt.date = dt.date(2026, 1, 1)
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    # --- calls --------------------------------------------------------------------------------
    def channel(self, service: str) -> grpc.Channel:
        target = self.targets[service]
        if target not in self.channels:
            self.channels[target] = grpc.insecure_channel(
                target,
                options=[
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.max_metadata_size", 1024 * 1024),
                ],
            )
        return self.channels[target]

    def call(
        self,
        method: MethodDescriptor,
        request: Message | bytes,
        token: str | None = None,
        metadata: Iterable[tuple[str, str | bytes]] | None = None,
    ) -> Answer:
        """Call ``method`` with a request (or raw bytes as the body); never raises for a
        status, which is the answer."""
        channel = self.channel(method.containing_service.full_name)
        response_class = GetMessageClass(method.output_type)
        serialize = None if isinstance(request, bytes) else type(request).SerializeToString
        meta = tuple(metadata) if metadata is not None else metadata_for(token)
        try:
            if method.server_streaming:
                stream = channel.unary_stream(path_of(method), serialize, response_class.FromString)
                return Answer(
                    grpc.StatusCode.OK,
                    "",
                    tuple(stream(request, metadata=meta, timeout=CALL_TIMEOUT_S)),
                )
            unary = channel.unary_unary(path_of(method), serialize, response_class.FromString)
            answer = unary(request, metadata=meta, timeout=CALL_TIMEOUT_S)
            return Answer(grpc.StatusCode.OK, "", (answer,))
        except grpc.RpcError as error:
            return Answer(error.code(), error.details() or "")

    def ok(self, method: str, request: Message, token: str) -> Message:
        """A call the seed needs to succeed."""
        service, name = method.split("/")
        found = next(s for s in all_services() if s.name == service).methods_by_name[name]
        answer = self.call(found, request, self.tokens[token])
        assert answer.code == grpc.StatusCode.OK, (method, answer)
        return answer.responses[0]

    def health(self) -> dict[str, int]:
        """Each served service's health status (grpc.health.v1)."""
        statuses = {}
        for service in self.targets:
            stub = health_pb2_grpc.HealthStub(self.channel(service))
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            statuses[service] = answer.status
        return statuses

    # --- stores -------------------------------------------------------------------------------
    def relay(self) -> None:
        """Publish every outbox to Kafka (what the workers do), so topics show what was stored."""
        for relay in self.relays:
            relay.work_once()

    def settle(self) -> dict[Key, Print]:
        """Relay, read Kafka up to now, fingerprint: the state a test compares with."""
        self.relay()
        self.stores.read_kafka()
        return self.stores.fingerprint()

    def changes(self, before: dict[Key, Print]) -> Change:
        self.relay()
        messages = self.stores.read_kafka()
        after = self.stores.fingerprint()
        keys = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        lost = set()
        for key in keys:
            old, new = before.get(key), after.get(key)
            if isinstance(old, frozenset) and not (isinstance(new, frozenset) and old <= new):
                lost.add(key[1])
        return Change(frozenset(keys), messages, frozenset(lost))

    # --- what an attacker knows ---------------------------------------------------------------
    def known_ids(self) -> list[str]:
        ids = [ATTACKER, VICTIM, "PCM-SGP", "OPERATIONS", "reniec", "SUNARP "]
        for seeded in self.seeded.values():
            ids += seeded.ids() + seeded.event_ids[:3]
        ids += [token_id(t) for t in self.tokens.values() if t.startswith("pcm_")]
        return [i for i in dict.fromkeys(ids) if i]

    def known_codes(self) -> list[str]:
        c = self.catalogues
        codes = [*(s.code for s in c.standards), "OVERALL"]
        codes += [k.code for k in c.kpis][:12] + [i.code for i in c.indicators][:8]
        codes += [g.code for g in c.peer_groups] + [ch.code for ch in c.channels]
        codes += [d.code for d in c.drivers] + sorted(c.versions)
        codes += [s.service_id for s in c.services][:6]
        codes += ["E07-I1", "E07-B1", "PLAN", "DO"]
        codes += ["MONTH", "percent", "https://example.org/e.pdf", "a" * 64]
        codes += [self.month.isoformat(), (self.month + dt.timedelta(days=120)).isoformat()]
        return list(dict.fromkeys(codes))

    def templates(self) -> dict[str, Callable[[], Message]]:
        """A valid request per method (path), written as the attacker (own entity, fresh ids).

        Optional: a method without one is fuzzed from its descriptor alone."""
        own = self.seeded[ATTACKER]
        month_start = Timestamp(seconds=int(_midnight(self.month).timestamp()))
        cat = catalogue_service_pb2
        files = {
            name: (self.catalogues.directory / f"{name}.yaml").read_text(encoding="utf-8")
            for name in sorted(self.catalogues.versions)[:1]
        }
        i, b, s = indicators_service_pb2, benchmark_service_pb2, surveys_service_pb2
        return {
            "/pcm.monitoring.v1.IntakeService/PushAttentions": lambda: (
                intake_service_pb2.PushAttentionsRequest(events=[events.attention(ATTACKER)])
            ),
            "/pcm.monitoring.v1.IntakeService/PushProcedureStages": lambda: (
                intake_service_pb2.PushProcedureStagesRequest(
                    events=[events.procedure_stage(ATTACKER)]
                )
            ),
            "/pcm.monitoring.v1.ComplaintsService/PushComplaintEvents": lambda: (
                complaints_service_pb2.PushComplaintEventsRequest(
                    events=[events.complaint(ATTACKER)]
                )
            ),
            "/pcm.monitoring.v1.ComplaintsService/GetComplaint": lambda: (
                complaints_service_pb2.GetComplaintRequest(
                    entity_id=ATTACKER, complaint_id=own.complaint
                )
            ),
            "/pcm.monitoring.v1.IndicatorsService/ReportIndicatorValues": lambda: (
                i.ReportIndicatorValuesRequest(values=[events.indicator_value(ATTACKER)])
            ),
            "/pcm.monitoring.v1.IndicatorsService/ReviewIndicatorValue": lambda: (
                i.ReviewIndicatorValueRequest(
                    entity_id=ATTACKER,
                    event_id=own.indicator_event,
                    verdict=indicator_pb2.INDICATOR_STATUS_VERIFIED,
                )
            ),
            "/pcm.monitoring.v1.IndicatorsService/ListIndicatorValues": lambda: (
                i.ListIndicatorValuesRequest(entity_id=ATTACKER, include_history=True)
            ),
            "/pcm.monitoring.v1.IndicatorsService/ListKpis": lambda: i.ListKpisRequest(
                entity_id=ATTACKER, grain=common_pb2.GRAIN_MONTH, kpi_codes=["ABANDONMENT_PCT"]
            ),
            "/pcm.monitoring.v1.SurveysService/PushSurveyCollections": lambda: (
                s.PushSurveyCollectionsRequest(collections=[events.survey_collection(ATTACKER)])
            ),
            "/pcm.monitoring.v1.SurveysService/PushSurveyResponses": lambda: (
                s.PushSurveyResponsesRequest(
                    responses=[events.survey_response(ATTACKER, collection_id=own.collection)]
                )
            ),
            "/pcm.monitoring.v1.SurveysService/ListSurveyCollections": lambda: (
                s.ListSurveyCollectionsRequest(entity_id=ATTACKER, collection_id=own.collection)
            ),
            "/pcm.monitoring.v1.SurveysService/ListSurveyResponses": lambda: (
                s.ListSurveyResponsesRequest(entity_id=ATTACKER, page_size=1)
            ),
            "/pcm.monitoring.v1.BenchmarkService/GetEntityAssessment": lambda: (
                b.GetEntityAssessmentRequest(entity_id=ATTACKER, period_start=month_start)
            ),
            "/pcm.monitoring.v1.BenchmarkService/ListPeerRanking": lambda: b.ListPeerRankingRequest(
                standard_code="PUNTUALIDAD"
            ),
            "/pcm.monitoring.v1.BenchmarkService/ExportResults": lambda: b.ExportResultsRequest(
                grain=common_pb2.GRAIN_MONTH, period_start=month_start
            ),
            "/pcm.monitoring.v1.BenchmarkService/GetPeerComparison": lambda: (
                b.GetPeerComparisonRequest(entity_id=ATTACKER)
            ),
            "/pcm.monitoring.v1.BenchmarkService/RegisterPlan": lambda: self.plan_request(
                ATTACKER, f"abuse-{uuid.uuid4().hex[:10]}"
            ),
            "/pcm.monitoring.v1.BenchmarkService/ListPlans": lambda: b.ListPlansRequest(
                entity_id=ATTACKER, include_history=True, page_size=1
            ),
            "/pcm.monitoring.v1.BenchmarkService/AdvancePlan": lambda: b.AdvancePlanRequest(
                entity_id=ATTACKER,
                plan_id=own.plan,
                stage=improvement_plan_pb2.PLAN_STAGE_DO,
                note="avance",
            ),
            "/pcm.monitoring.v1.BenchmarkService/CommentPlan": lambda: b.CommentPlanRequest(
                entity_id=ATTACKER, plan_id=own.plan, comment="revisado"
            ),
            "/pcm.monitoring.v1.BenchmarkService/ClosePlan": lambda: b.ClosePlanRequest(
                entity_id=ATTACKER, plan_id=own.plan, comment="cerrado"
            ),
            "/pcm.monitoring.v1.CatalogueService/PublishCatalogues": lambda: (
                cat.PublishCataloguesRequest(
                    files=[cat.CatalogueFile(name=n, content=c) for n, c in files.items()],
                    author="abuse",
                    note="abuse suite",
                    validate_only=True,
                )
            ),
            "/pcm.monitoring.v1.CatalogueService/ListCatalogueVersions": lambda: (
                cat.ListCatalogueVersionsRequest()
            ),
        }

    def plan_request(self, entity: str, plan_id: str) -> benchmark_service_pb2.RegisterPlanRequest:
        today = dt.datetime.now(LIMA).date()
        return benchmark_service_pb2.RegisterPlanRequest(
            plan_id=plan_id,
            entity_id=entity,
            standard_code="PUNTUALIDAD",
            criterion_id="E07-I1",  # SERVED_WITHIN_TARGET_PCT >= 80, baseline 60
            deadline=(today + dt.timedelta(days=100)).isoformat(),
            owner_role="Jefe de la Oficina de Atención al Ciudadano",
            title="Atender dentro del objetivo",
            actions=[
                improvement_plan_pb2.PlanAction(
                    description="Abrir dos ventanillas en horas punta",
                    start_date=today.isoformat(),
                    due_date=(today + dt.timedelta(days=30)).isoformat(),
                )
            ],
        )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), LIMA)


def _previous_month() -> dt.date:
    today = dt.datetime.now(LIMA).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _kpi_rows(month: dt.date) -> list[dict[str, object]]:
    start = _midnight(month)
    rows = []
    for entity in (ATTACKER, VICTIM, "ONP", "SUNAT"):
        for code, value in (("SERVED_WITHIN_TARGET_PCT", 60.0), ("ABANDONMENT_PCT", 8.0)):
            rows.append(
                {
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
                    "version": 1,
                    "insufficient_sample": 0,
                }
            )
    return rows


def _service_settings(
    kind: type[Any], base: Settings, token_file: Path, prefix: str, **extra: Any
) -> Any:
    overrides: dict[str, Any] = {
        "token_file": token_file,
        "token_reload_interval_s": 0.0,  # revocations seen at once
        f"{prefix}_address": "127.0.0.1:0",
        f"{prefix}_metrics_port": 0,
        f"{prefix}_workers": 4,
        **extra,
    }
    if prefix != "benchmark":
        overrides[f"{prefix}_rate_limit_events_per_s"] = 0  # the fuzz reaches the validators
    return kind(**{**base.model_dump(), **overrides})


@contextmanager
def running_platform(catalogues: Catalogues, token_file: Path) -> Iterator[Platform]:
    """Every gRPC service started in-process on one isolated environment, valid data of the
    attacker's and the victim's entity written through the APIs; all stopped and removed after."""
    with isolated("abuse") as base, ExitStack() as stack:
        ensure_topics(base)
        migrate(clickhouse(base, database="default"), base.clickhouse_database)
        store = TokenStore(token_file, reload_interval_s=0)
        tokens = {
            "attacker": store.issue(ATTACKER, label="abuse attacker"),
            "victim": store.issue(VICTIM, label="abuse victim"),
            "national": store.issue("PCM-SGP", Role.NATIONAL, "abuse national"),
            "operator": store.issue("OPERATIONS", Role.OPERATOR, "abuse operator"),
            "revoked": store.issue(ATTACKER, label="abuse revoked"),
        }
        store.revoke(token_id(tokens["revoked"]))
        tokens["unknown"] = f"pcm_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"

        intake = _service_settings(
            IntakeSettings, base, token_file, "intake", kafka_request_timeout_ms=4_000
        )
        complaints = _service_settings(ComplaintsSettings, base, token_file, "complaints")
        indicators = _service_settings(IndicatorsSettings, base, token_file, "indicators")
        surveys = _service_settings(SurveysSettings, base, token_file, "surveys")
        bench = _service_settings(BenchmarkSettings, base, token_file, "benchmark")

        targets: dict[str, str] = {}
        for module, settings, names in (
            (intake_server, intake, ["pcm.monitoring.v1.IntakeService"]),
            (complaints_server, complaints, ["pcm.monitoring.v1.ComplaintsService"]),
            (indicators_server, indicators, ["pcm.monitoring.v1.IndicatorsService"]),
            (surveys_server, surveys, ["pcm.monitoring.v1.SurveysService"]),
        ):
            server, port, kit = module.create_server(settings)
            server.start()
            stack.callback(kit.close)
            stack.callback(server.stop, None)
            targets.update({name: f"127.0.0.1:{port}" for name in names})
        server, port, life = benchmark_server.create_server(bench)
        server.start()
        stack.callback(life.on_stop)
        stack.callback(server.stop, None)
        for name in ("pcm.monitoring.v1.BenchmarkService", "pcm.monitoring.v1.CatalogueService"):
            targets[name] = f"127.0.0.1:{port}"

        relays = [
            complaints_server.worker(complaints),
            indicators_server.worker(indicators),
            surveys_server.worker(surveys),
        ]
        for relay in relays:
            stack.callback(_close_relay, relay)
        stores = Stores(base)
        stack.callback(stores.close)
        platform = Platform(
            base, catalogues, store, tokens, targets, stores, relays, bench, month=_previous_month()
        )
        stack.callback(_close_channels, platform)
        _seed(platform)
        yield platform


def _close_channels(platform: Platform) -> None:
    for channel in platform.channels.values():
        channel.close()


def _close_relay(relay: Any) -> None:
    """A worker whose ``stopping`` is set closes its producer and pool when run."""
    relay.stopping.set()
    relay.run()


def _seed(platform: Platform) -> None:
    """Valid records of both entities, through the public APIs, and an assessed month."""
    client = clickhouse(platform.settings)
    client.execute(
        f"INSERT INTO {platform.settings.clickhouse_database}.kpi_values "
        f"({', '.join(_kpi_rows(platform.month)[0])}) VALUES",
        _kpi_rows(platform.month),
    )
    assess_month(platform.benchmark_settings, platform.catalogues, platform.month, lambda _: [])
    client.disconnect()
    for entity, token in ((ATTACKER, "attacker"), (VICTIM, "victim")):
        seeded = Seeded()
        attention = events.attention(entity)
        stage = events.procedure_stage(entity)
        platform.ok(
            "IntakeService/PushAttentions",
            intake_service_pb2.PushAttentionsRequest(events=[attention]),
            token,
        )
        platform.ok(
            "IntakeService/PushProcedureStages",
            intake_service_pb2.PushProcedureStagesRequest(events=[stage]),
            token,
        )
        complaint = events.complaint(entity)
        platform.ok(
            "ComplaintsService/PushComplaintEvents",
            complaints_service_pb2.PushComplaintEventsRequest(events=[complaint]),
            token,
        )
        value = events.indicator_value(entity, indicator_code="ACCESSIBILITY_RAMPS", value=1)
        value.unit = "boolean"
        answer = platform.ok(
            "IndicatorsService/ReportIndicatorValues",
            indicators_service_pb2.ReportIndicatorValuesRequest(values=[value]),
            token,
        )
        assert answer.result.accepted == 1, answer  # type: ignore[attr-defined]
        collection = events.survey_collection(entity)
        response = events.survey_response(
            entity, collection_id=collection.collection_id, comment="Muy amable"
        )
        platform.ok(
            "SurveysService/PushSurveyCollections",
            surveys_service_pb2.PushSurveyCollectionsRequest(collections=[collection]),
            token,
        )
        answer = platform.ok(
            "SurveysService/PushSurveyResponses",
            surveys_service_pb2.PushSurveyResponsesRequest(responses=[response]),
            token,
        )
        assert answer.result.accepted == 1, answer  # type: ignore[attr-defined]
        plan_id = f"{entity.lower()}-plan-{uuid.uuid4().hex[:6]}"
        platform.ok("BenchmarkService/RegisterPlan", platform.plan_request(entity, plan_id), token)
        seeded.complaint = complaint.complaint_id
        seeded.indicator_event = value.event_id
        seeded.collection = collection.collection_id
        seeded.response = response.response_id
        seeded.plan = plan_id
        seeded.event_ids = [
            attention.event_id,
            stage.event_id,
            complaint.event_id,
            value.event_id,
            collection.event_id,
            response.event_id,
        ]
        platform.seeded[entity] = seeded
    platform.relay()
