"""python -m upstream --host 127.0.0.1 --port PORT --delay-ms 50
[--jitter-ms 0] [--error-rate 0.0] [--seed 1] [--loop auto|asyncio|uvloop]"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from upstream.server import Config, serve


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in 0..1, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, str]:
    parser = argparse.ArgumentParser(
        prog="python -m upstream",
        description="Fast HTTP/1.1 upstream with configurable delay for the fan-out workload.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=_port, default=8099, help="0 picks a free port")
    parser.add_argument(
        "--delay-ms",
        type=_non_negative,
        default=50.0,
        help="default delay of /item/<i>; ?delay_ms= overrides it per request",
    )
    parser.add_argument("--jitter-ms", type=_non_negative, default=0.0, help="uniform +/- jitter added to every delay")
    parser.add_argument(
        "--error-rate", type=_rate, default=0.0, help="fraction of /item requests answered with 500 (seeded)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the error and jitter draws")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop; auto uses uvloop when installed",
    )
    args = parser.parse_args(argv)
    config = Config(
        host=args.host,
        port=args.port,
        delay_ms=args.delay_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        seed=args.seed,
    )
    return config, args.loop


def main(argv: Sequence[str] | None = None) -> int:
    config, loop = parse_args(argv)
    if loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                print("uvloop is not installed", file=sys.stderr)
                return 2
        else:
            asyncio.run(serve(config), loop_factory=uvloop.new_event_loop)
            return 0
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
