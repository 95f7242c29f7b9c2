"""Requests for any protobuf message, built from its descriptor, the way an attacker sends them.

``message_strategy(descriptor, pool)`` walks the message's fields and draws, per field type, a
random value or a dangerous one: strings from the ``Pool`` (other entities' ids, catalogue codes,
huge and unicode strings with NUL, RTL marks and emoji), extreme integers and floats (NaN,
infinities), unknown enum numbers, timestamps before 1970 or after 9999 and nanos out of range,
repeated fields empty, short or one item over every batch limit. ``mutated(template, ...)``
starts from a valid request and breaks one to three of its fields, so that the checks behind
the first one are reached too. ``raw_bytes`` draws request bodies that are not the message at
all (random bytes, fields of the wrong wire type, truncated and bit-flipped valid requests).

Nothing here knows a service: a new RPC, field or message is fuzzed as soon as it exists.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

MEGABYTE = 1_000_000
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
OVER_BATCH = 1_001
"""Items of an oversized repeated field: one more than the largest batch limit (1,000)."""

DANGEROUS_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "RENIEC\x00SUNARP",
    "\u202eFIL.exe\u202c",  # right-to-left override
    "\u200f\u200e\u2066\u2069",  # RTL/LTR marks and isolates
    "\ufeff",
    "😀🇵🇪👩‍👩‍👧‍👦" * 8,
    "Ñandú árbol ümlaut",
    "\U0010ffff\uffff\ufffd",
    "a" * 129,  # one over the id limit
    "é" * 5_000,
    "x" * MEGABYTE,  # 1 MB
    "' OR '1'='1' --",
    "'; DROP TABLE complaints; --",
    "%s%s%n%x",
    "{0}{}${{}}",
    "../../../../etc/passwd",
    "\r\nX-Injected: 1",
    "<script>alert(1)</script>",
    "NaN",
    "-1",
    "9" * 40,
    "2026-02-30",
    "0000-00-00",
    "9999-12-31",
    "10000-01-01",
    "-2026-01-01",
    "2026-13-01",
    "\t\n\v\f\r",
    "*",
    "%",
    "_",
    "\\",
)

DANGEROUS_SECONDS: tuple[int, ...] = (
    0,
    -1,
    -62_135_596_800,  # 0001-01-01, protobuf's first instant
    -62_135_596_801,  # before it
    253_402_300_799,  # 9999-12-31T23:59:59
    253_402_300_800,  # 10000-01-01
    2**31 - 1,
    2**31,
    INT64[0],
    INT64[1],
)
DANGEROUS_NANOS: tuple[int, ...] = (0, -1, 999_999_999, 1_000_000_000, INT32[0], INT32[1])
DANGEROUS_FLOATS: tuple[float, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    1e-300,
    2.0**53 + 1,
)


@dataclass(frozen=True)
class Pool:
    """What an attacker knows: ids of other entities and their records, codes of the public
    catalogues, the current time (to make otherwise valid timestamps)."""

    ids: Sequence[str]
    codes: Sequence[str] = ()
    now_s: int = 0
    huge: bool = True
    """Whether strings and bytes may be a megabyte (off inside oversized repeated fields)."""

    def small(self) -> Pool:
        return Pool(self.ids, self.codes, self.now_s, huge=False)


def text(pool: Pool) -> st.SearchStrategy[str]:
    dangerous = [t for t in DANGEROUS_TEXT if pool.huge or len(t) < 1_000]
    choices: list[st.SearchStrategy[str]] = [
        st.text(max_size=24),
        st.sampled_from(dangerous),
    ]
    if pool.ids:
        choices.append(st.sampled_from(list(pool.ids)))
    if pool.codes:
        choices.append(st.sampled_from(list(pool.codes)))
    return st.one_of(choices)


def raw(pool: Pool) -> st.SearchStrategy[bytes]:
    choices = [st.binary(max_size=48), st.just(b"\x00" * 64)]
    if pool.huge:
        choices.append(st.just(b"\xff" * MEGABYTE))
    return st.one_of(choices)


def integers(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    edges = (
        low,
        high,
        0,
        -1,
        1,
        1_000,
        1_001,
        2**31 - 1,
        2**31,
        2**32 - 1,
        2**32,
        2**63 - 1,
        2**63,
    )
    return st.one_of(
        st.sampled_from(sorted({v for v in edges if low <= v <= high})), st.integers(low, high)
    )


def floats(width: Literal[32, 64]) -> st.SearchStrategy[float]:
    edges = [f for f in DANGEROUS_FLOATS if width == 64 or _fits_float32(f)]
    return st.one_of(
        st.sampled_from(edges),
        st.floats(width=width, allow_nan=True, allow_infinity=True),
        st.floats(-1_000, 1_000, width=width),
    )


def _fits_float32(value: float) -> bool:
    try:
        struct.pack("f", value)
    except OverflowError:
        return False
    return True


def timestamps(pool: Pool) -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a google.protobuf.Timestamp: valid recent instants and broken ones."""
    recent = st.integers(pool.now_s - 800 * 86_400, pool.now_s + 86_400) if pool.now_s else None
    seconds = st.one_of(
        [s for s in (st.sampled_from(DANGEROUS_SECONDS), recent) if s is not None]
        + [st.integers(*INT64)]
    )
    nanos = st.one_of(st.sampled_from(DANGEROUS_NANOS), st.integers(*INT32))
    return st.tuples(seconds, nanos)


