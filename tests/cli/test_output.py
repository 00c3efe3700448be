"""assay.output: tables, records, JSON formats, terminal-only shortening."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from assay.cli.settings import resolve_settings
from assay.errors import ConfigError
from assay.output import Column, Console, cell, emit, fmt_time, render_record, render_table, to_yaml


class TTY(io.StringIO):
    def isatty(self):
        return True


ROWS = [
    {
        "id": "wf-a-very-long-identifier-that-must-survive-0001",
        "workflow_type": "Report" * 12,
        "status": "RUNNING",
        "n": 7,
        "created_at": 0.0,
    },
    {"id": "b", "workflow_type": "T", "status": "FAILED", "n": 12345, "created_at": None},
]
COLS = [
    Column("ID", "id", "id"),
    Column("TYPE", "workflow_type"),
    Column("STATUS", "status", "id"),
    Column("N", "n", "num"),
    Column("CREATED", "created_at", "time"),
]


def test_table_alignment_and_cells():
    text = render_table(ROWS, COLS)
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "N", "CREATED"]
    assert lines[1].startswith(ROWS[0]["id"] + "  ")
    assert "1970-01-01T00:00:00Z" in lines[1]
    assert lines[2].endswith("-")  # null time
    # numbers right-aligned: the "7" ends where "12345" ends
    assert lines[1].index("    7") + 5 == lines[2].index("12345") + 5
    assert all(line == line.rstrip() for line in lines)


def test_terminal_width_shortens_text_but_never_ids():
    text = render_table(ROWS, COLS, max_width=100)
    assert ROWS[0]["id"] in text
    assert "…" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    # without a width limit (piped) nothing is shortened
    assert ROWS[0]["workflow_type"] in render_table(ROWS, COLS)


def test_emit_table_shortens_only_on_a_tty(monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    piped, tty = io.StringIO(), TTY()
    emit(ROWS, "table", COLS, console=Console(out=piped))
    emit(ROWS, "table", COLS, console=Console(out=tty))
    assert ROWS[0]["workflow_type"] in piped.getvalue()
    assert "…" in tty.getvalue() and ROWS[0]["id"] in tty.getvalue()


def test_json_is_the_objects_unchanged():
    out = io.StringIO()
    emit(ROWS, "json", COLS, console=Console(out=out))
    assert json.loads(out.getvalue()) == ROWS
    out = io.StringIO()
    emit({"a": {"b": [1, None]}, "ü": "é"}, "json", console=Console(out=out))
    assert json.loads(out.getvalue()) == {"a": {"b": [1, None]}, "ü": "é"}
    assert "é" in out.getvalue()  # not escaped


def test_jsonl_one_document_per_line():
    out = io.StringIO()
    emit(ROWS, "jsonl", console=Console(out=out))
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == ROWS
    out = io.StringIO()
    emit({"x": 1}, "jsonl", console=Console(out=out))
    assert out.getvalue() == '{"x":1}\n'


def test_record_view():
    text = render_record({"id": "w1", "input": {"n": 1}, "created_at": 86400.0, "error": None, "ok": True})
    lines = text.splitlines()
    assert lines[0].split() == ["id", "w1"]
    assert lines[1].split() == ["input", '{"n":1}']
    assert "1970-01-02T00:00:00Z" in lines[2]
    assert lines[3].split() == ["error", "-"]
    assert lines[4].split() == ["ok", "true"]


def test_cells_stay_on_one_line():
    assert cell("a\nb\tc") == "a\\nb c"
    assert cell(None) == "-" and cell(False) == "false" and cell(1.5) == "1.5"
    assert fmt_time("soon") == "soon" and fmt_time(True) == "true"


def test_empty_list_prints_header_and_default_columns():
    out = io.StringIO()
    emit([], "table", COLS, console=Console(out=out))
    assert out.getvalue().split() == ["ID", "TYPE", "STATUS", "N", "CREATED"]
    out = io.StringIO()
    emit([{"queue": "q", "last_at": 0}], "table", console=Console(out=out))
    assert out.getvalue().splitlines()[0].split() == ["QUEUE", "LAST_AT"]
    assert "1970-01-01T00:00:00Z" in out.getvalue()


def test_console_default_format_follows_the_terminal():
    assert Console(out=TTY()).default_format() == "table"
    assert Console(out=io.StringIO()).default_format() == "json"


def test_yaml_is_the_objects_unchanged():
    data = {"a": {"b": [1, None, True]}, "ü": "é", "yes": "no", "n": 1.5, "empty": {}, "s": "12"}
    out = io.StringIO()
    emit(data, "yaml", console=Console(out=out))
    text = out.getvalue()
    assert yaml.safe_load(text) == data  # "no" and "12" stay strings, null stays null
    assert text.startswith("a:\n  b:\n  - 1\n  - null\n") and "é" in text  # block style, API key order
    out = io.StringIO()
    emit(ROWS, "yaml", COLS, console=Console(out=out))
    assert yaml.safe_load(out.getvalue()) == ROWS
    assert out.getvalue().startswith("- id: ")
    assert yaml.safe_load(to_yaml([])) == [] and to_yaml("x") == "x"


def test_yaml_event_documents_form_a_stream():
    events = [{"seq": 1, "event_type": "WorkflowStarted"}, {"seq": 2, "payload": {"k": [1]}}]
    stream = "\n".join(to_yaml(e, document=True) for e in events)
    assert list(yaml.safe_load_all(stream)) == events


@pytest.mark.parametrize(
    "value,expected", [("yaml", "yaml"), ("YAML", "yaml"), ("yml", "yaml"), ("ndjson", "jsonl")]
)
def test_output_setting_accepts_yaml_and_aliases(value, expected):
    assert resolve_settings({}, {"ASSAY_OUTPUT": value}).output == expected
    assert resolve_settings({"output": value}, {}).output == expected


def test_unknown_output_format_names_the_choices():
    with pytest.raises(ConfigError) as e:
        resolve_settings({}, {"ASSAY_OUTPUT": "xml"})
    assert "ASSAY_OUTPUT" in e.value.message and "yaml" in e.value.message
