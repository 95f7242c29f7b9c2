"""The soak's outcome: per domain and store what was sent, accepted, stored, duplicated and
lost, the refusals by reason, the calls and their lost answers, the fault log, the KPI and
assessment comparisons, and the verdict (``failures``: empty when everything held)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pcm_soak.faults import Happened
from pcm_soak.ledger import DomainCalls
from pcm_soak.verify import Answers, AssessmentCheck, KpiCheck, StoreResult


@dataclass
class Summary:
    run: str
    config: dict[str, Any]
    answers: list[Answers] = field(default_factory=list)
    stores: list[StoreResult] = field(default_factory=list)
    calls: dict[str, DomainCalls] = field(default_factory=dict)
    faults: list[Happened] = field(default_factory=list)
    kpis: list[KpiCheck] = field(default_factory=list)
    assessments: AssessmentCheck | None = None
    overdue_flags: list[str] = field(default_factory=list)
    """Differences between the complaints flagged overdue and those predicted."""
    corrections: list[str] = field(default_factory=list)
    """Differences between the current indicator reports and the last accepted ones."""
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """Load or fault threads that failed, waits that did not settle."""

    @property
    def lost(self) -> int:
        return sum(store.lost for store in self.stores)

    @property
    def duplicated(self) -> int:
        return sum(store.duplicated for store in self.stores)

    def failures(self) -> list[str]:
        found = [f"error: {error.splitlines()[0] if error else error}" for error in self.errors]
        for store in self.stores:
            if store.failed:
                found.append(
                    f"{store.domain} / {store.store}: lost {store.lost}, duplicated "
                    f"{store.duplicated}, refused but stored {store.refused_stored}, "
                    f"stored unaccepted {store.unexpected}, content changed {store.changed}"
                )
        for answers in self.answers:
            if answers.unanswered:
                found.append(f"{answers.domain}: {answers.unanswered} items never answered")
            if answers.invalid_accepted:
                found.append(f"{answers.domain}: {answers.invalid_accepted} invalid items accepted")
            if answers.unexplained_duplicates:
                found.append(
                    f"{answers.domain}: {answers.unexplained_duplicates} first sends answered "
                    "duplicate without an earlier attempt"
                )
            if answers.races_refused or answers.races_accepted_twice:
                found.append(
                    f"{answers.domain}: of {answers.raced} items sent twice at once, "
                    f"{answers.races_refused} answered refused, {answers.races_accepted_twice} "
                    "answered accepted twice"
                )
            if answers.resends_not_duplicate:
                found.append(
                    f"{answers.domain}: {answers.resends_not_duplicate} resends not answered "
                    "duplicate"
                )
        for check in self.kpis:
            if check.problems:
                found.append(f"KPIs vs {check.source}: {len(check.problems)} differences")
        if self.assessments is not None and self.assessments.problems:
            found.append(f"assessments: {len(self.assessments.problems)} differences")
        if self.overdue_flags:
            found.append(f"overdue flags: {len(self.overdue_flags)} differences")
        if self.corrections:
            found.append(f"indicator corrections: {len(self.corrections)} differences")
        return found

    def write_json(self, path: Path) -> None:
        data = asdict(self)
        data["lost"], data["duplicated"] = self.lost, self.duplicated
        data["failures"] = self.failures()
        path.write_text(json.dumps(_plain(data), indent=1, default=str))


def _plain(value: Any) -> Any:
    """JSON-ready: mapping keys as strings, all the way down."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def render(summary: Summary) -> str:
    out: list[str] = []
    answers = {a.domain: a for a in summary.answers}
    header = [
        "domain",
        "store",
        "sent",
        "resent",
        "accepted",
        "refused",
        "stored",
        "duplicated",
        "lost",
        "wrong",
    ]
    rows = []
    for store in summary.stores:
        mine = answers.get(store.domain)
        wrong = store.refused_stored + store.unexpected + store.changed
        rows.append(
            [
                store.domain,
                store.store,
                f"{mine.sent:,}" if mine else "-",
                f"{mine.resent:,}" if mine else "-",
                f"{store.expected:,}",
                f"{sum(mine.refused.values()):,}" if mine else "-",
                f"{store.stored:,}",
                f"{store.duplicated:,}",
                f"{store.lost:,}",
                f"{wrong:,}",
            ]
        )
    out += _table(header, rows)
    out.append(
        "  (accepted: answered accepted, or duplicate to a retry of an attempt whose answer was "
        "lost; wrong: refused yet stored, stored yet never accepted, content other than the "
        "first accepted; a topic's republished copies are not duplicates)"
    )
    out.append("")
    out.append("answers and calls per domain:")
    for a in summary.answers:
        calls = summary.calls.get(a.domain, DomainCalls())
        lost = ", ".join(f"{n} {code}" for code, n in sorted(calls.lost.items())) or "none"
        reasons = ", ".join(f"{n} {code}" for code, n in sorted(a.refused.items())) or "none"
        out.append(
            f"  {a.domain}: {calls.attempts:,} call attempts ({a.attempts:,} item sends), "
            f"answers lost: {lost}; calls given up by the client and sent again: "
            f"{calls.gave_up}; items in progress sent again: {calls.in_progress}; accepted "
            f"after a lost answer: {a.after_lost_answer}; refused: {reasons}; resends answered "
            f"duplicate: {a.resent - a.resends_stored_again - a.resends_not_duplicate}/{a.resent}"
            + (f" (stored again: {a.resends_stored_again})" if a.resends_stored_again else "")
            + f"; sent twice at once: {a.raced} (refused {a.races_refused}, accepted twice "
            f"{a.races_accepted_twice})"
        )
    for store in summary.stores:
        if store.republished:
            out.append(
                f"  {store.store}: {store.republished} copies republished by relays after a "
                "kill (same ids; consumers keep the first)"
            )
        for example in store.examples:
            out.append(f"  ! {store.domain} / {store.store}: {example}")
    out.append("")
    out.append("fault log (seconds after the load started):")
    for happened in sorted(summary.faults, key=lambda h: h.at_s):
        took = f" ({happened.took_s:.1f} s)" if happened.took_s is not None else ""
        out.append(
            f"  {happened.at_s:7.1f}  {happened.action:<8} {happened.target:<18}{took} "
            f"{happened.detail}"
        )
    kills = sum(1 for h in summary.faults if h.action == "kill -9")
    out.append(f"  {kills} kill -9, {len(summary.faults) - kills} stack operations")
    out.append("")
    for check in summary.kpis:
        verdict = "equal" if not check.problems else f"{len(check.problems)} DIFFERENCES"
        out.append(
            f"KPIs vs {check.source}: {check.compared:,} values of {len(check.codes)} codes, "
            f"{verdict}"
        )
        if check.documented:
            out.append(
                f"  ({check.documented:,} snapshots at period close differ by design: empty "
                "ones the stream never writes before an entity's first fact, and closes older "
                "than the 31 days / 13 months a late fact retakes, kept as first taken)"
            )
        out += [f"  ! {problem}" for problem in check.problems[:10]]
    if summary.assessments is not None:
        assessed = summary.assessments
        verdict = "equal" if not assessed.problems else f"{len(assessed.problems)} DIFFERENCES"
        out.append(
            f"benchmark assessments vs a fresh assessment of the final KPIs: {assessed.compared:,} "
            f"results of {', '.join(assessed.periods) or 'no period'}, {verdict}"
        )
        out += [f"  ! {problem}" for problem in assessed.problems[:10]]
    for title, problems in (
        ("complaints flagged overdue vs predicted", summary.overdue_flags),
        ("current indicator reports vs the last accepted", summary.corrections),
    ):
        out.append(f"{title}: {'equal' if not problems else f'{len(problems)} DIFFERENCES'}")
        out += [f"  ! {problem}" for problem in problems[:10]]
    if summary.timings:
        out.append("")
        out.append(
            "timings: "
            + ", ".join(f"{name} {took:.0f} s" for name, took in summary.timings.items())
        )
    failures = summary.failures()
    out.append("")
    out.append("RESULT: " + ("PASS" if not failures else "FAIL"))
    out += [f"  - {failure}" for failure in failures]
    for error in summary.errors:
        out.append(error)
    return "\n".join(out)
