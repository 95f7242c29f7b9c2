"""The push-service kit: authenticate, authorize, validate, dedupe, produce with ack, answer."""

from pcm_common.push.kit import (
    ItemContext,
    PushDeclaration,
    PushEndpoint,
    PushKit,
    PushLimits,
    Validator,
    item_errors,
)
from pcm_common.push.ledger import (
    Claim,
    EventLedger,
    LayeredLedger,
    LedgerUnavailable,
    MemoryLedger,
)
from pcm_common.push.metrics import PushMetrics

__all__ = [
    "Claim",
    "EventLedger",
    "ItemContext",
    "LayeredLedger",
    "LedgerUnavailable",
    "MemoryLedger",
    "PushDeclaration",
    "PushEndpoint",
    "PushKit",
    "PushLimits",
    "PushMetrics",
    "Validator",
    "item_errors",
]
