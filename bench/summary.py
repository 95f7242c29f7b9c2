"""The one table of `make bench`: every figure of every benchmark with its unit, target, baseline,
value now, ratio to the baseline and pass/fail; written as JSON (summary.json) and as a chart
(summary.png) next to the benchmarks' outputs.

Built only from text: each benchmark's output (results/<benchmark>.txt), the output it replaced
(results/previous/<benchmark>.txt, the "previous" baseline) or a pinned baseline (JSON, e.g.
bench/baseline.json), and results/runs.json (each benchmark's exit status, written by run.py).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import BENCHMARKS, FIGURES, Figure, parse
from targets import BY_FIGURE, Target

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PINNED = BENCH / "baseline.json"
PREVIOUS = "previous"  # folder under the results holding the outputs a run replaced
RUNS = "runs.json"
SUMMARY_JSON = "summary.json"
SUMMARY_PNG = "summary.png"
NONE = "—"
PASS, FAIL, MISSING, NO_TARGET = "pass", "fail", "missing", "no target"
PRETTY = {">=": "≥", "<=": "≤"}


@dataclass(frozen=True)
class Baseline:
    kind: str  # "previous", "pinned" or "file"
    source: str  # where its figures were read
    figures: Mapping[str, float]
    note: str = ""

    def describe(self) -> str:
        what = {"previous": "previous run", "pinned": "pinned", "file": "file"}[self.kind]
        found = f"{len(self.figures)} figures" if self.figures else "no figures yet"
        note = f"; {self.note}" if self.note else ""
        return f"{what} ({self.source}: {found}{note})"


@dataclass(frozen=True)
class Row:
    figure: Figure
    target: Target | None
    baseline: float | None
    now: float | None

    @property
    def ratio(self) -> float | None:
        """Now over the baseline, as measured (not turned by the direction)."""
        if self.now is None or not self.baseline:
            return None
        return self.now / self.baseline

    @property
    def better(self) -> bool | None:
        """Whether now is better than the baseline (None: no baseline, no value or equal)."""
        if self.now is None or self.baseline is None or self.now == self.baseline:
            return None
        return (self.now > self.baseline) == self.figure.higher_is_better

    @property
    def change(self) -> float | None:
        """Now against the baseline turned so that above 1 is better."""
        if self.now is None or self.baseline is None:
            return None
        return _normalised(self.now, self.baseline, self.figure.higher_is_better)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.now is None:
            return None
        return self.target.met(self.now)

    @property
    def score(self) -> float | None:
        """Now against the target, turned so that 1 or more means the target is met (for a
        strict comparison, exactly 1 is not)."""
        if self.target is None or self.now is None:
            return None
        return _normalised(self.now, self.target.value, self.target.higher_is_better)

    @property
    def status(self) -> str:
        if self.now is None:
            return MISSING
        if self.met is None:
            return NO_TARGET
        return PASS if self.met else FAIL


def _normalised(value: float, reference: float, higher_is_better: bool) -> float:
    numerator, denominator = (value, reference) if higher_is_better else (reference, value)
    if denominator == 0:
        return math.inf if numerator > 0 else 1.0
    return numerator / denominator


# --- reading --------------------------------------------------------------------------------


def read_figures(folder: Path) -> dict[str, float]:
    """Every figure found in the benchmarks' outputs in a folder (<benchmark>.txt)."""
    found: dict[str, float] = {}
    for bench in BENCHMARKS:
        path = folder / f"{bench}.txt"
        if path.exists():
            found |= parse(bench, path.read_text(errors="replace"))
    return found


def read_runs(results: Path) -> dict[str, dict[str, Any]]:
    path = results / RUNS
    if not path.exists():
        return {}
    runs: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return runs


