"""Sticky workflow state in the Lua worker, on synthetic tasks (no engine process).

A small engine model (MiniEngine) turns command batches into events the way the engine does; each
workflow is driven to its end twice: replayed from the start on every task (replay.run) and kept
suspended between tasks (replay.start / replay.resume with only the new events). Every command batch
must be the same text, byte for byte. The worker-level tests run assay.workflow.worker's task runner
against a fake engine connection: partial histories, the full-history fallback (mismatch, no state,
eviction, a failed commands POST, a paged first page), and which states are kept.
"""

from __future__ import annotations

import json
import re

import pytest

from assay.lua import Runtime
from assay.protocol import CommandType as C
from assay.protocol import EventType as E

HANDLERS = """
STARTS = {}
local function count(ctx) STARTS[ctx.namespace] = (STARTS[ctx.namespace] or 0) + 1 end

HANDLERS.Mix = function(ctx, input)
  count(ctx)
  local st = { step = "start", n = 0 }
  ctx:register_query("st", function() return st end)
  local v = ctx:get_version("fmt", 1, 2)
  local tok = ctx:side_effect("tok", function() return { t = "abc", v = v } end)
  for i = 1, input.n do
    st.n = ctx:execute_activity("add", { i = i, tok = tok.t }).n
    ctx:upsert_search_attributes({ progress = i, tok = tok.t })
  end
  local par = ctx:execute_parallel({ { "p1", 1 }, { "p2", 2 }, { name = "p3", input = 3, opts = { max_attempts = 2 } } })
  ctx:sleep(5)
  local sig = ctx:wait_for_signal("go")
  local got, p = ctx:signal_or_timeout("late", 10)
  local ok, err = pcall(ctx.execute_activity, ctx, "boom", {})
  local child = ctx:start_child_workflow("Kid", { workflow_id = "kid-1", input = { a = 1 } })
  if ctx:patched("p2") then st.step = "patched" end
  local se2 = ctx:side_effect("rand", function() return 42 end)
  local early = ctx:wait_for_signal("early")
  st.step = "done"
  return { par = par, sig = sig, got = got, p = p, ok = ok, err = tostring(err), child = child, se2 = se2,
    early = early, len = ctx:workflow_info().history_length }
end

HANDLERS.Loop = function(ctx, input)
  count(ctx)
  for i = 1, 3 do ctx:execute_activity("add", { i = i }) end
  if input.k < 2 then ctx:continue_as_new({ k = input.k + 1 }) end
  return "end"
end

HANDLERS.Long = function(ctx, input)
  count(ctx)
  local total = 0
  for i = 1, input.n do total = total + ctx:execute_activity("add", { i = i }).n end
  return total
end

HANDLERS.Fails = function(ctx)
  count(ctx)
  ctx:execute_activity("add", {})
  ctx:execute_activity("boom", {})
  return "unreachable"
end
"""

REPLAY = """
local replay = require("assay.workflow.replay")
HANDLERS = {}
local function task_of(ns, wf_type, history_json, input_json)
  return { workflow_id = "wf-1", workflow_type = wf_type, namespace = ns, task_queue = "q1", run_id = "run-1",
    history = json.parse(history_json), input = json.parse(input_json) }
end
local function out(cmds, summary, div) return "[" .. table.concat(cmds, ",") .. "]", summary, div and div.message end
local function nolog() end
function FRESH(wf_type, history_json, input_json)
  return out(replay.run(task_of("fresh", wf_type, history_json, input_json), HANDLERS[wf_type], nolog))
end
local state
function STICKY(wf_type, new_json, input_json)
  local task = task_of("sticky", wf_type, new_json, input_json)
  local cmds, summary, div
  if state then
    cmds, summary, div = replay.resume(state, task, HANDLERS[wf_type], nolog)
  else
    cmds, summary, div, state = replay.start(task, HANDLERS[wf_type], nolog)
  end
  if not state.suspended then state = nil end
  local c, s, d = out(cmds, summary, div)
  return c, s, d, state ~= nil
end
"""


