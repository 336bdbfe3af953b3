"""Every sentence a reader sees about a verdict, written once.

The analysis package returns objects and numbers; the report, the terminal
summary and the charts' captions take their words from here.
"""

from __future__ import annotations

from asyncbench.analysis.verdict import Verdict


def sentence(v: Verdict) -> str:
    """The claim, then the flagged cells it left out."""
    return v.sentence


def claim(v: Verdict) -> str:
    """The claim alone."""
    return v.claim


def notes(v: Verdict) -> list[str]:
    """Where a variant changes the answer, and what the flags mean for the claim."""
    return list(v.notes)
