"""Progress of a run on the terminal: measurements done/total, current cell,
elapsed time and an estimate of the time left.

On a TTY it rewrites one status line; otherwise (CI logs, tests) it prints a
line per measurement so the log reads as a record.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.tty = self.stream.isatty()
        self._measure_times: list[float] = []

    def eta(self) -> float | None:
        if not self._measure_times:
            return None
        per = sum(self._measure_times) / len(self._measure_times)
        return per * (self.total - self.done)

    def start(self, label: str) -> None:
        self._current = label
        self._t_start = time.monotonic()
        if self.tty and not self.quiet:
            self._status(f"measuring {label}")

    def finish(self, label: str, result: str) -> None:
        self.done += 1
        self._measure_times.append(time.monotonic() - self._t_start)
        if self.quiet:
            return
        line = f"[{self.done}/{self.total}] {label}: {result}"
        if self.tty:
            self.stream.write("\r\033[K" + line + "\n")
            self._status("")
        else:
            eta = self.eta()
            tail = f"  (elapsed {_clock(time.monotonic() - self.t0)}, left ~{_clock(eta)})" if eta else ""
            self.stream.write(line + tail + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _status(self, what: str) -> None:
        eta = self.eta()
        left = f", ~{_clock(eta)} left" if eta is not None else ""
        self.stream.write(
            f"\r\033[K{self.done}/{self.total} done, elapsed {_clock(time.monotonic() - self.t0)}{left}"
            + (f" | {what}" if what else "")
        )
        self.stream.flush()