class MiniEngine:
    """Events from command batches, the engine's way (enough of it for the replay runner)."""

    def __init__(self, external: dict[int, list[tuple[str, dict]]] | None = None) -> None:
        self.events: list[dict] = []
        self.pending: list[tuple] = []
        self.acts: set[int] = set()
        self.timers: set[int] = set()
        self.children: set[str] = set()
        self.waiting: set[str] = set()
        self.external = external or {}
        self.ended: str | None = None
        self.seen = 0
        self.add(E.WorkflowStarted, {})

    def add(self, t: str, payload: dict) -> None:
        seq = len(self.events) + 1
        self.events.append({"seq": seq, "event_type": str(t), "payload": payload, "timestamp": 1000.0 + seq})

    def apply(self, cmds: list[dict]) -> None:
        for c in cmds:
            t = c["type"]
            if t == C.ScheduleActivity and c["seq"] not in self.acts:
                self.acts.add(c["seq"])
                self.add(E.ActivityScheduled, {"activity_seq": c["seq"], "name": c["name"]})
                self.pending.append(("act", c))
            elif t == C.ScheduleTimer and c["seq"] not in self.timers:
                self.timers.add(c["seq"])
                self.add(E.TimerScheduled, {"timer_seq": c["seq"], "duration_secs": c["duration_secs"]})
                self.pending.append(("timer", c["seq"]))
            elif t == C.WaitForSignal and c["name"] not in self.waiting:
                self.waiting.add(c["name"])
                self.add(E.WorkflowAwaitingSignal, {"signal": c["name"]})
                self.pending.append(("signal", c["name"]))
            elif t == C.RecordSideEffect:
                self.add(
                    E.SideEffectRecorded,
                    {"side_effect_seq": c["seq"], "name": c["name"], "value": c["value"]},
                )
            elif t == C.RecordVersion:
                self.add(E.VersionMarkerRecorded, {"change_id": c["change_id"], "version": c["version"]})
            elif t == C.StartChildWorkflow and c["workflow_id"] not in self.children:
                self.children.add(c["workflow_id"])
                self.add(E.ChildWorkflowStarted, {"child_workflow_id": c["workflow_id"]})
                self.pending.append(("child", c["workflow_id"]))
            elif t in (C.CompleteWorkflow, C.FailWorkflow, C.CancelWorkflow, C.ContinueAsNew):
                self.ended = t

    def progress(self, step: int) -> None:
        """Resolve the oldest pending wait (two on even steps), then add the external events of `step`."""
        for _ in range(1 if step % 2 else 2):
            if not self.pending:
                break
            kind, x = self.pending.pop(0)
            if kind == "act":
                if x["name"] == "boom":
                    self.add(
                        E.ActivityFailed, {"activity_seq": x["seq"], "name": x["name"], "error": "kaput"}
                    )
                else:
                    self.add(
                        E.ActivityCompleted,
                        {
                            "activity_seq": x["seq"],
                            "name": x["name"],
                            "result": {"n": x["seq"] * 10, "in": x["input"]},
                        },
                    )
            elif kind == "timer":
                self.add(E.TimerFired, {"timer_seq": x})
            elif kind == "signal":
                self.waiting.discard(x)
                self.add(E.SignalReceived, {"signal": x, "payload": {"sig": x, "at": len(self.events)}})
            else:
                self.add(E.ChildWorkflowCompleted, {"child_workflow_id": x, "result": {"child": x}})
        for t, payload in self.external.get(step, []):
            self.add(t, payload)


def replay_rt() -> Runtime:
    rt = Runtime(code=REPLAY + HANDLERS)
    assert rt.run() == 0
    return rt


def drive(rt: Runtime, wf_type: str, input, engine: MiniEngine, max_steps: int = 300) -> list[tuple]:
    """Run the workflow both ways on the same tasks; assert equal batches; return (cmds, summary) per task."""
    g = rt.lua.globals()
    inp = json.dumps(input).encode()
    sent, out = 0, []
    for step in range(max_steps):
        full = engine.events
        fresh = g.FRESH(wf_type.encode(), json.dumps(full).encode(), inp)
        sticky = g.STICKY(wf_type.encode(), json.dumps(full[sent:]).encode(), inp)
        assert tuple(sticky[:3]) == tuple(fresh), f"task {step} (events {sent + 1}..{len(full)})"
        sent = len(full)
        cmds = json.loads(fresh[0])
        out.append((cmds, fresh[1].decode(), sticky[3]))
        engine.seen = len(full)
        engine.apply(cmds)
        if engine.ended:
            return out
        engine.progress(step)
    raise AssertionError("the workflow did not end")


def starts(rt: Runtime) -> dict:
    return {k.decode(): v for k, v in dict(rt.lua.globals().STARTS).items()}


