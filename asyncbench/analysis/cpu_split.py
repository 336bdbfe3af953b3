"""Where the CPU goes: each on-CPU stack sample classified into a part of the
request path, and the arm's CPU per request split by the parts' shares.

The samples come from profiling slices (asyncbench.execute.profiler): py-spy
sampling the server's processes *without* ``--idle``, so a sample is taken
only of a thread that was running on a CPU, and a part's share of samples is
its share of the process's CPU time. The milliseconds come from the measured
slices, never from the profiled one (the profiler slows the server it reads):

    CPU ms per request of a part = the cell's measured CPU per request
                                   x the part's share of on-CPU samples.

The parts (``PARTS``):

- ``view``: the view (``bench_site/workloads/``) and everything it calls,
  including the ORM, the HTTP clients, Django's response classes and the thread
  hops the view asks for itself; also the ORM and the clients when they run
  outside a view frame (the async ORM API's work in asgiref's thread, an
  aiohttp or anyio protocol's callback on the event loop);
- ``django``: Django's handler and middleware: ``django/core/handlers``,
  middleware, URL resolving, signals (with ``close_old_connections``),
  asgiref (the thread hops Django makes: a sync view under ASGI, an async view
  under WSGI), and bench_site's own plumbing around the view
  (``dispatch.py``, parameter parsing, the entry points, the telemetry
  counters);
- ``server``: the HTTP server and its event loop: uvicorn, gunicorn, h11,
  httptools, daphne, Twisted, hypercorn, granian's Python side, and the
  standard library's asyncio, selectors, socket and ssl when nothing more
  specific is on the stack;
- ``threads``: on-CPU samples of a thread with no Python frame at all: py-spy
  found it running, and it was in the interpreter's C code outside any Python
  function, which is where a thread is while it starts (the OS thread
  created, its thread state made, the GIL taken before ``Thread._bootstrap``
  runs) and while it ends. Their share follows the threads a server starts
  per request (``run explain``-like profile, noio and orm at 32 users, this
  machine): 1% under gunicorn-gthread with a sync view (no thread started),
  4% with an async view there (``async_to_sync`` runs each request's event
  loop in a new thread), 12-17% under uvicorn (Django's ASGI handler gives
  each request a ``ThreadSensitiveContext``, so asgiref makes a one-thread
  executor, a new thread, per request, and joins it at the end). Until
  2026-11 these samples were counted as ``other``;
- ``other``: on-CPU samples with Python frames that no rule claims (the
  interpreter's start-up frames, a thread pool's own loop between tasks, the
  garbage collector as seen from an unclaimed frame). Samples of sleeping
  threads are not taken at all.

Not a part: ``waiting``. py-spy calls a thread active when the kernel says it
is runnable (state R), which includes a thread just woken and still waiting
for the CPU (one CPU, eight pool threads: most of them, most of the time).
Such a sample ends at the call it is waking from; a sample whose deepest frame
is one of ``WAIT_SITES`` (a pool thread waiting for work, a condition wait, a
thread join, a selector's poll, gunicorn's arbiter sleep) is counted as
waiting and left out of the shares.

A known bias, measured on this machine (Python 3.12, py-spy 0.4.3, the server
pinned to one CPU): work done in *pool threads* is under-sampled. Under
gunicorn-gthread, /sync/cpu/ spends about 82% of its CPU in the view (845 of
1,030 us per request, timed in-process), and py-spy put the view in 26-31% of
its ticks when pausing the server, 58% with --nonblocking (the runner's
default). Read splits of thread-pool setups as rough.

How a sample (a stack, outermost frame first) is classified, in this order:

1. the deepest frame matching an *anchor* rule decides: an anchor claims
   everything its frame calls (the view claims the ORM and httpx beneath it;
   ``close_old_connections`` claims the ORM's connection close beneath it for
   Django's request signals);
2. else the deepest frame matching a *library* rule decides (an asgiref frame
   below uvicorn's is a thread hop: Django);
3. else the deepest frame matching a *standard-library* rule (asyncio,
   selectors, socket: the event loop) decides; these are generic machinery,
   so any library frame above them is a better owner;
4. else ``other``.

A frame matches a rule when ``"/" + its file`` contains the rule's path (so
``django/db/`` matches both py-spy's short ``django/db/models/query.py`` and a
full ``.../site-packages/django/db/...``) and, when the rule names a function,
the frame's function is that one. Among the rules of one tier matching a frame,
the longest path wins (``django/db/`` before ``django/``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asyncbench.model.profiles import PROFILE_OK, ProfileRecord, TopFrame
from asyncbench.model.results import Cell, Run

VIEW = "view"
DJANGO = "django"
SERVER = "server"
THREADS = "threads"
OTHER = "other"
PARTS: tuple[str, ...] = (SERVER, DJANGO, VIEW, THREADS, OTHER)
PART_LABELS: dict[str, str] = {
    SERVER: "server",
    DJANGO: "Django handler & middleware",
    VIEW: "view",
    THREADS: "threads starting/ending (no Python frame)",
    OTHER: "other (unclassified, on CPU)",
}

WAITING = "waiting"  # runnable, not running: left out of the shares

ANCHOR = 0  # claims everything its frame calls
LIBRARY = 1
STDLIB = 2  # generic machinery: decides only when no library frame does


@dataclass(frozen=True)
class Rule:
    part: str
    path: str  # a folder ("django/db/") or a file ("bench_site/dispatch.py"), matched in "/" + file
    tier: int = LIBRARY
    function: str = ""  # when given, the frame's function must be this one


RULES: tuple[Rule, ...] = (
    # anchors
    Rule(VIEW, "/bench_site/workloads/", ANCHOR),
    Rule(DJANGO, "/django/db/__init__.py", ANCHOR, "close_old_connections"),
    Rule(DJANGO, "/django/db/__init__.py", ANCHOR, "reset_queries"),
    # what a view calls, when it runs without a view frame above it
    Rule(VIEW, "/django/db/"),
    Rule(VIEW, "/httpx/"),
    Rule(VIEW, "/httpcore/"),
    Rule(VIEW, "/anyio/"),
    Rule(VIEW, "/sniffio/"),
    Rule(VIEW, "/aiohttp/"),
    Rule(VIEW, "/aiohappyeyeballs/"),
    Rule(VIEW, "/multidict/"),
    Rule(VIEW, "/yarl/"),
    Rule(VIEW, "/psycopg/"),
    Rule(VIEW, "/psycopg_pool/"),
    Rule(VIEW, "/MySQLdb/"),
    Rule(VIEW, "/sqlite3/"),
    # Django's request path, the thread hops, the site's plumbing around the view
    Rule(DJANGO, "/django/"),
    Rule(DJANGO, "/asgiref/"),
    Rule(DJANGO, "/bench_site/"),
    # servers
    Rule(SERVER, "/uvicorn/"),
    Rule(SERVER, "/uvicorn_worker/"),
    Rule(SERVER, "/gunicorn/"),
    Rule(SERVER, "/h11/"),
    Rule(SERVER, "/h2/"),
    Rule(SERVER, "/httptools/"),
    Rule(SERVER, "/uvloop/"),
    Rule(SERVER, "/daphne/"),
    Rule(SERVER, "/twisted/"),
    Rule(SERVER, "/autobahn/"),
    Rule(SERVER, "/hypercorn/"),
    Rule(SERVER, "/granian/"),
    Rule(SERVER, "/wsproto/"),
    # the event loop and sockets, when nothing more specific owns them
    Rule(SERVER, "/asyncio/", STDLIB),
    Rule(SERVER, "/selectors.py", STDLIB),
    Rule(SERVER, "/socket.py", STDLIB),
    Rule(SERVER, "/ssl.py", STDLIB),
    Rule(SERVER, "/socketserver.py", STDLIB),
)

# (file, function) of a sample's deepest frame at which a runnable thread is
# still waking from a wait (see the module docstring)
WAIT_SITES: tuple[tuple[str, str], ...] = (
    ("/concurrent/futures/thread.py", "_worker"),
    ("/threading.py", "Condition.wait"),
    ("/threading.py", "Thread._wait_for_tstate_lock"),
    ("/selectors.py", "EpollSelector.select"),
    ("/selectors.py", "PollSelector.select"),
    ("/selectors.py", "SelectSelector.select"),
    ("/selectors.py", "_PollLikeSelector.select"),
    ("/asgiref/current_thread_executor.py", "CurrentThreadExecutor.run_until_future"),
    ("/gunicorn/arbiter.py", "Arbiter.sleep"),
    ("/gunicorn/arbiter.py", "Arbiter.wait_for_signals"),
)

# "function (file:line)" as py-spy writes a frame; "process 12:"argv"" and
# "thread (0x...)" frames have no file
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_PROCESS = re.compile(r'^process \d+:"(?:[^"\\]|\\.)*";')


@dataclass(frozen=True)
class Frame:
    function: str
    file: str  # "" for py-spy's process and thread frames


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text)
    if m is None or text.startswith("thread ("):
        return Frame(text, "")
    return Frame(m.group("function"), m.group("file"))


def split_stack(stack: str) -> list[str]:
    """A collapsed stack's frames, outermost first (process frames kept whole:
    their quoted command line may hold a ';')."""
    frames: list[str] = []
    rest = stack
    while (m := _PROCESS.match(rest)) is not None:
        frames.append(m.group(0)[:-1])
        rest = rest[m.end() :]
    frames.extend(f for f in rest.split(";") if f)
    return frames


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw output: one "frame;frame;... count" per line."""
    out: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        # an empty stack (" 154"): threads without a Python frame, as py-spy
        # writes them when it samples one process (with --subprocesses they
        # carry the process frame)
        out.append((split_stack(stack), int(count)))
    return out


