"""require("assay.protocol"): the Lua side's vocabulary, generated from assay/protocol.py."""

from __future__ import annotations

import pytest

from assay import protocol
from assay.lua import ScriptError

LISTS = """
local P = require("assay.protocol")
local function values(t) local out = {} for _, v in pairs(t) do out[#out + 1] = v end table.sort(out) return out end
OUT = {
  workflow = values(P.WorkflowStatus), activity = values(P.ActivityStatus), events = values(P.EventType),
  sse = values(P.SseEvent), commands = values(P.CommandType), kinds = values(P.TaskKind),
  policies = values(P.OverlapPolicy), terminal = P.TERMINAL_STATUSES,
  ns = P.DEFAULT_NAMESPACE, queue = P.DEFAULT_TASK_QUEUE, same = (require("assay.protocol") == P),
}
"""


def test_lua_gets_every_list_from_python(lua) -> None:
    out = lua(LISTS).get("OUT")
    assert out["workflow"] == sorted(s.value for s in protocol.WorkflowStatus)
    assert out["activity"] == sorted(s.value for s in protocol.ActivityStatus)
    assert out["events"] == sorted(e.value for e in protocol.EventType)
    assert out["sse"] == sorted(e.value for e in protocol.SseEvent)
    assert out["commands"] == sorted(c.value for c in protocol.CommandType)
    assert out["kinds"] == sorted(k.value for k in protocol.TaskKind)
    assert out["policies"] == sorted(p.value for p in protocol.OverlapPolicy)
    assert out["terminal"] == protocol.as_json()["terminal_statuses"]
    assert (out["ns"], out["queue"]) == (protocol.DEFAULT_NAMESPACE, protocol.DEFAULT_TASK_QUEUE)
    assert out["same"] is True


def test_a_misspelt_word_is_an_error_naming_it(lua) -> None:
    with pytest.raises(ScriptError, match="assay.protocol: EventType has no ActivityScheduledd"):
        lua('local P = require("assay.protocol"); local x = P.EventType.ActivityScheduledd')


def test_the_commands_lua_writes_are_the_protocol_types(lua) -> None:
    """replay.lua builds command JSON from the module: every type it can emit is a CommandType."""
    out = lua(
        """
        local replay = require("assay.workflow.replay")
        OUT = json.parse(replay.fail_cmd("boom"))
        """
    ).get("OUT")
    assert out == {"type": protocol.CommandType.FailWorkflow.value, "error": "boom"}


def test_lua_gets_the_sticky_history_fields(lua) -> None:
    out = lua(
        """
        local P = require("assay.protocol")
        OUT = { P.STICKY, P.HISTORY_AFTER, P.HISTORY_NEXT_AFTER, P.HISTORY_LAST_SEQ, P.HISTORY_PAGE_MAX }
        """
    ).get("OUT")
    assert out == [
        protocol.STICKY,
        protocol.HISTORY_AFTER,
        protocol.HISTORY_NEXT_AFTER,
        protocol.HISTORY_LAST_SEQ,
        protocol.HISTORY_PAGE_MAX,
    ]
