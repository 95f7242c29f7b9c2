"""A reported indicator value is checked against its catalogue range (not the unit's alone), and
a stored value's validity runs from the end of its period for the catalogue's window."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from pcm.monitoring.v1 import common_pb2
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.push import ItemContext
from pcm_common.validation import OUT_OF_RANGE, TimeWindow
from pcm_indicators.validation import IndicatorRules, period_end
from pcm_testkit.events import indicator_value, local_time

REPO_CATALOGUES = Path(__file__).resolve().parents[2] / "catalogues"
ENTITY = "RENIEC"


@pytest.fixture(scope="module")
def narrowed(tmp_path_factory: pytest.TempPathFactory) -> Catalogues:
    """The shipped catalogues with a stated range: at most 12 evacuation drills a year."""
    copy = tmp_path_factory.mktemp("catalogues") / "catalogues"
    shutil.copytree(REPO_CATALOGUES, copy)
    path = copy / "standards.yaml"
    text = path.read_text(encoding="utf-8")
    old = "  - code: EVACUATION_DRILLS\n"
    path.write_text(text.replace(old, f"{old}    max: 12\n"), encoding="utf-8")
    return load_catalogues(copy)


def errors(rules: IndicatorRules, **fields: object) -> list[tuple[str, str, int]]:
    event = indicator_value(ENTITY, **fields)
    item = ItemContext(ENTITY, TimeWindow(time.time(), 300, 800 * 86_400))
    return [(e.field, e.reason, e.code) for e in rules(event, item)]


def test_the_catalogue_range_decides(narrowed: Catalogues, catalogues: Catalogues) -> None:
    drills = {"indicator_code": "EVACUATION_DRILLS", "unit": "count"}
    assert errors(IndicatorRules(narrowed), value=12, **drills) == []
    assert errors(IndicatorRules(narrowed), value=13, **drills) == [
        ("value", "13.0 is outside 0..12 (count, the catalogue range of EVACUATION_DRILLS)",
         OUT_OF_RANGE),
    ]  # fmt: skip
    assert errors(IndicatorRules(catalogues), value=13, **drills) == []  # no maximum shipped
    assert errors(IndicatorRules(catalogues), value=-1, **drills) == [
        ("value", "-1.0 is outside 0 or more (count, the catalogue range of EVACUATION_DRILLS)",
         OUT_OF_RANGE),
    ]  # fmt: skip
    share = errors(IndicatorRules(catalogues), value=100.5)
    assert share == [
        ("value", "100.5 is outside 0..100 (percent, the catalogue range of STAFF_TRAINED_PCT)",
         OUT_OF_RANGE),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "grain", "end"),
    [
        (dt.date(2024, 2, 1), "MONTH", dt.date(2024, 2, 29)),
        (dt.date(2025, 2, 1), "MONTH", dt.date(2025, 2, 28)),
        (dt.date(2025, 10, 1), "QUARTER", dt.date(2025, 12, 31)),
        (dt.date(2025, 1, 1), "YEAR", dt.date(2025, 12, 31)),
    ],
)
def test_period_end(start: dt.date, grain: str, end: dt.date) -> None:
    assert period_end(start, grain) == end


def test_valid_until_of_a_stored_value(catalogues: Catalogues) -> None:
    rules = IndicatorRules(catalogues)
    year = indicator_value(ENTITY, grain=common_pb2.GRAIN_YEAR, period_start=local_time(2025, 1, 1))
    assert rules.valid_until(year) == dt.date(2026, 12, 31)
    progress = indicator_value(
        ENTITY,
        indicator_code="IMPROVEMENT_PLAN_PROGRESS_PCT",
        grain=common_pb2.GRAIN_QUARTER,
        period_start=local_time(2023, 10, 1),
    )
    assert rules.valid_until(progress) == dt.date(2024, 3, 31)
    segmentation = indicator_value(
        ENTITY,
        indicator_code="USER_SEGMENTATION_STUDY_DONE",
        period_start=local_time(2024, 2, 1),  # MONTH: February of a leap year
    )
    assert rules.valid_until(segmentation) == dt.date(2026, 2, 28)
    assert rules.valid_until(indicator_value(ENTITY, indicator_code="GONE")) is None
