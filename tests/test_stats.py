import math

import pytest

from asyncbench.analysis import stats


def test_mann_whitney_exact_extreme_case() -> None:
    # all of x above all of y with 6 vs 6: the smallest possible one-sided p, 1/C(12,6)
    u, p = stats.mann_whitney_greater([7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6])
    assert u == 36
    assert p == pytest.approx(1 / math.comb(12, 6))
    assert stats.min_p_value(6, 6) == pytest.approx(1 / 924)


def test_mann_whitney_exact_matches_enumeration() -> None:
    # brute force over all C(7,3) splits of ranks for a small case
    import itertools

    x, y = [3.1, 5.2, 4.4], [1.0, 4.0, 2.2, 6.0]
    u, p = stats.mann_whitney_greater(x, y)
    combined = sorted(x + y)
    count = total = 0
    for idx in itertools.combinations(range(7), 3):
        xs = [combined[i] for i in idx]
        ys = [combined[i] for i in range(7) if i not in idx]
        uu = sum(1 for a in xs for b in ys if a > b)
        total += 1
        count += uu >= u
    assert p == pytest.approx(count / total)


def test_mann_whitney_no_shift_is_not_significant() -> None:
    _, p = stats.mann_whitney_greater([1, 3, 5, 7, 9, 11], [2, 4, 6, 8, 10, 12])
    assert p > 0.5


def test_bootstrap_ratio_ci_brackets_point_and_is_deterministic() -> None:
    a = [300, 310, 295, 305, 290]
    b = [100, 102, 98, 101, 99]
    r = stats.bootstrap_ratio_ci(a, b)
    assert r is not None
    point, lo, hi = r
    assert lo <= point <= hi
    assert lo > 2.8 and hi < 3.2
    assert stats.bootstrap_ratio_ci(a, b) == (point, lo, hi)


def test_holm_is_stricter_than_uncorrected() -> None:
    ps = [0.01, 0.02, 0.03, 0.04]
    assert [a <= 0.05 for a in stats.holm_adjusted(ps)] == [True, False, False, False]
    assert [a <= 0.05 for a in stats.holm_adjusted([0.001, 0.01])] == [True, True]


def test_cv() -> None:
    assert stats.cv([10]) is None
    assert stats.cv([10, 10, 10]) == 0
    assert stats.cv([9, 11]) == pytest.approx(math.sqrt(2) / 10)