def _rule_for(frame: Frame) -> Rule | None:
    """The rule a frame matches: the lowest tier, then the longest path."""
    if not frame.file:
        return None
    where = "/" + frame.file.replace("\\", "/")
    best: Rule | None = None
    for rule in RULES:
        if rule.path not in where or (rule.function and rule.function != frame.function):
            continue
        if best is None or (rule.tier, -len(rule.path)) < (best.tier, -len(best.path)):
            best = rule
    return best


def frame_part(text: str) -> str | None:
    """The part a single frame counts for by itself (a flame graph's colour)."""
    rule = _rule_for(parse_frame(text))
    return rule.part if rule else None


def is_waiting(frames: Sequence[str]) -> bool:
    """Whether a sample's deepest frame is a wait site (a runnable thread not yet running)."""
    if not frames:
        return False
    leaf = parse_frame(frames[-1])
    where = "/" + leaf.file
    return any(where.endswith(path) and leaf.function == function for path, function in WAIT_SITES)


def classify(frames: Sequence[str]) -> str:
    """The part of one sample (frames outermost first): WAITING, or one of PARTS."""
    if is_waiting(frames):
        return WAITING
    if not any(parse_frame(text).file for text in frames):
        return THREADS  # only py-spy's process (and thread) frames: no Python frame
    deepest: dict[int, str] = {}
    for text in frames:  # outermost first: a later (deeper) match replaces an earlier one
        rule = _rule_for(parse_frame(text))
        if rule is not None:
            deepest[rule.tier] = rule.part
    for tier in (ANCHOR, LIBRARY, STDLIB):
        if tier in deepest:
            return deepest[tier]
    return OTHER