def test_sticky_batches_equal_a_replay_from_the_start():
    rt = replay_rt()
    engine = MiniEngine(external={3: [(E.SignalReceived, {"signal": "early", "payload": "e"})]})
    out = drive(rt, "Mix", {"n": 4}, engine)
    types = [c["type"] for cmds, _, _ in out for c in cmds]
    # everything the handler does was exercised
    for t in C:
        if t not in (C.ContinueAsNew, C.FailWorkflow, C.CancelWorkflow):
            assert t in types, t
    last_cmds, summary, kept = out[-1]
    assert summary == C.CompleteWorkflow and not kept
    result = last_cmds[-1]["result"]
    assert result["ok"] is False and "kaput" in result["err"]
    assert result["early"] == "e" and result["child"] == {"child": "kid-1"}
    assert result["len"] == engine.seen  # the whole history of the last task
    assert all(kept for _, s, kept in out[:-1] if s == "suspended")
    # the sticky handler ran once; the replays ran once per task
    assert starts(rt) == {"sticky": 1, "fresh": len(out)}


def test_cancel_request_and_failure_end_both_ways_alike():
    rt = replay_rt()
    engine = MiniEngine(external={2: [(E.WorkflowCancelRequested, {"reason": "stop it"})]})
    out = drive(rt, "Long", {"n": 20}, engine)
    assert out[-1][0] == [{"type": C.CancelWorkflow}] and out[-1][2] is False
    rt = replay_rt()
    out = drive(rt, "Fails", None, MiniEngine())
    assert out[-1][1] == C.FailWorkflow and "kaput" in out[-1][0][0]["error"]
    assert starts(rt)["sticky"] == 1


def test_continue_as_new_is_not_kept():
    rt = replay_rt()
    out = drive(rt, "Loop", {"k": 0}, MiniEngine())
    assert out[-1][0][-1]["type"] == C.ContinueAsNew and out[-1][0][-1]["input"] == {"k": 1}
    assert out[-1][1] == "suspended" and out[-1][2] is False  # suspended, yet its run is over


def test_divergence_found_on_a_kept_state_names_the_event():
    rt = Runtime(
        code=REPLAY
        + """
      FLIP = false
      HANDLERS.D = function(ctx)
        ctx:execute_activity("a", 1)
        ctx:execute_activity(FLIP and "other" or "b", 2)
        return "ok"
      end
    """
    )
    assert rt.run() == 0
    g = rt.lua.globals()
    started = [{"seq": 1, "event_type": str(E.WorkflowStarted), "payload": {}, "timestamp": 1.0}]
    c, s, d, kept = g.STICKY(b"D", json.dumps(started).encode(), b"null")
    assert kept and s == b"suspended"
    g.FLIP = True  # the code changes while the state is kept (as a deploy would, for a replay)
    new = [
        {"seq": 2, "event_type": str(E.ActivityScheduled), "payload": {"activity_seq": 1, "name": "a"}},
        {
            "seq": 3,
            "event_type": str(E.ActivityCompleted),
            "payload": {"activity_seq": 1, "name": "a", "result": 1},
        },
        {"seq": 4, "event_type": str(E.ActivityScheduled), "payload": {"activity_seq": 2, "name": "b"}},
    ]
    c, s, d, kept = g.STICKY(b"D", json.dumps(new).encode(), b"null")
    assert d is not None and "activity #2 was 'b'" in d.decode()


# ---------------------------------------------------------------------------------------------------
# the worker's task runner against a fake engine connection
# ---------------------------------------------------------------------------------------------------
WORKER = """
local native = require("assay._native")
local client = require("assay.workflow.client")
local W = require("assay.workflow.worker")
local sticky = require("assay.workflow.sticky")
client.state.handle = {}
W.worker_id = "w1"
native.engine_call = function(handle, method, path, text)
  local ok, answer = pcall(ENGINE, method, path, text or "")
  if not ok then error("fake engine: " .. tostring(answer)) end
  local status, raw = answer:match("^(%d+) (.*)$")
  if not status then return true, 599, "fake engine: bad answer" end
  return true, tonumber(status), raw
end
function SET_CACHE(cap) W.sticky = cap and sticky.cache(cap) or nil end
function CACHED(id)
  local e = W.sticky and W.sticky.map[id]
  return e and e.last_seq or nil
end
function CACHE_SIZE() return W.sticky and W.sticky:size() or -1 end
function RUN(task_json) W.internal.run_workflow_task(json.parse(task_json)) end
HANDLERS = {}
setmetatable(HANDLERS, { __newindex = function(t, k, fn) W.define(k, fn); rawset(t, k, fn) end })
"""


