"""The demo's synthetic dataset is realistic enough to pass the intake's own validation."""

from __future__ import annotations

from datetime import UTC, datetime

from pcm_common.catalogues import load_catalogues
from pcm_common.validation import TimeWindow
from pcm_demo.synthetic import Generator
from pcm_intake.server import intake_catalogue
from pcm_intake.validation import attention_errors, procedure_errors

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def test_every_generated_event_is_valid_and_the_lifecycle_is_complete() -> None:
    catalogues = load_catalogues()
    dataset = Generator(catalogues, NOW, seed=11, scale=0.05).dataset(days=2)
    index = intake_catalogue(catalogues)
    window = TimeWindow(NOW.timestamp(), future_skew_s=0, max_age_s=400 * 86_400)
    assert set(dataset.attentions) == {e.entity_id for e in catalogues.entities}
    for entity_id, events in dataset.attentions.items():
        for event in events:
            assert attention_errors(event, entity_id, index, window) == [], event
    for entity_id, stages in dataset.procedures.items():
        for stage in stages:
            assert procedure_errors(stage, entity_id, index, window) == [], stage
    attentions = [e for events in dataset.attentions.values() for e in events]
    ids = [e.event_id for e in attentions]
    assert len(ids) == len(set(ids))
    kinds = {e.kind for e in attentions}
    assert kinds == {1, 2, 3, 4}  # issued, called, served and abandoned all occur


def test_same_seed_same_dataset() -> None:
    catalogues = load_catalogues()
    first = Generator(catalogues, NOW, seed=3, scale=0.02).dataset(days=1)
    second = Generator(catalogues, NOW, seed=3, scale=0.02).dataset(days=1)
    assert first.attentions == second.attentions
