"""The dashboard's HTTP server (aiohttp): sign-in with an API token into a server-side session,
the pages (national overview, a standard, an entity) and their CSV downloads.

Security: the session cookie holds only a random id (HttpOnly, SameSite=Strict, Secure over TLS
or behind a TLS proxy); every POST form carries the session's CSRF token and a POST from another
origin is refused; sessions end after ``benchmark_web_session_idle_s`` idle or
``benchmark_web_session_max_s`` after sign-in, and when their token is revoked; a token is never
logged nor kept (only its id); failed sign-ins are throttled per client address; pages are never
cached and carry a script-free Content-Security-Policy. An entity's session reaches only its own
entity's page (any other: 403); the overview and the standards pages are the national role's.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader
from pcm_common.auth import AuthError, Principal, Role, TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.logging import get_logger

from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.web import pages
from pcm_benchmark.web.data import Reader, StoreUnavailable
from pcm_benchmark.web.periods import Period
from pcm_benchmark.web.plans import PlanLister, no_plan_book, plan_book_lister
from pcm_benchmark.web.sessions import COOKIE, Session, SessionStore
from pcm_benchmark.web.tables import to_csv

log = get_logger(__name__)
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SIGN_IN_FAILURES = 10
"""Failed sign-ins allowed per client address within ``SIGN_IN_WINDOW_S``."""
SIGN_IN_WINDOW_S = 300.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Forbidden(Exception):
    """The signed-in credential may not see this page (403)."""


class Dashboard:
    """The composition root of the web app: everything a handler needs."""

    def __init__(
        self,
        settings: BenchmarkSettings,
        catalogues: Catalogues,
        reader: Reader,
        tokens: TokenStore,
        plans: PlanLister = no_plan_book,
    ) -> None:
        self.settings = settings
        self.plans = plans
        self.catalogues = catalogues
        self.reader = reader
        self.tokens = tokens
        self.secure = settings.benchmark_web_behind_tls_proxy or bool(
            settings.benchmark_web_tls_cert
        )
        self.sessions = SessionStore(
            settings.benchmark_web_session_idle_s, settings.benchmark_web_session_max_s
        )
        self.failures: dict[str, deque[float]] = {}
        self.templates = Environment(
            loader=PackageLoader("pcm_benchmark.web", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.standards = [(s.code, f"{s.number}. {s.name}") for s in catalogues.standards]

    # --- sessions ----------------------------------------------------------------------------
    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.session_id,
            httponly=True,
            samesite="Strict",
            secure=self.secure,
            path="/",
        )

    def still_valid(self, session: Session) -> bool:
        """Whether the session's credential is still unrevoked (checked every reload interval)."""
        principal = session.principal
        if principal is None:
            return True
        now = time.monotonic()
        if now - session.checked_at < self.settings.token_reload_interval_s:
            return True
        record = next((r for r in self.tokens.read() if r.token_id == principal.token_id), None)
        if record is None or record.revoked_at is not None:
            self.sessions.end_all_of(principal.token_id)
            return False
        session.checked_at = now
        return True

    def throttled(self, address: str) -> bool:
        now = time.monotonic()
        recent = self.failures.setdefault(address, deque())
        while recent and now - recent[0] > SIGN_IN_WINDOW_S:
            recent.popleft()
        if not recent:
            del self.failures[address]
        return len(recent) >= SIGN_IN_FAILURES

    def failed(self, address: str) -> None:
        self.failures.setdefault(address, deque()).append(time.monotonic())

    # --- rendering ---------------------------------------------------------------------------
    def render(
        self,
        request: web.Request,
        template: str,
        status: int = 200,
        nav_query: str = "",
        **context: Any,
    ) -> web.Response:
        """``nav_query``: what the navigation links keep of this page's query (its period)."""
        session: Session | None = request.get(SESSION)
        principal = session.principal if session else None
        body = self.templates.get_template(template).render(
            user=_user(principal, self.catalogues),
            csrf_token=session.csrf_token if session else "",
            notice=request.get(NOTICE, ""),
            standards_nav=self.standards,
            path=request.path,
            nav_query=nav_query,
            **context,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _user(principal: Principal | None, catalogues: Catalogues) -> dict[str, str] | None:
    if principal is None:
        return None
    if principal.role is Role.NATIONAL:
        return {
            "role": "national",
            "name": f"{principal.entity_id} (rol nacional)",
            "home": "/nacional",
        }
    try:
        name = catalogues.entity(principal.entity_id).name
    except KeyError:
        name = principal.entity_id
    return {"role": "entity", "name": name, "home": f"/entidad/{principal.entity_id}"}


DASHBOARD: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
NOTICE: web.RequestKey[str] = web.RequestKey("notice", str)
PUBLIC = ("/entrar", "/static/", "/salud")


def _dashboard(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def _signed_in(request: web.Request) -> tuple[Session, Principal]:
    session = request[SESSION]
    # The middleware lets only signed-in requests through to the pages.
    assert session is not None and session.principal is not None
    return session, session.principal


def _principal(request: web.Request) -> Principal:
    return _signed_in(request)[1]


def _national(request: web.Request) -> None:
    if _principal(request).role is not Role.NATIONAL:
        raise Forbidden


# --- middlewares ----------------------------------------------------------------------------


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, redirects and errors included."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if _dashboard(request).secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    dashboard = _dashboard(request)
    session, expired = dashboard.sessions.get(request.cookies.get(COOKIE))
    if session is not None and not dashboard.still_valid(session):
        session, expired = None, True
    request[SESSION] = session
    if expired:
        request[NOTICE] = "Su sesión terminó. Ingrese de nuevo."
    if request.method == "POST" and not _same_origin(request):
        return _error(request, 403, "Solicitud rechazada", "El formulario no vino de este sitio.")
    if request.path.startswith("/static/"):
        try:
            return await handler(request)
        except OSError:  # aiohttp's static files: a name too long for the file system (was 500)
            return _error(request, 404, "Página no encontrada", "No existe lo que busca.")
    if request.path.startswith(PUBLIC):
        return await handler(request)
    if session is None or session.principal is None:
        if expired:
            raise web.HTTPSeeOther("/entrar?expirada=1")
        raise web.HTTPSeeOther("/entrar")
    try:
        return await handler(request)
    except Forbidden:
        return _error(
            request,
            403,
            "Acceso denegado",
            "Su credencial no permite ver esta página. Cada entidad ve solo su propia página.",
        )
    except pages.NotFound:
        return _error(request, 404, "Página no encontrada", "No existe lo que busca.")
    except StoreUnavailable:
        return _error(
            request,
            503,
            "Servicio no disponible",
            "La base de resultados no responde. Intente de nuevo en unos minutos.",
        )


def _same_origin(request: web.Request) -> bool:
    """A POST's Origin (when the browser sends one) must be this site."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.host


def _error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return _dashboard(request).render(
        request, "error.html", status=status, title=title, message=message
    )


# --- handlers -------------------------------------------------------------------------------


async def home(request: web.Request) -> web.StreamResponse:
    user = _user(_principal(request), _dashboard(request).catalogues)
    assert user is not None
    raise web.HTTPSeeOther(user["home"])


async def health(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    session: Session | None = request[SESSION]
    if session is not None and session.principal is not None:
        raise web.HTTPSeeOther("/")
    if session is None:
        session = dashboard.sessions.new()
        request[SESSION] = session
    if request.query.get("expirada"):
        request[NOTICE] = "Su sesión terminó. Ingrese de nuevo."
    if request.query.get("salida"):
        request[NOTICE] = "Cerró su sesión."
    response = dashboard.render(request, "signin.html", title="Ingresar")
    dashboard.set_cookie(response, session)
    return response


async def _form(request: web.Request) -> Mapping[str, Any] | None:
    """The posted form; None when the body is none (a broken multipart, bytes that are not
    UTF-8: aiohttp raises ValueError, which answered 500)."""
    try:
        return await request.post()
    except ValueError:
        return None


def _unreadable(request: web.Request) -> web.Response:
    return _error(request, 400, "Formulario no válido", "No se pudo leer el formulario enviado.")


async def sign_in(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    session: Session | None = request[SESSION]
    form = await _form(request)
    if form is None:
        return _unreadable(request)
    csrf = form.get("csrf")
    if session is None or not session.csrf_ok(csrf if isinstance(csrf, str) else None):
        return _error(
            request,
            403,
            "Formulario no válido",
            "El formulario venció o no es de esta sesión. Vuelva a la página de ingreso.",
        )
    address = request.remote or "-"
    if dashboard.throttled(address):
        log.warning("dashboard sign-in throttled", client=address)
        return dashboard.render(
            request,
            "signin.html",
            status=429,
            title="Ingresar",
            error="Demasiados intentos fallidos. Espere unos minutos e intente de nuevo.",
        )
    token = form.get("token")
    try:
        principal = dashboard.tokens.authenticate(
            f"Bearer {token.strip() if isinstance(token, str) else ''}"
        )
    except AuthError as error:
        dashboard.failed(address)
        log.info("dashboard sign-in refused", reason=error.failure.value, client=address)
        return dashboard.render(
            request,
            "signin.html",
            status=401,
            title="Ingresar",
            error="La credencial no es válida o fue revocada.",
        )
    if principal.role not in (Role.NATIONAL, Role.ENTITY):
        log.info("dashboard sign-in refused", reason="role", token_id=principal.token_id)
        return dashboard.render(
            request,
            "signin.html",
            status=403,
            title="Ingresar",
            error="Esta credencial no da acceso al tablero (solo roles nacional y de entidad).",
        )
    fresh = dashboard.sessions.sign_in(session, principal)
    log.info(
        "dashboard sign-in",
        token_id=principal.token_id,
        entity_id=principal.entity_id,
        role=principal.role.value,
    )
    response = web.HTTPSeeOther("/")
    dashboard.set_cookie(response, fresh)
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    session, _ = _signed_in(request)
    form = await _form(request)
    if form is None:
        return _unreadable(request)
    csrf = form.get("csrf")
    if not session.csrf_ok(csrf if isinstance(csrf, str) else None):
        return _error(request, 403, "Formulario no válido", "El formulario no es de esta sesión.")
    dashboard.sessions.end(session.session_id)
    response = web.HTTPSeeOther("/entrar?salida=1")
    response.del_cookie(COOKIE, path="/")
    raise response


def _query(request: web.Request) -> dict[str, str]:
    return {key: value for key, value in request.query.items() if key != "descargar"}


async def _show(request: web.Request, build: Callable[[], pages.Page], slug: str) -> web.Response:
    dashboard = _dashboard(request)
    page = await asyncio.to_thread(build)
    wanted = request.query.get("descargar")
    period = page.context.get("period")
    if wanted is not None:
        table = page.tables.get(wanted)
        if table is None:
            raise pages.NotFound(wanted)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{slug}-{wanted}")
        if isinstance(period, Period):
            name += f"-{period.value}"
        return web.Response(
            body=to_csv(table),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}.csv"; '
                f"filename*=UTF-8''{quote(name)}.csv"
            },
        )
    query = _query(request)

    def csv_url(key: str) -> str:
        return f"{request.path}?{urlencode({**query, 'descargar': key})}"

    # A period chosen on one page stays chosen on the pages the navigation leads to.
    nav_query = (
        f"?{urlencode({'periodo': period.value})}"
        if isinstance(period, Period) and query.get("periodo")
        else ""
    )
    context: dict[str, Any] = {**page.context, "title": page.title, "tables": page.tables}
    return dashboard.render(request, page.template, nav_query=nav_query, csv_url=csv_url, **context)


async def overview(request: web.Request) -> web.StreamResponse:
    _national(request)
    dashboard = _dashboard(request)
    build = partial(pages.overview, dashboard.reader, dashboard.catalogues, _query(request))
    return await _show(request, build, "nacional")


async def standard(request: web.Request) -> web.StreamResponse:
    _national(request)
    dashboard = _dashboard(request)
    code = request.match_info["code"]
    build = partial(
        pages.standard_page, dashboard.reader, dashboard.catalogues, code, _query(request)
    )
    return await _show(request, build, f"estandar-{code}")


async def entity(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    entity_id = request.match_info["entity_id"]
    if principal.role is not Role.NATIONAL and entity_id != principal.entity_id:
        raise Forbidden
    dashboard = _dashboard(request)
    build = partial(
        pages.entity_page,
        dashboard.reader,
        dashboard.catalogues,
        entity_id,
        _query(request),
        national=principal.role is Role.NATIONAL,
        plan_lister=dashboard.plans,
    )
    return await _show(request, build, f"entidad-{entity_id}")


def create_app(dashboard: Dashboard) -> web.Application:
    app = web.Application(middlewares=[sessions], client_max_size=64 * 1024)
    app.on_response_prepare.append(_security_headers)
    app[DASHBOARD] = dashboard
    app.router.add_get("/", home)
    app.router.add_get("/salud", health)
    app.router.add_get("/entrar", sign_in_form)
    app.router.add_post("/entrar", sign_in)
    app.router.add_post("/salir", sign_out)
    app.router.add_get("/nacional", overview)
    app.router.add_get("/estandar/{code}", standard)
    app.router.add_get("/entidad/{entity_id}", entity)
    app.router.add_static("/static/", STATIC, append_version=True)
    return app


def build(settings: BenchmarkSettings, catalogues: Catalogues | None = None) -> web.Application:
    catalogues = catalogues or load_catalogues(settings.catalogue_dir)
    reader = Reader(
        partial(connect, settings), settings.clickhouse_database, settings.benchmark_time_zone
    )
    tokens = TokenStore(settings.token_file, settings.token_reload_interval_s)
    plans, close_plans = plan_book_lister(settings)
    app = create_app(Dashboard(settings, catalogues, reader, tokens, plans))

    async def closing(_: web.Application) -> None:
        close_plans()

    app.on_cleanup.append(closing)
    return app


def _address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_context(settings: BenchmarkSettings) -> ssl.SSLContext | None:
    if settings.benchmark_web_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.benchmark_web_tls_cert, settings.benchmark_web_tls_key)
    return context


def serve(settings: BenchmarkSettings) -> None:
    host, port = _address(settings.benchmark_web_address)
    context = tls_context(settings)
    log.info("dashboard listening", address=settings.benchmark_web_address, tls=bool(context))
    web.run_app(build(settings), host=host, port=port, ssl_context=context, print=None)


__all__ = ["build", "create_app", "serve"]
