"""The protocol's words are declared once (assay/protocol.py) and imported everywhere else.

A status, event type, SSE event, command type, task kind or overlap policy written out as a string
literal anywhere in assay/ (Python, Lua, dashboard JavaScript) is a copy that can drift: this test
names each one. The generated copies (the dashboard's protocol.js, the Lua module) are checked for
freshness instead.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from assay import protocol
from assay.dashboard import protocol_js

ROOT = Path(__file__).resolve().parent.parent / "assay"

#: files allowed to spell the words: the declaration itself, the generated dashboard copy, and the
#: append-only migrations (their DDL text is what databases ran; it must never change)
ALLOWED = {
    ROOT / "protocol.py",
    ROOT / "dashboard" / "static" / "components" / "protocol.js",
    ROOT / "store" / "migrations.py",
}

#: (file, literal) pairs where the word means something else
NOT_PROTOCOL = {
    ("dashboard/static/app.js", "main"),  # the <main id="main"> element
    ("testing.py", "WorkflowFailed"),  # the exception class assay.testing.WorkflowFailed, in __all__
    ("store/maintenance.py", "FAILED"),  # the result of `assay db check`'s integrity check
}

_ENUMS = (
    protocol.WorkflowStatus,
    protocol.ActivityStatus,
    protocol.EventType,
    protocol.SseEvent,
    protocol.CommandType,
    protocol.TaskKind,
    protocol.OverlapPolicy,
)
#: "queue" is also a request field (a worker's task queue) and "default" the name of a task queue and of
#: many other things: as bare words they are too ambiguous to police here; the other words are not.
AMBIGUOUS = {protocol.OverlapPolicy.queue.value}
WORDS = frozenset(m.value for e in _ENUMS for m in e) - AMBIGUOUS | {protocol.DEFAULT_NAMESPACE}

_QUOTED = re.compile(r"""(?<![\w$])(["'`])([A-Za-z_]+)\1""")  # JS template literals too
_QUOTED_PY = re.compile(r"""(?<![\w$])(["'])([A-Za-z_]+)\1""")  # (`x` in a docstring is markup)


def _python_literals(text: str) -> list[tuple[int, str]]:
    """(line, word) for every Python string token that is, or contains as a quoted token, a word."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type != tokenize.STRING:
            continue
        raw = tok.string
        body = re.sub(r"^[rbuRBUfF]*", "", raw)
        q = 3 if body[:3] in ('"""', "'''") else 1
        inner = body[q:-q]
        if inner in WORDS:
            out.append((tok.start[0], inner))
        for m in _QUOTED_PY.finditer(inner):  # SQL 'PENDING', JSON "type":"X" inside a longer string
            if m.group(2) in WORDS:
                out.append((tok.start[0], m.group(2)))
    return out


def _other_literals(text: str, comment: str = "//") -> list[tuple[int, str]]:
    """(line, word) for quoted words in Lua (`comment="--"`) or JavaScript source; line comments skipped."""
    out = []
    marker = re.compile(r"--" if comment == "--" else r"(?<![:\w])//")  # (not the // of a URL)
    for n, line in enumerate(text.splitlines(), 1):
        code = marker.split(line, maxsplit=1)[0]
        for m in _QUOTED.finditer(code):
            if m.group(2) in WORDS:
                out.append((n, m.group(2)))
    return out


def _sources() -> list[Path]:
    files = [*ROOT.rglob("*.py"), *ROOT.rglob("*.lua"), *(ROOT / "dashboard" / "static").rglob("*.js")]
    return sorted(p for p in files if p not in ALLOWED)


def test_no_protocol_word_is_written_out_outside_the_protocol_module() -> None:
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            lits = _python_literals(text)
        else:
            lits = _other_literals(text, "--" if path.suffix == ".lua" else "//")
        rel = path.relative_to(ROOT).as_posix()
        found += [f"assay/{rel}:{n}: {w!r}" for n, w in lits if (rel, w) not in NOT_PROTOCOL]
    assert not found, "protocol words written out (import them from assay.protocol):\n" + "\n".join(found)


def test_the_scanner_finds_what_it_should() -> None:
    """The test above would pass vacuously if the scanner found nothing: show it finds each form."""
    py = 'x = "RUNNING"\nsql = "WHERE status = \'PENDING\'"\ncmd = \'{"type":"ScheduleTimer"}\'\nok = "RUNNINGX"\n'
    assert _python_literals(py) == [(1, "RUNNING"), (2, "PENDING"), (3, "ScheduleTimer")]
    lua = 'if t == "TimerFired" then -- "SignalReceived" in a comment\nlocal s = "skipper"\n'
    assert _other_literals(lua, "--") == [(1, "TimerFired")]
    js = 'if (x === "workflow_started") {} // "task_failed"\nconst u = "https://x/y";\n'
    assert _other_literals(js) == [(1, "workflow_started")]


def test_no_exit_status_is_a_bare_number() -> None:
    """Exit statuses come from assay.protocol.ExitStatus."""
    pattern = re.compile(
        r"\b(?:sys\.exit|\.exit|SystemExit)\(\s*(?:1|2|64|130)\s*\)|\b(?:exit_code|code)\s*=\s*(?:1|2|64|130)\b"
    )
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "protocol.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line.split("#", 1)[0]):
                found.append(f"assay/{path.relative_to(ROOT).as_posix()}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_comments_cite_the_repository_not_outside_documents() -> None:
    """Design decisions are explained in docs/design.md; nothing points at documents not in the repo."""
    tests = Path(__file__).resolve().parent
    cited = []
    for path in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.lua"), *tests.rglob("*.py")]):
        if path == Path(__file__).resolve() or path.name == "fake_engine.py":  # (being deleted: #15)
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"DECISIONS\b|PROTOCOL\.md|PROTOCOL §", line):
                cited.append(f"{path}:{n}")
    assert not cited, "\n".join(cited)
    assert (ROOT.parent / "docs" / "design.md").is_file()


def test_dashboard_protocol_module_is_fresh() -> None:
    assert protocol_js.PATH.read_text(encoding="utf-8") == protocol_js.render(), (
        "assay/dashboard/static/components/protocol.js is stale: run "
        "`python -m assay.dashboard.protocol_js --write`"
    )


@pytest.mark.parametrize("word", ["TERMINATED", "workflow_continued"])
def test_dashboard_knows_no_word_the_engine_does_not_send(word: str) -> None:
    for path in (ROOT / "dashboard" / "static").rglob("*.js"):
        assert word not in path.read_text(encoding="utf-8"), path
