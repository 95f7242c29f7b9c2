"""`pcm-processor recompute --from DATE` after a catalogue change: every stored KPI follows the
new catalogue, stamped with its version, and a second run changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pcm_common.catalogues import load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.kafka.topics import topic_for_domain
from pcm_testkit.generator import Generator
from pcm_testkit.isolation import isolated
from pcm_testkit.kafka import as_records, produce
from pcm_testkit.kpis import differences, expected_kpis, read_kpis, stream_kpi_codes
from pcm_testkit.processor import caught_up, processor_for

REPO = Path(__file__).resolve().parents[2]


def stricter_catalogue(root: Path) -> Path:
    """The catalogue with every phone queue held to 30 s instead of 60 s (a new version)."""
    changed = root / "catalogues"
    shutil.copytree(REPO / "catalogues", changed)
    targets = changed / "wait_targets.csv"
    targets.write_text(targets.read_text().replace("*,TELEFONICO,60,", "*,TELEFONICO,30,"))
    kpis = changed / "kpis.yaml"
    version = load_catalogues().versions["kpis"]
    kpis.write_text(kpis.read_text().replace(f'version: "{version}"', 'version: "2099.1"', 1))
    return changed


def test_recompute_applies_the_new_catalogue_to_every_stored_kpi(tmp_path: Path) -> None:
    old = load_catalogues()
    produced = Generator(old, seed=21, entities=3, run_id="recompute").stream(
        "attention", 600, 1_764_000_000, 8 * 3600
    )
    envelopes = {"attention": [p.envelope for p in produced], "procedure_stage": []}
    with isolated("recompute") as settings, processor_for(settings, tmp_path) as processor:
        produce(
            settings.kafka_bootstrap,
            topic_for_domain("attention").name(settings.topic_prefix),
            as_records(envelopes["attention"]),
        )
        caught_up(settings, processor)
        client = connect(settings, database="default")
        db = settings.clickhouse_database
        codes = stream_kpi_codes(old)
        assert not differences(expected_kpis(old, envelopes), read_kpis(client, db, codes))

        new_dir = stricter_catalogue(tmp_path)
        new = load_catalogues(new_dir)
        before_new = differences(expected_kpis(new, envelopes), read_kpis(client, db, codes))
        assert before_new, "the change must move some KPI, or this test proves nothing"
        env = {
            **os.environ,
            "PCM_CATALOGUE_DIR": str(new_dir),
            "PCM_TOPIC_PREFIX": settings.topic_prefix,
            "PCM_CLICKHOUSE_DATABASE": db,
        }
        command = [sys.executable, "-m", "pcm_processor.cli", "recompute", "--from", "2025-11-01"]
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "recomputed" in run.stdout
        assert not differences(expected_kpis(new, envelopes), read_kpis(client, db, codes))
        versions = client.execute(
            f"SELECT DISTINCT argMax(catalogue_version, version) FROM {db}.kpi_values "
            "GROUP BY entity_id, kpi_code, grain, period_start, channel, service_id"
        )
        assert versions == [(new.version_label,)]
        after = read_kpis(client, db)
        again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert again.returncode == 0, again.stderr[-3000:]
        assert read_kpis(client, db) == after