def scalar(field_: FieldDescriptor, pool: Pool) -> st.SearchStrategy[Any]:
    kind = field_.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text(pool)
    if kind == FieldDescriptor.TYPE_BYTES:
        return raw(pool)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return floats(64)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return floats(32)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field_.enum_type is not None
        known = [v.number for v in field_.enum_type.values]
        return st.one_of(st.sampled_from(known), integers(INT32))  # open enums: any int32
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return integers(INT32)
    if kind == FieldDescriptor.TYPE_SFIXED32:
        return integers(INT32)
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return integers(UINT32)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return integers(UINT64)
    return integers(INT64)  # int64, sint64, sfixed64


def message_class(descriptor: Descriptor) -> type[Message]:
    return GetMessageClass(descriptor)


def _is_repeated(field_: Any) -> bool:
    return bool(field_.is_repeated)


def value_strategy(field_: FieldDescriptor, pool: Pool, depth: int) -> st.SearchStrategy[Any]:
    """One value of a singular field (a message for message fields)."""
    if field_.type == FieldDescriptor.TYPE_MESSAGE:
        assert field_.message_type is not None
        return message_strategy(field_.message_type, pool, depth + 1)
    return scalar(field_, pool)


def field_strategy(field_: FieldDescriptor, pool: Pool, depth: int) -> st.SearchStrategy[Any]:
    """What to put in a field: a value, or for a repeated field a list (empty, a few, or one
    over the batch limit)."""
    if not _is_repeated(field_):
        return value_strategy(field_, pool, depth)
    one = value_strategy(field_, pool, depth)
    lists = st.lists(one, max_size=3 if depth == 0 else 2)
    if depth > 0:
        return lists
    small = value_strategy(field_, pool.small(), depth)
    return st.one_of(lists, small.map(lambda item: [item] * OVER_BATCH))


MAX_DEPTH = 4
ABSENT = object()


def message_strategy(
    descriptor: Descriptor, pool: Pool, depth: int = 0
) -> st.SearchStrategy[Message]:
    """A message of ``descriptor`` with each field absent or filled (recursively, to
    ``MAX_DEPTH``; deeper, the message stays empty)."""
    cls = message_class(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return timestamps(pool).map(lambda pair: cls(seconds=pair[0], nanos=pair[1]))
    if depth >= MAX_DEPTH:
        return st.just(cls())
    fields = {
        f.name: st.one_of(st.just(ABSENT), st.deferred(_deferred(f, pool, depth)))
        for f in descriptor.fields
    }

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            if value is not ABSENT:
                assign(message, descriptor.fields_by_name[name], value)
        return message

    return st.fixed_dictionaries(fields).map(build)


def _deferred(
    field_: FieldDescriptor, pool: Pool, depth: int
) -> Callable[[], st.SearchStrategy[Any]]:
    return lambda: field_strategy(field_, pool, depth)


def assign(message: Message, field_: FieldDescriptor, value: Any) -> None:
    """Set a field of ``message`` to ``value`` (a list for repeated fields)."""
    target = getattr(message, field_.name)
    if _is_repeated(field_):
        del target[:]
        if field_.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field_.type == FieldDescriptor.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field_.name, value)


