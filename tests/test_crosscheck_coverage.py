"""The benchmark commands' arithmetic: locust-vs-wrk agreement and A/A coverage."""

from __future__ import annotations

import pytest

from asyncbench.analysis.coverage import aa_pairs, coverage
from asyncbench.execute.crosscheck import CrossCheck
from tests.synthetic import make_run, v2_cell


def test_locust_reading_more_than_ten_percent_below_wrk_is_flagged() -> None:
    close = CrossCheck("gunicorn-gthread", "/sync/noio/", 32, (3_500.0, 3_600.0, 3_550.0), (3_700.0, 3_750.0, 3_800.0))
    far = CrossCheck("gunicorn-gthread", "/sync/noio/", 32, (3_000.0, 3_100.0, 3_050.0), (3_700.0, 3_750.0, 3_800.0))
    assert not close.flagged and 0.93 < close.ratio < 0.97
    assert far.flagged and far.ratio < 0.9
    ci = far.ratio_ci
    assert ci is not None and ci[0] < far.ratio < ci[1]


def test_aa_pairs_twin_the_a_and_b_names_and_count_coverage() -> None:
    cells = []
    for users in (2, 4, 8):
        cells.append(v2_cell("gthread-a", "noio", "sync", users, 3_000.0, seed=users))
        cells.append(v2_cell("gthread-b", "noio", "sync", users, 3_000.0, seed=users + 100))
    # a lone arm without its twin is not a pair
    cells.append(v2_cell("gthread-a", "cpu", "sync", 2, 90.0))
    pairs = aa_pairs(make_run(cells))
    assert [(p.setup, p.users) for p in pairs] == [("gthread", 2), ("gthread", 4), ("gthread", 8)]
    c95, c99 = coverage(pairs, 0.95), coverage(pairs, 0.99)
    assert c95.pairs == 3 and c99.covered >= c95.covered
    assert c99.mean_precision > c95.mean_precision  # the same slices, a wider interval
    assert c95.wilson[0] <= c95.rate <= c95.wilson[1]


def test_a_real_difference_is_not_covered() -> None:
    cells = [
        v2_cell("gthread-a", "noio", "sync", 4, 3_000.0, noise=0.02),
        v2_cell("gthread-b", "noio", "sync", 4, 2_400.0, noise=0.02, seed=7),
    ]
    (pair,) = aa_pairs(make_run(cells))
    assert not pair.covers(0.95) and pair.intervals[0.95].point == pytest.approx(1.25, rel=0.05)
