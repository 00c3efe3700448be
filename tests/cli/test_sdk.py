"""assay.sdk: transport, error mapping, SSE parsing, waiting and following (against the real engine app)."""

from __future__ import annotations

import socket
import threading

import pytest

from assay import errors
from assay.sdk import Client, EngineUnreachable, parse_sse
from assay.sdk.errors import error_from_response
from assay.sdk.transport import api_base, encode_query
from assay.sdk.watch import ChangeFeed, wait_for
from tests.helpers import wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_base_variants():
    assert api_base("http://127.0.0.1:8080") == ("http", "127.0.0.1", 8080, "/api/v1")
    assert api_base("https://example.com/") == ("https", "example.com", 443, "/api/v1")
    assert api_base("example.com:9000/assay") == ("http", "example.com", 9000, "/assay/api/v1")
    assert api_base("http://h/api/v1/") == ("http", "h", 80, "/api/v1")
    assert api_base("http://h/api/v1/engine/workflow")[3] == "/api/v1/engine/workflow"
    with pytest.raises(ValueError, match="scheme"):
        api_base("ftp://h")


def test_encode_query_drops_none_and_encodes_json():
    assert encode_query({"a": None}) == ""
    q = encode_query({"namespace": "a b", "search_attrs": {"env": "prod"}, "flag": True, "limit": 5})
    assert q == "?namespace=a%20b&search_attrs=%7B%22env%22%3A%22prod%22%7D&flag=true&limit=5"


def test_error_mapping():
    e = error_from_response(404, "Not Found", b'{"error": "not found: workflow x"}', "application/json")
    assert isinstance(e, errors.NotFound) and e.message == "not found: workflow x" and e.http_status == 404
    e = error_from_response(409, "Conflict", b'{"error": "dup", "id": "x"}')
    assert isinstance(e, errors.Conflict) and e.body == {"error": "dup", "id": "x"}
    e = error_from_response(400, "Bad Request", b"Failed to parse the request body as JSON")
    assert isinstance(e, errors.BadRequest) and "Failed to parse" in e.message
    e = error_from_response(502, "Bad Gateway", b"<html>oops</html>", "text/html")
    assert type(e) is errors.AssayError and e.message == "Bad Gateway"
    assert isinstance(error_from_response(503, "x", b""), errors.ServiceUnavailable)


def test_parse_sse_frames():
    raw = [
        b": connected\n",
        b"retry: 2000\n",
        b"\n",
        b"event: workflow_completed\n",
        b'data: {"workflow_id": "w1", "namespace": "ns"}\n',
        b"\n",
        b"data: a\r\n",
        b"data: b\r\n",
        b"\r\n",
        b"event: x\n",
        b'data: {"workflow_id":"w2","payload":"{\\"namespace\\":\\"up\\"}"}\n',
        b"id: 7\n",
    ]
    evs = list(parse_sse(raw))
    assert [e.event for e in evs] == ["workflow_completed", "message", "x"]
    assert evs[0].workflow_id == "w1" and evs[0].namespace == "ns"
    assert evs[1].data == "a\nb" and evs[1].json() is None and evs[1].workflow_id is None
    assert evs[2].namespace == "up" and evs[2].id == "7"


def test_client_calls_send_bearer_and_return_objects(real):
    c = Client(real.url, api_key="sekrit", namespace="ns1")
    run = c.start_workflow("Hello", "w1", input={"n": 1}, search_attributes={"env": "x"})
    assert run["workflow_id"] == "w1" and run["status"] == "PENDING"
    req = real.last("POST", "/api/v1/workflows")
    assert req["headers"]["Authorization"] == "Bearer sekrit"
    assert req["body"] == {
        "workflow_type": "Hello",
        "workflow_id": "w1",
        "namespace": "ns1",
        "task_queue": "default",
        "input": {"n": 1},
        "search_attributes": {"env": "x"},
    }
    assert real.engine.get_workflow("w1")["namespace"] == "ns1"
    assert c.describe_workflow("w1")["input"] == {"n": 1}
    assert [w["id"] for w in c.list_workflows(search_attrs={"env": "x"})] == ["w1"]
    assert real.last("GET", "/api/v1/workflows")["query"]["namespace"] == "ns1"
    with pytest.raises(errors.Conflict):
        c.start_workflow("Hello", "w1")
    with pytest.raises(errors.NotFound) as info:
        c.describe_workflow("a/b?c")
    assert "a/b?c" in info.value.message  # path segments are quoted, not split


