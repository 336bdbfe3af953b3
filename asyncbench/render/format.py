"""One number-formatting rule for every page, table and terminal line.

Three significant figures with thousands separators: benchmark figures carry
noise of a few percent, so more digits would claim precision the data does not
have (locust itself rounds to about two). Every module that prints a number
goes through here so the page, the terminal and the gate agree to the digit.
"""

from __future__ import annotations

import math

SIG_FIGS = 3
MISSING = "–"  # en dash: a missing value, never "0" or "nan"


def _round_sig(x: float, sig: int) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    digits = sig - math.floor(math.log10(abs(x))) - 1
    return round(x, digits)


def fmt(x: float | int | None, sig: int = SIG_FIGS) -> str:
    """`sig` significant figures, thousands separators, no exponent.

    fmt(1234.5) == "1,230"; fmt(0.4567) == "0.457"; fmt(3.1) == "3.10";
    fmt(None) == "–".
    """
    if x is None:
        return MISSING
    x = float(x)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    r = _round_sig(x, sig)
    if r == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(r)))
    decimals = max(0, sig - 1 - magnitude)
    text = f"{r:,.{decimals}f}"
    # A typographic minus reads better than a hyphen next to numbers.
    return text.replace("-", "−") if text.startswith("-") else text


def fmt_ratio(x: float | None, sig: int = SIG_FIGS) -> str:
    """A multiplicative ratio: fmt_ratio(3.1) == "3.10×"."""
    return MISSING if x is None else f"{fmt(x, sig)}×"


def fmt_pct(fraction: float | None, sig: int = SIG_FIGS, *, signed: bool = False) -> str:
    """A fraction as percent: fmt_pct(0.18) == "18.0%"; signed adds "+"."""
    if fraction is None:
        return MISSING
    text = f"{fmt(fraction * 100.0, sig)}%"
    if signed and fraction > 0:
        text = "+" + text
    return text


def fmt_ms(ms: float | None, sig: int = SIG_FIGS) -> str:
    """Milliseconds with unit: fmt_ms(12.345) == "12.3 ms"."""
    return MISSING if ms is None else f"{fmt(ms, sig)} ms"


def fmt_rps(rps: float | None, sig: int = SIG_FIGS) -> str:
    """Requests per second with unit: fmt_rps(1234.5) == "1,230 req/s"."""
    return MISSING if rps is None else f"{fmt(rps, sig)} req/s"


def fmt_s(seconds: float | None, sig: int = SIG_FIGS) -> str:
    return MISSING if seconds is None else f"{fmt(seconds, sig)} s"


def fmt_level(x: float | int | None) -> str:
    """A configured level (users, delay in ms, calls): exact, not rounded.

    These are settings, not measurements, so "5 ms" rather than "5.00 ms";
    a non-integral setting falls back to the 3-significant-figure rule.
    """
    if x is None:
        return MISSING
    if float(x).is_integer():
        return f"{int(x):,}"
    return fmt(x)


def fmt_precision(fraction: float | None) -> str:
    """An interval's half-width as a fraction, "±4.1%": two figures are all it has."""
    return MISSING if fraction is None else f"±{fmt_pct(fraction, 2)}"
