"""The synthetic national registry (pcm_testkit.national) goes through the real catalogue loader,
keeps the real entities as they are, and is the same for the same seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_processor.domain.buckets import BucketClock
from pcm_processor.domain.facts import CatalogueView, MappingContext, Position
from pcm_processor.domain.registry import ATTENTION
from pcm_testkit.generator import Generator
from pcm_testkit.national import NATIONAL_ENTITIES, apportion, write_national_catalogues

REPO_CATALOGUES = Path(__file__).resolve().parents[2] / "catalogues"


@pytest.fixture(scope="module")
def real() -> Catalogues:
    return load_catalogues(REPO_CATALOGUES)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("national") / "catalogues"
    return write_national_catalogues(target, seed=7, source=REPO_CATALOGUES)


@pytest.fixture(scope="module")
def national(directory: Path) -> Catalogues:
    return load_catalogues(directory)


def test_the_loader_accepts_2700_entities(national: Catalogues) -> None:
    assert len(national.entities) == NATIONAL_ENTITIES == 2_700
    assert len({e.entity_id for e in national.entities}) == 2_700


def test_the_real_entities_are_unchanged_and_first(real: Catalogues, national: Catalogues) -> None:
    assert national.entities[: len(real.entities)] == real.entities
    assert national.services == real.services  # only entities.csv grows
    lines = (REPO_CATALOGUES / "entities.csv").read_text(encoding="utf-8").splitlines()
    written = (national.directory / "entities.csv").read_text(encoding="utf-8").splitlines()
    assert written[: len(lines)] == lines


def test_peer_groups_match_level_and_municipal_type(national: Catalogues) -> None:
    groups = {group.code: group for group in national.peer_groups}
    for entity in national.entities:
        group = groups[entity.peer_group]
        assert group.government_level is entity.government_level, entity
        assert group.municipal_type == entity.municipal_type, entity
        assert entity.channels[0] == "PRESENCIAL", entity


def test_mostly_municipalities_over_every_region_and_type(national: Catalogues) -> None:
    municipal = [e for e in national.entities if e.municipal_type]
    assert 1_850 <= len(municipal) <= 1_950  # Peru: 1,890 municipalities
    types = Counter(e.municipal_type for e in municipal)
    assert set(types) == {*"ABCDEFG", "LIMA_METROPOLITANA"}
    assert {e.region for e in municipal} == {r.code for r in national.regions}
    provincial = [e for e in municipal if e.entity_id.startswith("MUNI-P-")]
    assert {e.municipal_type for e in provincial} == {"A", "C"}
    regional = [e for e in national.entities if e.peer_group == "GOBIERNO_REGIONAL"]
    governments = {e.region for e in regional if e.entity_id.startswith("GR-")}
    assert governments == {r.code for r in national.regions}  # one per region
    assert len(regional) > 500


def test_same_seed_same_file_other_seed_other_file(directory: Path, tmp_path: Path) -> None:
    again = write_national_catalogues(tmp_path / "again", seed=7, source=REPO_CATALOGUES)
    other = write_national_catalogues(tmp_path / "other", seed=8, source=REPO_CATALOGUES)
    first = (directory / "entities.csv").read_bytes()
    assert (again / "entities.csv").read_bytes() == first
    assert (other / "entities.csv").read_bytes() != first


def test_a_smaller_registry_keeps_the_proportions(tmp_path: Path) -> None:
    small = load_catalogues(
        write_national_catalogues(tmp_path / "small", 300, source=REPO_CATALOGUES)
    )
    assert len(small.entities) == 300
    assert sum(1 for e in small.entities if e.municipal_type) > 150
    with pytest.raises(ValueError, match="fewer than the 40 real ones"):
        write_national_catalogues(tmp_path / "tiny", 39, source=REPO_CATALOGUES)


def test_apportion_sums_exactly() -> None:
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(apportion(1_877, {"x": 0.3, "y": 2.7, "z": 11}).values()) == 1_877


def test_the_generator_makes_valid_facts_for_generated_entities(national: Catalogues) -> None:
    """Every entity of the registry gets events (default: all entities) that the processor's
    row mapper accepts: channels and services are valid for each entity."""
    produced = Generator(national, seed=3, run_id="t").stream(
        ATTENTION.name, 3_000, 1_764_600_000, 3_600
    )
    ctx = MappingContext(CatalogueView.of(national), BucketClock("America/Lima"))
    rows = [ATTENTION.map(p.envelope, Position(0, i), ctx) for i, p in enumerate(produced)]
    generated = {row[0] for row in rows} - {e.entity_id for e in national.entities[:40]}
    assert len(generated) > 500
