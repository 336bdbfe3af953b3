"""locust against wrk on the same server, back to back: is the load generator
telling the truth about the fastest cells?

locust (Python, one core) is as slow as the server it loads; wrk (C) is not.
For each of the fastest arms, rounds of a locust window and a wrk window of
the same length, users and connection count, in alternating order, on the
same running server. Where locust reads more than 10% below wrk, the cell's
locust figure is the generator's limit, not the server's, and is flagged.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean, stdev

from asyncbench.execute.load import LoadGenerator
from asyncbench.execute.processes import LOOPBACK, cpu_pinning_prefix
from asyncbench.execute.servers import Server

AGREEMENT = 0.10  # locust within 10% of wrk, or the cell is flagged
_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")


class WrkMissing(RuntimeError):
    """wrk is not installed (Debian: apt-get install wrk)."""


@dataclass(frozen=True)
class CrossCheck:
    setup: str
    path: str
    users: int
    locust_rps: tuple[float, ...]
    wrk_rps: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """locust / wrk: the geometric mean over rounds."""
        return math.exp(fmean(self._logs()))

    @property
    def ratio_ci(self) -> tuple[float, float] | None:
        from scipy.stats import t

        d = self._logs()
        if len(d) < 3:
            return None
        half = float(t.ppf(0.975, len(d) - 1)) * stdev(d) / math.sqrt(len(d))
        return math.exp(fmean(d) - half), math.exp(fmean(d) + half)

    @property
    def flagged(self) -> bool:
        return self.ratio < 1.0 - AGREEMENT

    def _logs(self) -> list[float]:
        return [math.log(a / b) for a, b in zip(self.locust_rps, self.wrk_rps, strict=True) if a > 0 and b > 0]


def wrk_rps(url: str, *, users: int, seconds: float, cpus: tuple[int, ...], timeout: float = 60.0) -> float:
    """wrk's requests/s: one thread, `users` connections, on the generator's CPUs."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissing("wrk is not installed (apt-get install wrk)")
    argv = [*cpu_pinning_prefix(cpus), wrk, "-t1", f"-c{users}", f"-d{max(1, round(seconds))}s", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    m = _RPS.search(done.stdout)
    if done.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return float(m.group(1))


def cross_check(
    server: Server,
    path: str,
    *,
    users: int,
    rounds: int,
    seconds: float,
    gen: LoadGenerator,
    gen_cpus: tuple[int, ...],
    note: Callable[[str], None],
) -> CrossCheck:
    locust: list[float] = []
    wrk: list[float] = []
    for r in range(rounds):
        # alternate which goes first, so a drift within the round hits both alike
        for tool in ("locust", "wrk") if r % 2 == 0 else ("wrk", "locust"):
            if tool == "wrk":
                wrk.append(
                    wrk_rps(f"http://{LOOPBACK}:{server.port}{path}", users=users, seconds=seconds, cpus=gen_cpus)
                )
            else:
                m = gen.measure(
                    host=server.base_url,
                    path=path,
                    users=users,
                    warmup_s=0.5,
                    min_s=seconds,
                    max_s=seconds,
                    target_rse=0.0,
                    min_requests_per_user=1,
                )
                locust.append(m.throughput_rps)
        note(
            f"  {server.config.name} {path} u={users} round {r + 1}: locust {locust[-1]:,.0f}, wrk {wrk[-1]:,.0f} req/s"
        )
    return CrossCheck(server.config.name, path, users, tuple(locust), tuple(wrk))
