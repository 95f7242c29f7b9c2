"""Every method of every gRPC service, called the way an attacker would, through the public API.

The methods are enumerated from the contracts (``*_pb2.DESCRIPTOR.services_by_name``), so a new
RPC is fuzzed without new test code, and a service the platform does not serve fails the
coverage test. After every call: the answer is a status with a message from the allowed set
(never UNKNOWN, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED or UNIMPLEMENTED). After every test:
what the stores hold (PostgreSQL, ClickHouse, Kafka) changed only where the credential may write,
the other entity's records are byte for byte what they were, and every service is SERVING.
"""

from __future__ import annotations

import re
import time
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given
from hypothesis import strategies as st
from pcm_common.grpc_server import error_reason

from tests.abuse.conftest import profile
from tests.abuse.platform import (
    ATTACKER,
    VICTIM,
    Answer,
    Platform,
    all_methods,
    all_services,
    path_of,
    token_id,
)
from tests.abuse.strategies import Pool, raw_bytes, request_strategy

CODE = grpc.StatusCode
ALLOWED = {
    CODE.OK,
    CODE.INVALID_ARGUMENT,
    CODE.PERMISSION_DENIED,
    CODE.UNAUTHENTICATED,
    CODE.NOT_FOUND,
    CODE.RESOURCE_EXHAUSTED,
    CODE.FAILED_PRECONDITION,
    CODE.ALREADY_EXISTS,
    CODE.OUT_OF_RANGE,
}
METHODS = all_methods()
ENTITY_SHARED_WRITES = {"event_ledger"}
"""Tables without entities an entity adds rows to: the intake's claims of its event ids (hashed
keys; ``lost`` shows any row of another entity changed or deleted)."""
NATIONAL_WRITES = {
    # The oversight body reviews reported values, comments on and closes plans and publishes
    # catalogues; it writes no entity's events.
    "indicator_reports",
    "indicator_outbox",
    "improvement_plans",
    "improvement_plan_history",
    "catalogue_versions",
}


def method_id(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


def shown(request: Message | bytes) -> str:
    """The request for a failure message: long strings cut, at most 3,000 characters."""
    if isinstance(request, bytes):
        return f"{len(request)} bytes: {request[:200]!r}"
    text = text_format.MessageToString(request, as_one_line=True)
    text = re.sub(
        r'"([^"\\]|\\.){120,}"', lambda m: f'{m.group(0)[:60]}…({len(m.group(0))})"', text
    )
    return text[:3_000]


def check(method: MethodDescriptor, request: Message | bytes, answer: Answer) -> None:
    said = f"{answer.code.name} {answer.details[:300]!r}"
    where = f"{path_of(method)} answered {said} to {shown(request)}"
    assert answer.code in ALLOWED, where
    if answer.code is not CODE.OK:
        assert answer.details.strip(), f"no message: {where}"


def pool(platform: Platform) -> Pool:
    return Pool(platform.known_ids(), platform.known_codes(), int(time.time()))


def tables(items: list[str]) -> set[str]:
    """``postgres:indicator_reports[ONP]`` -> ``indicator_reports``."""
    return {re.split(r"[:\[ ]", item)[1] for item in items}


def test_every_method_of_every_service_is_served_and_fuzzed(platform: Platform) -> None:
    declared = {s.full_name for s in all_services()}
    assert declared == set(platform.targets), "a service of the contracts is not started here"
    assert {path_of(m) for m in METHODS} == {
        f"/{s.full_name}/{m.name}" for s in all_services() for m in s.methods
    }
    assert len(METHODS) >= 23
    for method in METHODS:  # served: an unauthenticated call is refused, not UNIMPLEMENTED
        answer = platform.call(method, GetMessageClass(method.input_type)())
        assert answer.code is CODE.UNAUTHENTICATED, (path_of(method), answer)


def entity_ids(message: Message) -> set[str]:
    """Every ``entity_id`` an answer holds, however deep."""
    found: set[str] = set()
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        for item in items:
            if isinstance(item, Message):
                found |= entity_ids(item)
            elif field.name == "entity_id":
                found.add(str(item))
    return found


@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_requests_as_an_entity_never_touch_another_entity(
    platform: Platform, method: MethodDescriptor
) -> None:
    """Any request an entity credential can send, ids of the other entity everywhere."""
    before = platform.settle()
    token = platform.tokens["attacker"]
    template = platform.templates().get(path_of(method))

    @profile()
    @given(request=request_strategy(method.input_type, pool(platform), template))
    def fuzz(request: Message) -> None:
        answer = platform.call(method, request, token)
        check(method, request, answer)
        seen = set().union(*(entity_ids(r) for r in answer.responses)) - {ATTACKER, ""}
        assert not seen, f"{path_of(method)} showed {ATTACKER} the data of {seen}"

    fuzz()
    change = platform.changes(before)
    assert not change.of(VICTIM), f"{ATTACKER}'s credential changed {VICTIM}'s data"
    assert not change.lost, f"{ATTACKER}'s credential changed or deleted rows of {change.lost}"
    shared = {t for s, t, e in change.keys if e == "*"} - ENTITY_SHARED_WRITES
    assert not shared, f"{ATTACKER}'s credential changed shared data: {shared}"


@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_requests_as_the_national_role_write_no_entity_events(
    platform: Platform, method: MethodDescriptor
) -> None:
    before = platform.settle()
    token = platform.tokens["national"]
    template = platform.templates().get(path_of(method))

    @profile()
    @given(request=request_strategy(method.input_type, pool(platform), template))
    def fuzz(request: Message) -> None:
        check(method, request, platform.call(method, request, token))

    fuzz()
    change = platform.changes(before)
    written = tables(change.everything()) - NATIONAL_WRITES - {"pcm.indicator-value.v1"}
    written = {t for t in written if not t.endswith("indicator-value.v1")}
    assert not written, f"the national role wrote {sorted(written)}: {change.everything()}"


@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_bytes_that_are_not_the_request(platform: Platform, method: MethodDescriptor) -> None:
    """Random bytes, fields of the wrong wire type, truncated and bit-flipped requests."""
    before = platform.settle()
    token = platform.tokens["attacker"]
    template = platform.templates().get(path_of(method))

    @profile()
    @given(body=raw_bytes(template))
    def fuzz(body: bytes) -> None:
        check(method, body, platform.call(method, body, token))

    fuzz()
    change = platform.changes(before)
    assert not change.of(VICTIM), f"{ATTACKER}'s credential changed {VICTIM}'s data"


PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64)
HEADER_NAME = st.from_regex(r"[a-z][a-z0-9_.-]{0,30}", fullmatch=True).filter(
    lambda name: not name.startswith("grpc-") and name not in ("te", "content-type", "user-agent")
)