class FakeEngine:
    """The HTTP side the worker sees: commands POSTs recorded, event pages served from MiniEngines."""

    def __init__(self, page: int = 3) -> None:
        self.wfs: dict[str, MiniEngine] = {}
        self.posts: list[tuple[str, list[dict]]] = []
        self.gets: list[str] = []
        self.page = page
        self.post_status = 200
        self.get_status = 200

    def __call__(self, method: bytes, path: bytes, body: bytes) -> bytes:
        return self.answer(method.decode(), path.decode(), body).encode()

    def answer(self, method_s: str, path_s: str, body: bytes) -> str:
        m = re.match(r"^/api/v1/workflow-tasks/([^/]+)/commands$", path_s)
        if method_s == "POST" and m:
            self.posts.append((m.group(1), json.loads(body)["commands"]))
            return f"{self.post_status} {{}}"
        m = re.match(r"^/api/v1/workflows/([^/?]+)/events\?(.*)$", path_s)
        if method_s == "GET" and m:
            self.gets.append(path_s)
            if self.get_status != 200:
                return f"{self.get_status} " + json.dumps({"error": "boom"})
            q = dict(kv.split("=") for kv in m.group(2).split("&"))
            after, limit = int(q["after"]), min(int(q["limit"]), self.page)
            evs = [e for e in self.wfs[m.group(1)].events if e["seq"] > after][:limit]
            return "200 " + json.dumps(evs)
        return "404 " + json.dumps({"error": f"no route {method_s} {path_s}"})


@pytest.fixture
def worker():
    rt = Runtime(code=WORKER + HANDLERS)
    assert rt.run() == 0
    fake = FakeEngine()
    g = rt.lua.globals()
    g.ENGINE = fake
    g.SET_CACHE(500)
    return rt, fake


def task(wf_id: str, wf_type: str, engine: MiniEngine, input=None, after: int | None = None, **extra) -> dict:
    """A workflow task as a sticky worker gets it: history after `after` (None: full), history_last_seq."""
    evs = engine.events
    t = {
        "workflow_id": wf_id,
        "workflow_type": wf_type,
        "namespace": "sticky",
        "task_queue": "q",
        "run_id": "r1",
        "input": input,
        "history_last_seq": len(evs),
    }
    if after is None:
        t["history"] = evs
    else:
        t["history"] = [e for e in evs if e["seq"] > after]
        t["history_after"] = after
    t.update(extra)
    return t


def run(rt: Runtime, t: dict) -> None:
    rt.lua.globals().RUN(json.dumps(t).encode())


def reference(wf_type: str, input, engine: MiniEngine) -> list:
    """The batch a replay from the start produces for engine's whole history."""
    rt = replay_rt()
    cmds = rt.lua.globals().FRESH(
        wf_type.encode(), json.dumps(engine.events).encode(), json.dumps(input).encode()
    )
    return json.loads(cmds[0])


def test_partial_histories_resume_the_kept_state(worker):
    rt, fake = worker
    eng = MiniEngine()
    fake.wfs["wf-a"] = eng
    g = rt.lua.globals()
    run(rt, task("wf-a", "Long", eng, {"n": 6}))
    assert g.CACHED(b"wf-a") == 1
    eng.apply(fake.posts[-1][1])
    for _ in range(6):
        last = g.CACHED(b"wf-a")
        assert last is not None
        eng.progress(1)
        run(rt, task("wf-a", "Long", eng, {"n": 6}, after=last))
        assert fake.posts[-1][1] == reference("Long", {"n": 6}, eng)
        eng.apply(fake.posts[-1][1])
    assert fake.posts[-1][1][-1] == {"type": C.CompleteWorkflow, "result": sum(i * 10 for i in range(1, 7))}
    assert fake.gets == []  # nothing fetched: every task carried what was new
    assert g.CACHED(b"wf-a") is None  # the workflow ended: its state is gone
    assert starts(rt) == {"sticky": 1}


