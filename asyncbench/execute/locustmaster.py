"""The locust master of a distributed load: it decides one common window per
slice for every worker and merges what they measured.

Runs as its own process (`python -m asyncbench.execute.locustmaster --bind HOST
--port PORT`), started by the runner (asyncbench.execute.distributed), and
speaks the load driver's protocol to it: JSON lines on stdin and stdout.

    -> {"ready": true, "port": P}              (first line: bound, P the port)
    <- {"op": "wait", "workers": N, "timeout": S}
    -> {"ok": true, "workers": [...]}          once N workers joined (or ok false, who is missing)
    <- {"op": "measure", ...}                  a slice, the whole pool's (users, rate, connections)
    -> {"event": "window-start"}, {"event": "window-end"}, then the merged result
    <- {"op": "sync", "id": K}  -> {"synced": K}
    <- {"op": "quit"}                          quits every worker, then itself

The workers (asyncbench.execute.locustworker) join over locust's own
MasterRunner/WorkerRunner link (ZeroMQ); slices travel as custom messages.
For each slice the master picks a start a little ahead (the settle plus the
slowest round trip), sends it to every worker with its share (users split, or
the rate split with its own seed and phase), and:
- closed loop: every worker reports its answers per 0.5-s tick; the master
  sums them, applies the stop rule (asyncbench.execute.window) and
  broadcasts the window's length in ticks: each worker counts only the
  answers completed inside [start, start + ticks x 0.5 s);
- open model: the window is [start, start + window_s), fixed in advance.
Then it merges the workers' results over that one window: throughput = all
answers / the window, histograms merged, each worker's CPU and window kept.
"""

# locust must be imported first: it monkey-patches the standard library with gevent.
import locust  # noqa: F401  isort: skip

import argparse
import ipaddress
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.fileobject import FileObjectPosix
from gevent.queue import Empty, Queue
from locust.env import Environment
from locust.runners import STATE_MISSING

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from asyncbench.execute.loaddriver import sleep_until
from asyncbench.execute.openloop import COMPLETION_GRACE_S
from asyncbench.execute.window import TICK_S, closed_loop_stop, merge_results, split_users, stop_rule

# How far ahead of now (beyond the settle and the slowest round trip) a
# slice's start is set: time for the message to arrive and users to spawn.
LEAD_S = 0.1
# A worker whose tick count is this late is lost: the slice fails.
TICK_TIMEOUT_S = 10.0
# ... and a result this late after the window's end (beyond an open model's grace).
RESULT_TIMEOUT_S = 30.0
# How long a slice waits for a worker that went missing to come back.
REJOIN_S = 10.0

log = logging.getLogger("asyncbench.master")


class SliceError(RuntimeError):
    pass


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_reachable(cmd: dict[str, Any], workers: list[tuple[str, dict[str, Any]]]) -> None:
    """A worker on another machine cannot load this machine's loopback address."""
    targets = cmd.get("targets") or [{"host": cmd.get("host", "")}]
    local = [t["host"] for t in targets if _loopback(urlsplit(str(t["host"])).hostname or "")]
    if not local:
        return
    for _, info in workers:
        master_host = str(info.get("master", "")).rpartition(":")[0]
        if not info.get("local") and not _loopback(master_host):
            raise SliceError(
                f"load worker {info.get('index')} on {info.get('host')} joined from another machine and "
                f"cannot reach {local[0]} (this machine's loopback): serve on an address the load "
                "machines reach (an existing deployment: run --target)"
            )


