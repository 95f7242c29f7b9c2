"""Reading the Grafana dashboards of deploy/grafana/dashboards/ for the tests: their panels and
PromQL queries, the metric selectors and label names a query uses, the template variables it
refers to, and the series the services declare (services/*/metrics.py and the shared
PushMetrics / OutboxMetrics sets), read from the source without importing it.

No PromQL parser is used here: the selectors are found by a small tokenizer (strings, label
matchers, ranges, functions, aggregations and their label lists), and the integration test
(tests/integration/test_grafana_queries.py) has the real Prometheus parse every query.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "services"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
PROMETHEUS_CONFIGS = (
    REPO / "deploy" / "prometheus" / "prometheus.yml",
    REPO / "deploy" / "prometheus" / "prometheus.compose.yml",
)

# Grafana's own variables (https://grafana.com/docs/grafana/latest/dashboards/variables/
# add-template-variables/#global-variables) and the value a test gives them.
GRAFANA_BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATOR_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)


# --- the dashboards ----------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels of collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def data_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(dashboard) if p.get("type") != "row")


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def is_multi(variable: dict[str, Any]) -> bool:
    return bool(variable.get("multi") or variable.get("includeAll"))


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard, and where it is."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def queries(path: Path) -> list[Query]:
    dashboard = load(path)
    return [
        Query(path.name, str(panel.get("title", "")), str(target.get("refId", "")), target["expr"])
        for panel in data_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def referenced_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


def substitute(text: str, dashboard: dict[str, Any]) -> str:
    """The text as Prometheus would receive it: Grafana's variables by the value a test gives
    them, a custom variable by its current value, a multi-value variable (only ever used in a
    regex matcher) by `.*`, as Grafana's "All" does (allValue)."""
    defined = variables(dashboard)

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        variable = defined[name]
        if is_multi(variable):
            return str(variable.get("allValue") or ".*")
        return str(variable["current"]["value"])

    return VARIABLE.sub(value, text)


def label_values_as_promql(query: str) -> str:
    """`label_values(selector, label)` (Grafana's Prometheus variable query) as the PromQL
    that asks the same: the series of the selector, by that label."""
    match = LABEL_VALUES.match(query)
    assert match, f"not a label_values() query: {query!r}"
    selector = match["selector"] or "up"
    return f"count by ({match['label']}) ({selector})"


# --- PromQL selectors --------------------------------------------------------------------------


@dataclass
class Parsed:
    """What a PromQL expression refers to."""

    selectors: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(metric name, {label: operator}) of every vector selector."""
    grouping_labels: set[str] = field(default_factory=set)
    """Labels of by / without / on / ignoring / group_left / group_right lists."""
    created_labels: set[str] = field(default_factory=set)
    """Labels label_replace() / label_join() write."""
    matcher_values: list[tuple[str, str, str]] = field(default_factory=list)
    """(label, operator, quoted value) of every label matcher."""
    problems: list[str] = field(default_factory=list)


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _closing(expr: str, i: int, opening: str, closing: str) -> int:
    """Index just past the bracket that closes expr[i] (an `opening`), strings skipped."""
    depth = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {opening!r} in {expr!r}")


def _next_char(expr: str, i: int) -> tuple[str, int]:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return (expr[i] if i < len(expr) else ""), i


def _matchers(block: str, parsed: Parsed) -> dict[str, str]:
    inner = block[1:-1]
    found: dict[str, str] = {}
    position = 0
    while position < len(inner.strip()):
        match = MATCHER.match(inner, position)
        if not match:
            parsed.problems.append(f"cannot read label matchers {block!r}")
            break
        found[match[1]] = match[2]
        parsed.matcher_values.append((match[1], match[2], match[3]))
        position = match.end()
    return found


def parse(expr: str) -> Parsed:
    """The selectors, grouping labels and created labels of a PromQL expression."""
    parsed = Parsed()
    for match in re.finditer(r"\blabel_(?:replace|join)\(", expr):
        strings = re.findall(
            r'"((?:[^"\\]|\\.)*)"', expr[match.end() : _closing(expr, match.end() - 1, "(", ")")]
        )
        if strings:
            parsed.created_labels.add(strings[0])
    i = 0
    while i < len(expr):
        char = expr[i]
        if char.isspace():
            i += 1
        elif char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "[":
            i = _closing(expr, i, "[", "]")
        elif char == "{":
            parsed.problems.append(
                f"a selector without a metric name ({expr[i : i + 40]!r}...): name the metric"
            )
            i = _closing(expr, i, "{", "}")
        elif char == "$":
            match = re.compile(r"\$\{[^}]*\}|\$\w+").match(expr, i)
            i = match.end() if match else i + 1
        elif char.isdigit() or (char == "." and expr[i + 1 : i + 2].isdigit()):
            match = re.compile(r"[0-9.][0-9A-Za-z_.]*").match(expr, i)
            assert match
            i = match.end()
        elif char.isalpha() or char in "_:":
            match = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*").match(expr, i)
            assert match
            word, i = match[0], match.end()
            following, at = _next_char(expr, i)
            if word in LABEL_LIST_KEYWORDS:
                if following == "(":
                    end = _closing(expr, at, "(", ")")
                    labels = expr[at + 1 : end - 1].split(",")
                    parsed.grouping_labels.update(
                        label.strip() for label in labels if label.strip()
                    )
                    i = end
            elif word in OPERATOR_KEYWORDS or word.lower() in OPERATOR_KEYWORDS:
                pass
            elif word in AGGREGATIONS or following == "(":
                pass  # a function or an aggregation: its arguments are read next
            elif following == "{":
                end = _closing(expr, at, "{", "}")
                parsed.selectors.append((word, _matchers(expr[at:end], parsed)))
                i = end
            else:
                parsed.selectors.append((word, {}))
        else:
            i += 1
    return parsed


# --- the series the services declare -----------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A series name a service exports, and the labels it carries."""

    name: str
    labels: frozenset[str]
    declared_in: str


