"""The one helper that writes Markdown tables (model cards, comparison and benchmark reports, the
app's Model tab), so every table in the project has the same shape."""
from __future__ import annotations

from typing import Iterable, Sequence


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table: the header row, the `|---|` rule, then one line per
    row. Cells are written with `str`; format numbers before passing them."""
    lines = [_line(header), "|" + "---|" * len(header)]
    lines += [_line(row) for row in rows]
    return "\n".join(lines)


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
