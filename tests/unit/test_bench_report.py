"""The one table of `make bench` (bench/run.py, bench/summary.py, bench/figures.py,
bench/targets.py) from crafted benchmark outputs: parsing, ratio to the baseline, pass/fail in
both directions, missing figures, the JSON, the PNG, and a run with a failing benchmark."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> ModuleType:
    # bench/ is a folder of scripts, not a package: its modules import each other by name.
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


figures = _bench_module("figures")
targets = _bench_module("targets")
summary = _bench_module("summary")
run = _bench_module("run")

# Lines as the benchmarks print them (taken from real outputs; log lines around them ignored).
INTAKE = """\
2026-12-03 02:42:25 [info     ] created topics                 topics=['bench-1.pcm.attention.v1']
intake benchmark (real gRPC server process -> real Kafka, acks=all; event ids claimed in the PostgreSQL ledger)
  batches of 500, 4 client threads, 10 s
  batched     :     28,873 events/s   p50   65.3 ms   p99  149.3 ms per batch
  one per call:        592 events/s   p50    6.5 ms   p99   13.3 ms per call
  batched, memory-only ledger:     31,149 events/s   p99  170.9 ms per batch   (the PostgreSQL ledger costs 7%)
  ratio batched / one-per-call: 48.8x
  target >= 50,000 events/s: NOT met
"""  # noqa: E501


def outbox(title: str, unit: str, rate: str, p95: str) -> str:
    return f"""\
{title} benchmark (real gRPC service process -> PostgreSQL transaction with outbox; worker ...)
  batches of 500 events, 4 client threads (one entity each)
  {unit:12}: {rate:>10} {unit}/s   p50  229.7 ms   p99  460.5 ms per batch
  outbox -> Kafka: p50    73.0 ms   p95 {p95:>7} ms   (126,000 of 126,000 committed events read back)
  target >= 5,000 {unit}/s: met
"""  # noqa: E501


COMPLAINTS = outbox("complaints", "transitions", "8,313", "294.7")
INDICATORS = outbox("indicators", "values", "2,314", "21.5")
SURVEYS = outbox("surveys", "responses", "1,699", "25.4")
PROCESSOR = """\
processor throughput      21,652 events/s into ClickHouse (200,000 events backlog; target >= 20,000)
  incl. KPIs current      12,081 events/s (until the consumer group had no lag)
  processor CPU             61.4 ms per 1,000 events