# --- mutations of a valid request -----------------------------------------------------------

Path = tuple[str, ...]
"""Field names from the request down to a field; a repeated message field is entered at its
first item."""


def leaf_paths(descriptor: Any, depth: int = 0) -> list[tuple[Path, FieldDescriptor]]:
    paths: list[tuple[Path, FieldDescriptor]] = []
    for field_ in descriptor.fields:
        paths.append(((field_.name,), field_))
        inner = field_.message_type
        if (
            field_.type == FieldDescriptor.TYPE_MESSAGE
            and inner is not None
            and inner.full_name != "google.protobuf.Timestamp"
            and depth < 2
        ):
            paths += [((field_.name, *p), f) for p, f in leaf_paths(inner, depth + 1)]
    return paths


def set_path(message: Message, path: Path, field_: FieldDescriptor, value: Any) -> None:
    """Assign ``value`` at ``path``; a path through an empty repeated field adds an item."""
    current = message
    for name in path[:-1]:
        child_field = current.DESCRIPTOR.fields_by_name[name]
        child = getattr(current, name)
        repeated = _is_repeated(child_field)
        current = (child[0] if len(child) else child.add()) if repeated else child
    assign(current, field_, value)


def mutated(
    template: Callable[[], Message], pool: Pool, max_changes: int = 3
) -> st.SearchStrategy[Message]:
    """A fresh valid request from ``template()`` with one to ``max_changes`` fields broken."""
    descriptor = template().DESCRIPTOR
    changes = [
        st.tuples(st.just(path), st.just(field_), field_strategy(field_, pool, len(path)))
        for path, field_ in leaf_paths(descriptor)
    ]
    if not changes:
        return st.builds(template)

    def apply(edits: list[tuple[Path, FieldDescriptor, Any]]) -> Message:
        message = template()
        for path, field_, value in edits:
            set_path(message, path, field_, value)
        return message

    return st.lists(st.one_of(changes), min_size=1, max_size=max_changes).map(apply)


def request_strategy(
    descriptor: Descriptor, pool: Pool, template: Callable[[], Message] | None
) -> st.SearchStrategy[Message]:
    """Random requests of ``descriptor``; with a template, as many valid-but-broken ones."""
    anything = message_strategy(descriptor, pool)
    if template is None:
        return anything
    return st.one_of(anything, mutated(template, pool), st.builds(template))


# --- bytes that are not the request ---------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _wire_field(number: int, wire_type: int, payload: bytes, value: int) -> bytes:
    key = _varint((number << 3) | wire_type)
    if wire_type == 0:
        return key + _varint(value)
    if wire_type == 1:
        return key + struct.pack("<Q", value & (2**64 - 1))
    if wire_type == 5:
        return key + struct.pack("<I", value & (2**32 - 1))
    if wire_type == 2:
        return key + _varint(len(payload)) + payload
    return key + payload  # groups (3, 4) and invalid wire types (6, 7): unterminated


wire_fields = st.builds(
    _wire_field,
    st.integers(1, 20) | st.sampled_from([0, 2**29 - 1, 19_000]),
    st.integers(0, 7),
    st.binary(max_size=24),
    st.integers(*INT64),
)


def raw_bytes(valid: Callable[[], Message] | None) -> st.SearchStrategy[bytes]:
    """Request bodies that are not a valid request: noise, fields of the wrong wire type (a
    string sent as a varint...), lengths that run past the end, truncated or bit-flipped valid
    requests."""
    choices: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=256),
        st.lists(wire_fields, max_size=6).map(b"".join),
        st.just(b"\x0a\xff\xff\xff\xff\x0f"),  # a length of 4 GB
        st.just(b"\x08" + b"\xff" * 11),  # a varint of 11 bytes
        st.just(b"\x0a" * 1_000),
    ]
    if valid is not None:

        def truncated(cut: int) -> bytes:
            body = valid().SerializeToString()
            return body[: cut % max(len(body), 1)]

        def flipped(position: int, bit: int) -> bytes:
            body = bytearray(valid().SerializeToString() or b"\x00")
            body[position % len(body)] ^= 1 << bit
            return bytes(body)

        choices += [
            st.builds(truncated, st.integers(0, 10_000)),
            st.builds(flipped, st.integers(0, 10_000), st.integers(0, 7)),
        ]
    return st.one_of(choices)
