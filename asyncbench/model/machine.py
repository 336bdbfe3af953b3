"""What a run ran on: the machine, the database and the load generator's ceiling.

Typed records of what results.json has always stored as objects, so readers
(report, gate, verdict notes) stop guessing shapes. The JSON shape is the one
version 1 wrote: field names are the keys; a key this version does not know is
kept in `extra` and written back, so nothing recorded is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Self


def _split(cls: type, d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}


@dataclass(frozen=True)
class DatabaseInfo:
    vendor: str = ""  # "sqlite" or "postgresql"
    version: str | None = None
    rows: int | None = None
    path: str | None = None  # SQLite: the database file
    host: str | None = None  # PostgreSQL: where it answered (never a password)
    port: int | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """ "sqlite 3.40.1", "postgresql 15.8": how sentences name the database."""
        return f"{self.vendor} {self.version or ''}".strip()

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Self:
        known, extra = _split(cls, dict(d or {}))
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class Environment:
    # None = not recorded (the gate warns about keys a run did not record)
    cpu_model: str | None = None
    cpu_count: int | None = None
    cpu_affinity_runner: tuple[int, ...] = ()
    memory_gb: float | None = None
    os: str | None = None
    hostname: str | None = None
    python: str | None = None
    python_implementation: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    database: DatabaseInfo = field(default_factory=DatabaseInfo)
    loadavg_at_start: tuple[float, ...] = ()
    # In an A/B-in-one-job run: the commit each revision label served.
    revisions: dict[str, str] = field(default_factory=dict)
    # A run against existing deployments (run --target): setup name -> URL.
    # Those servers were not started by the runner, and the machine facts
    # above describe the load generator's host, not theirs. None (left out of
    # the file) in a run of the runner's own servers.
    targets: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Self:
        known, extra = _split(cls, dict(d or {}))
        known["database"] = DatabaseInfo.from_dict(known.get("database"))
        known["cpu_affinity_runner"] = tuple(known.get("cpu_affinity_runner") or ())
        known["loadavg_at_start"] = tuple(known.get("loadavg_at_start") or ())
        known["packages"] = dict(known.get("packages") or {})
        known["revisions"] = dict(known.get("revisions") or {})
        known["targets"] = dict(known["targets"]) if known.get("targets") else None
        return cls(**known, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, in version 1's shape (extra keys flattened back in)."""
        return flat(self)

    @property
    def database_label(self) -> str:
        return self.database.label


@dataclass(frozen=True)
class Ceiling:
    """The load generator's own limit, measured at the start of a run."""

    valid: bool = False
    note: str = ""
    rps: float | None = None
    cpu_percent: float | None = None
    users: int | None = None
    processes: int | None = None
    endpoint: str = ""
    duration_s: float | None = None
    failures: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Self:
        known, extra = _split(cls, dict(d or {}))
        return cls(**known, extra=extra)

    @property
    def limit_rps(self) -> float | None:
        """The ceiling to flag cells against: none when the measurement was not locust's limit."""
        return float(self.rps) if self.valid and self.rps else None


def flat(record: Any) -> dict[str, Any]:
    """A record as its JSON object: `extra` keys merged back at their level.

    A field that is None by default and None now is left out: absent and null
    read back the same, and a SQLite run's database then carries no host/port.
    """
    out: dict[str, Any] = {}
    for f in fields(record):
        v = getattr(record, f.name)
        if f.name == "extra" or (v is None and f.default is None):
            continue
        out[f.name] = flat(v) if hasattr(v, "__dataclass_fields__") else (list(v) if isinstance(v, tuple) else v)
    out.update(record.extra)
    return out