def test_generated_ids_and_no_auth_header(real):
    c = Client(real.url)
    run = c.start_workflow("MyType")
    assert run["workflow_id"].startswith("wf-mytype-")
    assert real.engine.get_workflow(run["workflow_id"])["workflow_type"] == "MyType"
    assert "Authorization" not in real.last("POST", "/api/v1/workflows")["headers"]


def test_unreachable_engine():
    c = Client(f"http://127.0.0.1:{closed_port()}", timeout=2)
    with pytest.raises(
        EngineUnreachable, match="engine unreachable at http://127.0.0.1:.*connection refused"
    ):
        c.health()


def test_timeout_is_unreachable():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts the connection but never answers
    try:
        c = Client(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.2)
        with pytest.raises(EngineUnreachable, match="timed out after 0.2s"):
            c.health()
    finally:
        srv.close()


def test_event_stream_yields_frames_and_closes_from_another_thread(real):
    c = Client(real.url)
    stream = c.event_stream()
    got = []
    t = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    t.start()
    wait_until(lambda: real.subscribers, what="subscriber")
    real.start("w1")
    wait_until(lambda: got, what="frame")
    stream.close()
    t.join(5)
    assert not t.is_alive()
    assert got[0].event == "workflow_started" and got[0].workflow_id == "w1" and got[0].namespace == "main"


def test_change_feed_filters_by_workflow(real):
    real.start("mine")
    real.start("other")
    with ChangeFeed(Client(real.url), "mine") as feed:
        assert feed.wait_ready(5) and feed.live
        real.hold("other")  # -> RUNNING: a frame for another workflow
        assert feed.wait(0.2) is False
        real.hold("mine")
        assert feed.wait(5) is True
        assert feed.take_kinds() == ["workflow_running"]


def test_change_feed_without_stream_falls_back():
    feed = ChangeFeed(Client(f"http://127.0.0.1:{closed_port()}"), "w")
    assert feed.wait_ready(5) is False and feed.state == "failed"
    feed.close()


@pytest.mark.parametrize("stream", ["filtered", "unfiltered", "none"])
def test_wait_is_woken_by_the_change(tmp_path, monkeypatch, stream):
    # With a stream, only the event can wake the waiter: its safety re-check is pushed past the test.
    # "filtered": the engine's stream of this workflow only, whose terminal frame carries the record;
    # "unfiltered": an engine that ignores the filter (every frame, no record): the waiter describes;
    # "none": an engine with no /events/stream: the waiter polls.
    from assay.sdk import watch
    from tests.cli.real_app import RealApp

    monkeypatch.setattr(watch, "SAFETY_RECHECK_SECS", 3600.0)
    monkeypatch.setattr(watch, "POLL_SECS", 0.05)
    real = RealApp(
        str(tmp_path / "w.db"), without_sse=stream == "none", unfiltered_sse=stream == "unfiltered"
    )
    try:
        real.start("w1", status="RUNNING")
        real.start("other", status="RUNNING")
        c = Client(real.url)
        done: dict = {}
        t = threading.Thread(target=lambda: done.update(record=c.wait("w1", timeout=60)), daemon=True)
        t.start()
        # the waiter has described the workflow once (after connecting the stream)
        wait_until(lambda: any(r["path"] == "/api/v1/workflows/w1" for r in real.requests), what="describe")
        real.finish("other", "COMPLETED", result={"other": True})  # another workflow's end: not ours
        real.finish("w1", "COMPLETED", result={"ok": True})
        t.join(30)
        assert not t.is_alive()
        assert done["record"]["status"] == "COMPLETED" and done["record"]["result"] == {"ok": True}
        assert done["record"] == c.describe_workflow("w1")  # the carried record is what describe says
        describes = sum(1 for r in real.requests if r["path"] == "/api/v1/workflows/w1") - 1
        if stream == "filtered":
            assert describes == 1  # once after connecting; the terminal frame carried the rest
        elif stream == "unfiltered":
            assert describes == 2  # once, then once on the event
        else:
            assert describes >= 2
        streams = [r for r in real.requests if r["path"] == "/api/v1/events/stream"]
        assert len(streams) == 1 and streams[0]["query"] == {"workflow_id": "w1"}
    finally:
        real.stop()


