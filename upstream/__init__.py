"""The upstream service the fan-out views call: `python -m upstream --help`."""

from upstream.server import Config, serve

__all__ = ["Config", "serve"]
