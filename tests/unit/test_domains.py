"""The domain registry is the one declaration of every event domain: what it says must hold in
the protos, the topics and the catalogues, so that nothing else needs to list domains."""

from __future__ import annotations

import importlib

import pytest
from google.protobuf.descriptor import FieldDescriptor
from pcm_common.catalogues import load_catalogues
from pcm_common.domains import ALL_DOMAINS, EVENT_DOMAINS, KPI_SOURCES, PROTO_PACKAGE, EventDomain
from pcm_common.kafka.topics import DEAD_LETTER, TOPICS, topic_for_domain


@pytest.mark.parametrize("domain", ALL_DOMAINS, ids=lambda d: d.name)
def test_subject_and_time_fields_exist_on_the_message(domain: EventDomain) -> None:
    fields = domain.message.DESCRIPTOR.fields_by_name
    assert fields[domain.subject_field].type == FieldDescriptor.TYPE_STRING
    for name in domain.time_fields:
        assert fields[name].message_type.full_name == "google.protobuf.Timestamp"
    assert fields[domain.key_field].type == FieldDescriptor.TYPE_STRING


@pytest.mark.parametrize("domain", EVENT_DOMAINS, ids=lambda d: d.name)
def test_pushed_domains_have_a_push_rpc_taking_a_list_of_their_message(
    domain: EventDomain,
) -> None:
    assert domain.push is not None
    module = importlib.import_module(
        f"pcm.monitoring.v1.{_snake(domain.push.service.removesuffix('Service'))}_service_pb2"
    )
    service = module.DESCRIPTOR.services_by_name[domain.push.service]
    assert service.full_name == domain.push.full_service
    assert service.full_name.startswith(PROTO_PACKAGE)
    method = service.methods_by_name[domain.push.method]
    repeated = [
        f
        for f in method.input_type.fields
        if f.message_type is domain.message.DESCRIPTOR and _is_repeated(f)
    ]
    assert len(repeated) == 1, f"{method.full_name} takes no list of {domain.message_name}"
    # Every pushed message names its event and its entity: the kit dedupes and isolates on them.
    fields = domain.message.DESCRIPTOR.fields_by_name
    assert {"event_id", "entity_id"} <= set(fields)


def test_every_topic_is_a_domain_or_the_dead_letter_topic() -> None:
    assert {topic.domain for topic in TOPICS} == {d.name for d in ALL_DOMAINS} | {"dead_letter"}
    for domain in ALL_DOMAINS:
        topic = topic_for_domain(domain.name)
        assert topic.payload == domain.name
        assert topic.base_name == f"pcm.{domain.name.replace('_', '-')}.v1"
    assert DEAD_LETTER in TOPICS


def test_fact_tables_are_named_after_their_domain() -> None:
    for domain in EVENT_DOMAINS:
        if domain.facts is not None:
            assert domain.facts.name == f"{domain.name}_events"


def test_fact_rows_are_built_by_name_and_refuse_unknown_or_missing_columns() -> None:
    facts = EVENT_DOMAINS[0].facts
    assert facts is not None
    values = {name: index for index, name in enumerate(facts.column_names)}
    row = facts.row(**values)
    assert tuple(row) == tuple(range(len(facts.columns)))  # column order, as a plain tuple
    with pytest.raises(TypeError):
        facts.row(**{**values, "not_a_column": 1})
    missing = dict(values)
    missing.pop("channel")
    with pytest.raises(TypeError):
        facts.row(**missing)


def test_kpi_sources_are_domain_names() -> None:
    catalogues = load_catalogues()
    names = set(KPI_SOURCES)
    for kpi in catalogues.kpis:
        assert kpi.source in names
        for measure in (kpi.aggregate, kpi.numerator, kpi.denominator):
            assert measure is None or measure.source is None or measure.source in names


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel).lstrip("_")


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
