"""The Grafana dashboards (deploy/grafana/dashboards/) and their provisioning for Compose.

Each dashboard is a current Grafana JSON model (fixed uid, no id, schemaVersion >= 39); every
panel reads the provisioned Prometheus data source by its uid and has a title and queries;
every series a query names is one the services declare (services/*/metrics.py, the push kit's
and the outbox worker's sets), with the labels it carries; every template variable a query uses
exists, and a multi-value one is only used in a regex matcher. The Helm chart's copies are the
same bytes. That Prometheus parses every query is tests/integration/test_grafana_queries.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana_dashboards import (
    DASHBOARDS,
    GRAFANA_BUILTINS,
    PROVISIONING,
    REPO,
    Series,
    dashboard_files,
    data_panels,
    declared_series,
    is_multi,
    label_values_as_promql,
    load,
    panels,
    parse,
    process_series,
    queries,
    referenced_variables,
    substitute,
    target_labels,
    variable_query,
    variables,
)

CHART_DASHBOARDS = REPO / "deploy" / "helm" / "pcm-monitoring" / "dashboards"
COMPOSE_FILE = REPO / "docker-compose.yml"
MIN_SCHEMA_VERSION = 39
DASHBOARD_NAMES = ("national-quality.json", "platform-health.json")

# Series the benchmark worker's leader is being given (issue 14, per-entity business figures),
# by the names and labels agreed for them. Until services/ declares one, the dashboards may use
# it with these labels; once declared, its declaration is what counts (and must carry them).
PENDING_SERIES = {
    "pcm_entity_service_wait_p90_seconds": {"entity", "service"},
    "pcm_entity_service_wait_target_seconds": {"entity", "service"},
    "pcm_entity_satisfaction_pct": {"entity", "window"},
    "pcm_entity_satisfaction_answers": {"entity", "window"},
    "pcm_entity_last_activity_timestamp_seconds": {"entity"},
    "pcm_benchmark_plans_off_track": {"entity"},
    "pcm_benchmark_plans_overdue": {"entity"},
}
ANY_LABEL = frozenset({"*"})


@pytest.fixture(scope="module")
def provisioned_uid() -> str:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    prometheus = [ds for ds in config["datasources"] if ds["type"] == "prometheus"]
    assert len(prometheus) == 1, prometheus
    uid = prometheus[0]["uid"]
    assert isinstance(uid, str) and uid
    return uid


@pytest.fixture(scope="module")
def known_series() -> dict[str, Series]:
    """Every series a dashboard may name: the services' own, the process collector's, the
    series Prometheus makes itself (up, ALERTS) and the pending ones not declared yet."""
    known = {**process_series(), **declared_series()}
    known["up"] = Series("up", target_labels(), "Prometheus (scrape status)")
    known["ALERTS"] = Series("ALERTS", ANY_LABEL, "Prometheus (alerting rules)")
    for name, labels in PENDING_SERIES.items():
        known.setdefault(name, Series(name, frozenset(labels), "pending (issue 14)"))
    return known


@pytest.fixture(scope="module", params=[p.name for p in dashboard_files()])
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(DASHBOARDS / request.param)


def test_the_dashboards_are_there() -> None:
    assert tuple(p.name for p in dashboard_files()) == DASHBOARD_NAMES


# --- the JSON model ----------------------------------------------------------------------------


def test_dashboard_is_a_current_json_model(dashboard: dict[str, Any]) -> None:
    assert "id" not in dashboard or dashboard["id"] is None  # Grafana assigns it
    assert isinstance(dashboard["uid"], str) and len(dashboard["uid"]) <= 40
    assert dashboard["uid"].startswith("pcm-")
    assert dashboard["title"].strip()
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert "pcm" in dashboard["tags"]
    assert dashboard["time"]["from"] and dashboard["time"]["to"]
    assert isinstance(dashboard["templating"]["list"], list)
    assert dashboard["editable"] is False  # provisioned: edited as JSON in the repository
    assert "__inputs" not in dashboard  # not an export for import: no ${DS_...} placeholders


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_datasource_is_named_by_uid_not_by_an_import_input(path: Path) -> None:
    assert "${DS_" not in path.read_text(encoding="utf-8")


def test_uids_and_titles_are_unique() -> None:
    boards = [load(p) for p in dashboard_files()]
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


def test_panels_have_unique_ids_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]


def test_every_panel_has_a_title_the_provisioned_datasource_and_queries(
    dashboard: dict[str, Any], provisioned_uid: str
) -> None:
    datasource = {"type": "prometheus", "uid": provisioned_uid}
    for panel in panels(dashboard):
        assert isinstance(panel.get("title"), str) and panel["title"].strip(), panel
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel.get("datasource") == datasource, panel["title"]
        targets = panel.get("targets")
        assert targets, f"{panel['title']}: no queries"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target.get("datasource") == datasource, (panel["title"], target["refId"])
            assert target.get("expr", "").strip(), (panel["title"], target["refId"])
        assert panel.get("description", "").strip(), f"{panel['title']}: no description"


def test_query_variables_use_the_provisioned_datasource(
    dashboard: dict[str, Any], provisioned_uid: str
) -> None:
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": provisioned_uid}
            assert variable["definition"] == variable_query(variable)
        if variable["type"] == "custom":
            values = [o["value"] for o in variable["options"]]
            assert values == variable["query"].split(",")
            assert variable["current"]["value"] in values


# --- the queries -------------------------------------------------------------------------------


def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard)) | set(GRAFANA_BUILTINS)
    texts = [p["title"] for p in panels(dashboard)]
    texts += [t["expr"] for p in data_panels(dashboard) for t in p["targets"]]
    texts += [variable_query(v) for v in variables(dashboard).values() if v["type"] == "query"]
    for text in texts:
        assert referenced_variables(text) <= defined, text


def test_multi_value_variables_are_only_used_in_regex_matchers(dashboard: dict[str, Any]) -> None:
    # Grafana writes a multi-value selection as (a|b): only a regex matcher reads it right.
    multi = {name for name, v in variables(dashboard).items() if is_multi(v)}
    texts = [t["expr"] for p in data_panels(dashboard) for t in p["targets"]]
    texts += [variable_query(v) for v in variables(dashboard).values() if v["type"] == "query"]
    for text in texts:
        parsed = parse(text)
        in_regex = [
            referenced_variables(value) & multi
            for _, op, value in parsed.matcher_values
            if op in {"=~", "!~"}
        ]
        in_other = [
            referenced_variables(value) & multi
            for _, op, value in parsed.matcher_values
            if op not in {"=~", "!~"}
        ]
        assert not any(in_other), text
        used = referenced_variables(text) & multi
        assert used <= set().union(*in_regex), f"{text}: {used} outside a regex matcher"


def check_query(expr: str, known: dict[str, Series], scrape_labels: frozenset[str]) -> list[str]:
    """What is wrong with the series and labels a query names (empty: nothing)."""
    parsed = parse(expr)
    problems = list(parsed.problems)
    if not parsed.selectors:
        problems.append("the query names no series")
    available: set[str] = set(scrape_labels) | parsed.created_labels
    any_label = False
    for name, matchers in parsed.selectors:
        series = known.get(name)
        if series is None:
            problems.append(f"{name}: no such series is declared in services/")
            continue
        if series.labels == ANY_LABEL:
            any_label = True
            continue
        labels = series.labels | scrape_labels
        available |= labels
        problems += [f"{name} has no label {label!r}" for label in matchers if label not in labels]
    if not any_label:
        problems += [
            f"grouping by {label!r}, which no series of the query carries"
            for label in sorted(parsed.grouping_labels - available)
        ]
    return problems


def test_every_series_a_query_names_is_declared_with_its_labels(
    dashboard: dict[str, Any], known_series: dict[str, Series]
) -> None:
    scrape_labels = target_labels()
    problems = {
        f"{panel['title']} / {target['refId']}": found
        for panel in data_panels(dashboard)
        for target in panel["targets"]
        if (found := check_query(target["expr"], known_series, scrape_labels))
    }
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            promql = label_values_as_promql(variable_query(variable))
            if found := check_query(promql, known_series, scrape_labels):
                problems[f"variable {name}"] = found
    assert problems == {}


def test_pending_series_once_declared_carry_the_agreed_labels() -> None:
    declared = declared_series()
    for name, labels in PENDING_SERIES.items():
        if name in declared:
            assert declared[name].labels == labels, (name, declared[name])


def test_the_check_finds_real_series_and_refuses_made_up_ones(
    known_series: dict[str, Series],
) -> None:
    # The shared sets under every prefix, counters' _total, histograms' _bucket with `le`.
    assert {
        "pcm_intake_events_accepted_total",
        "pcm_surveys_responses_outbox_oldest_seconds",
        "pcm_complaints_leader",
        "pcm_benchmark_request_seconds_bucket",
        "pcm_processor_consumer_lag",
        "process_resident_memory_bytes",
    } <= set(known_series)
    labels = target_labels()
    good = (
        "histogram_quantile(0.99, sum by (le, method) (rate(pcm_benchmark_request_seconds_bucket"
        '{method=~"Get.*"}[5m]))) > on (job) group_left max by (job) (up{service="benchmark"})'
    )
    assert check_query(good, known_series, labels) == []
    assert check_query("sum(rate(pcm_intake_events_acepted_total[5m]))", known_series, labels)
    assert check_query('pcm_complaints_open{verdict="x"}', known_series, labels)
    assert check_query("sum by (entity) (pcm_processor_consumer_lag)", known_series, labels)
    assert check_query('{__name__=~"pcm_.*"}', known_series, labels)


@pytest.mark.parametrize(
    ("expr", "selectors", "grouping"),
    [
        ("up", ["up"], set()),
        (
            'sum by (code) (rate(pcm_x_total{a="b", c=~"$v"}[$__rate_interval])) > 0',
            ["pcm_x_total"],
            {"code"},
        ),
        (
            "topk($top, max by (entity) (m1) > 0) / on (entity) group_left (x) m2 offset 1d",
            ["m1", "m2"],
            {"entity", "x"},
        ),
        ('count(ALERTS{alertstate="firing"}) or vector(0)', ["ALERTS"], set()),
        ("time() - max(m_timestamp_seconds) > 1e3", ["m_timestamp_seconds"], set()),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', ["m"], set()),
    ],
)
def test_selectors_are_read_from_promql(
    expr: str, selectors: list[str], grouping: set[str]
) -> None:
    parsed = parse(expr)
    assert [name for name, _ in parsed.selectors] == selectors
    assert parsed.grouping_labels == grouping
    assert parsed.problems == []


def test_substitution_gives_prometheus_plain_promql() -> None:
    dashboard = load(DASHBOARDS / "national-quality.json")
    for query in queries(DASHBOARDS / "national-quality.json"):
        assert "$" not in substitute(query.expr, dashboard), query


# --- provisioning, Compose and the Helm chart's copies -----------------------------------------


def test_dashboards_provider_reads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "pcm.yml").read_text())
    (pcm,) = provider["providers"]
    assert pcm["type"] == "file"
    assert pcm["allowUiUpdates"] is False and pcm["disableDeletion"] is True
    grafana = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1:] for v in grafana["volumes"]}
    assert mounts["./deploy/grafana/dashboards"] == [pcm["options"]["path"], "ro"]
    assert mounts["./deploy/grafana/provisioning"] == ["/etc/grafana/provisioning", "ro"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == pcm["options"]["path"]
    assert (DASHBOARDS / Path(home).name).is_file()


def test_datasources_point_at_the_compose_services() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    by_type = {ds["type"]: ds for ds in config["datasources"]}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["isDefault"] is True
    assert by_type["alertmanager"]["url"] == "http://alertmanager:9093"
    for ds in config["datasources"]:
        host = ds["url"].split("//")[1].split(":")[0]
        assert host in services, ds["url"]
    # $__rate_interval is derived from the scrape interval Grafana is told.
    prometheus = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "prometheus.compose.yml").read_text()
    )
    scrape_interval = prometheus["global"]["scrape_interval"]
    assert by_type["prometheus"]["jsonData"]["timeInterval"] == scrape_interval


def test_the_chart_ships_the_same_dashboards_byte_for_byte() -> None:
    # The chart reads its copies with .Files.Get (files outside a chart cannot be read): they
    # must never drift from deploy/grafana/dashboards/.
    chart = sorted(p.name for p in CHART_DASHBOARDS.glob("*.json"))
    assert chart == [p.name for p in dashboard_files()]
    for path in dashboard_files():
        assert (CHART_DASHBOARDS / path.name).read_bytes() == path.read_bytes(), (
            f"{path.name} differs: cp deploy/grafana/dashboards/*.json "
            "deploy/helm/pcm-monitoring/dashboards/"
        )
