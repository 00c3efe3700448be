"""Generates static/components/protocol.js, the dashboard's copy of assay/protocol.py.

The dashboard never spells a status, event or policy itself: it imports them from that module.
Regenerate after changing assay/protocol.py (a test fails while the file is stale):

    python -m assay.dashboard.protocol_js --write
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

from assay import protocol

PATH = Path(__file__).parent / "static" / "components" / "protocol.js"

_ENUMS: tuple[type[StrEnum], ...] = (
    protocol.WorkflowStatus,
    protocol.ActivityStatus,
    protocol.EventType,
    protocol.SseEvent,
    protocol.CommandType,
    protocol.TaskKind,
    protocol.OverlapPolicy,
)


def _js(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def render() -> str:
    lines = [
        "// GENERATED from assay/protocol.py by `python -m assay.dashboard.protocol_js --write`: do not edit.",
        "// The protocol's vocabulary (statuses, event types, SSE events, commands, policies, defaults).",
        "",
    ]
    for enum in _ENUMS:
        body = ", ".join(f"{m.name}: {_js(m.value)}" for m in enum)
        lines.append(f"export const {enum.__name__} = Object.freeze({{ {body} }});")
    data = protocol.as_json()
    lines += [
        "",
        f"export const TERMINAL_STATUSES = Object.freeze({_js(data['terminal_statuses'])});",
        f"export const TERMINAL_EVENTS = Object.freeze({_js(data['terminal_events'])});",
        f"export const TERMINAL_SSE_EVENTS = Object.freeze({_js(data['terminal_sse_events'])});",
        f"export const DEFAULT_NAMESPACE = {_js(protocol.DEFAULT_NAMESPACE)};",
        f"export const DEFAULT_TASK_QUEUE = {_js(protocol.DEFAULT_TASK_QUEUE)};",
        f"export const DEFAULT_OVERLAP_POLICY = {_js(protocol.DEFAULT_OVERLAP_POLICY.value)};",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        PATH.write_text(render(), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m assay.dashboard.protocol_js [--write]", file=sys.stderr)
        return 64
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
