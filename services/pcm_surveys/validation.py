"""Validation of one survey collection or one survey response on its own (pure: no I/O).

What depends on other items (a response for an unknown collection or outside its period, more
responses than people offered) is the service's store's to check, in its transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pcm.monitoring.v1 import survey_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.lifecycle import UNANSWERED
from pcm_common.push import ItemContext
from pcm_common.validation import (
    INCONSISTENT,
    OUT_OF_RANGE,
    REQUIRED,
    TOO_LONG,
    FieldError,
    check_chronology,
    check_code,
    check_id,
    check_optional_text,
    check_time,
)

MAX_COMMENT = 2_000
MAX_COUNT = 2**63 - 1
"""The most people a collection may count (PostgreSQL bigint)."""
_STATUS = survey_pb2.AnswerStatus
_MODES = frozenset(survey_pb2.SurveyMode.values()) - {survey_pb2.SURVEY_MODE_UNSPECIFIED}
_LANGUAGES = frozenset(survey_pb2.SurveyLanguage.values()) - {
    survey_pb2.SURVEY_LANGUAGE_UNSPECIFIED
}


@dataclass(frozen=True)
class SurveyCatalogue:
    """What validation needs from the catalogues, indexed once."""

    channels: frozenset[str]
    stages: frozenset[str]
    drivers: frozenset[str]
    scale: tuple[int, int]
    services: dict[str, frozenset[str]]

    @classmethod
    def of(cls, catalogues: Catalogues) -> SurveyCatalogue:
        return cls(
            channels=frozenset(c.code for c in catalogues.channels),
            stages=frozenset(s.code for s in catalogues.journey_stages),
            drivers=frozenset(d.code for d in catalogues.drivers),
            scale=(catalogues.likert.min, catalogues.likert.max),
            services=catalogues.offered_service_ids(),
        )


@dataclass(frozen=True)
class CollectionRules:
    catalogue: SurveyCatalogue

    def __call__(self, event: survey_pb2.SurveyCollection, item: ItemContext) -> list[FieldError]:
        catalogue = self.catalogue
        services = catalogue.services.get(item.entity_id, frozenset())
        errors = [
            *check_id(event.collection_id, "collection_id"),
            *check_code(event.service_id, "service_id", services, "service"),
            *check_code(event.channel, "channel", catalogue.channels, "channel"),
            *check_code(event.stage, "stage", catalogue.stages, "journey stage"),
            *check_time(event, "period_start", item.window.any_past(), required=True),
            *check_time(event, "period_end", item.window, required=True),
            *check_chronology(event, ("period_start", "period_end")),
            *check_optional_text(event.questionnaire_version, "questionnaire_version"),
        ]
        if not event.questionnaire_version:
            errors.append(FieldError("questionnaire_version", "required", REQUIRED))
        if event.mode not in _MODES:
            errors.append(FieldError("mode", "required (IN_PERSON, PHONE, WEB, SMS)", REQUIRED))
        if event.language not in _LANGUAGES:
            errors.append(
                FieldError("language", "required (SPANISH, QUECHUA, AYMARA, OTHER)", REQUIRED)
            )
        for field in ("interactions", "offered", "responses"):
            count = getattr(event, field)
            if count > MAX_COUNT:  # the book's bigint (a uint64 beyond it ended the call UNKNOWN)
                errors.append(FieldError(field, f"{count} is over {MAX_COUNT:,}", OUT_OF_RANGE))
        if event.offered > event.interactions:
            errors.append(
                FieldError(
                    "offered",
                    f"{event.offered} people offered the survey, more than the "
                    f"{event.interactions} interactions of the period",
                    INCONSISTENT,
                )
            )
        if event.responses > event.offered:
            errors.append(
                FieldError(
                    "responses",
                    f"{event.responses} responses, more than the {event.offered} people offered",
                    INCONSISTENT,
                )
            )
        return errors


@dataclass(frozen=True)
class ResponseRules:
    catalogue: SurveyCatalogue

    def __call__(self, event: survey_pb2.SurveyResponse, item: ItemContext) -> list[FieldError]:
        errors = [
            *check_id(event.collection_id, "collection_id"),
            *check_id(event.response_id, "response_id"),
            *check_time(event, "answered_at", item.window, required=True),
        ]
        if event.channel:
            errors += check_code(event.channel, "channel", self.catalogue.channels, "channel")
        if len(event.comment) > MAX_COMMENT:
            # Never echo free text: it may hold personal data.
            errors.append(FieldError("comment", f"at most {MAX_COMMENT} characters", TOO_LONG))
        if not event.scores and not event.HasField("overall"):
            errors.append(
                FieldError("scores", "at least one driver or the overall score", REQUIRED)
            )
        repeated = [d for d, n in Counter(s.driver for s in event.scores).items() if n > 1]
        for driver in repeated:
            errors.append(FieldError("scores", f"driver {driver!r} answered twice", INCONSISTENT))
        for number, score in enumerate(event.scores):
            where = f"scores[{number}]"
            errors += check_code(score.driver, f"{where}.driver", self.catalogue.drivers, "driver")
            errors += self._answer(score, where)
        if event.HasField("overall"):
            if event.overall.driver:
                errors.append(
                    FieldError("overall.driver", "leave empty: overall is no driver", INCONSISTENT)
                )
            errors += self._answer(event.overall, "overall")
        return errors

    def _answer(self, score: survey_pb2.DriverScore, where: str) -> list[FieldError]:
        low, high = self.catalogue.scale
        if score.status in UNANSWERED:
            if score.score:
                return [
                    FieldError(
                        f"{where}.score",
                        f"0 with {survey_pb2.AnswerStatus.Name(score.status)}, got {score.score}",
                        INCONSISTENT,
                    )
                ]
            return []
        scored = score.status == _STATUS.ANSWER_STATUS_SCORED
        if score.score == 0 and not scored:
            return []  # an older client's skipped question
        if not low <= score.score <= high:
            return [
                FieldError(
                    f"{where}.score", f"{score.score} is outside {low}..{high}", OUT_OF_RANGE
                )
            ]
        return []
