"""Surveys throughput and outbox latency: responses/s through the real gRPC service into
PostgreSQL (each checked against its collection), and how long a committed response takes to
reach Kafka through the worker's relay (``outbox_service.py``). Each thread's entity declares its
collections first (not timed)."""

from __future__ import annotations

import argparse

from outbox_service import Batch, Service, measure
from pcm.monitoring.v1 import survey_pb2, surveys_service_pb2
from pcm_surveys.client import SurveysClient
from pcm_testkit.events import ago, survey_collection, survey_response

SERVICE = Service(
    title="surveys",
    module="pcm_surveys.cli",
    env_prefix="SURVEYS",
    method="/pcm.monitoring.v1.SurveysService/PushSurveyResponses",
    response=surveys_service_pb2.PushSurveyResponsesResponse,
    domain="survey_response",
    unit="responses",
    # National need: ~2,700 entities times a few hundred responses a day is well under 100/s.
    target=1_000,
    port=50075,
)
ENTITIES = ("RENIEC", "SUNAT", "SUNARP", "ONP")


def make_batches(entity: str, count: int, size: int) -> list[Batch]:
    """Responses to one collection, large enough for all of them; the collection is declared
    by ``declare`` before the timed pushes."""
    collection = survey_collection(
        entity,
        interactions=10**9,
        offered=10**9,
        responses=0,
        period_start=ago(86_400 * 2),
        period_end=ago(60),
    )
    COLLECTIONS.setdefault(entity, []).append(collection)
    batches = []
    for _ in range(count):
        request = surveys_service_pb2.PushSurveyResponsesRequest(
            responses=[
                survey_response(
                    entity, collection_id=collection.collection_id, answered_at=ago(3_600 * 2)
                )
                for _ in range(size)
            ]
        )
        batches.append((request.SerializeToString(), [r.event_id for r in request.responses]))
    return batches


COLLECTIONS: dict[str, list[survey_pb2.SurveyCollection]] = {}


def declare(target: str, tokens: dict[str, str]) -> None:
    for entity, collections in COLLECTIONS.items():
        client = SurveysClient(target, tokens[entity])
        accepted = client.push_survey_collections(collections).accepted
        client.close()
        assert accepted == len(collections), f"{entity}: collections refused"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    return measure(SERVICE, ENTITIES, make_batches, args.seconds, args.batch, declare)


if __name__ == "__main__":
    raise SystemExit(main())