def test_a_workflow_stream_carries_only_that_workflow_and_its_record(real):
    from assay.sdk.sse import EventStream

    c = Client(real.url)
    real.start("w1", status="RUNNING")
    real.start("w2", status="RUNNING")
    es = EventStream(*c.transport.open_stream("/events/stream", query={"workflow_id": "w1"}))
    try:
        wait_until(lambda: real.subscribers == 1, what="the subscription")
        real.finish("w2", "FAILED", error="not ours")
        real.finish("w1", "COMPLETED", result={"n": 1})
        frames = iter(es)
        ev = next(frames)
        data = ev.json()
        assert ev.event == "workflow_completed" and data["workflow_id"] == "w1"
        assert data["workflow"] == c.describe_workflow("w1") and data["workflow"]["result"] == {"n": 1}
    finally:
        es.close()
    # the unfiltered stream's frames never carry the record
    es = EventStream(*c.transport.open_stream("/events/stream"))
    try:
        wait_until(lambda: real.subscribers == 1, what="the subscription")
        real.start("w3", status="RUNNING")
        real.finish("w3", "COMPLETED", result={})
        kinds = []
        for ev in es:
            kinds.append(ev.event)
            assert "workflow" not in ev.json()
            if ev.event == "workflow_completed":
                break
        assert kinds[-1] == "workflow_completed"
    finally:
        es.close()


def test_wait_target_timeout_and_terminal_other_than_target(real):
    c = Client(real.url)
    real.start("w1")
    with pytest.raises(
        errors.WaitTimeout, match=r"timeout after 0.2s waiting for w1 \(last status: PENDING\)"
    ):
        c.wait("w1", timeout=0.2)
    real.hold("w1")
    assert c.wait("w1", timeout=5, target="running")["status"] == "RUNNING"
    real.finish("w1", "FAILED", error="bad")
    rec = c.wait("w1", timeout=5, target="RUNNING")  # can never be RUNNING again: returns the terminal record
    assert rec["status"] == "FAILED" and rec["error"] == "bad"
    with pytest.raises(errors.NotFound):
        c.wait("nope", timeout=1)


def test_wait_calls_on_tick(real):
    real.start("w1", status="RUNNING")
    ticks = []

    class Enough(Exception):
        pass

    def on_tick(status, elapsed):
        ticks.append((status, elapsed))
        if len(ticks) == 3:
            raise Enough  # three ticks while the workflow runs: no need to wait for a timeout

    with pytest.raises(Enough):
        wait_for(Client(real.url), "w1", timeout=60, on_tick=on_tick, tick_interval=0.05)
    assert len(ticks) == 3 and ticks[0][0] == "RUNNING"
    assert all(b[1] >= a[1] for a, b in zip(ticks, ticks[1:], strict=False))


def test_follow_events_until_terminal(real):
    real.start("w1")
    c = Client(real.url)
    seen = []

    def follower():
        for ev in c.follow_events("w1", refresh_secs=3600):  # only a stream frame can wake it
            seen.append(ev["event_type"])

    t = threading.Thread(target=follower, daemon=True)
    t.start()
    wait_until(lambda: seen == ["WorkflowStarted"], what="history")
    wait_until(lambda: real.subscribers, what="the follower's stream")
    real.engine.signal("w1", "go", {"n": 1})  # an event and its frame, in one transaction
    wait_until(lambda: "SignalReceived" in seen, timeout=10, what="new event")
    real.finish("w1", "COMPLETED")
    t.join(10)
    assert not t.is_alive()
    assert seen == [e["event_type"] for e in real.engine.list_events("w1")]
    assert seen[:2] == ["WorkflowStarted", "SignalReceived"] and seen[-1] == "WorkflowCompleted"


def test_follow_ends_on_terminal_status_without_terminal_event(real):
    # Upstream's terminate changes the status and logs nothing: the follower must still end. The real
    # engine always logs one, so this test makes that engine's answer: the status set in the store alone.
    real.start("w1", status="RUNNING")
    c = Client(real.url)
    gen = c.follow_events("w1", refresh_secs=0.05)
    assert next(gen)["event_type"] == "WorkflowStarted"
    with real.store.tx() as tx:
        tx.update_workflow("w1", status="FAILED", completed_at=real.clock.now())
    assert list(gen) == []