def test_mismatch_or_no_state_fetches_the_full_history_in_pages(worker):
    rt, fake = worker
    eng = MiniEngine()
    fake.wfs["wf-b"] = eng
    g = rt.lua.globals()
    inp = {"n": 5}
    run(rt, task("wf-b", "Long", eng, inp))
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    run(rt, task("wf-b", "Long", eng, inp, after=g.CACHED(b"wf-b")))
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    cached = g.CACHED(b"wf-b")
    # the engine believes the worker saw one event less than it did: mismatch -> fetch and replay
    run(rt, task("wf-b", "Long", eng, inp, after=cached - 1))
    assert fake.posts[-1][1] == reference("Long", inp, eng)
    pages = [p for p in fake.gets]
    assert pages[0].endswith("after=0&after_seq=0&limit=1000")
    assert len(pages) == -(-len(eng.events) // fake.page)  # 3 events per page, up to history_last_seq
    assert starts(rt) == {"sticky": 2}
    assert g.CACHED(b"wf-b") == len(eng.events)  # kept again after the replay
    # a new worker (no state at all) gets a partial task: fetch as well
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    g.SET_CACHE(500)
    fake.gets.clear()
    run(rt, task("wf-b", "Long", eng, inp, after=len(eng.events) - 1))
    assert fake.posts[-1][1] == reference("Long", inp, eng)
    assert fake.gets and starts(rt) == {"sticky": 3}


def test_paged_first_page_is_completed_from_the_events_endpoint(worker):
    rt, fake = worker
    eng = MiniEngine()
    fake.wfs["wf-c"] = eng
    inp = {"n": 8}
    # build a history of some length through a replaying worker
    for _ in range(4):
        cmds = reference("Long", inp, eng)
        eng.apply(cmds)
        eng.progress(0)
    t = task("wf-c", "Long", eng, inp)
    t["history"] = eng.events[:4]
    t["history_next_after"] = 4
    run(rt, t)
    assert fake.posts[-1][1] == reference("Long", inp, eng)
    assert "after=4&" in fake.gets[0] and len(fake.gets) == -(-(len(eng.events) - 4) // fake.page)
    assert rt.lua.globals().CACHED(b"wf-c") == len(eng.events)


def test_failed_post_drops_the_state(worker):
    rt, fake = worker
    eng = MiniEngine()
    fake.wfs["wf-d"] = eng
    g = rt.lua.globals()
    inp = {"n": 4}
    run(rt, task("wf-d", "Long", eng, inp))
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    fake.post_status = 409  # lease lost: another worker took the task over
    run(rt, task("wf-d", "Long", eng, inp, after=1))
    assert g.CACHED(b"wf-d") is None
    fake.post_status = 200
    run(rt, task("wf-d", "Long", eng, inp, after=1))  # same history_after: no state to apply it to
    assert fake.gets and fake.posts[-1][1] == reference("Long", inp, eng)
    assert starts(rt) == {"sticky": 2}
    fake.post_status = 400  # rejected commands: dropped too
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    run(rt, task("wf-d", "Long", eng, inp, after=g.CACHED(b"wf-d")))
    assert g.CACHED(b"wf-d") is None


def test_least_recently_used_state_is_evicted(worker):
    rt, fake = worker
    g = rt.lua.globals()
    g.SET_CACHE(2)
    engs = {}
    for wid in ("w1", "w2", "w3"):
        engs[wid] = fake.wfs[wid] = MiniEngine()
        run(rt, task(wid, "Long", engs[wid], {"n": 3}))
        engs[wid].apply(fake.posts[-1][1])
        engs[wid].progress(1)
    assert g.CACHE_SIZE() == 2 and g.CACHED(b"w1") is None and g.CACHED(b"w2") == 1 and g.CACHED(b"w3") == 1
    run(rt, task("w1", "Long", engs["w1"], {"n": 3}, after=1))  # evicted: fetched, replayed, kept (evicts w2)
    assert fake.gets and fake.posts[-1][1] == reference("Long", {"n": 3}, engs["w1"])
    assert g.CACHED(b"w2") is None and g.CACHED(b"w3") == 1 and g.CACHED(b"w1") == len(engs["w1"].events)
    fake.gets.clear()
    run(rt, task("w3", "Long", engs["w3"], {"n": 3}, after=1))
    assert fake.gets == [] and fake.posts[-1][1] == reference("Long", {"n": 3}, engs["w3"])


def test_no_state_kept_without_partial_histories_or_when_off(worker):
    rt, fake = worker
    g = rt.lua.globals()
    eng = fake.wfs["wf-e"] = MiniEngine()
    t = task("wf-e", "Long", eng, {"n": 2})
    del t["history_last_seq"]  # an engine that does not know sticky workers
    run(rt, t)
    assert g.CACHED(b"wf-e") is None and g.CACHE_SIZE() == 0
    g.SET_CACHE(None)  # a worker that is not sticky still copes with a partial task
    eng.apply(fake.posts[-1][1])
    eng.progress(1)
    run(rt, task("wf-e", "Long", eng, {"n": 2}, after=2))
    assert fake.gets and fake.posts[-1][1] == reference("Long", {"n": 2}, eng)


def test_history_fetch_failure_sends_nothing(worker):
    rt, fake = worker
    eng = fake.wfs["wf-f"] = MiniEngine()
    fake.get_status = 404
    run(rt, task("wf-f", "Long", eng, {"n": 2}, after=0))
    assert fake.posts == [] and len(fake.gets) == 1