def benchmark_states(results: Path) -> dict[str, dict[str, Any]]:
    """Per benchmark: whether its output is there and how its last run ended."""
    runs = read_runs(results)
    states: dict[str, dict[str, Any]] = {}
    for bench in BENCHMARKS:
        path = results / f"{bench}.txt"
        run = runs.get(bench, {})
        code = run.get("returncode")
        if not path.exists():
            state = "not run"
        elif code not in (None, 0):
            state = f"failed (exit {code})"
        else:
            state = "ran"
        states[bench] = {
            "state": state,
            "returncode": code,
            "result": path.name if path.exists() else None,
            "seconds": run.get("seconds"),
            "finished": run.get("finished")
            or (_stamp(path.stat().st_mtime) if path.exists() else None),
        }
    return states


def previous_baseline(results: Path) -> Baseline:
    folder = results / PREVIOUS
    return Baseline(
        "previous",
        shown_path(folder),
        read_figures(folder),
        "the outputs the last run replaced" if folder.exists() else "none kept yet",
    )


def file_baseline(path: Path, kind: str = "file") -> Baseline:
    """A baseline from JSON: {"note": ..., "figures": {figure: value}}."""
    data = json.loads(path.read_text())
    figures = {str(name): float(value) for name, value in data["figures"].items()}
    return Baseline(kind, shown_path(path), figures, str(data.get("note", "")))


def choose_baseline(choice: str, results: Path, pinned: Path | None = None) -> Baseline:
    """The baseline: "previous" (default), "pinned" (bench/baseline.json) or a file's path."""
    if choice == "previous":
        return previous_baseline(results)
    if choice == "pinned":
        return file_baseline(pinned or PINNED, "pinned")
    return file_baseline(Path(choice))


def pinned_document(now: Mapping[str, float], note: str) -> dict[str, Any]:
    """What `run.py --pin` writes to bench/baseline.json: the figures now, in declared order."""
    return {
        "note": note,
        "recorded": dt.date.today().isoformat(),
        "figures": {f.name: now[f.name] for f in FIGURES if f.name in now},
    }


# --- the table ------------------------------------------------------------------------------


def build_rows(now: Mapping[str, float], baseline: Mapping[str, float]) -> list[Row]:
    return [
        Row(figure, BY_FIGURE.get(figure.name), baseline.get(figure.name), now.get(figure.name))
        for figure in FIGURES
    ]


def number(value: float | None) -> str:
    if value is None:
        return NONE
    if math.isinf(value) or math.isnan(value):
        return str(value)
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def target_text(target: Target | None, pretty: bool = False) -> str:
    """The comparison and value, e.g. ">= 50,000" (pretty: "≥ 50,000")."""
    if target is None:
        return NONE
    value = target.value
    shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"
    comparison = PRETTY.get(target.comparison, target.comparison) if pretty else target.comparison
    return f"{comparison} {shown}"


def ratio_text(row: Row) -> str:
    if row.ratio is None:
        return NONE
    mark = {True: " +", False: " -", None: "  "}[row.better]
    return f"{row.ratio:.2f}x{mark}"


def counts(rows: Sequence[Row]) -> dict[str, int]:
    found = dict.fromkeys((PASS, FAIL, MISSING, NO_TARGET), 0)
    for row in rows:
        found[row.status] += 1
    return found


