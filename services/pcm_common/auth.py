"""Bearer-token authentication shared by every gRPC service.

Tokens look like ``pcm_<token id>_<secret>``. Only a SHA-256 hash of the secret is stored (the
secret has 256 bits of entropy, so a slow hash adds nothing; GitHub stores its tokens the same
way). The store is a JSON file (a mounted Kubernetes Secret in production) that the admin CLI
`pcm-tokens` edits atomically; services reload it when it changes, so a revocation takes effect
within `reload_interval_s` on every replica without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

TOKEN_PREFIX = "pcm"


class Role(StrEnum):
    ENTITY = "entity"
    """A public entity's system: pushes and reads its own entity's data only."""
    NATIONAL = "national"
    """The oversight body (PCM, Secretaría de Gestión Pública): reads every entity's data,
    writes none of their events."""
    OPERATOR = "operator"
    """The platform's operations team: health and operations endpoints, no entity data."""


ROLE_HOLDERS = {Role.NATIONAL: "PCM-SGP", Role.OPERATOR: "OPERATIONS"}
"""Who holds the credentials of the roles that are not an entity's (their ``entity_id``)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the isolation boundary every handler enforces."""

    token_id: str
    entity_id: str
    role: Role


class Access(StrEnum):
    """What a call wants to do with an entity's data."""

    WRITE_EVENTS = "write_events"
    READ = "read"
    REVIEW = "review"
    """The oversight body's verdict on what an entity reported (verify or reject)."""


class Denial(StrEnum):
    """Why ``authorize`` refused; the values are the ``ErrorReason`` names clients receive."""

    ROLE_NOT_ALLOWED = "ERROR_REASON_ROLE_NOT_ALLOWED"
    FOREIGN_ENTITY = "ERROR_REASON_FOREIGN_ENTITY"


def authorize(principal: Principal, access: Access, entity_id: str) -> Denial | None:
    """The one rule every read and write path applies; None means allowed.

    An entity writes and reads only its own data and reviews nothing; the national role reads
    and reviews every entity's and writes none of their events; the operator role touches no
    entity's data.
    """
    if principal.role is Role.ENTITY and access is not Access.REVIEW:
        return None if entity_id == principal.entity_id else Denial.FOREIGN_ENTITY
    if principal.role is Role.NATIONAL and access in (Access.READ, Access.REVIEW):
        return None
    return Denial.ROLE_NOT_ALLOWED


def denial_message(principal: Principal, access: Access, denial: Denial) -> str:
    action = access.value.replace("_", " ")
    if denial is Denial.FOREIGN_ENTITY:
        return f"this credential is {principal.entity_id!r}'s: it may not {action} of others"
    return f"a {principal.role.value} credential may not {action} of entities"


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    entity_id: str
    role: str
    secret_sha256: str
    label: str
    created_at: str
    revoked_at: str | None = None


class AuthFailure(StrEnum):
    """Why a credential was refused; the values are the ``ErrorReason`` names clients receive."""

    MISSING = "ERROR_REASON_TOKEN_MISSING"
    MALFORMED = "ERROR_REASON_TOKEN_MALFORMED"
    UNKNOWN = "ERROR_REASON_TOKEN_UNKNOWN"
    REVOKED = "ERROR_REASON_TOKEN_REVOKED"


class AuthError(Exception):
    """The call carries no valid credential. The message never echoes the token."""

    def __init__(self, failure: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_bearer(authorization: str | None) -> tuple[str, str]:
    """Split 'Bearer pcm_<id>_<secret>' into (token id, secret)."""
    if not authorization:
        raise AuthError(
            AuthFailure.MISSING, "missing authorization metadata (expected 'Bearer <token>')"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError(AuthFailure.MALFORMED, "authorization must be 'Bearer <token>'")
    prefix, _, rest = token.strip().partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not token_id or not secret:
        raise AuthError(AuthFailure.MALFORMED, "malformed token")
    return token_id, secret


class TokenStore:
    """The token file: read by services, written by the admin CLI."""

    def __init__(self, path: Path, reload_interval_s: float = 1.0) -> None:
        self.path = path
        self._reload_interval_s = reload_interval_s
        self._records: dict[str, TokenRecord] = {}
        self._loaded_mtime: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # --- reading (services) -------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        token_id, secret = parse_bearer(authorization)
        record = self._current().get(token_id)
        if record is None or not hmac.compare_digest(record.secret_sha256, hash_secret(secret)):
            raise AuthError(AuthFailure.UNKNOWN, "unknown token")
        if record.revoked_at is not None:
            raise AuthError(AuthFailure.REVOKED, "revoked token")
        return Principal(record.token_id, record.entity_id, Role(record.role))

    def _current(self) -> dict[str, TokenRecord]:
        if time.monotonic() - self._checked_at >= self._reload_interval_s:
            with self._lock:
                mtime = self.path.stat().st_mtime_ns if self.path.exists() else None
                if mtime != self._loaded_mtime:
                    self._records = {r.token_id: r for r in self.read()}
                    self._loaded_mtime = mtime
                # Only now: a concurrent caller must not skip the check before records exist.
                self._checked_at = time.monotonic()
        return self._records

    def read(self) -> list[TokenRecord]:
        if not self.path.exists():
            return []
        raw = json.loads(self.path.read_text())
        return [TokenRecord(**item) for item in raw["tokens"]]

    # --- writing (admin CLI) ------------------------------------------------------------------
    def issue(self, entity_id: str, role: Role = Role.ENTITY, label: str = "") -> str:
        """Create a token and return it in clear: the only time it is ever shown."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(
            token_id=token_id,
            entity_id=entity_id,
            role=role.value,
            secret_sha256=hash_secret(secret),
            label=label,
            created_at=_now_iso(),
        )
        self._write([*self.read(), record])
        return f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def revoke(self, token_id: str) -> TokenRecord:
        records = self.read()
        matches = [r for r in records if r.token_id == token_id]
        if not matches:
            raise KeyError(f"no token with id {token_id!r}")
        revoked = replace(matches[0], revoked_at=matches[0].revoked_at or _now_iso())
        self._write([revoked if r.token_id == token_id else r for r in records])
        return revoked

    def _write(self, records: list[TokenRecord]) -> None:
        """Atomic replace (write + rename) so a reader never sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"tokens": [asdict(r) for r in records]}, indent=2)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        with os.fdopen(handle, "w") as file:
            file.write(payload)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
