"""The demo's synthetic dataset is realistic enough to pass the intake's own validation."""

from __future__ import annotations

from datetime import UTC, datetime

from pcm_common import domains
from pcm_common.catalogues import load_catalogues
from pcm_common.push import ItemContext, PushDeclaration, item_errors
from pcm_common.validation import TimeWindow
from pcm_complaints.validation import ComplaintCatalogue, ComplaintRules
from pcm_indicators.validation import IndicatorRules
from pcm_intake.service import declarations
from pcm_intake.validation import IntakeCatalogue
from pcm_surveys.validation import CollectionRules, ResponseRules, SurveyCatalogue
from pcm_testkit.generator import Generator

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def test_every_generated_event_is_valid_and_the_lifecycle_is_complete() -> None:
    catalogues = load_catalogues()
    dataset = Generator(catalogues, seed=11).dataset(days=2, now=NOW, scale=0.05)
    window = TimeWindow(NOW.timestamp(), future_skew_s=0, max_age_s=400 * 86_400)
    assert set(dataset.of("attention")) == {e.entity_id for e in catalogues.entities}
    complaints = PushDeclaration(
        domains.COMPLAINT, ComplaintRules(ComplaintCatalogue.of(catalogues))
    )
    indicators = PushDeclaration(domains.INDICATOR_VALUE, IndicatorRules(catalogues))
    survey_catalogue = SurveyCatalogue.of(catalogues)
    surveys = (
        PushDeclaration(domains.SURVEY_COLLECTION, CollectionRules(survey_catalogue)),
        PushDeclaration(domains.SURVEY_RESPONSE, ResponseRules(survey_catalogue)),
    )
    pushed = (*declarations(IntakeCatalogue.of(catalogues)), complaints, indicators, *surveys)
    assert {d.domain.name for d in pushed} == set(dataset.events)
    for declaration in pushed:
        for entity_id, events in dataset.of(declaration.domain.name).items():
            item = ItemContext(entity_id, window)
            for event in events:
                assert item_errors(event, declaration.validate, item) == [], event
    attentions = [e for events in dataset.of("attention").values() for e in events]
    ids = [e.event_id for e in attentions]
    assert len(ids) == len(set(ids))
    kinds = {e.kind for e in attentions}
    assert kinds == {1, 2, 3, 4}  # issued, called, served and abandoned all occur
    stages = {e.stage for events in dataset.of("complaint").values() for e in events}
    # The main path and a desk resolution occur; never OVERDUE (the platform's own event).
    assert {1, 2, 3, 5, 6, 10} <= stages <= set(range(1, 11))


def test_same_seed_same_dataset() -> None:
    catalogues = load_catalogues()
    first = Generator(catalogues, seed=3).dataset(days=1, now=NOW, scale=0.02)
    second = Generator(catalogues, seed=3).dataset(days=1, now=NOW, scale=0.02)
    assert first.of("attention") == second.of("attention")
