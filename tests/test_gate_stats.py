"""The statistics the gate adds to asyncbench.analysis.stats: exact rank test with ties,
Holm-adjusted p-values, Wilson intervals."""

from __future__ import annotations

import itertools
import random

import pytest

from asyncbench.analysis import stats


def _brute_force_p(x: list[float], y: list[float]) -> float:
    """P(U >= observed) over every split of the pooled values (the definition)."""

    def u(a: list[float], b: list[float]) -> float:
        return sum(1.0 if ai > bj else 0.5 if ai == bj else 0.0 for ai in a for bj in b)

    pooled = x + y
    observed = u(x, y)
    n = len(x)
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        chosen = set(idx)
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        hits += u(a, b) >= observed - 1e-9
    return hits / total


def test_exact_test_with_ties_matches_enumeration() -> None:
    rng = random.Random(7)
    for _ in range(150):
        n, m = rng.randint(1, 6), rng.randint(1, 6)
        x = [float(rng.choice([1, 2, 3, 4])) for _ in range(n)]
        y = [float(rng.choice([1, 2, 3, 4, 5])) for _ in range(m)]
        _, p = stats.mann_whitney_greater_exact(x, y)
        assert p == pytest.approx(_brute_force_p(x, y), abs=1e-12), (x, y)


def test_exact_test_without_ties_is_the_classic_one() -> None:
    x = [5.1, 6.2, 7.3, 8.4, 9.5, 10.6]
    y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert stats.mann_whitney_greater_exact(x, y) == stats.mann_whitney_greater(x, y)
    assert stats.mann_whitney_greater_exact(x, y)[1] == pytest.approx(2 / 924)


def test_exact_test_falls_back_above_the_size_limit() -> None:
    x = [float(i // 2) for i in range(30)]
    y = [float(i // 2) + 0.5 for i in range(30)]
    assert stats.mann_whitney_greater_exact(x, y) == stats.mann_whitney_greater(x, y)


def _holm_step_down(p_values: list[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni step-down as the textbook states it: the reference."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    k = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (k - rank):
            break
        rejected[i] = True
    return rejected


def test_holm_adjusted_agrees_with_holm() -> None:
    rng = random.Random(3)
    for _ in range(100):
        ps = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        adjusted = stats.holm_adjusted(ps)
        for alpha in (0.01, 0.05, 0.1):
            assert [a <= alpha for a in adjusted] == _holm_step_down(ps, alpha)
    assert stats.holm_adjusted([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_wilson_interval() -> None:
    lo, hi = stats.wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
    lo, hi = stats.wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-3)
    lo, hi = stats.wilson_interval(5, 10)
    assert lo < 0.5 < hi
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
