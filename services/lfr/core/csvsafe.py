"""CSV cells that a spreadsheet will show as text, never run as a formula.

Exported reports are opened in Excel or LibreOffice by analysts. A cell beginning with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is evaluated as a formula there (CSV/formula injection), so any text that
reached the data from outside (a category, an id, a name) could run ``=HYPERLINK(...)`` or worse on the
analyst's machine. Such cells get a leading apostrophe, as OWASP recommends; numbers are left alone so the
figures stay numeric.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would treat as a formula."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def render_rows(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as CSV text (``\\n`` line ends), every cell passed through :func:`safe_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buf.getvalue()
