"""Progress of a run on the terminal: measurements done/total, current cell,
elapsed time and an estimate of the time left.

On a TTY it draws a rich progress bar with the finished measurements printed
above it; otherwise (CI logs, tests) it prints a line per measurement so the
log reads as a record.
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.tty = self.stream.isatty()
        self._measure_times: list[float] = []
        self._current = ""
        self._t_start = self.t0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if self.tty and not quiet:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task("starting", total=total)
            self._bar.start()
            # The bar hides the cursor until stopped; a run ends however it ends.
            atexit.register(self.close)

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = value
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=value)

    def eta(self) -> float | None:
        if not self._measure_times:
            return None
        per = sum(self._measure_times) / len(self._measure_times)
        return per * (self.total - self.done)

    def start(self, label: str) -> None:
        self._current = label
        self._t_start = time.monotonic()
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"measuring {label}")

    def finish(self, label: str, result: str) -> None:
        self.done += 1
        self._measure_times.append(time.monotonic() - self._t_start)
        if self.quiet:
            return
        line = f"[{self.done}/{self.total}] {label}: {result}"
        if self._bar is not None and self._task is not None:
            self._bar.console.print(line, markup=False, highlight=False)
            self._bar.update(self._task, completed=self.done, description="")
            return
        eta = self.eta()
        tail = f"  (elapsed {_clock(time.monotonic() - self.t0)}, left ~{_clock(eta)})" if eta else ""
        self.stream.write(line + tail + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Stop drawing the bar (restores the cursor); safe to call twice."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
