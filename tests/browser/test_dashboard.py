"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright) on the real
ClickHouse: two assessed months, two quarters and a year seeded as the processor and the benchmark
job write them, the pages checked for what they show, who may see them, their CSV downloads, and
with axe-core for zero WCAG 2.1 A/AA violations. Screenshots go to .stack/artefacts/browser/."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import importlib.util
import io
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from pcm.monitoring.v1 import indicator_pb2
from pcm_benchmark.job import assess_month, assess_period
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.web.app import Dashboard, create_app
from pcm_benchmark.web.data import Reader
from pcm_benchmark.web.plans import Plan, plan_book_lister
from pcm_common.auth import Role, TokenStore
from pcm_common.catalogues import Catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_testkit.isolation import isolated
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / ".stack" / "tools" / "node_modules" / "axe-core" / "axe.min.js"
ARTEFACTS = REPO / ".stack" / "artefacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
LIMA = ZoneInfo("America/Lima")
JULY, AUGUST = dt.date(2026, 7, 1), dt.date(2026, 8, 1)
SEPTEMBER, OCTOBER = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
HIGH_DEMAND = "ORGANISMO_NACIONAL_ALTA_DEMANDA"

# Served within target (%), per month: the ranks move between the months.
SERVED = {
    SEPTEMBER: {"RENIEC": 70, "SUNARP": 95, "ONP": 85, "ESSALUD": 50, "SUNAT": 92, "MINSA": 65},
    OCTOBER: {"RENIEC": 95, "SUNARP": 85, "ONP": 62, "ESSALUD": 91, "SUNAT": 81, "MINSA": 70},
}
# July and August are not assessed on their own: they make the third quarter unlike any month
# (SUNARP 81.7 % there, ONP 93 % and first in punctuality).
EARLIER = {"RENIEC": 70, "SUNARP": 75, "ONP": 97, "ESSALUD": 60, "SUNAT": 88, "MINSA": 66}
QUARTER_SERVED = {JULY: EARLIER, AUGUST: EARLIER, **SERVED}


def kpi_row(
    entity: str, code: str, value: float, start: dt.date, grain: str = "MONTH"
) -> dict[str, object]:
    at = dt.datetime.combine(start, dt.time(), LIMA)
    return {
        "entity_id": entity,
        "kpi_code": code,
        "grain": grain,
        "period_start": at,
        "channel": "",
        "service_id": "",
        "value": value,
        "numerator": value * 10,
        "denominator": 1_000,
        "computed_at": at,
        "version": 1,
        "insufficient_sample": 0,
        "catalogue_version": "",
    }


def seeded_rows() -> list[dict[str, object]]:
    rows = []
    for month, served in QUARTER_SERVED.items():
        for entity, value in served.items():
            rows += [
                kpi_row(entity, "SERVED_WITHIN_TARGET_PCT", value, month),
                kpi_row(entity, "ABANDONMENT_PCT", 4 if value > 80 else 12, month),
                kpi_row(entity, "SATISFACTION_PCT", value - 5, month),
                kpi_row(entity, "DIGITAL_TAKEUP_PCT", 30, month),
                kpi_row(entity, "COMPLAINTS_ANSWERED_WITHIN_TERM_PCT", 88, month),
                kpi_row(entity, "COMPLAINTS_OPEN_OVERDUE", 7, month),
                kpi_row(entity, "SATISFACTION_PCT_TIEMPO", 80 if entity == "RENIEC" else 70, month),
                kpi_row(entity, "SATISFACTION_MEAN_TIEMPO", 3.9, month),
                kpi_row(entity, "SATISFACTION_PCT_TRATO_PROFESIONAL", 82, month),
                kpi_row(entity, "SATISFACTION_MEAN_TRATO_PROFESIONAL", 4.2, month),
            ]
    for day in range(1, 32):
        rows.append(
            kpi_row("SUNARP", "COMPLAINTS_OPEN_OVERDUE", day % 5, OCTOBER.replace(day=day), "DAY")
        )
    return rows


def no_reports(entity_id: str) -> Iterable[indicator_pb2.IndicatorValue]:
    return []