class Master:
    def __init__(self, bind_host: str, bind_port: int) -> None:
        self.env = Environment(user_classes=[])
        self.runner = self.env.create_master_runner(bind_host, bind_port)
        self.port = int(self.runner.server.port)
        self.workers: dict[str, dict[str, Any]] = {}  # client id -> its ab_hello
        self.expected = 0
        self.slice = 0
        self._reason = ""
        self.inbox: Queue[tuple[str, str, dict[str, Any]]] = Queue()
        self.runner.register_message("ab_clock", self.on_clock)
        self.runner.register_message("ab_hello", self.on_hello)
        self.runner.register_message("ab_tick", self.on_slice_message)
        self.runner.register_message("ab_result", self.on_slice_message)

    # -- messages from workers (in locust's receiving greenlet: quick)
    def on_clock(self, environment: Any, msg: Any, **_: Any) -> None:
        self.runner.send_message("ab_clock", {"seq": msg.data["seq"], "tm": time.time()}, client_id=msg.node_id)

    def on_hello(self, environment: Any, msg: Any, **_: Any) -> None:
        self.workers[msg.node_id] = dict(msg.data)
        log.info("worker joined: %s", msg.data)

    def on_slice_message(self, environment: Any, msg: Any, **_: Any) -> None:
        if int(msg.data.get("slice", -1)) == self.slice:
            self.inbox.put((msg.type, msg.node_id, msg.data))

    # -- the pool
    def present(self) -> list[tuple[str, dict[str, Any]]]:
        """Workers that said hello and are alive, in the master's worker-index order."""
        clients = self.runner.clients
        live = [
            (cid, info) for cid, info in self.workers.items() if cid in clients and clients[cid].state != STATE_MISSING
        ]
        index = self.runner.get_worker_index  # deterministic, by order of joining
        return sorted(live, key=lambda w: int(index(w[0])))  # type: ignore[no-untyped-call]

    def wait(self, n: int, timeout: float) -> dict[str, Any]:
        self.expected = n
        deadline = time.monotonic() + timeout
        while len(self.present()) < n:
            if time.monotonic() >= deadline:
                got = self.present()
                return {
                    "ok": False,
                    "error": f"{len(got)} of {n} load workers joined the master on port {self.port} "
                    f"within {timeout:.0f} s ({', '.join(w['host'] for _, w in got) or 'none'})",
                }
            gevent.sleep(0.05)
        return {"ok": True, "workers": [info for _, info in self.present()]}

    def _pool(self) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + REJOIN_S
        while len(workers := self.present()) < self.expected:
            if time.monotonic() >= deadline:
                raise SliceError(f"only {len(workers)} of {self.expected} load workers are connected")
            gevent.sleep(0.05)
        if not workers:
            raise SliceError("no load worker is connected")
        return workers

    # -- a slice
    def measure(self, cmd: dict[str, Any], emit: Any) -> dict[str, Any]:
        self.slice += 1
        sid = self.slice
        self.inbox = Queue()
        workers = self._pool()
        check_reachable(cmd, workers)
        n = len(workers)
        open_model = bool(cmd.get("rate"))
        if open_model:
            conns = int(cmd.get("connections") or 64)
            specs = [
                {**cmd, "rate": float(cmd["rate"]) / n, "connections": max(1, conns // n), "driver": i, "drivers": n}
                for i in range(n)
            ]
            active = list(zip(workers, specs, strict=True))
        else:
            shares = split_users(int(cmd["users"]), n)
            active = [(w, {**cmd, "users": u}) for w, u in zip(workers, shares, strict=True) if u > 0]
        ids = [cid for (cid, _), _ in active]
        rtt = max(float(info.get("rtt_ms") or 0.0) for (_, info), _ in active) / 1000.0
        start = time.time() + LEAD_S + rtt + float(cmd.get("warmup_s", 0.0))
        for (cid, _), spec in active:
            spec.pop("op", None)
            self.runner.send_message("ab_measure", {"slice": sid, "spec": spec, "start_at": start}, client_id=cid)
        try:
            sleep_until(start)
            emit({"event": "window-start"})
            if open_model:
                stop = start + float(cmd.get("min_s", 1.0))
                sleep_until(stop)
                emit({"event": "window-end"})
                reason = "rate"
                results = self._results(ids, stop + COMPLETION_GRACE_S + RESULT_TIMEOUT_S, {})
            else:
                ticks, early = self._ticks(ids, start, stop_rule(cmd))
                stop = start + len(ticks) * TICK_S
                for cid in ids:
                    self.runner.send_message("ab_stop", {"slice": sid, "ticks": len(ticks)}, client_id=cid)
                emit({"event": "window-end"})
                reason = self._reason
                results = self._results(ids, time.time() + RESULT_TIMEOUT_S, early)
        except SliceError:
            for cid in ids:
                self.runner.send_message("ab_abort", {"slice": sid}, client_id=cid)
            raise
        bad = [r.get("error") for r in results if not r.get("ok")]
        if bad:
            raise SliceError("; ".join(str(b) for b in bad))
        window = (start, stop)
        if "parts" in results[0]:
            k = len(results[0]["parts"])
            return {
                "ok": True,
                "window": list(window),
                "parts": [
                    merge_results([r["parts"][i] for r in results], window=window, stop_reason=reason) for i in range(k)
                ],
            }
        return merge_results(results, window=window, stop_reason=reason)

    def _ticks(self, ids: list[str], start: float, rule: dict[str, Any]) -> tuple[list[int], dict[str, dict[str, Any]]]:
        """Sum the workers' tick counts until the stop rule ends the window."""
        counts: dict[int, dict[str, int]] = {}
        early: dict[str, dict[str, Any]] = {}
        ticks: list[int] = []
        k = 0
        while True:
            deadline = start + (k + 1) * TICK_S + TICK_TIMEOUT_S
            while len(counts.get(k, {})) < len(ids):
                kind, cid, data = self._next(deadline, ids, f"tick {k}", counts.get(k, {}))
                if kind == "ab_result":
                    # a worker gave up (an error) before the window ended
                    early[cid] = data["result"]
                    if not data["result"].get("ok"):
                        raise SliceError(str(data["result"].get("error")))
                    continue
                counts.setdefault(int(data["tick"]), {})[cid] = int(data["count"])
            ticks.append(sum(counts[k].values()))
            why = closed_loop_stop(ticks, **rule)
            if why is not None:
                self._reason = why
                return ticks, early
            k += 1

    def _results(self, ids: list[str], deadline: float, got: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        got = dict(got)
        while len(got) < len(ids):
            kind, cid, data = self._next(deadline, ids, "its result", got)
            if kind == "ab_result":
                got[cid] = data["result"]
        return [got[cid] for cid in ids]

    def _next(
        self, deadline: float, ids: list[str], what: str, have: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]]:
        while True:
            try:
                item: tuple[str, str, dict[str, Any]] = self.inbox.get(
                    timeout=max(0.0, min(1.0, deadline - time.time()))
                )
                return item
            except Empty:
                gone = [cid for cid in ids if cid not in self.runner.clients]
                if gone or time.time() >= deadline:
                    late = [self.workers.get(cid, {}).get("host", cid) for cid in ids if cid not in have]
                    why = "left" if gone else f"sent no {what} in time"
                    raise SliceError(f"load worker(s) {', '.join(late)} {why}") from None

    def quit(self) -> None:
        self.runner.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1", help="address the workers connect to (* = every interface)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = a free one, reported on the first line)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The protocol gets a private copy of stdout; fd 1 itself is pointed at
    # stderr, so anything locust prints lands in the log.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    master = Master(args.bind, args.port)
    emit({"ready": True, "port": master.port})
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for raw in stdin:
            line = raw.strip()
            if not line:
                continue
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "quit":
                break
            if op == "sync":
                emit({"synced": cmd.get("id")})
                continue
            if op == "wait":
                emit(master.wait(int(cmd["workers"]), float(cmd.get("timeout", 60))))
                continue
            try:
                result = master.measure(cmd, emit)
            except SliceError as exc:
                result = {"ok": False, "error": str(exc)}
            except Exception as exc:  # report, keep serving: one bad cell must not end the run
                log.exception("slice failed")
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            emit(result)
    finally:
        master.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