def table(rows: Sequence[Row], baseline: Baseline, states: Mapping[str, Mapping[str, Any]]) -> str:
    shown = {PASS: "pass", FAIL: "FAIL", MISSING: "missing", NO_TARGET: NONE}
    width = max(len(row.figure.name) for row in rows)
    lines = [
        "=== make bench: every figure against its target and baseline ===",
        f"baseline: {baseline.describe()}",
        f"  {'figure':{width}}  {'unit':13} {'target':>10} {'issue':>5} {'baseline':>11} "
        f"{'now':>11} {'ratio':>9}  result",
    ]
    for row in rows:
        issue = NONE if row.target is None or row.target.issue is None else f"#{row.target.issue}"
        lines.append(
            f"  {row.figure.name:{width}}  {row.figure.unit:13} {target_text(row.target):>10} "
            f"{issue:>5} {number(row.baseline):>11} {number(row.now):>11} {ratio_text(row):>9}  "
            f"{shown[row.status]}"
        )
    found = counts(rows)
    targeted = sum(1 for row in rows if row.target is not None)
    lines.append(
        f"targets: {found[PASS]} pass, {found[FAIL]} fail, "
        f"{sum(1 for r in rows if r.target and r.now is None)} missing, of {targeted}; "
        f"{found[MISSING]} of {len(rows)} figures missing"
    )
    unhappy = [f"{bench} {state['state']}" for bench, state in states.items()]
    unhappy = [line for line in unhappy if not line.endswith(" ran")]
    if unhappy:
        lines.append("benchmarks: " + ", ".join(unhappy))
    lines.append("ratio: now / baseline (+ better, - worse); a target is judged on now only")
    return "\n".join(lines)


def document(
    rows: Sequence[Row],
    baseline: Baseline,
    states: Mapping[str, Mapping[str, Any]],
    generated: str | None = None,
) -> dict[str, Any]:
    """summary.json: the baseline used, each benchmark's state, the counts and every figure."""

    def entry(row: Row) -> dict[str, Any]:
        target = row.target
        return {
            "figure": row.figure.name,
            "benchmark": row.figure.bench,
            "unit": row.figure.unit,
            "higher_is_better": row.figure.higher_is_better,
            "target": None
            if target is None
            else {
                "comparison": target.comparison,
                "value": target.value,
                "issue": target.issue,
                "source": target.source,
            },
            "baseline": row.baseline,
            "now": row.now,
            "ratio": row.ratio,
            "better": row.better,
            "met": row.met,
            "score": _finite(row.score),
            "status": row.status,
        }

    return {
        "generated": generated or _stamp(dt.datetime.now().timestamp()),
        "baseline": {
            "kind": baseline.kind,
            "source": baseline.source,
            "note": baseline.note,
            "figures": len(baseline.figures),
        },
        "benchmarks": {bench: dict(state) for bench, state in states.items()},
        "counts": counts(rows),
        "figures": [entry(row) for row in rows],
    }


# --- the chart ------------------------------------------------------------------------------

COLOURS = {PASS: "#2e7d32", FAIL: "#c62828", MISSING: "#9e9e9e"}
BETTER, WORSE = "#1565c0", "#ef6c00"
CLAMP = (1e-3, 1e3)


def _clamped(value: float) -> float:
    return min(max(value, CLAMP[0]), CLAMP[1])


