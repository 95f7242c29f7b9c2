"""Sorting one pushed batch into accepted, duplicate and rejected items (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pcm_common.validation import FieldError

from pcm_intake.dedupe import DedupeWindow, Key


class PushedEvent(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def entity_id(self) -> str: ...


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str
    field: str
    reason: str


@dataclass
class BatchPlan:
    accepted: list[tuple[int, PushedEvent]] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    foreign_items: int = 0

    @property
    def accepted_keys(self) -> list[Key]:
        return [(event.entity_id, event.event_id) for _, event in self.accepted]


def plan_batch(
    events: Sequence[PushedEvent],
    validate: Callable[[PushedEvent], list[FieldError]],
    dedupe: DedupeWindow,
) -> BatchPlan:
    """Validate every item, then claim the valid ones' ids: new ones are accepted (pending the
    broker's ack), already-seen ones are duplicates. Rejected items never block the rest."""
    plan = BatchPlan()
    valid: list[tuple[int, PushedEvent]] = []
    for index, event in enumerate(events):
        errors = validate(event)
        if not errors:
            valid.append((index, event))
            continue
        if any(e.field == "entity_id" and e.reason.startswith("belongs to") for e in errors):
            plan.foreign_items += 1
        plan.rejections.extend(Rejection(index, event.event_id, e.field, e.reason) for e in errors)
    is_new = dedupe.claim((event.entity_id, event.event_id) for _, event in valid)
    for (index, event), new in zip(valid, is_new, strict=True):
        if new:
            plan.accepted.append((index, event))
        else:
            plan.duplicates.append(index)
    return plan
