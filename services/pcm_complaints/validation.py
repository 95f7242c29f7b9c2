"""Validation of one pushed complaint event on its own (pure: no I/O).

What depends on the complaint's current state (may this stage follow the last one?) is checked
by the complaint book inside its transaction (``book.py``, ``lifecycle.refusal``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pcm.monitoring.v1 import complaint_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.push import ItemContext
from pcm_common.validation import (
    INCONSISTENT,
    INVALID_FORMAT,
    OUT_OF_RANGE,
    REQUIRED,
    FieldError,
    check_code,
    check_id,
    check_optional_text,
    check_time,
    timestamp_problem,
)

from pcm_complaints import lifecycle

_HMAC_HEX = re.compile(r"^[0-9a-f]{64}$")
_REDIRECT = complaint_pb2.ComplaintRedirect
_REDIRECTS = frozenset(_REDIRECT.values()) - {_REDIRECT.COMPLAINT_REDIRECT_UNSPECIFIED}


@dataclass(frozen=True)
class ComplaintCatalogue:
    """What validation needs from the catalogues, indexed once."""

    catalogues: Catalogues
    channels: frozenset[str]
    drivers: frozenset[str]
    entities: frozenset[str]
    services: dict[str, frozenset[str]]

    @classmethod
    def of(cls, catalogues: Catalogues) -> ComplaintCatalogue:
        return cls(
            catalogues,
            channels=frozenset(c.code for c in catalogues.channels),
            drivers=frozenset(d.code for d in catalogues.drivers),
            entities=frozenset(e.entity_id for e in catalogues.entities),
            services=catalogues.offered_service_ids(),
        )


@dataclass(frozen=True)
class ComplaintRules:
    catalogue: ComplaintCatalogue

    def __call__(self, event: complaint_pb2.ComplaintEvent, item: ItemContext) -> list[FieldError]:
        window = item.window
        stage = lifecycle.stage_name(event.stage)
        opening = stage in lifecycle.OPENING
        errors = [
            *check_id(event.complaint_id, "complaint_id"),
            *check_time(event, "occurred_at", window, required=True),
            # A complaint may be pushed long after its filing (a book imported late): only the
            # stage's own time is bounded in age.
            *check_time(event, "filed_at", window.any_past(), required=opening),
            *self._stage(stage),
            *self._codes(event, item.entity_id),
            *self._complainant(event.complainant_hash),
            *self._stage_fields(event, stage, item.entity_id),
        ]
        if opening and not errors:
            errors += self._term(event, item.entity_id)
        elif not opening and event.legal_term_business_days:
            errors.append(
                FieldError(
                    "legal_term_business_days",
                    "a term override may only be given with the registration",
                    INCONSISTENT,
                )
            )
        if (
            event.HasField("filed_at")
            and event.HasField("occurred_at")
            # An invalid instant is refused above; protobuf would raise converting it.
            and timestamp_problem(event.filed_at) is None
            and timestamp_problem(event.occurred_at) is None
            and event.occurred_at.ToNanoseconds() < event.filed_at.ToNanoseconds()
        ):
            errors.append(FieldError("occurred_at", "before filed_at", INCONSISTENT))
        return errors

    @staticmethod
    def _stage(stage: str) -> list[FieldError]:
        if stage == lifecycle.OVERDUE:
            return [
                FieldError("stage", "OVERDUE is set by the platform, never pushed", INCONSISTENT)
            ]
        if stage not in lifecycle.PUSHABLE:
            return [FieldError("stage", "required (REGISTERED, ANSWERED, ..., ARCHIVED)", REQUIRED)]
        return []

    def _codes(self, event: complaint_pb2.ComplaintEvent, entity_id: str) -> list[FieldError]:
        catalogue = self.catalogue
        errors = [
            *check_optional_text(event.category, "category"),
        ]
        if event.channel:
            errors += check_code(event.channel, "channel", catalogue.channels, "channel")
        if event.service_id:
            services = catalogue.services.get(entity_id, frozenset())
            errors += check_code(event.service_id, "service_id", services, "service")
        if event.driver:
            errors += check_code(event.driver, "driver", catalogue.drivers, "driver")
        return errors

    @staticmethod
    def _complainant(value: str) -> list[FieldError]:
        if value and not _HMAC_HEX.match(value):
            # Never echo the value: it may be an ID number sent by mistake.
            return [
                FieldError(
                    "complainant_hash",
                    "must be an HMAC-SHA256 in 64 lowercase hex characters (keyed by the "
                    "entity); personal data never leaves the entity",
                    INVALID_FORMAT,
                )
            ]
        return []

    def _stage_fields(
        self, event: complaint_pb2.ComplaintEvent, stage: str, entity_id: str
    ) -> list[FieldError]:
        errors = []
        if stage == lifecycle.NOT_A_RECLAMO and event.redirected_as not in _REDIRECTS:
            errors.append(
                FieldError(
                    "redirected_as",
                    "required with NOT_A_RECLAMO (QUEJA, ENQUIRY, ACCESS_TO_INFORMATION, "
                    "ADMINISTRATIVE_APPEAL)",
                    REQUIRED,
                )
            )
        elif stage != lifecycle.NOT_A_RECLAMO and event.redirected_as:
            errors.append(FieldError("redirected_as", "only with NOT_A_RECLAMO", INCONSISTENT))
        if stage == lifecycle.TRANSFERRED:
            if not event.transferred_to:
                errors.append(FieldError("transferred_to", "required with TRANSFERRED", REQUIRED))
            elif event.transferred_to == entity_id:
                errors.append(
                    FieldError(
                        "transferred_to", "the competent entity is another one", INCONSISTENT
                    )
                )
            else:
                errors += check_code(
                    event.transferred_to, "transferred_to", self.catalogue.entities, "entity"
                )
        elif event.transferred_to:
            errors.append(FieldError("transferred_to", "only with TRANSFERRED", INCONSISTENT))
        return errors

    def _term(self, event: complaint_pb2.ComplaintEvent, entity_id: str) -> list[FieldError]:
        """A term override must be one the catalogue allows for the category (only shorter)."""
        if not event.legal_term_business_days:
            return []
        catalogues = self.catalogue.catalogues
        try:
            catalogues.complaint_due(
                entity_id,
                event.category or None,
                event.filed_at.ToDatetime().date(),
                event.legal_term_business_days,
            )
        except ValueError as error:
            return [FieldError("legal_term_business_days", str(error), OUT_OF_RANGE)]
        return []