def _labels(call: ast.Call) -> list[str]:
    node: ast.expr | None = call.args[2] if len(call.args) > 2 else None
    for keyword in call.keywords:
        if keyword.arg == "labelnames":
            node = keyword.value
    if node is None:
        return []
    assert isinstance(node, ast.List | ast.Tuple), ast.dump(node)
    return [str(element.value) for element in node.elts if isinstance(element, ast.Constant)]


def _samples(name: str, kind: str, labels: list[str], where: str) -> list[Series]:
    """The sample names prometheus_client exports for one metric."""
    plain = frozenset(labels)
    if kind == "Counter":
        base = name.removesuffix("_total")
        return [Series(f"{base}_total", plain, where), Series(f"{base}_created", plain, where)]
    if kind == "Histogram":
        return [
            Series(f"{name}_bucket", plain | {"le"}, where),
            Series(f"{name}_sum", plain, where),
            Series(f"{name}_count", plain, where),
            Series(f"{name}_created", plain, where),
        ]
    return [Series(name, plain, where)]


def declared_series() -> dict[str, Series]:
    """Every series services/ declares with prometheus_client's Counter, Gauge or Histogram:
    literal names, and the f-string names of a class (`f"{prefix}_outbox_pending"`) under every
    prefix its `Class.declare("...")` calls give it."""
    kinds = {"Counter", "Gauge", "Histogram"}
    literal: list[Series] = []
    templates: dict[str, list[tuple[str, str, list[str], str]]] = {}
    prefixes: dict[str, set[str]] = {}
    for path in sorted(SERVICES.rglob("*.py")):
        if (SERVICES / "pcm") in path.parents:  # generated protobuf code
            continue
        where = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for inner in ast.walk(node):
                    if not (isinstance(inner, ast.Call) and _called(inner) in kinds):
                        continue
                    first = inner.args[0] if inner.args else None
                    if (
                        isinstance(first, ast.JoinedStr)
                        and len(first.values) == 2
                        and isinstance(first.values[0], ast.FormattedValue)
                        and isinstance(first.values[1], ast.Constant)
                    ):
                        suffix = str(first.values[1].value)
                        templates.setdefault(node.name, []).append(
                            (suffix, _called(inner), _labels(inner), where)
                        )
            elif isinstance(node, ast.Call):
                name = _called(node)
                first = node.args[0] if node.args else None
                if (
                    name in kinds
                    and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                ):
                    literal.extend(_samples(first.value, name, _labels(node), where))
                elif (
                    name == "declare"
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and isinstance(first, ast.Constant)
                ):
                    prefixes.setdefault(node.func.value.id, set()).add(str(first.value))
    found = {series.name: series for series in literal}
    for class_name, declared in templates.items():
        for prefix in prefixes.get(class_name, set()):
            for suffix, kind, labels, where in declared:
                for series in _samples(prefix + suffix, kind, labels, where):
                    found[series.name] = series
    return found


def _called(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


def process_series() -> dict[str, Series]:
    """The series prometheus_client's default process collector exports in every service
    (each serves the default registry)."""
    from prometheus_client import ProcessCollector

    return {
        sample.name: Series(sample.name, frozenset(), "prometheus_client ProcessCollector")
        for family in ProcessCollector(registry=None).collect()
        for sample in family.samples
    }


def target_labels() -> frozenset[str]:
    """Labels Prometheus attaches to every scraped series: job, instance and the static labels
    of deploy/prometheus/*.yml (service)."""
    import yaml

    labels = {"job", "instance"}
    for path in PROMETHEUS_CONFIGS:
        config = yaml.safe_load(path.read_text())
        for job in config["scrape_configs"]:
            for static in job.get("static_configs", []):
                labels.update(static.get("labels", {}))
    return frozenset(labels)
