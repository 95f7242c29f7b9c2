"""The dashboard's pure parts: sessions (expiry, fixation), CSV (formula-safe), charts (named,
valued marks), Spanish reasons."""

from __future__ import annotations

from pcm_benchmark.web.charts import Bar, Point, bar_chart, line_chart
from pcm_benchmark.web.pages import reason_es
from pcm_benchmark.web.sessions import SessionStore
from pcm_benchmark.web.tables import Table, number, text, to_csv
from pcm_common.auth import Principal, Role


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_idle_and_absolute_and_renew_their_id_at_sign_in() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=300, clock=clock)
    anonymous = store.new()
    signed = store.sign_in(anonymous, Principal("t1", "RENIEC", Role.ENTITY))
    assert signed.session_id != anonymous.session_id
    assert signed.csrf_token != anonymous.csrf_token
    assert store.get(anonymous.session_id) == (None, False)
    for _ in range(5):
        clock.now += 50
        assert store.get(signed.session_id)[0] is signed
    clock.now += 51  # 301 s after sign-in, though used 50 s ago
    assert store.get(signed.session_id) == (None, True)
    idle = store.sign_in(store.new(), Principal("t2", "SUNARP", Role.ENTITY))
    clock.now += 61
    assert store.get(idle.session_id) == (None, True)


def test_csrf_tokens_compare_exactly() -> None:
    session = SessionStore(60, 60).new()
    assert session.csrf_ok(session.csrf_token)
    assert not session.csrf_ok(None)
    assert not session.csrf_ok(session.csrf_token[:-1])


def test_csv_has_a_bom_headers_and_no_formulas() -> None:
    table = Table(
        "t",
        "T",
        ("Entidad", "Valor"),
        ((text("=HYPERLINK(1)", "x"), number(-3.14159, "-3,1")),),
        csv_headers=("entity_id", "value"),
    )
    assert to_csv(table).decode() == "\ufeffentity_id,value\r\n'=HYPERLINK(1),-3.1416\r\n"


def test_charts_are_named_images_with_every_value_as_text() -> None:
    bars = bar_chart("b", "Niveles", "Básico: 2.", [Bar("Básico", 2, "2"), Bar("<x>", 1, "1")])
    assert 'role="img"' in bars and 'aria-labelledby="b-t b-d"' in bars
    assert '<title id="b-t">Niveles</title>' in bars and "&lt;x&gt;" in bars
    line = line_chart("l", "KPI", "d", [Point("ene", 10, "10"), Point("feb", None, "s/d")], 100)
    assert ">10</text>" in line and ">s/d</text>" in line


def test_reasons_in_spanish() -> None:
    assert reason_es("never reported") == "nunca se reportó"
    assert reason_es("expired on 2026-01-31") == "venció el 2026-01-31"
    assert reason_es("sample 12 below the KPI's minimum") == (
        "muestra de 12, menor que el mínimo del KPI"
    )
    assert reason_es("something new") == "something new"
