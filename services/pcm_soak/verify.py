"""What the stores hold, against the ledger of what the load sent and was answered.

- **Stored once.** For every domain and every store the platform keeps it in (the service's
  book in PostgreSQL, the facts in ClickHouse, read through the table's deduplicated view
  ``FINAL``, the indicator topic): each accepted item is there once with the content first
  accepted, nothing refused is there, and nothing else is. The complaints the overdue job had
  to flag (left open past their due date) are predicted from the ledger and checked the same way.
- **KPIs.** Every KPI the stream computes from events (``pcm_testkit.kpis.stream_kpi_codes``)
  equals the pure-Python reference over the accepted items (``expected_kpis``), built from the
  ledger alone: complaints as the complaints service publishes them (due date from the
  catalogue) plus the predicted OVERDUE events. The others (the term tracker's, snapshots at
  period close) are compared with the processor's own recomputation from the stored facts
  (``pcm-processor recompute`` into a scratch copy of the facts).
- **Assessments.** Every benchmark result the worker stored equals a fresh assessment of the
  final KPIs and reported values (level, score, ranks per entity and standard).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsFloat, cast
from zoneinfo import ZoneInfo

from clickhouse_driver import Client
from google.protobuf.message import Message
from pcm.monitoring.v1 import complaint_pb2, envelope_pb2, indicator_pb2, survey_pb2
from pcm_benchmark.evidence import evidence_of, period_kpis, reported
from pcm_benchmark.national import benchmark
from pcm_benchmark.reads import results as stored_results
from pcm_common.catalogues import Catalogues
from pcm_common.catalogues.models import period_end
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.postgres.client import connect as connect_postgres
from pcm_common.settings import Settings
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.registry import DOMAINS as FACT_DOMAINS
from pcm_processor.domain.registry import fact_domain
from pcm_processor.terms import RECENT_CLOSES, recent_closed
from pcm_testkit.events import enveloped
from pcm_testkit.kafka import read_envelopes
from pcm_testkit.kpis import Measured, differences, expected_kpis, read_kpis, stream_kpi_codes

from pcm_soak.ledger import Answer, Intent, Item, Key, Ledger
from pcm_soak.workload import (
    ATTENTION,
    COMPLAINT,
    INDICATOR_VALUE,
    PROCEDURE_STAGE,
    SURVEY_COLLECTION,
    SURVEY_RESPONSE,
    overall_score,
)

LIMA = ZoneInfo("America/Lima")
OVERDUE_PREFIX = "pcm-overdue/"
PLATFORM_OVERDUE = "complaint OVERDUE"
"""The row of the events the platform adds (the overdue job's), beside the pushed domains."""
EXAMPLES = 5


# --- the ledger's side --------------------------------------------------------------------


@dataclass
class Answers:
    """What one domain's items were answered."""

    domain: str
    sent: int = 0
    """Distinct ids sent: generator items and items made invalid on purpose."""
    resent: int = 0
    """Earlier ids sent again with other content."""
    attempts: int = 0
    """Items carried by calls, counting every retry (the client's and the load's)."""
    accepted: int = 0
    after_lost_answer: int = 0
    """Of the accepted: stored by an attempt whose answer was lost ("duplicate" to a retry)."""
    refused: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    invalid_accepted: int = 0
    resends_stored_again: int = 0
    """Resends answered "accepted" (the first send's answer was lost and its claim expired:
    the processor still keeps the first content)."""
    resends_not_duplicate: int = 0
    """Resends refused or never answered."""
    unexplained_duplicates: int = 0
    """First sends answered "duplicate" although no earlier attempt could have stored them."""
    raced: int = 0
    """Items sent twice at the same moment (``Intent.RACE``)."""
    races_refused: int = 0
    """Of those, either copy refused (while the other was stored)."""
    races_accepted_twice: int = 0
    """Of those, both copies answered "accepted"."""


def answers_of(items: Iterable[Item], domain: str) -> Answers:
    found = Answers(domain)
    for item in items:
        found.attempts += item.sends
        if item.intent is Intent.RACE:
            first = item.original
            assert first is not None
            found.raced += 1
            answers = {item.answer, first.answer}
            if Answer.REFUSED in answers:
                found.races_refused += 1
            elif item.answer is Answer.ACCEPTED and first.answer is Answer.ACCEPTED:
                found.races_accepted_twice += 1
            continue
        if item.intent is Intent.RESEND:
            found.resent += 1
            if item.answer is Answer.ACCEPTED:
                found.resends_stored_again += 1
            elif item.answer is not Answer.DUPLICATE:
                found.resends_not_duplicate += 1
            continue
        found.sent += 1
        if item.answer is None:
            found.unanswered += 1
        elif item.answer is Answer.REFUSED:
            found.refused[item.code] += 1
        else:
            found.accepted += 1
            if item.intent is Intent.INVALID:
                found.invalid_accepted += 1
            if item.answer is Answer.DUPLICATE:
                if item.lost_answers:
                    found.after_lost_answer += 1
                elif item.twin is None or item.twin.answer is not Answer.ACCEPTED:
                    found.unexplained_duplicates += 1
    return found


# --- the stores' side ---------------------------------------------------------------------

Stored = dict[Key, tuple[int, object]]
"""(entity, event id) -> (copies, the checked field's value)"""


@dataclass(frozen=True)
class Readers:
    settings: Settings
    clickhouse: Client

    @property
    def db(self) -> str:
        return self.settings.clickhouse_database


@dataclass(frozen=True)
class Store:
    domain: str
    name: str
    read: Callable[[Readers], Stored]
    field: Callable[[Message], object] | None
    """The content checked: the first accepted content's value (None: ids only)."""
    at_least_once: bool = False
    """A topic: copies beyond the first are republished ones, which consumers keep once."""


def _facts(table: str, column: str) -> Callable[[Readers], Stored]:
    def read(readers: Readers) -> Stored:
        rows = readers.clickhouse.execute(
            f"SELECT entity_id, event_id, count(), any({column}) "
            f"FROM {readers.db}.{table} FINAL GROUP BY entity_id, event_id"
        )
        return {(e, i): (int(n), value) for e, i, n, value in rows}

    return read


def _answer_facts(readers: Readers) -> Stored:
    """One row per question: copies are the most rows of any one question of the response."""
    rows = readers.clickhouse.execute(
        "SELECT entity_id, event_id, max(copies), anyIf(score, driver = 'OVERALL') FROM ("
        "SELECT entity_id, event_id, driver, count() AS copies, any(score) AS score "
        f"FROM {readers.db}.survey_response_events FINAL GROUP BY entity_id, event_id, driver"
        ") GROUP BY entity_id, event_id"
    )
    return {(e, i): (int(n), int(score)) for e, i, n, score in rows}


def _book(table: str, column: str | None) -> Callable[[Readers], Stored]:
    def read(readers: Readers) -> Stored:
        chosen = column or "NULL"
        with connect_postgres(readers.settings) as conn:
            rows = conn.execute(
                f"SELECT entity_id, event_id, count(*), min({chosen}) FROM {table} "
                "GROUP BY entity_id, event_id"
            ).fetchall()
        return {(e, i): (int(n), value) for e, i, n, value in rows}

    return read


def _response_book(readers: Readers) -> Stored:
    with connect_postgres(readers.settings) as conn:
        rows = conn.execute("SELECT entity_id, event_id, overall FROM survey_responses").fetchall()
    found: Stored = {}
    for entity, event_id, overall in rows:
        answer = overall if isinstance(overall, dict) else json.loads(overall or "null")
        score = 0
        if answer and (answer["status"] == "SCORED" or answer["status"] == "UNSPECIFIED"):
            score = int(answer["score"])
        copies = found.get((entity, event_id), (0, 0))[0]
        found[(entity, event_id)] = (copies + 1, score)
    return found


def _indicator_topic(readers: Readers) -> Stored:
    topic = topic_for_domain(INDICATOR_VALUE).name(readers.settings.topic_prefix)
    with connect_postgres(readers.settings) as conn:
        row = conn.execute("SELECT count(*) FROM indicator_reports").fetchone()
    minimum = int(row[0]) if row else 0
    found: Stored = {}
    for _, envelope in read_envelopes(readers.settings.kafka_bootstrap, topic, minimum, 30):
        value = envelope.indicator_value
        key = (value.entity_id, value.event_id)
        found[key] = (found.get(key, (0, 0.0))[0] + 1, value.value)
    return found


def _field(name: str) -> Callable[[Message], object]:
    return lambda message: getattr(message, name)


STORES = (
    Store(
        ATTENTION,
        "facts attention_events",
        _facts("attention_events", "office_id"),
        _field("office_id"),
    ),
    Store(
        PROCEDURE_STAGE,
        "facts procedure_stage_events",
        _facts("procedure_stage_events", "unit_id"),
        _field("unit_id"),
    ),
    Store(COMPLAINT, "book complaint_transitions", _book("complaint_transitions", None), None),
    Store(
        COMPLAINT, "facts complaint_events", _facts("complaint_events", "driver"), _field("driver")
    ),
    Store(
        INDICATOR_VALUE,
        "book indicator_reports",
        _book("indicator_reports", "value"),
        _field("value"),
    ),
    Store(INDICATOR_VALUE, "topic indicator-value", _indicator_topic, _field("value"), True),
    Store(
        SURVEY_COLLECTION,
        "book survey_collections",
        _book("survey_collections", "interactions"),
        _field("interactions"),
    ),
    Store(
        SURVEY_COLLECTION,
        "facts survey_collection_events",
        _facts("survey_collection_events", "interactions"),
        _field("interactions"),
    ),
    Store(SURVEY_RESPONSE, "book survey_responses", _response_book, overall_score),
    Store(SURVEY_RESPONSE, "facts survey_response_events", _answer_facts, overall_score),
)


@dataclass
class StoreResult:
    domain: str
    store: str
    expected: int = 0
    stored: int = 0
    duplicated: int = 0
    lost: int = 0
    refused_stored: int = 0
    unexpected: int = 0
    changed: int = 0
    republished: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(
            self.duplicated or self.lost or self.refused_stored or self.unexpected or self.changed
        )


def _same(want: object, got: object) -> bool:
    if isinstance(want, float) or isinstance(got, float):
        try:
            numbers = cast("tuple[SupportsFloat | str, SupportsFloat | str]", (want, got))
            return math.isclose(float(numbers[0]), float(numbers[1]), rel_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(want) == str(got)


def check_store(
    store: Store,
    items: Sequence[Item],
    stored: Stored,
    platform: Mapping[Key, Message] | None = None,
    label: str | None = None,
) -> StoreResult:
    """``items``: the ledger's items of the store's domain. With ``platform``: the row of the
    events the platform adds itself (the overdue job's), which must all be there."""
    result = StoreResult(label or store.domain, store.name)
    refused: set[Key] = set()
    if platform is None:
        firsts = {i.key: i for i in items if i.first}
        expected = {key: item.message for key, item in firsts.items() if item.accepted}
        considered = {k: v for k, v in stored.items() if not k[1].startswith(OVERDUE_PREFIX)}
        refused = {key for key, item in firsts.items() if item.answer is Answer.REFUSED}
    else:
        expected = dict(platform)
        considered = {k: v for k, v in stored.items() if k[1].startswith(OVERDUE_PREFIX)}
    result.expected = len(expected)

    def example(text: str) -> None:
        if len(result.examples) < EXAMPLES:
            result.examples.append(text)

    for key, message in expected.items():
        found = considered.get(key)
        if found is None:
            result.lost += 1
            example(f"lost {key}")
            continue
        copies, value = found
        result.stored += 1
        if copies > 1:
            if store.at_least_once:
                result.republished += copies - 1
            else:
                result.duplicated += copies - 1
                example(f"{copies} copies of {key}")
        if store.field is not None:
            want = store.field(message)
            if not _same(want, value):
                result.changed += 1
                example(f"{key}: {value!r} stored, {want!r} first accepted")
    for key in considered.keys() - expected.keys():
        if key in refused:
            result.refused_stored += 1
            example(f"refused but stored {key}")
        else:
            result.unexpected += 1
            example(f"stored, never accepted {key}")
    return result


# --- the complaints the overdue job must flag ---------------------------------------------


def local_date(stamp: Any) -> dt.date:
    return dt.datetime.fromtimestamp(stamp.seconds, LIMA).date()


def published_complaint(
    event: complaint_pb2.ComplaintEvent, catalogues: Catalogues
) -> complaint_pb2.ComplaintEvent:
    """The event as the complaints service publishes it: its term fields from the catalogue
    (the same computation as the book's, from the complaint's filing date)."""
    out = complaint_pb2.ComplaintEvent()
    out.CopyFrom(event)
    due = catalogues.complaint_due(
        event.entity_id,
        event.category or None,
        local_date(event.filed_at),
        event.legal_term_business_days,
    )
    out.due_on = due.due_on.isoformat()
    out.term_business_days = due.term_business_days
    out.term_basis = due.basis
    return out


def expected_overdue(
    items: Iterable[Item], catalogues: Catalogues, today: dt.date
) -> dict[Key, complaint_pb2.ComplaintEvent]:
    """The OVERDUE event of every accepted complaint still registered past its due date, as
    the overdue job makes it (``pcm_complaints.book.overdue_event``)."""
    registered: dict[tuple[str, str], complaint_pb2.ComplaintEvent] = {}
    last: dict[tuple[str, str], str] = {}
    for item in items:
        if item.intent is not Intent.ORIGINAL or not item.accepted:
            continue
        event = item.message
        assert isinstance(event, complaint_pb2.ComplaintEvent)
        complaint = (event.entity_id, event.complaint_id)
        stage = complaint_pb2.ComplaintStage.Name(event.stage).removeprefix("COMPLAINT_STAGE_")
        last[complaint] = stage
        if stage == "REGISTERED":
            registered[complaint] = event
    found: dict[Key, complaint_pb2.ComplaintEvent] = {}
    now = dt.datetime.now(dt.UTC)
    for complaint, stage in last.items():
        opening = registered.get(complaint)
        if stage != "REGISTERED" or opening is None:
            continue
        published = published_complaint(opening, catalogues)
        if dt.date.fromisoformat(published.due_on) >= today:
            continue
        overdue = complaint_pb2.ComplaintEvent()
        overdue.CopyFrom(published)
        overdue.event_id = OVERDUE_PREFIX + opening.complaint_id
        overdue.stage = complaint_pb2.COMPLAINT_STAGE_OVERDUE
        overdue.occurred_at.FromDatetime(now)
        filed = dt.datetime.combine(local_date(opening.filed_at), dt.time(12), dt.UTC)
        overdue.filed_at.FromDatetime(filed)
        overdue.overdue = True
        overdue.ClearField("complainant_hash")
        found[(opening.entity_id, overdue.event_id)] = overdue
    return found


def flagged_overdue(settings: Settings) -> set[tuple[str, str]]:
    with connect_postgres(settings) as conn:
        rows = conn.execute(
            "SELECT entity_id, complaint_id FROM complaints WHERE overdue_on IS NOT NULL"
        ).fetchall()
    return {(entity, complaint) for entity, complaint in rows}


# --- corrections: the last accepted report of a period is the current one -----------------


def current_indicators(items: Iterable[Item], settings: Settings) -> list[str]:
    """Differences between the current reports and the last accepted one of each period."""
    want: dict[tuple[str, str, int, int], str] = {}
    for item in items:
        if item.intent is Intent.ORIGINAL and item.accepted:
            value = item.message
            assert isinstance(value, indicator_pb2.IndicatorValue)
            period = (
                value.entity_id,
                value.indicator_code,
                value.grain,
                value.period_start.seconds,
            )
            want[period] = value.event_id
    with connect_postgres(settings) as conn:
        rows = conn.execute(
            "SELECT entity_id, event_id FROM indicator_reports WHERE status <> 'SUPERSEDED'"
        ).fetchall()
    current = {(entity, event_id) for entity, event_id in rows}
    expected = {(period[0], event_id) for period, event_id in want.items()}
    return [f"current, not the last report: {k}" for k in sorted(current - expected)] + [
        f"the last report is not current: {k}" for k in sorted(expected - current)
    ]


# --- KPIs -----------------------------------------------------------------------------------


@dataclass
class KpiCheck:
    source: str
    """What the stored values were compared with."""
    codes: list[str]
    compared: int = 0
    problems: list[str] = field(default_factory=list)
    documented: int = 0
    """Values the stream does not keep by design (see ``_snapshots_never_taken``)."""


def reference_envelopes(
    ledger: Ledger, catalogues: Catalogues, overdue: Mapping[Key, Message]
) -> dict[str, list[envelope_pb2.EventEnvelope]]:
    """The accepted items of every domain the processor stores, as it receives them."""
    envelopes: dict[str, list[envelope_pb2.EventEnvelope]] = {}
    for name in FACT_DOMAINS:
        chosen = envelopes[name] = []
        for item in ledger.items(name):
            if not item.accepted:
                continue
            message = item.message
            if isinstance(message, complaint_pb2.ComplaintEvent):
                message = published_complaint(message, catalogues)
            elif isinstance(message, survey_pb2.SurveyResponse):
                public = survey_pb2.SurveyResponse()
                public.CopyFrom(message)
                public.ClearField("comment")  # free text never leaves the book
                message = public
            chosen.append(enveloped(message))
    envelopes.setdefault(COMPLAINT, []).extend(enveloped(e) for e in overdue.values())
    return envelopes


def kpis_against_reference(
    client: Client,
    database: str,
    catalogues: Catalogues,
    envelopes: Mapping[str, Iterable[envelope_pb2.EventEnvelope]],
) -> KpiCheck:
    codes = stream_kpi_codes(catalogues)
    expected = expected_kpis(catalogues, envelopes)
    actual = read_kpis(client, database, codes)
    check = KpiCheck("pcm_testkit.kpis reference over the ledger's accepted items", sorted(codes))
    check.compared = len(expected.keys() | actual.keys())
    check.problems = differences(expected, actual)
    return check


def kpis_against_recompute(
    client: Client,
    settings: Settings,
    env: Mapping[str, str],
    catalogues: Catalogues,
    log: Path,
) -> KpiCheck:
    """The KPIs the reference does not cover, against ``pcm-processor recompute`` run on a
    scratch copy of the stored facts."""
    database = settings.clickhouse_database
    scratch = f"{database}_recomputed"
    default = Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        database="default",
        send_receive_timeout=300,
    )
    try:
        default.execute(f"DROP DATABASE IF EXISTS {scratch}")
        migrate(default, scratch)
        first: list[dt.datetime] = []
        for name in FACT_DOMAINS:
            table = fact_domain(name).table
            default.execute(f"INSERT INTO {scratch}.{table} SELECT * FROM {database}.{table}")
            ((earliest,),) = default.execute(
                f"SELECT min(day_start) FROM {database}.{table} HAVING count() > 0"
            ) or [(None,)]
            if earliest is not None:
                first.append(earliest)
    finally:
        default.disconnect()
    since = min(first).replace(tzinfo=dt.UTC).astimezone(LIMA).date() - dt.timedelta(days=1)
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "pcm_processor.cli", "recompute", "--from", since.isoformat()],
            env={
                **os.environ,
                **env,
                "PCM_CLICKHOUSE_DATABASE": scratch,
                "PCM_LOG_LEVEL": "WARNING",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=900,
        )
    covered = stream_kpi_codes(catalogues)
    live = read_kpis(client, database)
    recomputed = read_kpis(client, scratch)
    codes = {key[1] for key in live.keys() | recomputed.keys()} - covered

    def only(values: Mapping[Any, Measured]) -> dict[Any, Measured]:
        return {key: value for key, value in values.items() if key[1] in codes}

    check = KpiCheck(
        f"pcm-processor recompute --from {since} over a copy of the stored facts", sorted(codes)
    )
    expected, actual = only(recomputed), only(live)
    check.compared = len(expected.keys() | actual.keys())
    designed = _snapshots_as_designed(expected, actual, dt.datetime.now(LIMA).date())
    check.documented = len(designed)
    check.problems = differences(
        {k: v for k, v in expected.items() if k not in designed},
        {k: v for k, v in actual.items() if k not in designed},
    )
    client.execute(f"DROP DATABASE IF EXISTS {scratch}")
    return check


