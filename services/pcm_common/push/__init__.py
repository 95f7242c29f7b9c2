"""The push-service kit: authenticate, authorize, validate, dedupe, produce with ack, answer."""

from pcm_common.push.kit import (
    BrokerSink,
    ItemContext,
    ItemSink,
    Outcome,
    PushDeclaration,
    PushEndpoint,
    PushKit,
    PushLimits,
    Refusal,
    StoreUnavailable,
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
    "BrokerSink",
    "Claim",
    "EventLedger",
    "ItemContext",
    "ItemSink",
    "LayeredLedger",
    "LedgerUnavailable",
    "MemoryLedger",
    "Outcome",
    "PushDeclaration",
    "PushEndpoint",
    "PushKit",
    "PushLimits",
    "PushMetrics",
    "Refusal",
    "StoreUnavailable",
    "Validator",
    "item_errors",
]
