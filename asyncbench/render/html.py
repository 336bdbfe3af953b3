"""The shared page shell and table helper, rendered by Jinja2 templates.

Every page the harness writes (run report, gate comparison) goes through
`render_page` so they look alike and stay viewable offline: no external URL,
no <link>, no <script src>. The templates, the CSS (written for a laptop
screen and for print) and the sorting script live in `templates/` beside this
module. Autoescaping is on: text is escaped unless it is `Markup` (an SVG
chart, a fragment another template rendered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

__all__ = ["Markup", "TableCell", "environment", "esc", "render", "render_page", "table_html"]

TEMPLATES = Path(__file__).parent / "templates"

# A table cell: plain text (escaped), or (text, sort_key) where sort_key is the
# raw number so "1,230" sorts after "999" and "–" (missing) sorts last.
TableCell = str | int | float | None | tuple[str, float | str | None]


def esc(text: object) -> str:
    """HTML-escape anything for text or attribute context."""
    # markupsafe's escaping, so a fragment escaped here matches what the templates write.
    return str(escape("" if text is None else str(text)))


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> Markup:
    """One template rendered to HTML that other templates insert unescaped."""
    return Markup(environment().get_template(template).render(**context))


def render_page(title: str, body_html: str, *, subtitle: str = "") -> str:
    """A complete HTML5 document around `body_html` (already-escaped HTML)."""
    return str(render("page.html.j2", title=title, subtitle=subtitle, body=Markup(body_html)))


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class _Cell:
    text: str | Markup
    key: float | str | None
    has_key: bool


@dataclass(frozen=True)
class _Row:
    cells: list[_Cell]
    cls: str | None


@dataclass(frozen=True)
class _Table:
    headers: Sequence[str]
    rows: list[_Row]
    num_cols: set[int]
    sortable: bool


def table_html(
    headers: Sequence[str],
    rows: Sequence[Sequence[TableCell]],
    *,
    sortable: bool = True,
    row_classes: Sequence[str | None] | None = None,
    numeric_cols: Sequence[int] = (),
    raw_html_cols: Sequence[int] = (),
) -> Markup:
    """A table in a horizontally scrollable wrapper.

    A cell is text (escaped) or (text, sort_key). Columns whose cells carry a
    numeric sort key, or listed in `numeric_cols`, are right-aligned. Cells in
    `raw_html_cols` are inserted unescaped (for flag badges a template built).
    """
    num_cols = set(numeric_cols)
    for row in rows:
        for i, c in enumerate(row):
            if (isinstance(c, tuple) and _is_num(c[1])) or _is_num(c):
                num_cols.add(i)
    raw = set(raw_html_cols)
    out_rows: list[_Row] = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes is not None and r < len(row_classes) else None
        cells: list[_Cell] = []
        for i, c in enumerate(row):
            if isinstance(c, tuple):
                text, key, has_key = c[0], ("" if c[1] is None else c[1]), True
            else:
                text, key, has_key = ("" if c is None else str(c)), None, False
            cells.append(_Cell(Markup(text) if i in raw else text, key, has_key))
        out_rows.append(_Row(cells, cls))
    return render("table.html.j2", t=_Table(headers, out_rows, num_cols, sortable))