def chart(rows: Sequence[Row], baseline: Baseline, path: Path, title: str) -> None:
    """One horizontal bar per figure with a target: now against the target, turned so that 1 or
    more means met (log scale, from 1), coloured pass or fail and labelled with the value; beside
    it, now against the baseline, turned so that more than 1 is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    targeted = [row for row in rows if row.target is not None]
    height = 1.6 + 0.34 * max(len(targeted), 1)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(16, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    ys = list(range(len(targeted)))[::-1]
    times = FuncFormatter(lambda x, _: f"{x:g}x")

    scores = [_clamped(r.score) for r in targeted if r.score is not None] or [1.0]
    low, high = min([*scores, 0.5]), max([*scores, 2.0])
    left.set_xscale("log")
    left.set_xlim(low / 2, high * 40)  # room for the labels right of the bars
    left.axvline(1, color="black", linewidth=1)
    for y, row in zip(ys, targeted, strict=True):
        unit = "x" if row.figure.unit == "x" else f" {row.figure.unit}"
        label = f"{number(row.now)}{unit}  (target {target_text(row.target, True)})"
        if row.score is None:
            left.text(1.1, y, "missing", va="center", color=COLOURS[MISSING], fontsize=8)
            continue
        score = _clamped(row.score)
        left.barh(y, score - 1, left=1, height=0.7, color=COLOURS[row.status])
        left.text(max(score, 1) * 1.1, y, label, va="center", fontsize=8)
    left.xaxis.set_major_formatter(times)
    left.set_xlabel("now / target, turned so that ≥ 1x meets the target (log scale)")
    left.set_title("against the target")

    changes = [_clamped(r.change) for r in targeted if r.change is not None] or [1.0]
    right.set_xscale("log")
    right.set_xlim(min([*changes, 0.5]) / 2, max([*changes, 2.0]) * 8)
    right.axvline(1, color="black", linewidth=1)
    for y, row in zip(ys, targeted, strict=True):
        if row.change is None:
            word = "missing" if row.now is None else "no baseline"
            right.text(1.1, y, word, va="center", color=COLOURS[MISSING], fontsize=8)
            continue
        change = _clamped(row.change)
        right.barh(y, change - 1, left=1, height=0.7, color=BETTER if change >= 1 else WORSE)
        word = "better" if change > 1 else ("worse" if change < 1 else "same")
        right.text(max(change, 1) * 1.1, y, f"{row.change:.2f}x {word}", va="center", fontsize=8)
    right.xaxis.set_major_formatter(times)
    right.set_xlabel("now against the baseline, turned so that > 1x is better (log scale)")
    right.set_title(f"against the baseline: {baseline.kind}")

    left.set_yticks(ys)
    left.set_yticklabels(
        [
            f"{row.figure.name}"
            + ("" if row.target is None or row.target.issue is None else f"  #{row.target.issue}")
            for row in targeted
        ],
        fontsize=8,
    )
    left.set_ylim(-0.8, len(targeted) - 0.2)
    for axis in (left, right):
        axis.grid(axis="x", which="major", alpha=0.3)
    untargeted = len(rows) - len(targeted)
    figure.suptitle(title, fontsize=11)
    figure.text(
        0.01,
        0.005,
        f"{untargeted} more figures have no target: see the printed table and {SUMMARY_JSON}.",
        fontsize=8,
        color="#555555",
    )
    figure.legend(
        handles=[
            *(Patch(color=COLOURS[s], label=f"target: {s}") for s in (PASS, FAIL, MISSING)),
            Patch(color=BETTER, label="better than the baseline"),
            Patch(color=WORSE, label="worse than the baseline"),
        ],
        loc="lower right",
        bbox_to_anchor=(0.985, 0.0),
        ncol=5,
        fontsize=8,
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- all of it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    baseline: Baseline
    states: dict[str, dict[str, Any]]
    text: str
    json_path: Path
    png_path: Path

    @property
    def missing(self) -> list[str]:
        return [row.figure.name for row in self.rows if row.now is None]

    @property
    def failed_benchmarks(self) -> list[str]:
        return [b for b, s in self.states.items() if str(s["state"]).startswith("failed")]


def write_report(results: Path, baseline: Baseline, draw: bool = True) -> Report:
    """Read the outputs in `results`, write summary.json and (draw) summary.png there, return
    the table."""
    states = benchmark_states(results)
    rows = build_rows(read_figures(results), baseline.figures)
    data = document(rows, baseline, states)
    json_path, png_path = results / SUMMARY_JSON, results / SUMMARY_PNG
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    found = data["counts"]
    targeted = sum(1 for row in rows if row.target is not None)
    when = str(data["generated"]).replace("T", " ")
    title = (
        f"make bench, {when}: {found[PASS]} of {targeted} targets met, "
        f"{found[FAIL]} missed, {sum(1 for r in rows if r.target and r.now is None)} missing "
        f"(baseline: {baseline.kind})"
    )
    if draw:
        chart(rows, baseline, png_path, title)
    text = table(rows, baseline, states)
    return Report(rows, baseline, states, text, json_path, png_path)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) or math.isnan(value) else value


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(BENCH.parent))
    except ValueError:
        return str(path)
