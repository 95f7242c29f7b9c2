"""Every route of the dashboard (listed from the aiohttp app's router, so a new page is fuzzed
without new test code) with random paths, query strings, form bodies, cookies and origins, with
and without a session, the CSRF token missing or wrong; and raw bytes that are not HTTP at all.

After every request: no 5xx, and a 4xx has a body. An entity's session never gets a 200 for
another entity's page nor for a national page. After every test: nothing changed in any store
(the dashboard writes nothing), ``/salud`` answers 200 and every gRPC service is SERVING.
"""

from __future__ import annotations

import asyncio
import queue
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.web.app import Dashboard, create_app
from pcm_benchmark.web.data import Reader
from pcm_benchmark.web.plans import plan_book_lister
from pcm_benchmark.web.sessions import COOKIE
from pcm_common.auth import TokenStore
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect

from tests.abuse.conftest import profile
from tests.abuse.platform import ATTACKER, Platform
from tests.abuse.strategies import DANGEROUS_TEXT

QUERY_KEYS = (
    "periodo",
    "descargar",
    "estandar",
    "grupo",
    "region",
    "sector",
    "gobierno",
    "expirada",
    "salida",
)
PERIODS = ("2026-11", "2026-T4", "2026", "2026-T5", "2026-00", "0000-01", "9999-12", "99999")
METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO")


def routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route; a static folder as ``<prefix>/{filename}``."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path") or f"{info['prefix']}/{{filename}}"
        found.append((route.method, template))
    return sorted(set(found))


def _app_for_listing() -> web.Application:
    """The app with no store behind it: only its router is read (at collection)."""
    reader = Reader(lambda: None, "unused", "America/Lima")  # never connects: never read
    tokens = TokenStore(Path("/nonexistent/tokens.json"))
    return create_app(Dashboard(BenchmarkSettings(), load_catalogues(), reader, tokens))


ROUTES = routes(_app_for_listing())


@dataclass(frozen=True)
class Reply:
    status: int
    headers: str
    body: bytes