@dataclass(frozen=True)
class Site:
    url: str
    national: str
    reniec: str
    sunarp: str
    operator: str
    tokens: TokenStore
    settings: BenchmarkSettings


def sunarp_plans(entity_id: str) -> list[Plan] | None:
    if entity_id != "SUNARP":
        return []
    return [
        Plan(
            "P-1",
            "Reducir la espera en ventanilla",
            "PUNTUALIDAD",
            "E07-A1",
            "SERVED_WITHIN_TARGET_PCT",
            "DO",
            80.0,
            90.0,
            dt.date(2026, 9, 15),
            dt.date(2027, 3, 31),
        )
    ]


@pytest.fixture(scope="module")
def site(
    stack: Any, catalogues: Catalogues, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    tokens_file = tmp_path_factory.mktemp("web") / "tokens.json"
    with isolated("web") as shared:
        settings = BenchmarkSettings(
            **{**shared.model_dump(), "token_file": tokens_file, "token_reload_interval_s": 0.0}
        )
        client = connect(settings, database="default")
        migrate(client, settings.clickhouse_database)
        client.execute(
            f"INSERT INTO {settings.clickhouse_database}.kpi_values VALUES", seeded_rows()
        )
        for month in SERVED:
            assess_month(settings, catalogues, month, no_reports)
        # The third quarter is over; the fourth and the year are assessed on their months so
        # far, as the worker does.
        assess_period(settings, catalogues, "QUARTER", JULY, no_reports)
        assess_period(settings, catalogues, "QUARTER", OCTOBER, no_reports, through=OCTOBER)
        assess_period(
            settings, catalogues, "YEAR", dt.date(2026, 1, 1), no_reports, through=OCTOBER
        )
        store = TokenStore(tokens_file, reload_interval_s=0.0)
        national = store.issue("PCM-SGP", Role.NATIONAL, "dashboard test")
        reniec = store.issue("RENIEC")
        sunarp = store.issue("SUNARP")
        operator = store.issue("OPERATIONS", Role.OPERATOR)
        reader = Reader(
            lambda: connect(settings), settings.clickhouse_database, settings.benchmark_time_zone
        )
        app = create_app(Dashboard(settings, catalogues, reader, store, sunarp_plans))
        with serving(app) as url:
            yield Site(url, national, reniec, sunarp, operator, store, settings)


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """The app on a free loopback port, in a thread of its own (Playwright's sync API runs an
    event loop in the test's thread)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready: queue.Queue[int] = queue.Queue()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        ready.put(runner.addresses[0][1])
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{ready.get(timeout=30)}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert AXE.is_file(), f"axe-core missing at {AXE}: run `make tools`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # bypass_csp: the test injects axe-core as an inline script, which the pages' policy forbids.
    made = browser.new_context(bypass_csp=True, accept_downloads=True, locale="es-PE")
    try:
        yield made
    finally:
        made.close()


def sign_in(page: Page, site: Site, token: str) -> None:
    page.goto(f"{site.url}/entrar")
    page.get_by_label("Credencial (token de la API)").fill(token)
    page.get_by_role("button", name="Ingresar").click()
    page.wait_for_load_state()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def assert_accessible(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    violations = axe_violations(page)
    described = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in violations
    ]
    assert not violations, f"{name}: " + "; ".join(described)


def ranking_entities(page: Page) -> list[str]:
    table = page.locator("table", has=page.locator("caption", has_text=re.compile("^Ranking")))
    return table.locator("tbody tr td:nth-child(2)").all_inner_texts()


def test_sign_in_page_is_accessible_and_a_bad_token_fails(
    context: BrowserContext, site: Site
) -> None:
    page = context.new_page()
    response = page.goto(f"{site.url}/entrar")
    assert response is not None and response.status == 200
    assert page.locator("html").get_attribute("lang") == "es"
    assert_accessible(page, "signin")
    page.get_by_label("Credencial (token de la API)").fill("pcm_nothere_notasecret")
    with page.expect_response(
        lambda r: r.url.endswith("/entrar") and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name="Ingresar").click()
    assert answer.value.status == 401
    assert "no es válida" in page.get_by_role("alert").inner_text()
    assert_accessible(page, "signin-error")
    # An operator's credential is a valid token without access to the dashboard.
    sign_in(page, site, site.operator)
    assert "no da acceso" in page.get_by_role("alert").inner_text()
    assert page.url.endswith("/entrar")


def test_a_body_that_is_no_form_is_refused_400_not_500(context: BrowserContext, site: Site) -> None:
    """aiohttp raises ValueError reading a broken multipart body or a form that is not UTF-8:
    sign-in and sign-out answered 500 (found by tests/abuse)."""
    page = context.new_page()
    page.goto(f"{site.url}/entrar")
    for content_type, body in (
        ("multipart/form-data; boundary=x", b""),
        ("multipart/form-data", b"abc"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=1"),
    ):
        answer = context.request.post(
            f"{site.url}/entrar", data=body, headers={"Content-Type": content_type}
        )
        assert answer.status == 400 and "Formulario no válido" in answer.text(), content_type
    sign_in(page, site, site.national)
    out = context.request.post(
        f"{site.url}/salir",
        data=b"",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        max_redirects=0,
    )
    assert out.status == 400
    assert page.goto(f"{site.url}/nacional") is not None and page.url.endswith("/nacional")


def test_a_static_file_name_too_long_is_404_not_500(context: BrowserContext, site: Site) -> None:
    """aiohttp's static handler let the file system's ENAMETOOLONG through: 500 (tests/abuse)."""
    for name in ("a" * 300, "x/" * 3_000, "%F0%9F%98%80" * 80):
        answer = context.request.get(f"{site.url}/static/{name}")
        assert answer.status == 404 and "Página no encontrada" in answer.text(), name[:20]
    assert context.request.get(f"{site.url}/static/style.css").status == 200


def test_post_without_csrf_token_is_refused(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/entrar")  # a session with its CSRF token exists now
    refused = context.request.post(f"{site.url}/entrar", form={"token": site.national})
    assert refused.status == 403
    forged = context.request.post(
        f"{site.url}/entrar", form={"token": site.national, "csrf": "forged"}
    )
    assert forged.status == 403
    sign_in(page, site, site.national)
    assert page.url.endswith("/nacional")
    out = context.request.post(f"{site.url}/salir", form={}, max_redirects=0)
    assert out.status == 403
    other_site = context.request.post(
        f"{site.url}/salir",
        form={"csrf": page.locator("input[name=csrf]").first.input_value()},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert other_site.status == 403
    # The real form (with its token) signs out.
    page.get_by_role("button", name="Cerrar sesión").click()
    page.wait_for_url("**/entrar?salida=1")
    assert page.goto(f"{site.url}/nacional") is not None and page.url.endswith("/entrar")


def test_session_cookie_is_server_side_and_locked_down(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/entrar")
    before = {c["name"]: c for c in context.cookies()}["pcm_sesion"]
    sign_in(page, site, site.national)
    after = {c["name"]: c for c in context.cookies()}["pcm_sesion"]
    assert after["value"] != before["value"]  # a new id at sign-in: no fixation
    assert after["httpOnly"] and after["sameSite"] == "Strict"
    assert site.national not in after["value"]
    headers = context.request.get(f"{site.url}/nacional").headers
    assert headers["cache-control"] == "no-store"
    assert "default-src 'none'" in headers["content-security-policy"]


def test_overview_shows_distribution_ranking_and_movers(
    context: BrowserContext, site: Site, catalogues: Catalogues
) -> None:
    page = context.new_page()
    sign_in(page, site, site.national)
    assert page.url.endswith("/nacional")
    assert "octubre de 2026" in page.get_by_role("heading", level=1).inner_text()
    assert len(ranking_entities(page)) == len(catalogues.entities)
    distribution = page.locator("table", has=page.locator("caption", has_text="por nivel"))
    assert distribution.locator("tbody tr").count() == len(catalogues.standards) + 1
    assert page.locator("svg[role=img]").count() >= len(catalogues.standards)
    up = page.locator("table", has=page.locator("caption", has_text="más suben"))
    assert up.locator("tbody tr").count() >= 1
    assert "▲ sube" in up.inner_text()
    down = page.locator("table", has=page.locator("caption", has_text="más bajan"))
    assert "▼ baja" in down.inner_text()
    assert_accessible(page, "overview")
    # Every grain's periods in one selector, grouped; a quarter is chosen like a month.
    chooser = page.get_by_label("Periodo evaluado")
    groups = chooser.locator("optgroup").evaluate_all("groups => groups.map(g => g.label)")
    assert groups == ["Meses", "Trimestres", "Años"]
    assert chooser.locator("option").all_inner_texts() == [
        "octubre de 2026",
        "septiembre de 2026",
        "4.º trimestre de 2026",
        "3.er trimestre de 2026",
        "año 2026",
    ]
    chooser.select_option("2026-T4")
    page.get_by_role("button", name="Aplicar").click()
    page.wait_for_url("**periodo=2026-T4**")
    assert "4.º trimestre de 2026" in page.get_by_role("heading", level=1).inner_text()
    assert chooser.locator("option:checked").inner_text() == "4.º trimestre de 2026"
    # The movers compare with the quarter before, not with September.
    movers = page.locator("section", has=page.locator("#movimientos-titulo"))
    assert "3.er trimestre de 2026" in movers.locator("p").first.inner_text()
    assert "Puesto anterior (3.er trimestre de 2026)" in movers.inner_text()
    # Links to the other pages keep the quarter.
    sunarp = page.get_by_role("link", name=catalogues.entity("SUNARP").name).first
    assert sunarp.get_attribute("href") == "/entidad/SUNARP?periodo=2026-T4"
    standard = page.get_by_role("link", name=re.compile(r"Puntualidad")).first
    assert standard.get_attribute("href") == "/estandar/PUNTUALIDAD?periodo=2026-T4"
    home = page.get_by_role("navigation").get_by_role("link", name="Panorama nacional")
    assert home.get_attribute("href") == "/nacional?periodo=2026-T4"
    assert_accessible(page, "overview-quarter")


def test_filters_change_the_ranking(
    context: BrowserContext, site: Site, catalogues: Catalogues
) -> None:
    page = context.new_page()
    sign_in(page, site, site.national)
    page.get_by_label("Grupo de pares").select_option(HIGH_DEMAND)
    page.get_by_label("Estándar del ranking").select_option("PUNTUALIDAD")
    page.get_by_role("button", name="Aplicar").click()
    page.wait_for_url(f"**grupo={HIGH_DEMAND}**")
    names = ranking_entities(page)
    group = [e.name for e in catalogues.entities if e.peer_group == HIGH_DEMAND]
    assert sorted(names) == sorted(group)
    assert names[0] == catalogues.entity("RENIEC").name  # 95 % served within target: first
    assert_accessible(page, "overview-filtered")
    page.get_by_label("Región").select_option("CUSCO")
    page.get_by_label("Grupo de pares").select_option("")
    page.get_by_role("button", name="Aplicar").click()
    page.wait_for_url("**region=CUSCO**")
    cusco = {e.name for e in catalogues.entities if e.region == "CUSCO"}
    assert set(ranking_entities(page)) == cusco


def test_csv_export_has_the_rows_shown(
    context: BrowserContext, site: Site, catalogues: Catalogues
) -> None:
    page = context.new_page()
    sign_in(page, site, site.national)
    page.goto(f"{site.url}/nacional?grupo={HIGH_DEMAND}&estandar=PUNTUALIDAD")
    with page.expect_download() as downloading:
        page.get_by_role("link", name=re.compile(r"^Descargar CSV\W+Ranking")).click()
    download = downloading.value
    assert download.suggested_filename == "nacional-ranking-2026-10.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
    group = {e.entity_id for e in catalogues.entities if e.peer_group == HIGH_DEMAND}
    assert {row["entity_id"] for row in rows} == group
    first = rows[0]
    assert (first["entity_id"], first["national_rank"], first["level"]) == (
        "RENIEC",
        "1",
        "AVANZADO",
    )
    answer = context.request.get(
        f"{site.url}/nacional?grupo={HIGH_DEMAND}&estandar=PUNTUALIDAD&descargar=ranking"
    )
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith(
        'attachment; filename="nacional-ranking-2026-10.csv"'
    )
    # The third quarter's ranking: ONP first (93 % within target over July to September), last
    # but one in October.
    quarter = context.request.get(
        f"{site.url}/nacional?periodo=2026-T3&estandar=PUNTUALIDAD&descargar=ranking"
    )
    assert 'filename="nacional-ranking-2026-T3.csv"' in quarter.headers["content-disposition"]
    ranked = list(csv.DictReader(io.StringIO(quarter.body().decode("utf-8-sig"))))
    assert (ranked[0]["entity_id"], ranked[0]["national_rank"], ranked[0]["level"]) == (
        "ONP",
        "1",
        "INTERMEDIO",
    )


def test_standard_page(context: BrowserContext, site: Site, catalogues: Catalogues) -> None:
    page = context.new_page()
    sign_in(page, site, site.national)
    page.goto(f"{site.url}/estandar/PUNTUALIDAD")
    standard = catalogues.standard("PUNTUALIDAD")
    assert standard.name in page.get_by_role("heading", level=1).inner_text()
    criteria = page.locator("table", has=page.locator("caption", has_text="Criterios"))
    assert criteria.locator("tbody tr").count() == sum(len(c) for c in standard.levels.values())
    assert ranking_entities(page)[0] == catalogues.entity("RENIEC").name
    assert_accessible(page, "standard")
    page.goto(f"{site.url}/estandar/PUNTUALIDAD?periodo=2026-T3")
    assert "3.er trimestre de 2026" in page.get_by_role("heading", level=1).inner_text()
    assert ranking_entities(page)[0] == catalogues.entity("ONP").name
    onp = page.get_by_role("link", name=catalogues.entity("ONP").name)
    assert onp.get_attribute("href") == "/entidad/ONP?periodo=2026-T3"
    # A malformed period, or one never assessed, is not found, whatever its grain.
    for asked in ("2026-13", "2026-T5", "2026-t3", "octubre", "2026-T1", "2025", "2026-08"):
        answer = context.request.get(f"{site.url}/estandar/PUNTUALIDAD?periodo={asked}")
        assert answer.status == 404, asked


def test_entity_page_shows_gaps_trends_and_plans(
    context: BrowserContext, site: Site, catalogues: Catalogues
) -> None:
    page = context.new_page()
    sign_in(page, site, site.sunarp)
    assert page.url.endswith("/entidad/SUNARP")
    punctuality = page.locator("section.standard", has=page.locator("#st-PUNTUALIDAD"))
    assert "nivel Intermedio" in punctuality.locator("h3").inner_text()
    gaps = punctuality.locator("table", has=page.locator("caption", has_text="Brechas"))
    gap_text = gaps.inner_text()
    assert "E07-A1" in gap_text and "No cumple" in gap_text  # 85 % < 90 % for AVANZADO
    evidence = punctuality.locator("table", has=page.locator("caption", has_text="Evidencia"))
    assert "Cumple" in evidence.inner_text()
    # Against September (95 % within target, AVANZADO's A1 met): one criterion lost.
    changes = page.locator("table", has=page.locator("caption", has_text="Cambio de puntaje"))
    row = changes.locator("tbody tr", has=page.locator("th, td", has_text="Puntualidad"))
    assert "Retrocede" in row.inner_text() and "Sin dato previo" in row.inner_text()
    trends = page.locator("table", has=page.locator("caption", has_text="KPI mensuales"))
    assert "octubre de 2026" in trends.inner_text() and "85" in trends.inner_text()
    overdue = page.locator("table", has=page.locator("caption", has_text="por día"))
    assert overdue.locator("tbody tr").count() == 31
    satisfaction = page.locator("table", has=page.locator("caption", has_text="conductor"))
    assert "Tiempo" in satisfaction.inner_text()
    plans = page.locator("table", has=page.locator("caption", has_text="Planes de mejora"))
    assert "Reducir la espera en ventanilla" in plans.inner_text()
    assert "Hacer" in plans.inner_text()
    # Its peers only as anonymous distributions: no other entity's name on its page.
    body = page.locator("main").inner_text()
    others = [e for e in catalogues.entities if e.entity_id != "SUNARP"]
    assert not [e.name for e in others if e.name in body]
    assert (
        "Mediana"
        in page.locator("table", has=page.locator("caption", has_text="pares")).inner_text()
    )
    assert_accessible(page, "entity")
    # The fourth quarter, compared with the third (three criteria met, 50 points), where
    # October was compared with September: Puntualidad improves instead of falling behind.
    page.get_by_label("Periodo evaluado").select_option(label="4.º trimestre de 2026")
    page.get_by_role("button", name="Ver periodo").click()
    page.wait_for_url("**/entidad/SUNARP?periodo=2026-T4")
    assert "4.º trimestre de 2026" in page.get_by_role("heading", level=1).inner_text()
    changes = page.locator("table", has=page.locator("caption", has_text="Cambio de puntaje"))
    assert "frente al periodo anterior (3.er trimestre de 2026)" in changes.inner_text()
    row = changes.locator("tbody tr", has=page.locator("th, td", has_text="Puntualidad"))
    assert "Mejora" in row.inner_text()
    # The KPI charts stay monthly, and say so.
    captions = page.locator("#tendencias-titulo ~ .figures figcaption").all_inner_texts()
    assert captions and all("serie mensual" in c for c in captions)
    mine = page.get_by_role("navigation").get_by_role("link", name="Mi entidad")
    assert mine.get_attribute("href") == "/entidad/SUNARP?periodo=2026-T4"
    with page.expect_download() as downloading:
        page.get_by_role("link", name=re.compile(r"^Descargar CSV\W+Cambio de puntaje")).click()
    download = downloading.value
    assert download.suggested_filename == "entidad-SUNARP-cambios-2026-T4.csv"
    text = Path(download.path()).read_text("utf-8-sig")
    assert text.splitlines()[0] == (
        "standard,score,change_vs_previous,trend_vs_previous,change_vs_year_before,"
        "trend_vs_year_before"
    )
    punctuality_change = next(
        r for r in csv.DictReader(io.StringIO(text)) if r["standard"] == "PUNTUALIDAD"
    )
    assert punctuality_change["change_vs_previous"] == "16.7"
    assert punctuality_change["trend_vs_previous"] == "IMPROVING"
    assert punctuality_change["trend_vs_year_before"] == "UNKNOWN"
    assert_accessible(page, "entity-quarter")
    # The third quarter's own evidence: 81.7 % within target over July to September.
    page.goto(f"{site.url}/entidad/SUNARP?periodo=2026-T3")
    punctuality = page.locator("section.standard", has=page.locator("#st-PUNTUALIDAD"))
    evidence = punctuality.locator("table", has=page.locator("caption", has_text="Evidencia"))
    assert "81,7" in evidence.locator("tr", has_text="E07-A1").inner_text()


def test_an_entity_session_is_refused_other_pages(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    sign_in(page, site, site.reniec)
    assert page.url.endswith("/entidad/RENIEC")
    for path in (
        "/entidad/SUNARP",
        "/nacional",
        "/estandar/PUNTUALIDAD",
        "/entidad/SUNARP?descargar=resultados",
    ):
        response = page.goto(f"{site.url}{path}")
        assert response is not None and response.status == 403, path
    assert "Acceso denegado" in page.get_by_role("heading", level=1).inner_text()
    assert_accessible(page, "forbidden")


def test_a_revoked_token_ends_its_sessions(context: BrowserContext, site: Site) -> None:
    store = site.tokens
    token = store.issue("MINSA", label="revoked in test")
    page = context.new_page()
    sign_in(page, site, token)
    assert page.url.endswith("/entidad/MINSA")
    store.revoke(token.split("_")[1])
    page.goto(f"{site.url}/entidad/MINSA")
    assert "/entrar" in page.url


def test_the_plan_book_is_read_when_installed(site: Site) -> None:
    """Without pcm_benchmark.plans_book the page says no plan is registered (None); with it, the
    dashboard lists the entity's plans from PostgreSQL (none seeded here)."""
    lister, close = plan_book_lister(site.settings)
    try:
        plans = lister("SUNARP")
    finally:
        close()
    installed = importlib.util.find_spec("pcm_benchmark.plans_book") is not None
    assert plans == ([] if installed else None)