def hostile_metadata(platform: Platform) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """Authorization that is missing, garbage, oversized, revoked, unknown, of the operator or
    sent twice, beside random and oversized other metadata. Never a working entity token."""
    tokens = platform.tokens
    revoked, unknown = tokens["revoked"], tokens["unknown"]
    authorization = st.one_of(
        st.just(""),
        st.just("Bearer"),
        st.just("Bearer "),
        st.sampled_from(["Basic dXNlcjpwYXNz", "bearer", "Token x", "Bearer pcm__", "Bearer pcm"]),
        st.just(f"Bearer {revoked}"),
        st.just(f"bearer   {revoked}  "),
        st.just(f"Bearer {unknown}"),
        st.just(f"Bearer {tokens['operator']}"),
        st.just(f"Bearer {tokens['attacker'][:-1]}"),  # one character short
        st.just(f"Bearer {tokens['attacker']}x"),
        st.just(f"Bearer pcm_{token_id(tokens['victim'])}_{'A' * 43}"),  # the victim's id
        st.just("Bearer " + "pcm_" + "a" * 6_000 + "_b"),
        PRINTABLE,
        PRINTABLE.map(lambda t: f"Bearer {t}"),
    )
    pairs = st.one_of(
        st.tuples(st.just("authorization"), authorization),
        st.tuples(st.just("authorization-bin"), st.binary(max_size=64)),
        st.tuples(HEADER_NAME, PRINTABLE),
        st.tuples(HEADER_NAME, st.just("v" * 20_000)),  # over gRPC's 8 KB metadata limit
        st.tuples(HEADER_NAME.map(lambda n: f"{n}-bin"), st.binary(max_size=64)),
    )
    return st.lists(pairs, max_size=4)


@pytest.mark.parametrize("method", METHODS, ids=method_id)
def test_credentials_that_do_not_authenticate(platform: Platform, method: MethodDescriptor) -> None:
    """Nothing is read or written without a working credential: the answer is UNAUTHENTICATED
    (or, for the operator, PERMISSION_DENIED unless the method is open to any credential)."""
    before = platform.settle()
    template = platform.templates().get(path_of(method))
    requests = request_strategy(method.input_type, pool(platform).small(), template)

    @profile()
    @given(metadata=hostile_metadata(platform), request=requests)
    def fuzz(metadata: list[tuple[str, Any]], request: Message) -> None:
        answer = platform.call(method, request, metadata=metadata)
        check(method, request, answer)
        operator = any(v == f"Bearer {platform.tokens['operator']}" for _, v in metadata)
        if not operator:
            assert answer.code in (CODE.UNAUTHENTICATED, CODE.RESOURCE_EXHAUSTED), (
                f"{path_of(method)} answered {answer.code.name} without a credential: {metadata!r}"
            )

    fuzz()
    change = platform.changes(before)
    assert not change.everything(), f"stored without a credential: {change.everything()}"


def test_a_revoked_token_replayed_is_refused_everywhere(platform: Platform) -> None:
    """A token that worked, revoked, then replayed with the very same requests."""
    token = platform.token_store.issue(ATTACKER, label="abuse: replayed after revocation")
    templates = platform.templates()
    sent = {
        path_of(m): templates[path_of(m)]() if path_of(m) in templates else None for m in METHODS
    }
    requests = {
        path: request or GetMessageClass(m.input_type)()
        for m in METHODS
        for path, request in [(path_of(m), sent[path_of(m)])]
    }
    first = platform.call(METHODS[0], requests[path_of(METHODS[0])], token)
    assert first.code is CODE.OK, first
    platform.token_store.revoke(token_id(token))
    before = platform.settle()
    for method in METHODS:
        request = requests[path_of(method)]
        answer = platform.call(method, request, token)
        assert answer.code is CODE.UNAUTHENTICATED, (path_of(method), answer)
        assert "revoked" in answer.details, answer
    change = platform.changes(before)
    assert not change.everything(), change.everything()


def test_the_reason_of_a_refused_credential_is_machine_readable(platform: Platform) -> None:
    method = METHODS[0]
    request = GetMessageClass(method.input_type)()
    channel = platform.channel(method.containing_service.full_name)
    call = channel.unary_unary(path_of(method), type(request).SerializeToString, lambda b: b)
    with pytest.raises(grpc.RpcError) as refused:
        call(request, metadata=(("authorization", f"Bearer {platform.tokens['revoked']}"),))
    assert error_reason(refused.value) == "ERROR_REASON_TOKEN_REVOKED"
