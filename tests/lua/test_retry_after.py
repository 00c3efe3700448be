"""The Lua worker honours `retry_after` on an empty poll answer (the poll asks for it), on a fake engine
connection: it waits that long (capped) through the interruptible wait, and otherwise polls as before."""

from __future__ import annotations

import json

import pytest

from assay.lua import Runtime

HARNESS = """
local native = require("assay._native")
local client = require("assay.workflow.client")
local W = require("assay.workflow.worker")
client.state.handle = {}
W.worker_id = "w1"
W.define("X", function(ctx) return 1 end)
SENT, WAITS = {}, {}
native.engine_call = function(handle, method, path, text)
  SENT[#SENT + 1] = path .. " " .. (text or "")
  return true, 200, ANSWER
end
native.wait = function(secs) WAITS[#WAITS + 1] = secs; return true, false end
function POLL()
  local cfg = { queue = "q", wait_secs = 5, max_tasks = 4, quick_empty = 0 }
  local got = W.internal.poll(cfg)
  return got == nil and 0 or #got
end
"""


@pytest.fixture
def poll():
    rt = Runtime(code=HARNESS)
    assert rt.run() == 0
    g = rt.lua.globals()

    def run(answer: dict) -> tuple[int, list, dict]:
        g.ANSWER = json.dumps(answer).encode()
        n = g.POLL()
        sent = g.SENT[len(g.SENT)].decode()
        waits = [g.WAITS[i] for i in range(1, len(g.WAITS) + 1)]
        return n, waits, json.loads(sent.split(" ", 1)[1])

    return run


def test_empty_answer_with_retry_after_waits_that_long(poll):
    n, waits, body = poll({"tasks": [], "retry_after": 7.5})
    assert n == 0 and waits == [7.5]
    assert body["retry_after"] is True  # asked for (an engine without it ignores the field)
    n, waits, _ = poll({"kind": None, "task": None, "retry_after": 3600})
    assert waits[-1] == 60  # capped


def test_answers_without_retry_after_do_not_wait(poll):
    n, waits, _ = poll({"tasks": []})
    assert n == 0 and waits == []
    n, waits, _ = poll({"tasks": [], "retry_after": 0})
    assert waits == []
    n, waits, _ = poll({"tasks": [{"kind": "activity_task", "task": {"id": 1}}], "retry_after": 5})
    assert n == 1 and waits == []  # tasks: run them, no wait
