"""`require("assay.protocol")` in Lua: the vocabulary of assay/protocol.py, generated at load time.

The Lua workflow modules (and scripts that want them) read statuses, event types, command types,
policies and defaults from this module, so Lua never holds a hand copy of the words.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache

from assay import protocol

MODULE = "assay.protocol"
CHUNK_NAME = "@assay/protocol (generated from assay/protocol.py)"

_ENUMS: tuple[type[StrEnum], ...] = (
    protocol.WorkflowStatus,
    protocol.ActivityStatus,
    protocol.EventType,
    protocol.SseEvent,
    protocol.CommandType,
    protocol.TaskKind,
    protocol.OverlapPolicy,
    protocol.TemporalStatus,
)


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string of identifier-like ASCII is a valid Lua string literal


def _list(values: list[str]) -> str:
    return "{ " + ", ".join(_lua_str(v) for v in values) + " }"


@lru_cache(maxsize=1)
def render() -> str:
    lines = [
        "-- generated from assay/protocol.py: the protocol's vocabulary",
        "local P = {}",
        "local function strict(name, t)  -- a misspelt word is an error, not a silent nil",
        "  return setmetatable(t, { __index = function(_, k)",
        '    error("assay.protocol: " .. name .. " has no " .. tostring(k), 2)',
        "  end })",
        "end",
    ]
    for enum in _ENUMS:
        body = ", ".join(f"{m.name} = {_lua_str(m.value)}" for m in enum)
        lines.append(f'P.{enum.__name__} = strict("{enum.__name__}", {{ {body} }})')
    data = protocol.as_json()
    lines += [
        f"P.TERMINAL_STATUSES = {_list(data['terminal_statuses'])}",
        f"P.TERMINAL_EVENTS = {_list(data['terminal_events'])}",
        f"P.TERMINAL_COMMANDS = {_list(data['terminal_commands'])}",
        f"P.DEFAULT_NAMESPACE = {_lua_str(protocol.DEFAULT_NAMESPACE)}",
        f"P.DEFAULT_TASK_QUEUE = {_lua_str(protocol.DEFAULT_TASK_QUEUE)}",
        f"P.DEFAULT_OVERLAP_POLICY = {_lua_str(protocol.DEFAULT_OVERLAP_POLICY.value)}",
        # sticky workers: the registration flag, the workflow task's history fields, the page cap
        f"P.STICKY = {_lua_str(protocol.STICKY)}",
        f"P.HISTORY_AFTER = {_lua_str(protocol.HISTORY_AFTER)}",
        f"P.HISTORY_NEXT_AFTER = {_lua_str(protocol.HISTORY_NEXT_AFTER)}",
        f"P.HISTORY_LAST_SEQ = {_lua_str(protocol.HISTORY_LAST_SEQ)}",
        f"P.HISTORY_PAGE_MAX = {int(protocol.HISTORY_PAGE_MAX)}",
        f"P.RETRY_AFTER = {_lua_str(protocol.RETRY_AFTER)}",
        f"P.POLL_IS_HEARTBEAT = {_lua_str(protocol.POLL_IS_HEARTBEAT)}",
        "return P",
        "",
    ]
    return "\n".join(lines)
