"""A locust worker: joins a master (asyncbench.execute.locustmaster) over
locust's own ZeroMQ link and measures the slices the master sends it.

    python runner.py worker --master HOST:PORT        (on another load machine)
    python -m asyncbench.execute.locustworker --master HOST:PORT --local   (started by the runner)

locust's WorkerRunner carries the link: registration, heartbeats, the worker
index, quit. The measurements travel as custom messages (the `ab_` prefix):

    worker -> master  ab_clock {seq, t0}          master -> worker  ab_clock {seq, tm}
        several round trips at joining; the one with the least round trip
        gives this machine's clock offset to the master's (NTP's estimate)
    worker -> master  ab_hello {index, host, pid, local, cpus, clock_offset_ms, rtt_ms}
    master -> worker  ab_measure {slice, spec, start_at}
        load from now (the settle), the window from `start_at` (master's clock)
    worker -> master  ab_tick {slice, tick, count}   (closed loop, every 0.5 s)
    master -> worker  ab_stop {slice, ticks}
        the window is that many ticks, for every worker: answers completed
        after it are not counted
    worker -> master  ab_result {slice, result}
    master -> worker  ab_abort {slice}

It measures with the load driver's functions (asyncbench.execute.loaddriver).
Serves until the master quits (or has been silent for a minute, locust's
heartbeat timeout); Ctrl-C stops it cleanly.
"""

# locust must be imported first: it monkey-patches the standard library with gevent.
import locust  # noqa: F401  isort: skip

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from asyncbench.execute.loaddriver import Recorder, measure_at_rate, measure_closed, sleep_until
from asyncbench.execute.window import TICK_S, stop_rule

CLOCK_PINGS = 8
# A worker that hears nothing from the master this long after the longest
# window it was asked for ends the window itself (the master has given up).
ORPHAN_GRACE_S = 30.0

log = logging.getLogger("asyncbench.worker")


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class MasterStop:
    """A closed-loop window the master ends: this worker reports its tick
    counts and learns the window's length from an `ab_stop`."""

    def __init__(self, worker: "Worker", slice_id: int, limit_s: float) -> None:
        self.worker = worker
        self.slice = slice_id
        self.limit_s = limit_s
        self.stop: int | None = None
        self.event = Event()
        self.reason = ""

    def set(self, ticks: int) -> None:
        if self.stop is None:
            self.stop = ticks
        self.event.set()

    def wait(self, until: float, passed: int) -> int | None:
        while True:
            if self.stop is not None and self.stop <= passed:
                return self.stop
            now = time.time()
            if now >= until:
                return self.stop
            if self.event.is_set():
                sleep_until(until)
            else:
                self.event.wait(timeout=until - now)

    def tick(self, k: int, count: int) -> int | None:
        self.worker.send("ab_tick", {"slice": self.slice, "tick": k, "count": count})
        if self.stop is None and (k + 1) * TICK_S >= self.limit_s:
            log.warning("slice %s: no stop from the master after %.1f s; ending the window", self.slice, self.limit_s)
            self.reason = "orphaned"
            self.set(k + 1)
        return self.stop


