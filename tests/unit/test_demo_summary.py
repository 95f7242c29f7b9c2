"""The demo's national summary: the month it shows, peer groups, complaints, alerts."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pcm_benchmark.reads import StoredResult
from pcm_common.catalogues import Catalogues
from pcm_demo.summary import alert_lines, overdue_line, peer_group_lines, summary_month

HIGH_DEMAND = "ORGANISMO_NACIONAL_ALTA_DEMANDA"


def test_the_month_shown_is_the_one_a_month_of_data_mostly_falls_in() -> None:
    assert summary_month(dt.date(2026, 12, 3)) == dt.date(2026, 11, 1)
    assert summary_month(dt.date(2026, 12, 20)) == dt.date(2026, 12, 1)
    assert summary_month(dt.date(2027, 1, 10)) == dt.date(2026, 12, 1)


def overall(entity: str, group: str, rank: int, score: float) -> StoredResult:
    fields = dict.fromkeys(StoredResult.__dataclass_fields__)
    fields.update(
        entity_id=entity, peer_group=group, standard="OVERALL", peer_rank=rank, score=score
    )
    return StoredResult(**fields)  # type: ignore[arg-type]


def test_best_and_last_of_each_peer_group_with_two_entities_or_more(
    catalogues: Catalogues,
) -> None:
    results = [
        overall("SUNARP", HIGH_DEMAND, 2, 61.0),
        overall("SUNAT", HIGH_DEMAND, 1, 73.4),
        overall("ONP", HIGH_DEMAND, 3, 25.0),
        overall("MUNI-LIMA", "MUNICIPALIDAD_METROPOLITANA_LIMA", 1, 50.0),  # alone: not shown
    ]
    lines = peer_group_lines(results, catalogues)
    assert lines == [f"{HIGH_DEMAND:<40} best SUNAT 73, last ONP 25 (3 entities)"]


def test_overdue_complaints_in_one_line() -> None:
    rows = [("SUNAFIL", 12), ("ONP", 4), ("MINEDU", 4), ("SIS", 1), ("RENIEC", 0)]
    assert overdue_line(rows) == (
        "21 open past their due date at 4 entities (most: SUNAFIL 12, ONP 4, MINEDU 4)"
    )
    assert overdue_line([("RENIEC", 0)]) == "0 open past their due date at 0 entities"


@pytest.fixture
def prometheus() -> Iterator[str]:
    """A stand-in answering /api/v1/alerts as Prometheus does."""
    alerts = [
        {"state": "firing", "labels": {"alertname": "ComplaintsOverdue", "entity": "ONP"}},
        {"state": "firing", "labels": {"alertname": "ComplaintsOverdue", "entity": "SIS"}},
        {"state": "pending", "labels": {"alertname": "EntitySilent", "entity": "MTC"}},
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "success", "data": {"alerts": alerts}}).encode()
            self.send_response(200 if self.path == "/api/v1/alerts" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_alerts_firing_then_pending(prometheus: str) -> None:
    assert alert_lines(prometheus) == ["firing: ComplaintsOverdue x2", "pending: EntitySilent"]


def test_an_unreachable_prometheus_is_said_not_hidden() -> None:
    (line,) = alert_lines("http://127.0.0.1:9")
    assert line.startswith("Prometheus at http://127.0.0.1:9 did not answer")