@dataclass(repr=False)
class Site:
    port: int
    cookies: dict[str, str]
    """Session cookie by who holds it: national, entity (the attacker), ended (signed out)."""
    csrf: dict[str, str]
    platform: Platform

    def send(self, raw: bytes, end: bool = False) -> Reply:
        """Send bytes as they are; the reply parsed (status 0: the server closed without one).
        ``end``: say that nothing more comes (else a server may wait for the rest of a
        request cut short)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as conn:
            conn.sendall(raw)
            if end:
                conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        return Reply(int(match.group(1)) if match else 0, head.decode("latin-1"), body)

    def __repr__(self) -> str:
        return f"Site(port={self.port})"

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        return self.send("\r\n".join(lines).encode("utf-8", "surrogateescape") + body)

    def sign_in(self, token: str) -> tuple[str, str]:
        """A signed-in session's (cookie, CSRF token), through the sign-in form."""
        form = self.request("GET", "/entrar")
        cookie = re.search(rf"{COOKIE}=([^;]+)", form.headers)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', form.body)
        assert cookie and csrf, form
        answer = self.request(
            "POST",
            "/entrar",
            {
                "Cookie": f"{COOKIE}={cookie.group(1)}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urlencode({"csrf": csrf.group(1).decode(), "token": token}).encode(),
        )
        assert answer.status == 303, answer
        fresh = re.search(rf"{COOKIE}=([^;]+)", answer.headers)
        assert fresh, answer
        page = self.request("GET", "/entrar", {"Cookie": f"{COOKIE}={fresh.group(1)}"})
        assert page.status == 303  # signed in: sent home
        home = self.request("GET", "/", {"Cookie": f"{COOKIE}={fresh.group(1)}"})
        location = re.search(r"Location: (\S+)", home.headers)
        assert location, home
        signed = self.request("GET", location.group(1), {"Cookie": f"{COOKIE}={fresh.group(1)}"})
        found = re.search(rb'name="csrf" value="([^"]+)"', signed.body)
        assert found, signed
        return fresh.group(1), found.group(1).decode()


@contextmanager
def serving(app: web.Application) -> Iterator[int]:
    """The app on a free loopback port, in a thread of its own with its event loop."""
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
        yield ready.get(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.fixture(scope="module")
def site(platform: Platform, catalogues: Catalogues) -> Iterator[Site]:
    settings = platform.benchmark_settings
    reader = Reader(
        lambda: connect(settings), settings.clickhouse_database, settings.benchmark_time_zone
    )
    plans, close_plans = plan_book_lister(settings)
    app = create_app(Dashboard(settings, catalogues, reader, platform.token_store, plans))
    try:
        with serving(app) as port:
            running = Site(port, {}, {}, platform)
            for who, token in (
                ("national", "national"),
                ("entity", "attacker"),
                ("ended", "victim"),
            ):
                running.cookies[who], running.csrf[who] = running.sign_in(platform.tokens[token])
            ended = running.request(
                "POST",
                "/salir",
                {
                    "Cookie": f"{COOKIE}={running.cookies['ended']}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                urlencode({"csrf": running.csrf["ended"]}).encode(),
            )
            assert ended.status == 303, ended
            yield running
    finally:
        close_plans()


# --- strategies -------------------------------------------------------------------------------

ASCII_TEXT = [t for t in DANGEROUS_TEXT if len(t) < 6_000]


def segments(site: Site) -> st.SearchStrategy[str]:
    """A path segment: ids and codes the attacker knows, dangerous text, percent-encoded or raw
    (traversal, encoded NUL and slashes, broken escapes)."""
    known = site.platform.known_ids() + site.platform.known_codes() + ["style.css"]
    words = st.one_of(st.sampled_from(known), st.sampled_from(ASCII_TEXT), st.text(max_size=16))
    return st.one_of(
        words.map(lambda w: quote(w, safe="")),
        st.sampled_from(
            ["..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "%ff%fe", "%", "%zz", "a" * 5_000]
        ),
    )


def query_strings(site: Site) -> st.SearchStrategy[str]:
    values = st.one_of(
        st.sampled_from(PERIODS),
        st.sampled_from(site.platform.known_codes() + site.platform.known_ids()),
        st.sampled_from(ASCII_TEXT),
        st.text(max_size=16),
    )
    pairs = st.lists(
        st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=8), values), max_size=4
    )
    return st.one_of(
        st.just(""),
        pairs.map(lambda p: "?" + urlencode(p)),
        st.sampled_from(["?", "?&&&", "?=", "?periodo", "?periodo=%", "?periodo=%zz", "?a=%00"]),
        st.just("?" + "periodo=2026&" * 500),
    )


def cookies(site: Site) -> st.SearchStrategy[str | None]:
    own = [f"{COOKIE}={c}" for c in site.cookies.values()]
    return st.one_of(
        st.none(),
        st.sampled_from(own),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
            lambda v: f"{COOKIE}={v}"
        ),
        st.sampled_from(
            [f"{COOKIE}=", f"{COOKIE}={'a' * 8_000}", "a=b; c", ";;;", f'{COOKIE}="\\x"']
        ),
    )


def forms(site: Site) -> st.SearchStrategy[tuple[str | None, bytes]]:
    """(content type, body) of a POST: forms with the CSRF token missing, wrong or another
    session's and tokens that do not sign in; broken multipart; random bytes."""
    tokens = site.platform.tokens
    csrf = st.one_of(
        st.none(),
        st.sampled_from(["", "x", "a" * 5_000, site.csrf["ended"], site.csrf["national"]]),
        st.text(max_size=20),
    )
    token = st.one_of(
        st.none(),
        st.sampled_from(
            [tokens["revoked"], tokens["unknown"], tokens["operator"], "pcm__", "x" * 70_000]
        ),
        st.text(max_size=20),
    )

    def form(fields: tuple[str | None, str | None, list[tuple[str, str]]]) -> bytes:
        chosen = [("csrf", fields[0]), ("token", fields[1]), *fields[2]]
        return urlencode([(k, v) for k, v in chosen if v is not None]).encode()

    urlencoded = st.tuples(
        csrf, token, st.lists(st.tuples(st.text(max_size=6), st.text(max_size=10)), max_size=2)
    ).map(form)
    return st.one_of(
        st.tuples(st.just("application/x-www-form-urlencoded"), urlencoded),
        st.tuples(st.just("multipart/form-data; boundary=x"), st.binary(max_size=200)),
        st.tuples(
            st.just("multipart/form-data; boundary=x"),
            st.just(b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nabc\r\n--x'),
        ),
        st.tuples(
            st.sampled_from([None, "text/plain", "application/json", "multipart/form-data", "x/y"]),
            st.binary(max_size=200),
        ),
        st.tuples(st.just("application/x-www-form-urlencoded"), st.just(b"a=" + b"b" * 70_000)),
    )


def origins(site: Site) -> st.SearchStrategy[str | None]:
    return st.sampled_from(
        [None, None, f"http://127.0.0.1:{site.port}", "null", "https://evil.example", "x", ""]
    )


def check(site: Site, method: str, target: str, cookie: str | None, reply: Reply) -> None:
    where = f"{method} {target[:200]!r} (cookie {str(cookie)[:40]!r}) answered {reply.status}"
    assert 200 <= reply.status < 500, f"{where}: {reply.body[:300]!r}"
    if reply.status >= 400 and method != "HEAD":
        assert reply.body.strip(), f"{where} without a body"
    if reply.status == 200 and cookie == f"{COOKIE}={site.cookies['entity']}":
        path = unquote(target.split("?")[0])
        national = path.startswith(("/nacional", "/estandar"))
        foreign = path.startswith("/entidad/") and path != f"/entidad/{ATTACKER}"
        assert not (national or foreign), f"{where}: an entity's session saw {path}"


# --- tests ------------------------------------------------------------------------------------


def test_every_route_is_listed_and_fuzzed(site: Site) -> None:
    paths = {template for _, template in ROUTES}
    assert {"/", "/salud", "/entrar", "/salir", "/nacional"} <= paths
    assert any("{" in p for p in paths) and any(p.startswith("/static/") for p in paths)
    served = routes(_app_for_listing())
    assert served == ROUTES  # the parametrization is the router's, whatever it holds


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {t}" for m, t in ROUTES])
def test_requests_to_each_route(site: Site, method: str, template: str) -> None:
    before = site.platform.settle()
    fill = re.compile(r"\{[^}]+\}")

    @profile()
    @given(
        data=st.data(),
        verb=st.one_of(st.just(method), st.sampled_from(METHODS)),
        query=query_strings(site),
        cookie=cookies(site),
        origin=origins(site),
        form=forms(site),
    )
    def fuzz(
        data: st.DataObject,
        verb: str,
        query: str,
        cookie: str | None,
        origin: str | None,
        form: tuple[str | None, bytes],
    ) -> None:
        path = fill.sub(lambda _: data.draw(segments(site)), template)
        headers = {k: v for k, v in (("Cookie", cookie), ("Origin", origin)) if v is not None}
        body = b""
        if verb in ("POST", "PUT", "PATCH"):
            content_type, body = form
            if content_type is not None:
                headers["Content-Type"] = content_type
        reply = site.request(verb, path + query, headers, body)
        check(site, verb, path + query, cookie, reply)

    fuzz()
    assert site.request("GET", "/salud").status == 200
    change = site.platform.changes(before)
    assert not change.everything(), f"the dashboard changed the stores: {change.everything()}"


@profile()
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                b"GET\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n",
                b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
                b"POST /entrar HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                b"POST /entrar HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /entidad/%C0%AE%C0%AE HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
        ),
    )
)
def _garbage(site: Site, raw: bytes) -> None:
    reply = site.send(raw + b"\r\n\r\n", end=True)
    assert reply.status == 0 or 200 <= reply.status < 500, (
        raw[:200],
        reply.status,
        reply.body[:200],
    )


def test_bytes_that_are_not_http(site: Site) -> None:
    _garbage(site)
    assert site.request("GET", "/salud").status == 200


def test_sessions_and_forms_after_the_fuzz(site: Site) -> None:
    """The fuzz signed nobody in or out: the sessions still work, the ended one stays ended."""
    national = site.request("GET", "/nacional", {"Cookie": f"{COOKIE}={site.cookies['national']}"})
    assert national.status == 200
    own = f"/entidad/{ATTACKER}"
    entity = site.request("GET", own, {"Cookie": f"{COOKIE}={site.cookies['entity']}"})
    assert entity.status == 200
    ended = site.request("GET", "/nacional", {"Cookie": f"{COOKIE}={site.cookies['ended']}"})
    assert ended.status == 303
