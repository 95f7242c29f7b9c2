"""Validation rules of pushed attention and procedure-stage events (pure: no I/O).

Each validator returns every problem of one item; the push kit keeps the items with none. The
item's entity is checked by the kit itself (``pcm_common.validation.check_entity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pcm.monitoring.v1 import attention_pb2, procedure_pb2
from pcm_common.catalogues import Catalogues
from pcm_common.lifecycle import (
    ATTENTION_TIME_ORDER,
    CALLED_KINDS,
    FINISHED_KINDS,
    PROCEDURE_TIME_ORDER,
)
from pcm_common.push import ItemContext
from pcm_common.validation import (
    INCONSISTENT,
    REQUIRED,
    FieldError,
    check_chronology,
    check_code,
    check_id,
    check_optional_text,
    check_time,
)

_Kind = attention_pb2.AttentionEventKind
_KNOWN_KINDS = frozenset(_Kind.values()) - {_Kind.ATTENTION_EVENT_KIND_UNSPECIFIED}
_KNOWN_STAGES = frozenset(procedure_pb2.ProcedureStage.values()) - {
    procedure_pb2.PROCEDURE_STAGE_UNSPECIFIED
}


@dataclass(frozen=True)
class IntakeCatalogue:
    """What validation needs from the catalogues, precomputed once as sets (hot path)."""

    channels: frozenset[str]
    attention_services: dict[str, frozenset[str]] = field(default_factory=dict)
    procedure_services: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, catalogues: Catalogues) -> IntakeCatalogue:
        """Index the catalogue once: which services each entity may report, per kind."""
        attention: dict[str, frozenset[str]] = {}
        procedures: dict[str, frozenset[str]] = {}
        for entity in catalogues.entities:
            offered = catalogues.services_for(entity.entity_id)
            attention[entity.entity_id] = frozenset(s.service_id for s in offered)
            procedures[entity.entity_id] = frozenset(
                s.service_id for s in offered if s.kind == "TRAMITE"
            )
        return cls(
            channels=frozenset(channel.code for channel in catalogues.channels),
            attention_services=attention,
            procedure_services=procedures,
        )

    def services(self, entity_id: str, procedures: bool) -> frozenset[str]:
        table = self.procedure_services if procedures else self.attention_services
        return table.get(entity_id, frozenset())


@dataclass(frozen=True)
class AttentionRules:
    catalogue: IntakeCatalogue

    def __call__(self, event: attention_pb2.AttentionEvent, item: ItemContext) -> list[FieldError]:
        catalogue, window = self.catalogue, item.window
        services = catalogue.services(item.entity_id, procedures=False)
        errors = [
            *check_id(event.ticket_id, "ticket_id"),
            *check_code(event.channel, "channel", catalogue.channels, "channel"),
            *check_code(event.service_id, "service_id", services, "service"),
            *check_optional_text(event.office_id, "office_id"),
            *check_optional_text(event.desk_id, "desk_id"),
            *check_time(event, "issued_at", window, required=True),
            *check_time(event, "called_at", window, required=event.kind in CALLED_KINDS),
            *check_time(event, "finished_at", window, required=event.kind in FINISHED_KINDS),
            *check_chronology(event, ATTENTION_TIME_ORDER),
        ]
        if event.kind not in _KNOWN_KINDS:
            errors.append(
                FieldError(
                    "kind", "required (TICKET_ISSUED, _CALLED, _SERVED, _ABANDONED)", REQUIRED
                )
            )
        if event.preferential_reason and not event.preferential:
            errors.append(
                FieldError("preferential_reason", "set while preferential is false", INCONSISTENT)
            )
        return errors


@dataclass(frozen=True)
class ProcedureStageRules:
    catalogue: IntakeCatalogue

    def __call__(
        self, event: procedure_pb2.ProcedureStageEvent, item: ItemContext
    ) -> list[FieldError]:
        catalogue, window = self.catalogue, item.window
        services = catalogue.services(item.entity_id, procedures=True)
        errors = [
            *check_id(event.procedure_id, "procedure_id"),
            *check_code(event.service_id, "service_id", services, "TUPA procedure"),
            *check_code(event.channel, "channel", catalogue.channels, "channel"),
            *check_optional_text(event.unit_id, "unit_id"),
            *check_optional_text(event.office_id, "office_id"),
            # Appeals and pensions take years: only the stage's own time is bounded in age; the
            # filing may be as old as it is, as long as it precedes the stage.
            *check_time(event, "filed_at", window.any_past(), required=True),
            *check_time(event, "occurred_at", window, required=True),
            *check_chronology(event, PROCEDURE_TIME_ORDER),
        ]
        if event.stage not in _KNOWN_STAGES:
            errors.append(
                FieldError("stage", "required (FILED, ASSIGNED, ..., RESOLVED, ARCHIVED)", REQUIRED)
            )
        return errors
