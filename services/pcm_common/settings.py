"""Settings from environment variables (prefix ``PCM_``), each with a documented default.

One ``Settings`` object is built by each entrypoint (the composition root) and passed down; no
module reads the environment by itself. ``PCM_ENV`` names the deployment profile; defaults fit
the local loopback stack (`make stack-up`). Secrets (token pepper, ClickHouse password) have no
default value in the repository: they come from the environment or a mounted secret file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class Settings(BaseSettings):
    """Every knob shared by the services; each service adds its own in a subclass."""

    model_config = SettingsConfigDict(
        env_prefix="PCM_", secrets_dir=None, extra="ignore", frozen=True
    )

    env: Environment = Field(Environment.DEV, description="Deployment profile: dev, test, prod.")
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool = Field(False, description="JSON log lines (for log shippers) instead of text.")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates test runs sharing one broker)."
    )
    kafka_replication_factor: int = Field(
        1, description="Replication factor of topics created at start (3 on a real cluster)."
    )
    kafka_request_timeout_ms: int = Field(
        10_000, description="How long a produce may wait for the broker's ack before failing."
    )

    clickhouse_host: str = Field("127.0.0.1", description="ClickHouse host (native protocol).")
    clickhouse_port: int = Field(9000, description="ClickHouse native port.")
    clickhouse_user: str = Field("default", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(
        SecretStr(""), description="ClickHouse password (secret; empty on the loopback stack)."
    )
    clickhouse_database: str = Field("pcm", description="ClickHouse database of the platform.")

    postgres_host: str = Field(
        "127.0.0.1", description="PostgreSQL host (transactional state, e.g. the event-id ledger)."
    )
    postgres_port: int = Field(5432, description="PostgreSQL port.")
    postgres_user: str = Field("pcm", description="PostgreSQL role of the platform.")
    postgres_database: str = Field("pcm", description="PostgreSQL database of the platform.")
    postgres_password: SecretStr = Field(
        SecretStr(""),
        description="PostgreSQL password (secret); when empty, read from postgres_password_file.",
    )
    postgres_password_file: Path | None = Field(
        Path(".stack/secrets/postgres_password"),
        description="File holding the PostgreSQL password (written by the local stack; a mounted "
        "secret in production); read only when postgres_password is empty and the file exists.",
    )

    catalogue_dir: Path | None = Field(
        None, description="Folder of the catalogues; default: the repository's catalogues/."
    )
    token_file: Path = Field(
        Path(".stack/secrets/tokens.json"),
        description="Token store (hashes only); a mounted secret in production.",
    )
    token_reload_interval_s: float = Field(
        1.0, description="How often services look for token-store changes (revocations)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the /metrics endpoint binds.")

    push_ledger: Literal["postgres", "memory"] = Field(
        "postgres",
        description="Where push services remember accepted event ids: postgres (across restarts "
        "and replicas) or memory (this replica's recent ids only: a resend after a restart or "
        "to another replica is stored once but answered 'accepted').",
    )
    push_claim_lease_s: float = Field(
        60.0,
        description="How long an unconfirmed claim on an event id (its call is producing) makes "
        "a resend 'in progress'; longer than a produce can take (kafka_request_timeout_ms).",
    )

    def postgres_password_value(self) -> SecretStr:
        """The PostgreSQL password: the setting if set, else the password file's content."""
        if self.postgres_password.get_secret_value():
            return self.postgres_password
        path = self.postgres_password_file
        if path is not None and path.is_file():
            # A secret created from a file often ends with a newline that is not part of it.
            return SecretStr(path.read_text().rstrip("\r\n"))
        return SecretStr("")


def load_settings() -> Settings:
    return Settings()
