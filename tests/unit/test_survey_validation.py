"""Survey collections and responses checked one by one: scale bounds, unknown drivers and
stages, the three ways of not answering kept apart from low scores, counts that contradict each
other; free text never echoed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.protobuf.message import Message
from pcm.monitoring.v1 import common_pb2, survey_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.lifecycle import answered
from pcm_common.push import ItemContext, item_errors
from pcm_common.validation import TimeWindow
from pcm_surveys.validation import (
    CollectionRules,
    ResponseRules,
    SurveyCatalogue,
)
from pcm_testkit.events import survey_collection, survey_response

ENTITY = "RENIEC"


@pytest.fixture(scope="module")
def rules(catalogues: Catalogues) -> tuple[CollectionRules, ResponseRules]:
    catalogue = SurveyCatalogue.of(catalogues)
    return CollectionRules(catalogue), ResponseRules(catalogue)


def item() -> ItemContext:
    return ItemContext(ENTITY, TimeWindow(time.time(), 300, 400 * 86_400))


def problems(rule: Any, event: Message) -> set[tuple[str, int]]:
    return {(e.field, e.code) for e in item_errors(event, rule, item())}


def score(
    driver: str, value: int, status: str = "ANSWER_STATUS_UNSPECIFIED"
) -> survey_pb2.DriverScore:
    return survey_pb2.DriverScore(
        driver=driver, score=value, status=survey_pb2.AnswerStatus.Value(status)
    )


def test_a_typical_collection_and_response_pass(
    rules: tuple[CollectionRules, ResponseRules],
) -> None:
    collections, responses = rules
    assert problems(collections, survey_collection(ENTITY)) == set()
    assert problems(responses, survey_response(ENTITY)) == set()


def test_counts_beyond_the_books_bigint_are_out_of_range(
    rules: tuple[CollectionRules, ResponseRules],
) -> None:
    """A uint64 over 2**63 - 1 reached PostgreSQL: "bigint out of range", the whole call
    UNKNOWN (found by tests/abuse)."""
    collections, _ = rules
    huge = survey_collection(ENTITY, interactions=2**64 - 1, offered=2**63, responses=2**63 - 1)
    found = problems(collections, huge)
    assert {f for f, c in found if c == common_pb2.REJECTION_CODE_OUT_OF_RANGE} == {
        "interactions",
        "offered",
    }


def test_collection_counts_stage_mode_and_language(
    rules: tuple[CollectionRules, ResponseRules],
) -> None:
    collections, _ = rules
    bad = survey_collection(
        ENTITY, interactions=100, offered=200, responses=300, stage="NO_SUCH_STAGE"
    )
    bad.ClearField("mode")
    bad.ClearField("language")
    bad.questionnaire_version = ""
    found = {field for field, _ in problems(collections, bad)}
    assert {"offered", "responses", "stage", "mode", "language", "questionnaire_version"} <= found


def test_scale_bounds_and_unknown_drivers(rules: tuple[CollectionRules, ResponseRules]) -> None:
    _, responses = rules
    event = survey_response(
        ENTITY, scores=[score("TIEMPO", 6), score("NO_DRIVER", 3), score("TIEMPO", 2)]
    )
    found = {field for field, _ in problems(responses, event)}
    assert {"scores[0].score", "scores[1].driver", "scores"} <= found


def test_not_asked_skipped_and_does_not_apply_are_distinct_from_low_scores(
    rules: tuple[CollectionRules, ResponseRules],
) -> None:
    _, responses = rules
    kinds = [
        score("TIEMPO", 0, "ANSWER_STATUS_NOT_ASKED"),
        score("INFORMACION", 0, "ANSWER_STATUS_SKIPPED"),
        score("RESULTADO", 0, "ANSWER_STATUS_DOES_NOT_APPLY"),
        score("CONFIANZA", 1, "ANSWER_STATUS_SCORED"),
    ]
    event = survey_response(ENTITY, scores=kinds)
    assert problems(responses, event) == set()
    assert [answered(s) for s in kinds] == [False, False, False, True]
    contradictory = survey_response(ENTITY, scores=[score("TIEMPO", 4, "ANSWER_STATUS_SKIPPED")])
    assert {f for f, _ in problems(responses, contradictory)} == {"scores[0].score"}
    unscored = survey_response(ENTITY, scores=[score("TIEMPO", 0, "ANSWER_STATUS_SCORED")])
    assert {f for f, _ in problems(responses, unscored)} == {"scores[0].score"}


def test_overall_and_comment(rules: tuple[CollectionRules, ResponseRules]) -> None:
    _, responses = rules
    event = survey_response(ENTITY)
    event.overall.CopyFrom(score("TIEMPO", 4))
    secret = "Mi DNI es 45678912 y " + "x" * 2_000
    event.comment = secret
    errors = item_errors(event, responses, item())
    assert {e.field for e in errors} == {"overall.driver", "comment"}
    assert all("45678912" not in e.reason for e in errors)  # free text is never echoed
