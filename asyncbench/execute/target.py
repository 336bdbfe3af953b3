"""Existing deployments: measuring servers the runner does not start.

`run --target [NAME=]URL` (repeatable, one setup per target) replaces the
scenario's setups with deployments someone else runs: no server is started,
no database is migrated or seeded, no upstream is started for them; the same
body checks, twin equality, slices, blocks and verdicts apply. Load goes only
to the hosts given: each slice to its target, the body check and the drain's
/health to the same origin; nothing is discovered or scanned.

The URL's path, if any, is a prefix put before every endpoint path
(`http://host:8000/bench` loads `/bench/sync/noio/`). http:// and https://
(locust's FastHttpUser, which does not verify certificates: neither does the
body check here).

Server CPU and RSS of a target are "not measured" unless a resource agent
(`python runner.py agent --pid PID` on the server host, asyncbench.execute.agent)
reports them: `--agent [NAME=]http://HOST:PORT` names it, and AgentMonitor reads
it at each window's start and end, as TreeMonitor reads a local server.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from asyncbench.execute.monitor import NOT_MEASURED, WindowUsage
from asyncbench.execute.processes import ProcessError
from asyncbench.execute.setups import SETUPS
from asyncbench.model.results import SetupInfo

TARGET_KIND = "target"  # SetupConfig.kind of a target: nothing to start, never in SETUPS
DEFAULT_NAME = "target"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
AGENT_TIMEOUT_S = 2.0
HEALTH_TIMEOUT_S = 10.0

# Where a setup's server CPU and RSS came from (SetupInfo.resources).
LOCAL = "local"
AGENT = "agent"
NOT_MEASURED_TEXT = "not measured"

TARGET_EXAMPLE = "--target http://10.0.0.5:8000 or --target prod=https://app.example.com/bench"
AGENT_EXAMPLE = "--agent http://10.0.0.5:8089 or --agent prod=http://10.0.0.5:8089"


class TargetError(ValueError):
    """A bad --target or --agent: the message names the flag and what is allowed."""


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # as recorded: origin + prefix
    origin: str  # scheme://host[:port]
    prefix: str  # "" or "/path", put before every endpoint path
    agent: str = ""  # the resource agent's http://host:port, or "" (CPU and RSS not measured)

    @property
    def resources(self) -> str:
        return AGENT if self.agent else NOT_MEASURED_TEXT


def _split_named(flag: str, value: str) -> tuple[str | None, str]:
    """ "NAME=URL" -> (NAME, URL); a bare URL -> (None, URL)."""
    name, sep, rest = value.partition("=")
    if sep and "://" not in name:
        if not NAME_PATTERN.match(name):
            raise TargetError(
                f"{flag}: name {name!r} is not allowed: letters, digits, '.', '_' and '-', "
                f"starting with a letter or digit, at most 40 characters"
            )
        return name, rest.strip()
    return None, value.strip()


def _url(flag: str, value: str, *, schemes: tuple[str, ...], example: str) -> tuple[str, str]:
    """(origin, path prefix) of a URL a flag gave, or TargetError saying what is allowed."""
    allowed = " or ".join(f"{s}://" for s in schemes)
    try:
        u = urlsplit(value)
        port = u.port
    except ValueError as exc:
        raise TargetError(
            f"{flag}: {value!r} is not a URL ({exc}); expected {allowed}HOST[:PORT], e.g. {example}"
        ) from None
    if u.scheme not in schemes or not u.hostname:
        raise TargetError(f"{flag}: {value!r} is not an {allowed} URL with a host; e.g. {example}")
    if u.username is not None or u.password is not None:
        raise TargetError(f"{flag}: {value!r}: credentials in the URL are not allowed (they would be recorded)")
    if u.query or u.fragment:
        raise TargetError(f"{flag}: {value!r}: no query string or fragment allowed, only a path prefix")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    origin = f"{u.scheme}://{host}" + (f":{port}" if port is not None else "")
    return origin, u.path.rstrip("/")


def parse_targets(targets: Sequence[str], agents: Sequence[str] = ()) -> tuple[Target, ...]:
    """The --target and --agent flags as targets, or TargetError naming the flag."""
    if agents and not targets:
        raise TargetError("--agent: only with --target (a local setup's CPU and RSS are measured by the runner)")
    parsed: list[tuple[str, str, str]] = []
    bare = 0
    for value in targets:
        name, url = _split_named("--target", value)
        if name is None:
            bare += 1
            name = DEFAULT_NAME
        if name in SETUPS:
            raise TargetError(
                f"--target: name {name!r} is a server setup the runner starts; name the deployment something "
                f"else (e.g. --target prod-{name}=URL)"
            )
        origin, prefix = _url("--target", url, schemes=("http", "https"), example=TARGET_EXAMPLE)
        if any(p[0] == name for p in parsed):
            raise TargetError(
                f"--target: duplicate name {name!r}"
                + ("; several targets need names: --target NAME=URL" if bare > 1 or name == DEFAULT_NAME else "")
            )
        parsed.append((name, origin, prefix))
    names = [p[0] for p in parsed]
    by_agent: dict[str, str] = {}
    for value in agents:
        name, url = _split_named("--agent", value)
        if name is None:
            if len(names) != 1:
                raise TargetError(
                    f"--agent: with several targets, say whose agent: --agent NAME=URL ({', '.join(names)})"
                )
            name = names[0]
        if name not in names:
            raise TargetError(f"--agent: no target named {name!r}; targets: {', '.join(names)}")
        if name in by_agent:
            raise TargetError(f"--agent: two agents for target {name!r}; one agent watches one deployment")
        origin, prefix = _url("--agent", url, schemes=("http",), example=AGENT_EXAMPLE)
        if prefix:
            raise TargetError(f"--agent: {url!r}: the agent's URL is http://HOST:PORT, without a path")
        by_agent[name] = origin
    return tuple(Target(n, o + p, o, p, by_agent.get(n, "")) for n, o, p in parsed)


def url_get(
    origin: str,
    path: str,
    timeout: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, bytes, dict[str, str]]:
    """GET origin + path (http or https; certificates are not verified, as locust's FastHttpUser).
    A scenario's own endpoint may give another method, headers and a body."""
    u = urlsplit(origin)
    host = u.hostname or ""
    conn: http.client.HTTPConnection
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(host, u.port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(host, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers={"Host": u.netloc, **(headers or {})})
        resp = conn.getresponse()
        answer = resp.read()
        return resp.status, answer, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


class AgentUnavailable(OSError):
    """The agent did not answer, or answered something that is not a reading."""


def read_agent(agent: str, since: float | None = None, timeout: float = AGENT_TIMEOUT_S) -> dict[str, Any]:
    path = "/usage" + (f"?since={since!r}" if since is not None else "")
    try:
        status, body, _ = url_get(agent, path, timeout)
    except OSError as exc:
        raise AgentUnavailable(f"the agent at {agent} did not answer: {exc}") from None
    if status != 200:
        raise AgentUnavailable(f"the agent at {agent} answered HTTP {status}: {body[:200]!r}")
    try:
        reading = json.loads(body)
        _ = (float(reading["now_s"]), int(reading["cpu_ns"]), list(reading["processes"]))
    except (ValueError, KeyError, TypeError):
        raise AgentUnavailable(f"{agent}/usage is not a resource agent's reading: {body[:200]!r}") from None
    return dict(reading)


def _cpu_by_process(reading: dict[str, Any]) -> dict[tuple[int, float], int]:
    return {(int(p["pid"]), float(p["create_time"])): int(p["cpu_ns"]) for p in reading["processes"]}


class AgentMonitor:
    """A target's process tree through its agent: `begin()`/`end()` bracket a
    window as TreeMonitor's do. A window the agent did not answer for is "not
    measured" (its CPU and RSS None), never zero; `problems` keeps why."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._start: dict[str, Any] | None = None
        self.problems: list[str] = []

    def _read(self, since: float | None = None) -> dict[str, Any] | None:
        try:
            return read_agent(self.agent, since)
        except AgentUnavailable as exc:
            self.problems.append(str(exc))
            return None

    def begin(self) -> None:
        self._start = self._read()

    def end(self) -> WindowUsage:
        start, self._start = self._start, None
        if start is None:
            return NOT_MEASURED
        now = self._read(since=float(start["now_s"]))
        if now is None:
            return NOT_MEASURED
        before, after = _cpu_by_process(start), _cpu_by_process(now)
        # processes born during the window count from zero, as TreeMonitor's
        cpu_s = sum(ns - before.get(key, 0) for key, ns in after.items()) / 1e9
        wall = max(float(now["now_s"]) - float(start["now_s"]), 1e-9)
        return WindowUsage(
            cpu_s=cpu_s,
            cpu_percent=100.0 * cpu_s / wall,
            rss_peak_mb=int(now.get("rss_peak_bytes") or now.get("rss_bytes") or 0) / 2**20,
            worker_changes=int(now.get("process_changes", 0)) - int(start.get("process_changes", 0)),
            alive=bool(now.get("alive", True)),
        )

    def busy_fraction(self, interval: float) -> float | None:
        """The tree's CPU over `interval` seconds as a fraction of one core (None: the agent did not answer)."""
        a = self._read()
        time.sleep(interval)
        b = self._read()
        if a is None or b is None:
            return None
        before, after = _cpu_by_process(a), _cpu_by_process(b)
        used = sum(ns - before.get(key, 0) for key, ns in after.items()) / 1e9
        return used / max(float(b["now_s"]) - float(a["now_s"]), 1e-9)

    def close(self) -> None:
        pass


class NoMonitor:
    """A target without an agent: every window's CPU and RSS are "not measured"."""

    def begin(self) -> None:
        pass

    def end(self) -> WindowUsage:
        return NOT_MEASURED

    def busy_fraction(self, interval: float) -> float | None:
        return None

    def close(self) -> None:
        pass


def connect(target: Target, health: str = "/health") -> tuple[AgentMonitor | NoMonitor, SetupInfo]:
    """Check the target answers GET <prefix><health> with 200 and its agent (if
    any) answers a reading; the monitor and the setup as recorded. Raises
    ProcessError saying what did not answer (the target's arms are then filed
    as errors, as for a local server that failed to start). `health`: bench_site's
    /health, or the path a scenario's [app] names for a project of one's own."""
    try:
        status, body, _ = url_get(target.origin, target.prefix + health, HEALTH_TIMEOUT_S)
    except OSError as exc:
        raise ProcessError(
            f"target {target.name} at {target.url} did not answer GET {target.prefix}{health}: {exc}"
        ) from None
    if status != 200:
        raise ProcessError(
            f"target {target.name} at {target.url}: GET {target.prefix}{health} answered HTTP {status} "
            f"({body[:120]!r}); is it this project's bench_site (or the [app] whose health path is {health})?"
        )
    monitor: AgentMonitor | NoMonitor = NoMonitor()
    watched = ""
    if target.agent:
        try:
            reading = read_agent(target.agent)
        except AgentUnavailable as exc:
            raise ProcessError(f"target {target.name}: {exc}") from None
        w = reading.get("watched") or {}
        if not reading.get("alive", True):
            raise ProcessError(
                f"target {target.name}: the agent at {target.agent} watches pid {w.get('pid')}, which has exited"
            )
        watched = f" (pid {w.get('pid')}, {w.get('name')}, {len(reading['processes'])} process(es))"
        monitor = AgentMonitor(target.agent)
    return monitor, target_info(target, watched)


def target_info(target: Target, watched: str = "") -> SetupInfo:
    """A target as the results record a setup: what is known of it, and where its CPU came from."""
    resources = (
        f"server CPU and RSS from the agent at {target.agent}{watched}"
        if target.agent
        else "server CPU and RSS not measured (no agent: run `python runner.py agent --pid PID` on the server "
        "host and pass --agent)"
    )
    return SetupInfo(
        name=target.name,
        server="existing deployment",
        interface="unknown",
        workers=0,
        threads=0,
        worker_class="unknown",
        event_loop="unknown",
        keepalive=True,
        command=(),
        env={},
        cpu_affinity=(),
        notes=f"an existing deployment at {target.url}, not started by the runner; {resources}",
        resources=target.resources,
        target=target.url,
        agent=target.agent,
    )


def run_notes(targets: Sequence[Target], *, fanout: bool, restarts: bool = False) -> list[str]:
    """What a run against existing deployments did differently, for the results' notes."""
    where = ", ".join(f"{t.name} at {t.url}" for t in targets)
    notes = [
        f"measured against an existing deployment ({where}), not started by the runner",
        "database: the deployment's own; the runner did not migrate or seed it (its data set, size and "
        "engine are not recorded)",
    ]
    if restarts:
        notes.append("load.restart = 'block' does not apply: the runner cannot restart a deployment")
    for t in targets:
        if t.agent:
            notes.append(f"{t.name}: server CPU and RSS from the resource agent at {t.agent}")
        else:
            notes.append(f"{t.name}: server CPU and RSS not measured (no --agent); CPU per request is absent, not zero")
    if fanout:
        notes.append(
            "fan-out: the deployment calls its own upstream (BENCH_UPSTREAM_URL on its side); the runner "
            "started none and cannot set a remote server's upstream, so the scenario's [upstream] settings do "
            "not apply (a delay_ms parameter in a cell's query string still reaches this project's upstream)"
        )
    return notes
