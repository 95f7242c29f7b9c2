"""Server-side sessions of the dashboard: the cookie carries only a random id (256 bits); who is
signed in, the CSRF token and the expiry stay on the server. A session starts anonymous (the
sign-in form needs a CSRF token too) and gets a new id when someone signs in (no fixation)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pcm_common.auth import Principal

COOKIE = "pcm_sesion"
"""Cookie name; the value is the session id."""


@dataclass
class Session:
    session_id: str
    csrf_token: str
    created_at: float
    last_seen: float
    principal: Principal | None = None
    signed_in_at: float | None = None
    checked_at: float = 0.0
    """When the credential was last found unrevoked in the token store."""
    notice: str = field(default="")
    """A one-time message for the next page (e.g. the session expired)."""

    def csrf_ok(self, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(
            self.csrf_token.encode(), submitted.encode()
        )


class SessionStore:
    """In-memory sessions of one dashboard process (run one replica, or sticky sessions)."""

    def __init__(
        self,
        idle_s: float,
        max_s: float,
        capacity: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_s = idle_s
        self._max_s = max_s
        self._capacity = capacity
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._purge(now)
            if len(self._sessions) >= self._capacity:  # anonymous sessions go first
                oldest = min(
                    self._sessions.values(), key=lambda s: (s.principal is not None, s.last_seen)
                )
                del self._sessions[oldest.session_id]
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> tuple[Session | None, bool]:
        """The live session of the id, and whether a signed-in session just expired."""
        if not session_id:
            return None, False
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None, False
            if self._expired(session, now):
                del self._sessions[session_id]
                return None, session.principal is not None
            session.last_seen = now
            return session, False

    def sign_in(self, anonymous: Session, principal: Principal) -> Session:
        """A fresh session (new id and CSRF token) for ``principal``; the old one ends."""
        self.end(anonymous.session_id)
        session = self.new()
        session.principal = principal
        session.signed_in_at = session.checked_at = session.created_at
        return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def end_all_of(self, token_id: str) -> None:
        """Every session of a credential (it was revoked)."""
        with self._lock:
            for session_id in [
                s.session_id
                for s in self._sessions.values()
                if s.principal is not None and s.principal.token_id == token_id
            ]:
                del self._sessions[session_id]

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        if now - session.last_seen > self._idle_s:
            return True
        return now - session.created_at > self._max_s

    def _purge(self, now: float) -> None:
        for session_id in [s.session_id for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[session_id]
