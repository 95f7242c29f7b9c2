"""Contracts of the push services, checked from outside through the public APIs only, the way an
entity's developer (or an attacker) uses them. Each of these was once broken:

- an accepted event id keeps its first content, across intake restarts and replicas, and
  whatever the broker redelivers;
- no retryable error after a partial store: an answer never echoes unbounded input;
- invalid timestamps are refused; long procedures are real;
- undecodable requests get INVALID_ARGUMENT with a reason and a metric.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from clickhouse_driver import Client
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pcm.monitoring.v1 import attention_pb2, common_pb2, intake_service_pb2, intake_service_pb2_grpc
from pcm_common.auth import TokenStore
from pcm_common.clickhouse.migrate import migrate
from pcm_common.grpc_server import error_reason
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_testkit import events
from pcm_testkit.kafka import produce
from pcm_testkit.processor import ProcessorProcess, caught_up, free_port, processor_for
from pcm_testkit.waiting import wait_until


@dataclass
class IntakeReplica:
    """`pcm-intake serve` as its own process, as deployed (restartable)."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def target(self) -> str:
        return self.env["PCM_INTAKE_ADDRESS"]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pcm_intake.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(self.target))

        def serving() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            return bool(status == health_pb2.HealthCheckResponse.SERVING)

        wait_until(serving, 60, "intake did not become healthy", ignore=(grpc.RpcError,))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=30) == 0

    def stub(self) -> intake_service_pb2_grpc.IntakeServiceStub:
        return intake_service_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(self.target))

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.env['PCM_INTAKE_METRICS_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())


@dataclass
class Platform:
    settings: Settings
    replicas: list[IntakeReplica]
    processor: ProcessorProcess
    token: str

    def push(
        self, replica: int, batch: list[attention_pb2.AttentionEvent]
    ) -> common_pb2.PushResult:
        request = intake_service_pb2.PushAttentionsRequest(events=batch)
        metadata = (("authorization", f"Bearer {self.token}"),)
        answer = (
            self.replicas[replica].stub().PushAttentions(request, metadata=metadata, timeout=30)
        )
        return answer.result


@pytest.fixture(scope="module")
def platform(
    isolated_settings: Settings, clickhouse: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    migrate(clickhouse, isolated_settings.clickhouse_database)
    folder = tmp_path_factory.mktemp("contracts")
    token = TokenStore(folder / "tokens.json").issue("RENIEC")
    replicas = []
    for name in ("a", "b"):
        env = {
            **os.environ,
            "PCM_TOPIC_PREFIX": isolated_settings.topic_prefix,
            "PCM_CLICKHOUSE_DATABASE": isolated_settings.clickhouse_database,
            "PCM_POSTGRES_DATABASE": isolated_settings.postgres_database,
            "PCM_TOKEN_FILE": str(folder / "tokens.json"),
            "PCM_INTAKE_ADDRESS": f"127.0.0.1:{free_port()}",
            "PCM_INTAKE_METRICS_PORT": str(free_port()),
        }
        replicas.append(IntakeReplica(env, folder / f"intake-{name}.log"))
    with processor_for(isolated_settings, folder) as processor:
        for replica in replicas:
            replica.start()
        try:
            yield Platform(isolated_settings, replicas, processor, token)
        finally:
            for replica in replicas:
                replica.stop()


def stored(platform: Platform, clickhouse: Client, ids: list[str]) -> list[tuple[str, str]]:
    """(event id, channel) of every raw fact row of these events, after merges."""
    db = platform.settings.clickhouse_database
    caught_up(platform.settings, platform.processor)
    clickhouse.execute(f"OPTIMIZE TABLE {db}.attention_events FINAL")
    rows = clickhouse.execute(
        f"SELECT event_id, channel FROM {db}.attention_events WHERE event_id IN %(ids)s",
        {"ids": tuple(ids)},
    )
    return sorted((str(event_id), str(channel)) for event_id, channel in rows)


def test_a_resend_after_a_restart_or_to_another_replica_is_a_duplicate(
    platform: Platform, clickhouse: Client
) -> None:
    batch = [events.attention() for _ in range(20)]
    assert platform.push(0, batch).accepted == 20
    platform.replicas[0].stop()
    platform.replicas[0].start()
    changed = []
    for event in batch:
        copy = attention_pb2.AttentionEvent()
        copy.CopyFrom(event)
        copy.channel = "VIRTUAL"
        changed.append(copy)
    for replica in (0, 1):  # the restarted one, and the other replica
        again = platform.push(replica, changed)
        assert (again.accepted, list(again.duplicate_indexes)) == (0, list(range(20)))
    ids = [event.event_id for event in batch]
    assert stored(platform, clickhouse, ids) == sorted((i, "PRESENCIAL") for i in ids)


def test_the_processor_keeps_the_first_copy_whatever_the_broker_delivers(
    platform: Platform, clickhouse: Client
) -> None:
    """Two messages with one event id (a producer writing to Kafka directly): the first wins,
    in the stored facts and in the KPIs."""
    first = events.attention(channel="PRESENCIAL")
    later = attention_pb2.AttentionEvent()
    later.CopyFrom(first)
    later.channel = "VIRTUAL"
    topic = topic_for_domain("attention").name(platform.settings.topic_prefix)
    produce(
        platform.settings.kafka_bootstrap,
        topic,
        [(b"RENIEC", events.enveloped(e).SerializeToString()) for e in (first, later, first)],
    )
    assert stored(platform, clickhouse, [first.event_id]) == [(first.event_id, "PRESENCIAL")]
    db = platform.settings.clickhouse_database
    channels = clickhouse.execute(
        f"SELECT DISTINCT channel FROM {db}.kpi_values FINAL WHERE entity_id = 'RENIEC' "
        "AND kpi_code = 'ATTENTIONS' AND channel != '' AND value > 0"
    )
    assert ("VIRTUAL",) not in channels


def test_one_huge_refused_item_costs_nothing_beside_it_and_the_answer_stays_small(
    platform: Platform, clickhouse: Client
) -> None:
    huge = "Ñ" * 400_000
    valid = [events.attention(), events.attention()]
    bad = events.attention(event_id=huge, channel=huge, service_id=huge, office_id=huge)
    result = platform.push(1, [valid[0], bad, valid[1]])
    assert result.accepted == 2
    assert {rejection.index for rejection in result.rejections} == {1}
    assert result.ByteSize() < 4_000
    ids = [event.event_id for event in valid]
    assert stored(platform, clickhouse, ids) == sorted((i, "PRESENCIAL") for i in ids)


@pytest.mark.parametrize("nanos", [-1, 2_000_000_000])
def test_invalid_timestamps_are_refused(platform: Platform, nanos: int) -> None:
    called = events.ago(600)
    event = events.attention(called_at=Timestamp(seconds=called.seconds, nanos=nanos))
    result = platform.push(0, [event])
    assert result.accepted == 0
    assert [(r.field, r.code) for r in result.rejections] == [
        ("called_at", common_pb2.REJECTION_CODE_INVALID_FORMAT)
    ]


def test_a_procedure_filed_420_days_ago_can_be_resolved_today(platform: Platform) -> None:
    resolved = events.procedure_stage(filed_at=events.ago(420 * 86_400), occurred_at=events.ago(60))
    request = intake_service_pb2.PushProcedureStagesRequest(events=[resolved])
    metadata = (("authorization", f"Bearer {platform.token}"),)
    answer = platform.replicas[0].stub().PushProcedureStages(request, metadata=metadata, timeout=30)
    assert answer.result.accepted == 1, answer.result.rejections


def test_undecodable_requests_are_invalid_argument_with_a_reason_and_a_metric(
    platform: Platform,
) -> None:
    replica = platform.replicas[1]
    raw = grpc.insecure_channel(replica.target).unary_unary(
        "/pcm.monitoring.v1.IntakeService/PushAttentions",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.RpcError) as refused:
        raw(b"\x0a\xff\xff", metadata=(("authorization", f"Bearer {platform.token}"),), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(refused.value) == "ERROR_REASON_UNDECODABLE_REQUEST"
    assert "pcm_intake_undecodable_requests_total{" in replica.metrics()
