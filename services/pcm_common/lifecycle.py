"""Lifecycle rules of pushed events, stated once.

The intake refuses an event that breaks them (with the field and the reason); the processor
dead-letters one that reached Kafka anyway (a producer writing to the topic directly, an older
intake). Both read these tables, so the two checks cannot drift apart.
"""

from __future__ import annotations

from pcm.monitoring.v1 import attention_pb2, survey_pb2

_Kind = attention_pb2.AttentionEventKind

# Kinds that carry the moment the ticket was called / the moment it was closed.
CALLED_KINDS = frozenset(
    {_Kind.ATTENTION_EVENT_KIND_TICKET_CALLED, _Kind.ATTENTION_EVENT_KIND_TICKET_SERVED}
)
FINISHED_KINDS = frozenset(
    {_Kind.ATTENTION_EVENT_KIND_TICKET_SERVED, _Kind.ATTENTION_EVENT_KIND_TICKET_ABANDONED}
)

# Timestamps in the order they must happen (each set one not before the previous set one).
ATTENTION_TIME_ORDER = ("issued_at", "called_at", "finished_at")
PROCEDURE_TIME_ORDER = ("filed_at", "occurred_at")


_Status = survey_pb2.AnswerStatus
UNANSWERED = frozenset(
    {
        _Status.ANSWER_STATUS_NOT_ASKED,
        _Status.ANSWER_STATUS_SKIPPED,
        _Status.ANSWER_STATUS_DOES_NOT_APPLY,
    }
)


def answer_status(answer: survey_pb2.DriverScore) -> int:
    """What one survey question's answer is (``AnswerStatus``), older clients included: with no
    status a score 1..5 is an answer and 0 a skipped question."""
    if answer.status in UNANSWERED:
        return int(answer.status)
    if answer.score > 0:
        return _Status.ANSWER_STATUS_SCORED
    return _Status.ANSWER_STATUS_SKIPPED


def answered(answer: survey_pb2.DriverScore) -> bool:
    """A valid scale answer (counted in the KPIs), as opposed to the three ways of not answering."""
    return answer_status(answer) == _Status.ANSWER_STATUS_SCORED
