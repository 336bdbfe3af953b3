"""The cyclic garbage collector's policy in a server process (BENCH_GC).

- ``default`` (or unset): CPython's, untouched.
- ``freeze``: ``gc.freeze()`` once the application is loaded (called at the end
  of the entry points, bench_site.wsgi / bench_site.asgi, so in each worker
  after it imported Django, the site and its dependencies). Every object alive
  then moves to a permanent generation the collector never traverses again, so
  a full collection walks only what requests made since. The usual advice for
  large long-lived Python servers (Instagram's, and ``gc.freeze``'s own
  documentation for pre-fork servers); measured here as a setup option
  (``gc = "freeze"``, README "Garbage collection").
"""

from __future__ import annotations

import gc
import os

from bench_site import telemetry

ENV = "BENCH_GC"
DEFAULT_GC = "default"
POLICIES: tuple[str, ...] = (DEFAULT_GC, "freeze")


def policy() -> str:
    """The policy BENCH_GC names; an unknown one is refused, naming the allowed values."""
    value = os.environ.get(ENV, "").strip() or DEFAULT_GC
    if value not in POLICIES:
        raise ValueError(f"{ENV}={value!r}: allowed: {', '.join(POLICIES)}")
    return value


def apply() -> str:
    """Apply BENCH_GC's policy in this process; returns it."""
    chosen = policy()
    if chosen == "freeze":
        gc.collect()  # what is garbage already is freed, not frozen
        gc.freeze()
        telemetry.add("gc_frozen_objects", gc.get_freeze_count())  # the runner can see it was done
    return chosen
