"""What the committed version-1 run renders to, as plain data: the verdict
sentences and notes, the terminal summary, the CSV and the text of every
report table. `tests/test_v1_fixture.py` compares today's rendering with the
golden files written by `python -m tests.v1_golden --write` (run only when a
change to the wording or numbers is intended, and say so in the commit)."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "v1-quick"


class _Tables(HTMLParser):
    """Rows of every <table>, cell text whitespace-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("svg", "script", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("svg", "script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def rendering() -> dict[str, object]:
    from asyncbench.analysis.verdict import verdicts
    from asyncbench.model.results import load_run
    from asyncbench.render import text
    from asyncbench.render.report import cells_csv, render_report
    from asyncbench.render.terminal import terminal_summary

    run = load_run(FIXTURE)
    parser = _Tables()
    parser.feed(render_report(run))
    return {
        "verdicts": [{"sentence": text.sentence(v), "notes": list(text.notes(v))} for v in verdicts(run)],
        "terminal": terminal_summary(run).splitlines(),
        "csv": cells_csv(run).splitlines(),
        "tables": parser.rows,
    }


if __name__ == "__main__":
    if "--write" in sys.argv:
        (FIXTURE / "golden.json").write_text(json.dumps(rendering(), indent=1, ensure_ascii=False) + "\n")
