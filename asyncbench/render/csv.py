"""Every cell as CSV: the numbers of the report's full table, for a spreadsheet.

The figures come from `cell.summary` (computed once per cell); only the
per-repeat list and the worst latency are read from the repeats themselves.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from asyncbench.model import flags
from asyncbench.model.results import NOT_MEASURED, Cell, Run
from asyncbench.model.summary import params_label
from asyncbench.render.cells import missing_cells, sorted_cells

CSV_NAME = "cells.csv"

CSV_COLUMNS = (
    "setup",
    "workload",
    "variant",
    "kind",
    "users",
    "params",
    "status",
    "repeats",
    "rps_mean",
    "rps_lo",
    "rps_hi",
    "blocks",
    "rps_min",
    "rps_max",
    "rps_cv",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "latency_samples",
    "p99_thin",
    "max_ms",
    "requests",
    "failures",
    "cpu_s_per_1k_requests",
    "cpu_lo",
    "cpu_hi",
    "server_rss_peak_mb",
    "generator_cpu_peak_percent",
    "flags",
    "flag_reasons",
    "rps_repeats",
    "path",
    "key",
    # the server's own counters (blank: not measured): requests that reached
    # Django, thread hops per request, Django's connects and the database
    # server's connections per 1,000 of those requests
    "served",
    "hops_per_request",
    "sync_to_async_per_request",
    "async_to_sync_per_request",
    "django_connects_per_1k",
    "db_connections_per_1k",
)


def cell_row(c: Cell, resources: str = "local") -> dict[str, Any]:
    """One cell's summary: the numbers of the full table and of the CSV.

    `resources`: where its setup's server CPU and RSS came from; NOT_MEASURED
    (an existing deployment without an agent) writes "not measured" in those
    columns, never 0 or a blank."""
    s = c.summary
    row = {
        "setup": c.setup,
        "workload": c.workload,
        "variant": c.variant,
        "kind": c.kind,
        "users": c.users,
        "params": params_label(s.params, sep=";"),
        "status": c.status,
        "repeats": s.repeats,
        "rps_mean": s.rps,
        "rps_lo": s.rps_lo,
        "rps_hi": s.rps_hi,
        "blocks": s.blocks,
        "rps_min": s.rps_min,
        "rps_max": s.rps_max,
        "rps_cv": s.rps_cv,
        "p50_ms": s.p50_ms,
        "p90_ms": s.p90_ms,
        "p99_ms": s.p99_ms,
        "latency_samples": s.latency_samples,
        "p99_thin": s.p99_thin,
        "max_ms": max((r.latency.max_ms for r in c.repeats), default=None),
        "requests": s.requests,
        "failures": s.failures,
        # server CPU seconds per 1,000 requests is milliseconds per request
        "cpu_s_per_1k_requests": s.cpu_ms_per_request,
        "cpu_lo": s.cpu_lo,
        "cpu_hi": s.cpu_hi,
        "server_rss_peak_mb": s.rss_peak_mb,
        "generator_cpu_peak_percent": s.generator_cpu_peak_percent,
        "flags": ";".join(s.flags),
        "flag_reasons": " | ".join(flags.reasons(c)),
        "rps_repeats": ";".join(repr(x) for x in c.throughputs),
        "path": c.path,
        "key": c.key,
        "served": s.served,
        "hops_per_request": s.hops_per_request,
        "sync_to_async_per_request": s.sync_to_async_per_request,
        "async_to_sync_per_request": s.async_to_sync_per_request,
        "django_connects_per_1k": s.django_connects_per_1k,
        "db_connections_per_1k": s.db_connections_per_1k,
    }
    if resources == NOT_MEASURED:
        row.update(dict.fromkeys(RESOURCE_COLUMNS, NOT_MEASURED))
    return row


# the columns a setup's resource measurement fills
RESOURCE_COLUMNS = ("cpu_s_per_1k_requests", "cpu_lo", "cpu_hi", "server_rss_peak_mb")


def cells_csv(run: Run) -> str:
    """Every cell (and every missing planned cell, status "missing") as CSV."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for c in sorted_cells(run):
        w.writerow({k: ("" if v is None else v) for k, v in cell_row(c, run.resources(c.setup)).items()})
    for m in missing_cells(run):
        w.writerow(
            {
                "setup": m.setup,
                "workload": m.workload,
                "variant": m.variant,
                "users": m.users,
                "params": params_label(m.params, sep=";"),
                "status": "missing",
                "repeats": 0,
            }
        )
    return buf.getvalue()
