import random

import pytest

from asyncbench.model.histogram import RESOLUTION, Histogram


def exact_percentile(values, q):
    s = sorted(values)
    import math

    return s[max(1, math.ceil(q / 100 * len(s))) - 1]


@pytest.mark.parametrize("scale", [50.0, 400.0, 800.0, 30_000.0, 2_000_000.0])
def test_percentiles_within_resolution(scale):
    rng = random.Random(7)
    values = [rng.lognormvariate(0, 0.5) * scale for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    for q in (50, 90, 95, 99, 99.9):
        got = h.percentile(q)
        want = exact_percentile(values, q)
        assert abs(got - want) / want <= RESOLUTION * 1.01, (q, got, want)
    assert h.percentile(100) == max(values)
    assert h.count == len(values)


def test_sub_millisecond_views_are_told_apart():
    """locust would round both to 1 ms; the histogram keeps 0.4 ms and 0.8 ms apart."""
    fast, slow = Histogram(), Histogram()
    for _ in range(1000):
        fast.record(400.0)
        slow.record(800.0)
    assert fast.percentile(50) == pytest.approx(400.0, rel=RESOLUTION)
    assert slow.percentile(50) == pytest.approx(800.0, rel=RESOLUTION)


def test_merge_and_roundtrip_equal_single_histogram():
    rng = random.Random(3)
    values = [rng.uniform(100, 50_000) for _ in range(5000)]
    whole, a, b = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(values):
        whole.record(v)
        (a if i % 2 else b).record(v)
    merged = Histogram.merged([Histogram.from_dict(a.to_dict()), Histogram.from_dict(b.to_dict())])
    assert merged.count == whole.count
    for q in (50, 99):
        assert merged.percentile(q) == whole.percentile(q)
    assert merged.max_us == whole.max_us


def test_empty_histogram_has_no_percentiles():
    assert Histogram().percentile(50) is None
    assert Histogram().mean_us is None
