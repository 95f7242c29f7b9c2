"""Ranking order, ties, percentile ranks and peer distributions."""

from __future__ import annotations

import pytest
from pcm_benchmark.ranking import Standing, distribution, standings
from pcm_benchmark.reads import STEADY_POINTS, Trend


def test_ties_share_the_best_rank_and_the_next_rank_skips() -> None:
    got = standings(
        {"D": (2.0, 50.0), "A": (3.0, 80.0), "C": (2.0, 50.0), "B": (2.0, 70.0), "E": (0.0, 0.0)}
    )
    assert {entity: s.rank for entity, s in got.items()} == {"A": 1, "B": 2, "C": 3, "D": 3, "E": 5}
    # The level comes first: a higher score on a lower level ranks below.
    assert standings({"X": (1.0, 99.0), "Y": (2.0, 10.0)})["Y"].rank == 1


def test_percentile_rank_counts_half_of_the_ties() -> None:
    got = standings({"A": (3.0,), "B": (2.0,), "C": (2.0,), "D": (1.0,)})
    assert got["A"] == Standing(1, 4, 87.5)  # 3 below + half of itself, over 4
    assert got["B"] == got["C"] == Standing(2, 4, 50.0)  # 1 below + half of 2
    assert got["D"] == Standing(4, 4, 12.5)
    assert standings({"ALONE": (1.0,)})["ALONE"] == Standing(1, 1, 50.0)


def test_peer_distribution_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    got = distribution(values)
    assert got is not None
    assert (got.count, got.p10, got.p25, got.p50, got.p75, got.p90) == (10, 1, 3, 5, 8, 9)
    assert got.mean == 5.5
    assert distribution([]) is None
    single = distribution([42.0])
    assert single is not None and single.p10 == single.p90 == pytest.approx(42.0)


def test_trend_directions_beyond_the_steady_band() -> None:
    assert Trend.direction(None) == "UNKNOWN"
    assert Trend.direction(STEADY_POINTS) == "STEADY"
    assert Trend.direction(STEADY_POINTS + 0.1) == "IMPROVING"
    assert Trend.direction(-STEADY_POINTS - 0.1) == "FALLING_BEHIND"
    trend = Trend("PUNTUALIDAD", 50.0, 66.7, None)
    assert trend.period_over_period == 50.0 - 66.7 and trend.year_over_year is None