freshness at 10,000/s  p50 1.61 s  p95 3.62 s  max 4.10 s  (achieved 9,990 events/s for 20 s, 199,800 events; target p95 <= 2 s)
  from broker ack     p50 1.20 s  p95 2.90 s  (Kafka -> processor -> ClickHouse only, without the producer's own delay)
naive per-event insert       380 rows/s -> processor is 57.0x
bulk insert (driver)     180,433 rows/s -> processor is 0.12x
bulk insert (TSV)        541,300 rows/s -> processor is 0.04x
"""  # noqa: E501


def national_engine(engine: str, backlog: str, rss: str, p95_10k: str) -> str:
    tag = f"[{engine}]"
    lines = [
        f"{tag} backlog facts     {backlog:>10} events/s into ClickHouse (20,000 events; ...)",
        f"{tag} until KPIs current {'1,226':>9} events/s (until the consumer group had no lag)",
        f"{tag} processor CPU     {'40.7':>10} ms per 1,000 events (facts path; 382.0 ms ...)",
        f"{tag} peak RSS          {rss:>10} MB (whole run; target <= 500 MB: meets target)",
        f"{tag} processor metrics: mean batch 2,413 events, dead letters 0",
    ]
    for rate, p95 in (("1,000", "3.82"), ("10,000", p95_10k)):
        for grain in ("HOUR", "DAY", "MONTH"):
            lines.append(
                f"{tag} event->KPI {grain:<5} at {rate}/s  p50 2.42 s  p95 {p95} s  max 4.43 s  "
                f"n=185  (achieved 1,064 events/s; target p95 <= 2 s at 10,000/s)"
            )
    return "\n".join(lines) + "\n"


NATIONAL = (
    "history load       306,191 facts in 0.8 s = 365,149 rows/s (3 days, 300 entities; ...)\n"
    + national_engine("incremental", "16,641", "309", "15.96")
    + national_engine("recompute", "27,826", "223", "16.32")
    + textwrap.dedent("""\
    two processes          10,331 events/s into ClickHouse, one group (incremental; one process 16,641: 0.62x)
      two processes until KPIs current 755 events/s (one process 1,226: 0.62x)
    minimal consumer       36,752 events/s, CPU 19.1 ms per 1,000 events (20,000 events: ...)
    facts path [incremental]  0.45x the minimal consumer (16,641 vs 36,752 events/s; target >= 0.6x: MISSES target)
    facts path [recompute]  0.76x the minimal consumer (27,826 vs 36,752 events/s; target >= 0.6x: meets target)
    """)  # noqa: E501
)
BENCHMARK = """\
benchmark assessment per month   1.72 s (300 entities x 11 standards; assess, rank, distributions, write)
benchmark assessment per quarter 2.07 s (rolled up from 3 months)
benchmark assessment per year    2.90 s (rolled up from 12 months)
benchmark worker pass (month, quarter, year) 6.69 s: / target 60 s = 0.11
benchmark national ranking read    p50 16.2 ms, p95 69.7 ms
benchmark peer-group ranking read  p50 7.6 ms, p95 12.5 ms
benchmark entity results + evidence p50 25.6 ms, p95 80.6 ms
benchmark dashboard overview page  p50 60.3 ms, p95 103.1 ms
benchmark dashboard entity page    p50 106.4 ms, p95 152.9 ms
"""  # noqa: E501
OUTPUTS = {
    "intake_bench": INTAKE,
    "complaints_bench": COMPLAINTS,
    "indicators_bench": INDICATORS,
    "surveys_bench": SURVEYS,
    "processor_bench": PROCESSOR,
    "national_bench": NATIONAL,
    "benchmark_bench": BENCHMARK,
}


def write_outputs(folder: Path, outputs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for bench, text in outputs.items():
        (folder / f"{bench}.txt").write_text(text)


def all_figures() -> dict[str, float]:
    found: dict[str, float] = {}
    for bench, text in OUTPUTS.items():
        found |= figures.parse(bench, text)
    return found


def row(name: str, now: float | None, baseline: float | None = None) -> Any:
    """The table's row of a declared figure, with its declared target."""
    return summary.Row(figures.BY_NAME[name], targets.BY_FIGURE.get(name), baseline, now)


# --- declarations ---------------------------------------------------------------------------


def test_every_declared_figure_is_found_in_the_outputs_of_its_benchmark() -> None:
    found = all_figures()
    assert sorted(set(figures.BY_NAME) - set(found)) == []
    assert len(figures.BY_NAME) == len(figures.FIGURES)  # names are unique


def test_each_target_names_a_declared_figure_in_its_direction() -> None:
    for target in targets.TARGETS:
        figure = figures.BY_NAME[target.figure]
        assert figure.higher_is_better == target.higher_is_better, target.figure
    assert len(targets.BY_FIGURE) == len(targets.TARGETS)


def test_the_readme_targets_are_declared() -> None:
    declared = {(t.figure, t.comparison, t.value) for t in targets.TARGETS}
    assert ("intake batched", ">=", 50_000) in declared
    assert ("complaint transitions", ">=", 5_000) in declared
    assert ("processor freshness p95", "<=", 2) in declared
    assert ("national incremental until KPIs current", ">=", 20_000) in declared
    assert ("national recompute facts path / minimal", ">=", 0.6) in declared
    assert ("national incremental peak RSS", "<=", 500) in declared
    assert ("benchmark national ranking read p95", "<", 300) in declared
    assert ("dashboard entity page p95", "<", 500) in declared


def test_the_pinned_baseline_names_declared_figures_only() -> None:
    pinned = json.loads((BENCH / "baseline.json").read_text())
    assert pinned["note"]
    assert set(pinned["figures"]) <= set(figures.BY_NAME)
    assert all(isinstance(v, int | float) for v in pinned["figures"].values())


# --- parsing --------------------------------------------------------------------------------


def test_parsing_reads_thousands_separators_and_decimals() -> None:
    assert figures.parse("intake_bench", INTAKE) == {
        "intake batched": 28_873,
        "intake batched p99": 149.3,
        "intake batched, memory-only ledger": 31_149,
        "intake one per call": 592,
    }
    assert figures.parse("complaints_bench", COMPLAINTS) == {
        "complaint transitions": 8_313,
        "complaint outbox -> Kafka p95": 294.7,
    }
    processor = figures.parse("processor_bench", PROCESSOR)
    assert processor["processor freshness p95"] == 3.62
    assert processor["processor / bulk insert (TSV)"] == 0.04


def test_parsing_tells_the_engines_grains_and_rates_apart() -> None:
    national = figures.parse("national_bench", NATIONAL)
    assert national["national incremental backlog"] == 16_641
    assert national["national recompute backlog"] == 27_826
    assert national["national incremental peak RSS"] == 309
    assert national["national recompute DAY p95 @10,000/s"] == 16.32
    assert national["national recompute DAY p95 @1,000/s"] == 3.82
    assert national["national incremental MONTH p50 @10,000/s"] == 2.42
    assert national["national incremental facts path / minimal"] == 0.45
    assert national["national recompute facts path / minimal"] == 0.76
    assert national["national two processes"] == 10_331
    assert national["national two / one process"] == 0.62
    assert national["national minimal consumer"] == 36_752
    assert national["national minimal consumer CPU"] == 19.1


def test_a_figure_is_only_read_from_its_own_benchmark() -> None:
    # The outbox benchmarks print the same "outbox -> Kafka" line.
    assert figures.parse("surveys_bench", COMPLAINTS) == {"survey outbox -> Kafka p95": 294.7}
    assert figures.parse("intake_bench", "garbage\n") == {}


# --- ratio, pass and fail -------------------------------------------------------------------


def test_ratio_is_now_over_the_baseline_and_better_follows_the_direction() -> None:
    faster = row("complaint transitions", 6_000, baseline=5_000)
    assert faster.ratio == pytest.approx(1.2)
    assert faster.better is True
    assert faster.change == pytest.approx(1.2)
    slower = row("complaint outbox -> Kafka p95", 150, baseline=100)  # lower is better
    assert slower.ratio == pytest.approx(1.5)
    assert slower.better is False
    assert slower.change == pytest.approx(100 / 150)
    same = row("complaint transitions", 5_000, baseline=5_000)
    assert (same.ratio, same.better) == (1.0, None)
    assert row("complaint transitions", 5_000).ratio is None  # no baseline
    assert row("complaint transitions", 5_000, baseline=0).ratio is None


def test_pass_and_fail_when_higher_is_better() -> None:
    assert row("complaint transitions", 5_000).status == "pass"  # >= 5,000
    assert row("complaint transitions", 4_999).status == "fail"
    met = row("complaint transitions", 10_000)
    assert met.met is True
    assert met.score == pytest.approx(2.0)
    assert row("complaint transitions", 2_500).score == pytest.approx(0.5)
    # "more than one": strict
    assert row("national two / one process", 1.0).status == "fail"
    assert row("national two / one process", 1.01).status == "pass"


def test_pass_and_fail_when_lower_is_better() -> None:
    assert row("processor freshness p95", 2.0).status == "pass"  # <= 2 s
    assert row("processor freshness p95", 2.01).status == "fail"
    assert row("processor freshness p95", 4.0).score == pytest.approx(0.5)
    assert row("processor freshness p95", 1.0).score == pytest.approx(2.0)
    # "< 500 ms": strict
    assert row("dashboard entity page p95", 499.9).status == "pass"
    assert row("dashboard entity page p95", 500).status == "fail"
    assert row("dashboard entity page p95", 0).score == float("inf")


def test_a_figure_without_target_has_no_pass_or_fail() -> None:
    untargeted = row("intake one per call", 592, baseline=980)
    assert untargeted.target is None
    assert (untargeted.met, untargeted.score, untargeted.status) == (None, None, "no target")
    assert untargeted.better is False


def test_a_missing_figure_is_missing_with_or_without_target() -> None:
    for name in ("intake batched", "intake one per call"):
        missing = row(name, None, baseline=100)
        assert missing.status == "missing"
        assert (missing.met, missing.ratio, missing.score, missing.change) == (None,) * 4


# --- the report from a results folder -------------------------------------------------------


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    outputs = dict(OUTPUTS)
    del outputs["processor_bench"]  # never run
    outputs["national_bench"] = ""  # failed before printing anything
    write_outputs(folder, outputs)
    (folder / "runs.json").write_text(
        json.dumps({"national_bench": {"returncode": 1}, "intake_bench": {"returncode": 0}})
    )
    return folder


def test_report_marks_the_figures_of_failed_and_absent_benchmarks_missing(results: Path) -> None:
    report = summary.write_report(results, summary.previous_baseline(results), draw=False)
    states = {bench: state["state"] for bench, state in report.states.items()}
    assert states["processor_bench"] == "not run"
    assert states["national_bench"] == "failed (exit 1)"
    assert states["intake_bench"] == "ran"
    assert report.failed_benchmarks == ["national_bench"]
    missing = set(report.missing)
    assert "processor into ClickHouse" in missing
    assert "national incremental backlog" in missing
    assert "intake batched" not in missing
    by_name = {r.figure.name: r for r in report.rows}
    assert by_name["intake batched"].status == "fail"  # 28,873 < 50,000
    assert by_name["complaint transitions"].status == "pass"
    assert "FAIL" in report.text
    assert "national_bench failed (exit 1)" in report.text
    assert "processor_bench not run" in report.text


def test_the_table_has_one_line_per_figure_with_target_baseline_now_and_ratio(
    results: Path,
) -> None:
    baseline = summary.Baseline("file", "crafted", {"intake batched": 57_746.0})
    report = summary.write_report(results, baseline, draw=False)
    lines = report.text.splitlines()
    assert lines[1].startswith("baseline: file (crafted: 1 figures")
    (intake,) = [line for line in lines if line.startswith("  intake batched   ")]
    assert intake.split()[-5:] == ["57,746", "28,873", "0.50x", "-", "FAIL"]
    assert ">= 50,000" in intake
    (untargeted,) = [line for line in lines if line.strip().startswith("intake one per call")]
    assert untargeted.split()[-1] == "—"
    assert sum(1 for line in lines if line.startswith("  ")) == len(figures.FIGURES) + 1


def test_summary_json_shape(results: Path) -> None:
    baseline = summary.Baseline("pinned", "bench/baseline.json", {"survey responses": 1_530.0})
    summary.write_report(results, baseline, draw=False)
    data = json.loads((results / "summary.json").read_text())
    assert set(data) == {"generated", "baseline", "benchmarks", "counts", "figures"}
    assert data["baseline"] == {
        "kind": "pinned",
        "source": "bench/baseline.json",
        "note": "",
        "figures": 1,
    }
    assert list(data["benchmarks"]) == list(figures.BENCHMARKS)
    assert data["benchmarks"]["national_bench"]["returncode"] == 1
    assert [f["figure"] for f in data["figures"]] == [f.name for f in figures.FIGURES]
    assert sum(data["counts"].values()) == len(figures.FIGURES)
    entries = {f["figure"]: f for f in data["figures"]}
    assert entries["survey responses"] == {
        "figure": "survey responses",
        "benchmark": "surveys_bench",
        "unit": "responses/s",
        "higher_is_better": True,
        "target": {
            "comparison": ">=",
            "value": 1_000,
            "issue": 12,
            "source": targets.BY_FIGURE["survey responses"].source,
        },
        "baseline": 1_530.0,
        "now": 1_699.0,
        "ratio": pytest.approx(1_699 / 1_530),
        "better": True,
        "met": True,
        "score": pytest.approx(1.699),
        "status": "pass",
    }
    assert entries["intake one per call"]["target"] is None
    assert entries["intake one per call"]["status"] == "no target"
    assert entries["processor freshness p95"]["status"] == "missing"
    assert entries["processor freshness p95"]["now"] is None


def test_a_png_chart_is_written(results: Path) -> None:
    summary.write_report(results, summary.previous_baseline(results))
    png = (results / "summary.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000


def test_baselines_previous_pinned_and_from_a_file(results: Path, tmp_path: Path) -> None:
    previous = summary.choose_baseline("previous", results)
    assert (previous.kind, dict(previous.figures)) == ("previous", {})
    write_outputs(results / "previous", {"surveys_bench": SURVEYS})
    previous = summary.choose_baseline("previous", results)
    assert previous.figures["survey responses"] == 1_699
    pinned = summary.choose_baseline("pinned", results)
    assert pinned.kind == "pinned"
    assert pinned.source == "bench/baseline.json"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"figures": {"intake batched": 50_000}}))
    mine = summary.choose_baseline(str(path), results)
    assert (mine.kind, dict(mine.figures)) == ("file", {"intake batched": 50_000.0})


