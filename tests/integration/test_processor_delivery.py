"""The fallback delivery (faust agents with ``Stream.noack_take``) is exact too.

Batch delivery, the default, is what the other processor tests exercise; this runs the stream
delivery on a few thousand events with one SIGKILL in the middle and checks every KPI against the
reference, so the fallback for an unreviewed faust version stays correct.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_driver import Client
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.kafka.topics import topic_for_domain
from pcm_common.settings import Settings
from pcm_testkit.events import local_time
from pcm_testkit.generator import Generator
from pcm_testkit.kafka import produce
from pcm_testkit.kpis import differences, expected_kpis, read_kpis, stream_kpi_codes
from pcm_testkit.processor import ProcessorProcess, caught_up, processor_for

pytestmark = pytest.mark.integration


@pytest.fixture
def processor(
    isolated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessorProcess]:
    directory = tmp_path_factory.mktemp("stream")
    with processor_for(isolated_settings, directory, start=False, processor_delivery="stream") as p:
        yield p


def test_stream_delivery_survives_a_kill_and_matches_the_reference(
    isolated_settings: Settings,
    processor: ProcessorProcess,
    clickhouse: Client,
) -> None:
    catalogues: Catalogues = load_catalogues()
    generator = Generator(catalogues, seed=3, entities=5, run_id="stream")
    start = local_time(2025, 6, 30, 20)
    subjects = {"attention": 2_000, "procedure_stage": 300}  # tickets, procedures
    streams = {
        name: generator.stream(name, count, start, 8 * 3600) for name, count in subjects.items()
    }
    s = isolated_settings
    for name, events in streams.items():
        half = len(events) // 2
        produce(
            s.kafka_bootstrap,
            topic_for_domain(name).name(s.topic_prefix),
            [(p.key, p.value) for p in events[:half]],
        )
    processor.start()
    # Kill mid-stream: as soon as this first incarnation has stored facts, before it can have
    # finished their KPIs and committed; the next one must replay them without double counting.
    processor.wait_for_metric("pcm_processor_events_total", above=0)
    processor.kill()
    for name, events in streams.items():
        half = len(events) // 2
        produce(
            s.kafka_bootstrap,
            topic_for_domain(name).name(s.topic_prefix),
            [(p.key, p.value) for p in events[half:]],
        )
    processor.start()
    caught_up(s, processor, timeout_s=120)
    assert "delivery=stream" in processor.log_path.read_text()
    expected = expected_kpis(
        catalogues, {name: [p.envelope for p in events] for name, events in streams.items()}
    )
    actual = read_kpis(clickhouse, s.clickhouse_database, stream_kpi_codes(catalogues))
    problems = differences(expected, actual)
    assert not problems, "\n".join(problems[:20])