def _snapshots_as_designed(
    recomputed: Mapping[Any, Measured], live: Mapping[Any, Measured], today: dt.date
) -> set[Any]:
    """Snapshots at period close where the stream differs from a recomputation by design: an
    entity with nothing open at a close has no row until it has facts (the recompute writes an
    empty one), and a close is taken once, when it is due, with the facts stored by then: a late
    fact retakes only the ``RECENT_CLOSES`` most recent closed periods (``terms.py``: "older ones
    stay"). Any other difference counts."""
    clock = BucketClock("America/Lima")
    oldest_retaken = {
        grain: min(recent_closed(clock, grain, dt.date(1970, 1, 1), today), default=0)
        for grain in RECENT_CLOSES
    }
    found = set()
    for key, measured in recomputed.items():
        if key in live and not differences({key: measured}, {key: live[key]}):
            continue
        value, numerator, _ = measured
        empty = key not in live and numerator == 0 and value in (None, 0.0)
        if empty or key[3] < oldest_retaken.get(key[2], 0):
            found.add(key)
    return found


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class AssessmentCheck:
    periods: list[str] = field(default_factory=list)
    compared: int = 0
    problems: list[str] = field(default_factory=list)


def assessments_against_fresh(
    client: Client,
    database: str,
    catalogues: Catalogues,
    reports: Callable[[str], Iterable[indicator_pb2.IndicatorValue]],
    today: dt.date,
) -> AssessmentCheck:
    """Each stored period's results against a fresh assessment of the final evidence, done as
    the worker does (``pcm_benchmark.job.assess_period``, without writing)."""
    check = AssessmentCheck()
    current = today.replace(day=1)
    reported_by = {
        e.entity_id: reported(reports(e.entity_id), catalogues, "America/Lima")
        for e in catalogues.entities
    }
    rows = client.execute(
        f"SELECT DISTINCT toString(grain), period_start FROM {database}.benchmark_results "
        "ORDER BY 1, 2"
    )
    for grain, start in rows:
        check.periods.append(f"{grain} {start}")
        kpis = period_kpis(client, catalogues, database, grain, start, current)
        fresh = benchmark(catalogues, evidence_of(kpis, reported_by), period_end(start, grain))
        want = {
            (r.entity_id, r.standard): (
                r.level,
                round(r.score, 6),
                r.in_peer_group.rank,
                r.national.rank,
            )
            for r in fresh
        }
        got = {
            (r.entity_id, r.standard): (r.level, round(r.score, 6), r.peer_rank, r.national_rank)
            for r in stored_results(client, database, grain, start)
        }
        check.compared += len(want.keys() | got.keys())
        for key in sorted(want.keys() | got.keys()):
            if want.get(key) != got.get(key):
                check.problems.append(
                    f"{grain} {start} {key[0]} {key[1]}: stored {got.get(key)}, "
                    f"fresh {want.get(key)} (level, score, peer rank, national rank)"
                )
    return check
