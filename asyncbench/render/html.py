"""The shared page shell: one self-contained HTML5 document, inline CSS and JS.

Every page the harness writes (run report, gate comparison) goes through
`render_page` so they look alike and stay viewable offline: no external URL,
no <link>, no <script src>. The CSS is written for a laptop screen and for
print (charts never split across pages, the sort hint disappears on paper).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["esc", "render_page", "table_html", "TableCell"]

# A table cell: plain text (escaped), or (text, sort_key) where sort_key is the
# raw number so "1,230" sorts after "999" and "–" (missing) sorts last.
TableCell = str | int | float | None | tuple[str, float | str | None]


def esc(text: object) -> str:
    """HTML-escape anything for text or attribute context."""
    return html.escape("" if text is None else str(text), quote=True)


CSS = """
:root { --fg:#1d232b; --muted:#5b6573; --line:#d8dde3; --bg:#fff; --accent:#1f5fa8;
        --warn-bg:#fff4e0; --warn-line:#e0a030; --bad:#b3261e; --good:#1b7a3a; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--fg); background: var(--bg);
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
header.page { border-bottom: 2px solid var(--fg); margin-bottom: 1.25rem; padding-bottom: .5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.subtitle { color: var(--muted); margin: 0; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-top: .4rem; border-top: 1px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 .4rem; }
p { margin: .4rem 0 .8rem; max-width: 75ch; }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .88em; }
pre { background: #f5f7f9; border: 1px solid var(--line); padding: .6rem .8rem; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; }
nav.toc { font-size: .92rem; margin: .5rem 0 1rem; }
nav.toc a { margin-right: .9rem; white-space: nowrap; }
.banner { border: 2px solid var(--warn-line); background: var(--warn-bg); padding: .7rem 1rem;
          margin: 1rem 0; border-radius: 4px; }
.banner strong { color: #8a4b00; }
.verdict { border-left: 5px solid var(--line); padding: .3rem 0 .3rem .9rem; margin: 1rem 0 1.4rem; }
.verdict.pays-off { border-left-color: var(--good); }
.verdict.costs { border-left-color: var(--bad); }
.verdict .sentence { font-size: 1.08rem; font-weight: 600; margin: .2rem 0 .4rem; }
.verdict ul { margin: .2rem 0 .6rem 1.1rem; padding: 0; }
.muted, .note { color: var(--muted); font-size: .92rem; }
figure { margin: .6rem 0 1.2rem; break-inside: avoid; page-break-inside: avoid; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .2rem; }
.table-wrap { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .86rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .55rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; white-space: nowrap; }
thead th { background: #f0f3f6; position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " \\2195"; color: #9aa3ad; font-size: .8em; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
table.sortable thead th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
tr.flagged td { background: #fdecea; }
tr.missing td { background: #f3f3f3; color: var(--muted); font-style: italic; }
.flag { display: inline-block; border: 1px solid var(--bad); color: var(--bad); border-radius: 3px;
        padding: 0 .3em; font-size: .8em; margin: 0 .15em .1em 0; white-space: nowrap; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .4rem 0 1rem; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
@media print {
  html { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav.toc, .no-print { display: none; }
  table.sortable thead th::after { content: ""; }
  thead th { position: static; }
  h2 { break-after: avoid; page-break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

# Sorting on click, numeric where the cell carries data-sort. Missing values
# (empty data-sort) always sort last. The script also sets data-page-ready on
# <body> so a headless browser test can tell that the page's JS ran cleanly.
SCRIPT = """
(function () {
  "use strict";
  function key(td) {
    var s = td.getAttribute("data-sort");
    if (s === null) { s = td.textContent.trim(); }
    if (s === "") { return null; }
    var n = Number(s);
    return isNaN(n) ? s.toLowerCase() : n;
  }
  function sortBy(table, col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var ths = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(ths, function (th, col) {
      th.setAttribute("tabindex", "0");
      function go() {
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(ths, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        sortBy(table, col, dir);
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { go(); } });
    });
  });
  document.body.setAttribute("data-page-ready", "ok");
})();
"""


def render_page(title: str, body_html: str, *, subtitle: str = "") -> str:
    """A complete HTML5 document around `body_html` (already-escaped HTML)."""
    sub = f'<p class="subtitle">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<header class="page"><h1>{esc(title)}</h1>{sub}</header>\n'
        f"{body_html}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def table_html(
    headers: Sequence[str],
    rows: Sequence[Sequence[TableCell]],
    *,
    sortable: bool = True,
    row_classes: Sequence[str | None] | None = None,
    numeric_cols: Sequence[int] = (),
    raw_html_cols: Sequence[int] = (),
) -> str:
    """A table in a horizontally scrollable wrapper.

    A cell is text (escaped) or (text, sort_key). Columns whose cells carry a
    numeric sort key, or listed in `numeric_cols`, are right-aligned. Cells in
    `raw_html_cols` are inserted unescaped (for flag badges the caller built
    with `esc`).
    """
    num_cols = set(numeric_cols)
    for row in rows:
        for i, c in enumerate(row):
            if (isinstance(c, tuple) and _is_num(c[1])) or _is_num(c):
                num_cols.add(i)
    raw = set(raw_html_cols)
    num_attr = ' class="num"'
    head = "".join(
        f'<th scope="col"{num_attr if i in num_cols else ""}>{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body: list[str] = []
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes is not None and r < len(row_classes) else None
        tds: list[str] = []
        for i, c in enumerate(row):
            attrs = ' class="num"' if i in num_cols else ""
            if isinstance(c, tuple):
                text, sort_key = c
                attrs += f' data-sort="{esc("" if sort_key is None else sort_key)}"'
            else:
                text = "" if c is None else str(c)
            content = text if i in raw else esc(text)
            tds.append(f"<td{attrs}>{content}</td>")
        tr_cls = f' class="{esc(cls)}"' if cls else ""
        body.append(f"<tr{tr_cls}>{''.join(tds)}</tr>")
    cls_attr = ' class="sortable"' if sortable else ""
    return (
        f'<div class="table-wrap"><table{cls_attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
