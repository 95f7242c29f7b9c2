"""Complaints throughput and outbox latency: transitions/s through the real gRPC service into
PostgreSQL, and how long a committed transition takes to reach Kafka through the worker's relay
(``outbox_service.py``). Each complaint is registered then answered in the same batch.
"""

from __future__ import annotations

import argparse
import uuid

from outbox_service import Batch, Service, measure
from pcm.monitoring.v1 import complaints_service_pb2
from pcm_testkit.events import ago, complaint

SERVICE = Service(
    title="complaints",
    module="pcm_complaints.cli",
    env_prefix="COMPLAINTS",
    method="/pcm.monitoring.v1.ComplaintsService/PushComplaintEvents",
    response=complaints_service_pb2.PushComplaintEventsResponse,
    domain="complaint",
    unit="transitions",
    target=5_000,
    port=50073,
)
ENTITIES = ("RENIEC", "SUNAT", "SUNARP", "ONP")


def make_batches(entity: str, count: int, size: int) -> list[Batch]:
    """Serialized requests and their event ids: ``size / 2`` complaints registered and
    answered, built before timing starts."""
    batches = []
    for _ in range(count):
        request = complaints_service_pb2.PushComplaintEventsRequest()
        for _ in range(size // 2):
            code = f"R-{uuid.uuid4().hex[:16]}"
            registered = complaint(
                entity, complaint_id=code, filed_at=ago(3600), occurred_at=ago(3600)
            )
            answered = complaint(entity, complaint_id=code, stage="ANSWERED", occurred_at=ago(60))
            answered.ClearField("filed_at")
            request.events.extend([registered, answered])
        batches.append((request.SerializeToString(), [e.event_id for e in request.events]))
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    return measure(SERVICE, ENTITIES, make_batches, args.seconds, args.batch)


if __name__ == "__main__":
    raise SystemExit(main())