class Worker:
    def __init__(self, master_host: str, master_port: int, *, local: bool) -> None:
        self.master = f"{master_host}:{master_port}"
        self.local = local
        self.env = Environment(user_classes=[])
        # blocks until the master acknowledges (locust retries for 5 minutes)
        self.runner = self.env.create_worker_runner(master_host, master_port)
        self.recorder = Recorder()
        self.busy = Semaphore()
        self.policy: MasterStop | None = None
        self.clock_replies: dict[int, dict[str, Any]] = {}
        self.clock_event = Event()
        self.offset = 0.0
        self.rtt = 0.0
        self.runner.register_message("ab_clock", self.on_clock)
        self.runner.register_message("ab_measure", self.on_measure, concurrent=True)
        self.runner.register_message("ab_stop", self.on_stop)
        self.runner.register_message("ab_abort", self.on_abort)

    def send(self, kind: str, data: dict[str, Any]) -> None:
        self.runner.send_message(kind, data)

    # -- joining
    def sync_clock(self) -> None:
        """This machine's clock offset to the master's, from the least round trip of several."""
        best: tuple[float, float] | None = None
        for seq in range(CLOCK_PINGS):
            self.clock_event.clear()
            t0 = time.time()
            self.send("ab_clock", {"seq": seq, "t0": t0})
            if not self.clock_event.wait(timeout=5.0):
                continue
            t1 = time.time()
            reply = self.clock_replies.pop(seq, None)
            if reply is None:
                continue
            rtt = t1 - t0
            offset = float(reply["tm"]) - (t0 + t1) / 2
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        if best is None:
            raise ConnectionError(f"the master at {self.master} did not answer the clock pings")
        self.rtt, self.offset = best

    def on_clock(self, environment: Any, msg: Any, **_: Any) -> None:
        self.clock_replies[int(msg.data["seq"])] = msg.data
        self.clock_event.set()

    def identity(self) -> dict[str, Any]:
        return {
            "index": self.runner.worker_index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "local": self.local,
            "cpus": sorted(os.sched_getaffinity(0)),
            "clock_offset_ms": round(self.offset * 1000.0, 3),
            "rtt_ms": round(self.rtt * 1000.0, 3),
            "master": self.master,
        }

    def hello(self) -> None:
        self.send("ab_hello", self.identity())

    # -- measuring
    def on_measure(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        slice_id = int(data["slice"])
        spec = dict(data["spec"])
        with self.busy:  # one measurement at a time, even after an abort
            start_local = float(data["start_at"]) - self.offset
            me = {k: v for k, v in self.identity().items() if k != "cpus"}
            try:
                if spec.get("rate"):
                    result = measure_at_rate(spec, start_at=start_local, clock_offset=self.offset, me=me)
                else:
                    limit = stop_rule(spec)["slow_max_s"] + ORPHAN_GRACE_S  # in window time
                    policy = self.policy = MasterStop(self, slice_id, limit)
                    result = measure_closed(
                        spec,
                        self.recorder,
                        start_at=start_local,
                        policy=policy,
                        clock_offset=self.offset,
                        me=me,
                    )
            except Exception as exc:  # report, keep serving: one bad cell must not end the run
                log.exception("slice %s failed", slice_id)
                result = {"ok": False, "error": f"{type(exc).__name__} on {socket.gethostname()}: {exc}"}
            finally:
                self.policy = None
            self.send("ab_result", {"slice": slice_id, "result": result})

    def on_stop(self, environment: Any, msg: Any, **_: Any) -> None:
        policy = self.policy
        if policy is not None and policy.slice == int(msg.data["slice"]):
            policy.set(int(msg.data["ticks"]))

    def leave(self) -> bool:
        """Say goodbye to the master (it stops counting this worker) and stop serving."""
        with contextlib.suppress(Exception):  # the link may be gone already
            self.send("quit", {})
            gevent.sleep(0.2)  # let the message leave
        self.runner.greenlet.kill(block=False)
        return True

    def on_abort(self, environment: Any, msg: Any, **_: Any) -> None:
        policy = self.policy
        if policy is not None and policy.slice == int(msg.data["slice"]):
            policy.reason = "aborted"
            policy.set(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="runner.py worker",
        description="Join a run's locust master as a load worker; serve until the master quits (Ctrl-C stops).",
    )
    parser.add_argument("--master", required=True, help="the master's HOST:PORT (the run prints it)")
    parser.add_argument("--cpus", help="pin this worker to these CPUs, e.g. 2,3 (default: no pinning)")
    parser.add_argument("--local", action="store_true", help=argparse.SUPPRESS)  # started by the runner
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_hostport(args.master)
    except ValueError as exc:
        parser.error(str(exc))
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",") if c.strip()})
    worker: Worker | None = None
    try:
        worker = Worker(host, port, local=args.local)
        worker.sync_clock()
        worker.hello()
        me = worker.identity()
        print(
            f"worker {me['index']} ({me['host']}, pid {me['pid']}) joined the master at {worker.master}: "
            f"clock offset {me['clock_offset_ms']:+.3f} ms, round trip {me['rtt_ms']:.3f} ms; serving until it quits",
            flush=True,
        )
        left: list[bool] = []
        # Ctrl-C: tell the master this worker leaves, then end (in gevent's
        # loop, not as a KeyboardInterrupt through it)
        gevent.signal_handler(signal.SIGINT, lambda: left.append(worker.leave()))
        worker.runner.greenlet.join()
        worker.runner.client.close(linger=0)  # type: ignore[no-untyped-call]  # nothing left to send
        if left:
            print("interrupted: left the master", flush=True)
            return 0
    except KeyboardInterrupt:  # before joining
        print("interrupted", flush=True)
        return 0
    except ConnectionError as exc:
        why = str(exc) or "no answer for 5 minutes"
        print(f"error: could not join the master at {args.master}: {why}", file=sys.stderr)
        return 1
    print("the master quit; worker done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
