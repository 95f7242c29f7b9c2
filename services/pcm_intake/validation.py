"""Validation rules of pushed attention and procedure-stage events (pure: no I/O).

Each function returns every problem of one item; the batch keeps the items with none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pcm.monitoring.v1 import attention_pb2, procedure_pb2
from pcm_common.lifecycle import (
    ATTENTION_TIME_ORDER,
    CALLED_KINDS,
    FINISHED_KINDS,
    PROCEDURE_TIME_ORDER,
)
from pcm_common.validation import (
    FieldError,
    TimeWindow,
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

    def services(self, entity_id: str, procedures: bool) -> frozenset[str]:
        table = self.procedure_services if procedures else self.attention_services
        return table.get(entity_id, frozenset())


def check_entity(entity_id: str, caller: str) -> Iterator[FieldError]:
    if not entity_id:
        yield FieldError("entity_id", "required")
    elif entity_id != caller:
        yield FieldError("entity_id", f"belongs to {entity_id!r}; this credential is {caller!r}'s")


def attention_errors(
    event: attention_pb2.AttentionEvent,
    caller: str,
    catalogue: IntakeCatalogue,
    window: TimeWindow,
) -> list[FieldError]:
    errors = [
        *check_id(event.event_id, "event_id"),
        *check_entity(event.entity_id, caller),
        *check_id(event.ticket_id, "ticket_id"),
        *check_code(event.channel, "channel", catalogue.channels, "channel"),
        *check_code(event.service_id, "service_id", catalogue.services(caller, False), "service"),
        *check_optional_text(event.office_id, "office_id"),
        *check_optional_text(event.desk_id, "desk_id"),
        *check_time(event, "issued_at", window, required=True),
        *check_time(event, "called_at", window, required=event.kind in CALLED_KINDS),
        *check_time(event, "finished_at", window, required=event.kind in FINISHED_KINDS),
        *check_chronology(event, ATTENTION_TIME_ORDER),
    ]
    if event.kind not in _KNOWN_KINDS:
        errors.append(FieldError("kind", "required (TICKET_ISSUED, _CALLED, _SERVED, _ABANDONED)"))
    if event.preferential_reason and not event.preferential:
        errors.append(FieldError("preferential_reason", "set while preferential is false"))
    return errors


def procedure_errors(
    event: procedure_pb2.ProcedureStageEvent,
    caller: str,
    catalogue: IntakeCatalogue,
    window: TimeWindow,
) -> list[FieldError]:
    errors = [
        *check_id(event.event_id, "event_id"),
        *check_entity(event.entity_id, caller),
        *check_id(event.procedure_id, "procedure_id"),
        *check_code(
            event.service_id, "service_id", catalogue.services(caller, True), "TUPA procedure"
        ),
        *check_code(event.channel, "channel", catalogue.channels, "channel"),
        *check_optional_text(event.unit_id, "unit_id"),
        *check_time(event, "filed_at", window, required=True),
        *check_time(event, "occurred_at", window, required=True),
        *check_chronology(event, PROCEDURE_TIME_ORDER),
    ]
    if event.stage not in _KNOWN_STAGES:
        errors.append(FieldError("stage", "required (FILED, ASSIGNED, ..., RESOLVED, ARCHIVED)"))
    return errors
