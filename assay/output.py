"""Terminal output: a Console (which streams, TTY or not, how wide) and emit(rows, fmt).

Formats:
  table  lists as aligned columns (header row, two spaces between columns); one record as
         KEY VALUE lines. Timestamps shown as UTC ISO 8601, nulls as "-", nested values as
         compact JSON. Long cells are shortened to fit a terminal, never identifiers and never
         when the output is not a terminal.
  json   exactly the API's objects, pretty-printed.
  jsonl  one compact JSON document per row (per record).
  yaml   the same objects as json, as one YAML document (block style, keys in the API's order).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from assay.config import OUTPUT_ALIASES as FORMAT_ALIASES  # noqa: F401 - re-exported
from assay.config import OUTPUT_CHOICES as FORMATS  # noqa: F401 - re-exported

ELLIPSIS = "…"
MIN_CELL = 5  # a shortened text column keeps at least this many characters (or its title)


class Console:
    """Where output goes. Streams are looked up when used, so redirections made later still apply."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out
        self._err = err

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    @property
    def out_is_tty(self) -> bool:
        return self._isatty(self.out)

    @property
    def err_is_tty(self) -> bool:
        return self._isatty(self.err)

    def width(self) -> int:
        try:
            cols = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            cols = 0
        return cols if cols > 0 else shutil.get_terminal_size((100, 24)).columns

    def default_format(self) -> str:
        return "table" if self.out_is_tty else "json"

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


@dataclass(frozen=True)
class Column:
    """One table column: title, how to get the value from a row, and how to show it.

    kind: "text" (may be shortened on a terminal), "id" (never shortened), "num" (right-aligned),
    "time" (epoch seconds shown as ISO 8601 UTC).
    """

    title: str
    key: str | Callable[[Any], Any]
    kind: str = "text"

    def value(self, row: Any) -> Any:
        if callable(self.key):
            return self.key(row)
        return row.get(self.key) if isinstance(row, dict) else None


TIME_KEYS = ("timestamp", "last_heartbeat")


def is_time_key(key: str) -> bool:
    return key.endswith("_at") or key in TIME_KEYS


def fmt_time(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return cell(value)
    try:
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return cell(value)


def cell(value: Any) -> str:
    """One value as table text: strings raw (one line), null '-', everything else compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.replace("\r", "").replace("\n", "\\n").replace("\t", " ")


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS


def render_table(rows: Sequence[Any], columns: Sequence[Column], *, max_width: int | None = None) -> str:
    """Aligned columns with a header row. `max_width` (a terminal's) shortens "text" columns to fit."""
    grid = [[c.title for c in columns]]
    for row in rows:
        line = []
        for c in columns:
            v = c.value(row)
            line.append(fmt_time(v) if c.kind == "time" else cell(v))
        grid.append(line)
    widths = [max(len(r[i]) for r in grid) for i in range(len(columns))]
    if max_width:
        gaps = 2 * (len(columns) - 1)
        while sum(widths) + gaps > max_width:
            shrinkable = [
                i
                for i, c in enumerate(columns)
                if c.kind == "text" and widths[i] > max(MIN_CELL, len(c.title))
            ]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda j: widths[j])
            widths[i] = max(MIN_CELL, len(columns[i].title), widths[i] - (sum(widths) + gaps - max_width))
    out = []
    last = len(columns) - 1
    for r in grid:
        parts = []
        for i, text in enumerate(r):
            text = _shorten(text, widths[i]) if max_width and columns[i].kind == "text" else text
            if columns[i].kind == "num":
                parts.append(text.rjust(widths[i]))
            elif i == last:
                parts.append(text)
            else:
                parts.append(text.ljust(widths[i]))
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def render_record(record: dict, *, max_width: int | None = None) -> str:
    """One object as KEY VALUE lines (keys in the object's order)."""
    if not record:
        return "(empty)"
    keyw = max(len(str(k)) for k in record)
    lines = []
    for k, v in record.items():
        text = fmt_time(v) if is_time_key(str(k)) else cell(v)
        if max_width:
            text = _shorten(text, max(20, max_width - keyw - 2))
        lines.append(f"{str(k).ljust(keyw)}  {text}".rstrip())
    return "\n".join(lines)


def to_json(data: Any, *, compact: bool = False) -> str:
    if compact:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def to_yaml(data: Any, *, document: bool = False) -> str:
    """Block-style YAML of JSON-shaped data; `document` starts it with `---` (for a stream of them)."""
    import yaml  # only when asked for: keeps the CLI start-up light

    text = yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, explicit_start=document
    )
    return text.removesuffix("\n...\n").rstrip("\n")


def emit(
    rows: Any, fmt: str, columns: Sequence[Column] | None = None, *, console: Console | None = None
) -> None:
    """Print API data in `fmt`. Lists use `columns` for tables; dicts print as records."""
    console = console or Console()
    if fmt == "json":
        console.print(to_json(rows))
        return
    if fmt == "yaml":
        console.print(to_yaml(rows))
        return
    if fmt == "jsonl":
        items = rows if isinstance(rows, list) else [rows]
        for item in items:
            console.print(to_json(item, compact=True))
        return
    max_width = console.width() if console.out_is_tty else None
    if isinstance(rows, list):
        if columns is None:
            keys: list[str] = []
            for r in rows:
                for k in r if isinstance(r, dict) else ():
                    if k not in keys:
                        keys.append(k)
            columns = [Column(k.upper(), k, "time" if is_time_key(k) else "text") for k in keys] or [
                Column("VALUE", lambda r: r)
            ]
        console.print(render_table(rows, columns, max_width=max_width))
    elif isinstance(rows, dict):
        console.print(render_record(rows, max_width=max_width))
    elif rows is not None:
        console.print(cell(rows))
