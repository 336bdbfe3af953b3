"""A latency histogram with bounded relative error, mergeable across processes.

locust rounds response times (whole milliseconds below 100 ms, about two
significant digits above), so a 0.4 ms view and a 0.8 ms view both read
"1 ms". This histogram stores microseconds in logarithmic buckets of width
`RESOLUTION` (0.5%): every percentile it reports is within 0.5% of a recorded
value, at any scale from 1 µs to minutes, in a few hundred buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

RESOLUTION = 0.005
_LOG_BASE = math.log1p(RESOLUTION)


def bucket_of(us: float) -> int:
    return int(math.log(max(us, 1.0)) / _LOG_BASE)


def bucket_value(index: int) -> float:
    """Representative value (geometric middle) of a bucket, in microseconds."""
    return math.exp((index + 0.5) * _LOG_BASE)


class Histogram:
    __slots__ = ("count", "counts", "max_us", "min_us", "total_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total_us = 0.0
        self.max_us = 0.0
        self.min_us = math.inf

    def record(self, us: float) -> None:
        b = bucket_of(us)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.count += 1
        self.total_us += us
        self.max_us = max(self.max_us, us)
        self.min_us = min(self.min_us, us)

    def merge(self, other: Histogram) -> None:
        for b, c in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + c
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)
        self.min_us = min(self.min_us, other.min_us)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) in microseconds, or None when empty."""
        if self.count == 0:
            return None
        if q >= 100:
            return self.max_us
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                # never report beyond the exact extremes
                return min(max(bucket_value(b), self.min_us), self.max_us)
        return self.max_us

    @property
    def mean_us(self) -> float | None:
        return self.total_us / self.count if self.count else None

    def to_dict(self) -> dict[str, object]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "count": self.count,
            "total_us": self.total_us,
            "max_us": self.max_us,
            "min_us": self.min_us if self.count else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Histogram:
        h = cls()
        counts = d.get("counts", {})
        assert isinstance(counts, Mapping)
        h.counts = {int(k): int(v) for k, v in counts.items()}
        h.count = int(_number(d.get("count", 0)))
        h.total_us = float(_number(d.get("total_us", 0.0)))
        h.max_us = float(_number(d.get("max_us", 0.0)))
        mn = d.get("min_us")
        h.min_us = float(_number(mn)) if mn is not None else math.inf
        return h

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        h = cls()
        for p in parts:
            h.merge(p)
        return h


def _number(value: object) -> float | int | str:
    """A stored count or time, as int() and float() take it; anything else is a corrupt file."""
    if not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a number, got {value!r}")
    return value
