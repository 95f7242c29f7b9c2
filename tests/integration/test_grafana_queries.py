"""The real Prometheus of the local stack parses every query of the Grafana dashboards
(deploy/grafana/dashboards/), with the template variables as Grafana would send them.

An instant query through /api/v1/query answers `success` for any well-formed expression, also
when its series do not exist yet (an empty result): that every series is declared by a service
is tests/unit/test_grafana.py. A malformed expression is answered `error` / `bad_data`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.grafana_dashboards import (
    dashboard_files,
    label_values_as_promql,
    load,
    queries,
    substitute,
    variable_query,
    variables,
)

pytestmark = pytest.mark.integration

# The `stack` fixture (tests/conftest.py) is a LocalStack; conftest modules are not importable.
LocalStack = Any


def ask(stack: LocalStack, promql: str) -> dict[str, Any]:
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            body: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as error:  # 400 bad_data, 422 execution errors
        body = json.load(error)
    return body


def test_prometheus_refuses_a_malformed_query(stack: LocalStack) -> None:
    # The check below would be worthless if Prometheus answered success to anything.
    answer = ask(stack, "sum(rate(pcm_intake_events_accepted_total[5m])")
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"
    assert ask(stack, "pcm_series_that_no_one_exports")["status"] == "success"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_prometheus_parses_every_panel_query(stack: LocalStack, path: Path) -> None:
    dashboard = load(path)
    found = queries(path)
    assert found
    refused = {}
    for query in found:
        answer = ask(stack, substitute(query.expr, dashboard))
        if answer["status"] != "success":
            refused[str(query)] = answer.get("error")
    assert refused == {}


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_prometheus_parses_every_variable_query(stack: LocalStack, path: Path) -> None:
    dashboard = load(path)
    refused = {}
    for name, variable in variables(dashboard).items():
        if variable["type"] != "query":
            continue
        promql = substitute(label_values_as_promql(variable_query(variable)), dashboard)
        answer = ask(stack, promql)
        if answer["status"] != "success":
            refused[name] = answer.get("error")
    assert refused == {}