def part_counts(stacks: Iterable[tuple[Sequence[str], int]]) -> dict[str, int]:
    """Samples per part (every part present, zeros included), and WAITING's."""
    counts = dict.fromkeys((*PARTS, WAITING), 0)
    for frames, n in stacks:
        counts[classify(frames)] += n
    return counts


def top_frames(stacks: Iterable[tuple[Sequence[str], int]], n: int = 15) -> tuple[TopFrame, ...]:
    """The frames where most samples ended (their own time), each with its sample's part."""
    own: Counter[tuple[str, str]] = Counter()
    for frames, count in stacks:
        if frames and not is_waiting(frames):
            own[(frames[-1], classify(frames))] += count
    return tuple(TopFrame(frame, part, k) for (frame, part), k in own.most_common(n))


# ------------------------------------------------------------------ the split of an arm's CPU


@dataclass(frozen=True)
class ArmSplit:
    """One arm's measured CPU per request, split by its profile's shares."""

    cell: Cell
    profile: ProfileRecord
    cpu_ms: float  # the cell's CPU per request from its measured slices
    ms: dict[str, float]  # per part; sums to cpu_ms
    shares: dict[str, float]  # per part; sums to 1
    hops_per_request: float | None  # sync_to_async + async_to_sync calls per request (server counters)

    @property
    def arm(self) -> str:
        return f"{self.cell.setup} / {self.cell.variant}"


def hops_per_request(cell: Cell) -> float | None:
    """Thread hops (asgiref sync_to_async + async_to_sync calls) per request
    that reached Django, from the measured slices' server counters
    (Repeat.server_counters, bench_site.telemetry); None when not counted."""
    hops = requests = 0
    for r in cell.repeats:
        counters = getattr(r, "server_counters", None)
        if not counters:
            continue
        hops += counters.get("sync_to_async", 0) + counters.get("async_to_sync", 0)
        requests += counters.get("requests", 0)
    return hops / requests if requests > 0 else None


def split(cell: Cell, profile: ProfileRecord) -> ArmSplit | None:
    """The cell's CPU per request by part; None without samples or a measured CPU."""
    cpu = cell.summary.cpu_ms_per_request
    total = sum(profile.parts.get(p, 0) for p in PARTS)
    if cpu is None or profile.status != PROFILE_OK or total <= 0:
        return None
    shares = {p: profile.parts.get(p, 0) / total for p in PARTS}
    return ArmSplit(
        cell=cell,
        profile=profile,
        cpu_ms=cpu,
        ms={p: cpu * s for p, s in shares.items()},
        shares=shares,
        hops_per_request=hops_per_request(cell),
    )


def splits(run: Run) -> list[ArmSplit]:
    """Every profiled arm of the run whose cell has a measured CPU per request."""
    cells = {(c.key, c.revision): c for c in run.cells if c.status == "ok" and c.repeats}
    out: list[ArmSplit] = []
    for p in run.profiles:
        cell = cells.get((p.key, p.revision))
        if cell is None:
            continue
        s = split(cell, p)
        if s is not None:
            out.append(s)
    return out
