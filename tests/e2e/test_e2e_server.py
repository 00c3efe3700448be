"""Server behaviour over real sockets: held requests never starve the pool, graceful shutdown, the
single-engine lock."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

from tests.e2e.rawworker import RawWorker, start
from tests.e2e.test_e2e_protocol import SseConn
from tests.helpers import assay_cmd, free_port, http, start_engine, wait_until

pytestmark = pytest.mark.e2e


def health(api: str) -> dict:
    status, body, _ = http("GET", api + "/health", timeout=5)
    assert status == 200
    return body


def test_held_requests_never_starve_the_server(tmp_path):
    # a pool that cannot grow (ASSAY_MAX_THREADS = ASSAY_THREADS): the ceiling is reached
    e = start_engine(
        tmp_path, env={"ASSAY_THREADS": "8", "ASSAY_RESERVE_THREADS": "2", "ASSAY_MAX_THREADS": "8"}
    )
    streams: list[SseConn] = []
    polls: list[threading.Thread] = []
    results: list[object] = []
    lock = threading.Lock()
    try:
        api = e.api
        w = RawWorker(api, queue="idle")
        for _ in range(4):  # 4 SSE streams held
            s = SseConn(e.port)
            streams.append(s)
            assert s.status == 200
        wait_until(lambda: health(api)["held_requests"] == 4, what="4 streams held")

        def long_poll():
            status, body, _ = http("POST", api + "/workflow-tasks/poll",
                                   {"queue": "idle", "worker_id": w.id, "wait_secs": 30, "retry_after": True},
                                   timeout=40)  # fmt: skip
            with lock:
                results.append((status, body))

        for _ in range(10):  # 4 streams + 10 long-polls: more than the 8 threads
            t = threading.Thread(target=long_poll, daemon=True)
            t.start()
            polls.append(t)
        # the polls past the limit answer empty at once (with when to come back): long before their 30 s
        # wait could end
        wait_until(lambda: len(results) >= 8, timeout=15, what="the polls past the limit to answer")
        assert health(api)["held_requests"] == 6  # threads - reserve
        assert [(st, sorted(b)) for st, b in results] == [(200, ["retry_after"])] * 8
        assert all(15.0 <= b["retry_after"] <= 30.0 for _, b in results)  # about their own wait

        extra = SseConn(e.port)  # past the cap: refused, not queued
        try:
            assert extra.status == 503 and "retry-after:" in extra.head.lower()
        finally:
            extra.close()

        for i in range(3):  # ordinary calls are served by the reserve while every other thread is held
            assert health(api)["status"] == "ok"
            status, body, _ = http("POST", api + "/workflows",
                                   {"workflow_type": "T", "workflow_id": f"prompt-{i}", "task_queue": "busy"})  # fmt: skip
            assert status == 201
        assert len(results) == 8 and health(api)["held_requests"] == 6  # the 6 polls were held all along
    finally:
        for s in streams:
            s.close()
        assert e.stop() == 0, e.log()
    for t in polls:
        t.join(10)
    assert len(results) == 10  # the held polls were answered at shutdown


def test_sigterm_amid_quick_requests_loses_no_acknowledged_start(tmp_path):
    """Quick requests run on the main thread (the connection loop), where signals land: a SIGTERM in the
    middle of one must not abort it. The engine exits 0 without a traceback, and every start it answered
    201 is in the database afterwards."""
    import http.client as hc
    import json

    e = start_engine(tmp_path)
    port = e.port
    acked: list[str] = []
    started = threading.Event()

    def starter() -> None:
        c = hc.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for i in range(100000):
                body = json.dumps({"workflow_type": "T", "workflow_id": f"s-{i}", "task_queue": "q"})
                c.request(
                    "POST", "/api/v1/workflows", body=body, headers={"Content-Type": "application/json"}
                )
                r = c.getresponse()
                r.read()
                if r.status == 201:
                    acked.append(f"s-{i}")
                    if len(acked) == 50:
                        started.set()
        except (OSError, hc.HTTPException):
            return  # the engine went away under us: expected
        finally:
            c.close()

    t = threading.Thread(target=starter, daemon=True)
    t.start()
    assert started.wait(30)
    e.stopping = True
    e.proc.send_signal(signal.SIGTERM)
    assert e.proc.wait(15) == 0, e.log()
    t.join(10)
    assert not t.is_alive()
    assert "Traceback" not in e.log() and "engine stopped" in e.log()
    again = start_engine(tmp_path, db=e.db)
    try:
        for wf_id in acked[-20:] + acked[:5]:
            status, rec, _ = http("GET", again.api + "/workflows/" + wf_id)
            assert status == 200, (wf_id, rec)
    finally:
        assert again.stop() == 0


def test_sigterm_with_a_held_long_poll_exits_cleanly_and_releases_the_lock(tmp_path):
    e = start_engine(tmp_path)
    w = RawWorker(e.api, queue="q")
    out: dict = {}

    def long_poll():
        try:
            out["resp"] = http(
                "POST", e.api + "/workflow-tasks/poll", {"queue": "q", "worker_id": w.id, "wait_secs": 30}
            )
        except OSError as err:  # the connection may be closed under it: it must not hang
            out["resp"] = err

    t = threading.Thread(target=long_poll, daemon=True)
    t.start()
    wait_until(lambda: health(e.api)["held_requests"] == 1, what="long-poll held")
    e.proc.send_signal(signal.SIGTERM)
    rc = e.proc.wait(15)  # well before the poll's 30 s wait: shutdown answers held requests
    assert rc == 0, e.log()
    t.join(5)
    assert not t.is_alive() and "resp" in out
    assert "engine stopped" in e.log()

    again = start_engine(tmp_path, db=e.db)  # the lock was released: no stale-lock takeover needed
    try:
        assert "stale" not in again.log()
        assert health(again.api)["status"] == "ok"
    finally:
        assert again.stop() == 0


def test_a_second_engine_on_the_same_file_is_refused(tmp_path):
    e = start_engine(tmp_path)
    try:
        start(e.api, "before")
        proc = subprocess.run(
            [*assay_cmd(), "serve", "--port", str(free_port()), "--backend", "sqlite:///" + e.db],
            capture_output=True, text=True, timeout=30, env=e.env, cwd=str(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "another assay engine" in proc.stderr and "SQLite supports one engine instance" in proc.stderr
        assert "--backend sqlite:///other.db" in proc.stderr  # the way out for a second local engine
        assert "Traceback" not in proc.stderr
        assert health(e.api)["status"] == "ok"  # the first one is unharmed
        assert http("GET", e.api + "/workflows/before")[0] == 200
    finally:
        assert e.stop() == 0


def test_a_port_in_use_fails_before_the_database_is_touched(tmp_path):
    e = start_engine(tmp_path)
    try:
        fresh = tmp_path / "fresh" / "new.db"
        proc = subprocess.run(
            [*assay_cmd(), "serve", "--port", str(e.port), "--backend", "sqlite:///" + str(fresh)],
            capture_output=True, text=True, timeout=30, env=e.env, cwd=str(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"Error: cannot listen on 127.0.0.1:{e.port}: ") and "--port" in line, line
        assert not (tmp_path / "fresh").exists()  # no database (nor its directory) was created
        assert health(e.api)["status"] == "ok"
    finally:
        assert e.stop() == 0


def test_sqlite_url_creates_its_file_and_parent_directories(tmp_path):
    db = tmp_path / "not" / "yet" / "there.db"
    e = start_engine(tmp_path, db=str(db))
    try:
        start(e.api, "persisted")
    finally:
        assert e.stop() == 0
    assert db.exists()
    again = start_engine(tmp_path, db=str(db))
    try:
        assert http("GET", again.api + "/workflows/persisted")[0] == 200
    finally:
        assert again.stop() == 0


def test_a_client_hanging_up_a_stream_is_logged_at_debug_with_the_route(tmp_path):
    """waitress would log an INFO line per disconnect; a client leaving an SSE stream is routine."""
    e = start_engine(tmp_path, extra_args=["-v"], env={"ASSAY_SSE_KEEPALIVE_SECS": "0.1"})
    try:
        for _ in range(2):
            s = SseConn(e.port)
            assert s.status == 200
            wait_until(lambda: health(e.api)["held_requests"] == 1, what="stream held")
            s.close()
            wait_until(lambda: health(e.api)["held_requests"] == 0, what="hang-up noticed")
        lines = wait_until(
            lambda: (
                [ln for ln in e.log().splitlines() if "client hung up on" in ln][1:] and e.log().splitlines()
            ),
            what="the debug lines",
        )
        hung = [ln for ln in lines if "client hung up on" in ln]
        assert len(hung) == 2 and all(
            " DEBUG " in ln and "assay.server: client hung up on /api/v1/events/stream" in ln for ln in hung
        ), hung
        assert not [ln for ln in lines if "Client disconnected" in ln or " INFO    waitress" in ln]
    finally:
        assert e.stop() == 0


def test_quiet_streams_whose_clients_left_free_their_place(tmp_path):
    # Streams filtered to one workflow get no frame until it ends: without the reaper, a hung-up one kept
    # its thread and its place under ASSAY_SSE_MAX_STREAMS until a keep-alive (an hour here), and the
    # third `assay workflow wait` would get a 503.
    e = start_engine(tmp_path, env={"ASSAY_SSE_MAX_STREAMS": "2", "ASSAY_SSE_KEEPALIVE_SECS": "3600"})
    try:
        api = e.api
        for i in range(6):
            s = SseConn(e.port, f"/api/v1/events/stream?workflow_id=quiet-{i}")
            assert s.status == 200, s.head
            wait_until(lambda: health(api)["held_requests"] >= 1, what="the stream held")
            s.close()
            wait_until(lambda: health(api)["held_requests"] == 0, what="the hung-up stream to end")
        # a live one still gets its workflow's frames, and the record in the terminal one
        s = SseConn(e.port, "/api/v1/events/stream?workflow_id=w-live")
        assert s.status == 200
        status, _, _ = http("POST", api + "/workflows",
                            {"workflow_type": "T", "workflow_id": "w-live", "task_queue": "q"})  # fmt: skip
        assert status in (200, 201)
        status, _, _ = http("POST", api + "/workflows/w-other/terminate", {"reason": "x"})
        assert status == 404
        status, _, _ = http("POST", api + "/workflows/w-live/terminate", {"reason": "done"})
        assert status == 200
        frames = s.events(2)
        assert [f[0] for f in frames] == ["workflow_started", "workflow_terminated"]
        _, described, _ = http("GET", api + "/workflows/w-live")
        assert frames[1][1]["workflow"] == described and described["status"] == "FAILED"
        assert "workflow" not in frames[0][1]
        s.close()
    finally:
        assert e.stop() == 0


def test_a_burst_of_events_arrives_whole_and_in_order(tmp_path):
    # events queued while the stream's thread was busy go out joined in one write: each still a frame
    e = start_engine(tmp_path)
    try:
        s = SseConn(e.port)
        assert s.status == 200
        ids = [f"burst-{i:03d}" for i in range(150)]
        for wid in ids:
            status, _, _ = http("POST", e.api + "/workflows",
                                {"workflow_type": "T", "workflow_id": wid, "task_queue": "q"})  # fmt: skip
            assert status in (200, 201)
        frames = s.events(len(ids))
        assert [(k, d["workflow_id"]) for k, d in frames] == [("workflow_started", wid) for wid in ids]
        s.close()
    finally:
        assert e.stop() == 0