# --- run.py ---------------------------------------------------------------------------------


def test_report_only_rebuilds_everything_and_fails_on_missing_figures(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run.main(["--report-only", "--results", str(results), "--baseline", "pinned"]) == 1
    printed = capsys.readouterr()
    assert "baseline: pinned (bench/baseline.json" in printed.out
    assert "failed: national_bench" in printed.err
    assert (results / "summary.json").exists()
    assert (results / "summary.png").exists()


def test_an_unreadable_baseline_stops_before_anything_runs(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.json"
    assert run.main(["--results", str(results), "--baseline", str(absent)]) == 2
    assert "cannot read the baseline" in capsys.readouterr().err
    assert not (results / "summary.json").exists()
    assert not (results / "previous").exists()  # no benchmark was run


def test_report_only_passes_when_every_figure_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "results"
    write_outputs(folder, OUTPUTS)
    pinned = tmp_path / "baseline.json"
    monkeypatch.setattr(summary, "PINNED", pinned)
    assert run.main(["--report-only", "--results", str(folder), "--pin"]) == 0
    written = json.loads(pinned.read_text())
    assert written["figures"] == all_figures()
    assert list(written["figures"]) == [f.name for f in figures.FIGURES]


def test_a_run_keeps_going_past_a_failing_benchmark_and_keeps_the_previous_output(
    tmp_path: Path,
) -> None:
    scripts, folder = tmp_path / "scripts", tmp_path / "results"
    scripts.mkdir()
    (scripts / "surveys_bench.py").write_text(f"print({SURVEYS.replace('1,699', '1,800')!r})\n")
    (scripts / "complaints_bench.py").write_text(
        "import sys\nprint('half an output')\nsys.exit('broker down')\n"
    )
    write_outputs(folder, {"surveys_bench": SURVEYS, "complaints_bench": COMPLAINTS})
    run.run_benchmarks(folder, scripts, ["complaints_bench", "surveys_bench"])
    runs = json.loads((folder / "runs.json").read_text())
    assert runs["complaints_bench"]["returncode"] == 1
    assert runs["surveys_bench"]["returncode"] == 0
    assert (folder / "complaints_bench.err").read_text().strip() == "broker down"
    assert (folder / "previous" / "surveys_bench.txt").read_text() == SURVEYS
    assert (folder / "previous" / "complaints_bench.txt").read_text() == COMPLAINTS
    report = summary.write_report(folder, summary.previous_baseline(folder), draw=False)
    by_name = {r.figure.name: r for r in report.rows}
    assert by_name["survey responses"].now == 1_800
    assert by_name["survey responses"].baseline == 1_699
    assert by_name["complaint transitions"].now is None
    assert by_name["complaint transitions"].baseline == 8_313
    assert report.failed_benchmarks == ["complaints_bench"]
    # A second failing run keeps the last output with figures as the previous one.
    run.run_benchmarks(folder, scripts, ["complaints_bench"])
    assert (folder / "previous" / "complaints_bench.txt").read_text() == COMPLAINTS
