"""A small in-memory stand-in for the engine's REST + SSE API (127.0.0.1 only).

It answers the routes the CLI uses with the shapes of PROTOCOL.md/DECISIONS.md (real JSON values,
`{"error": ...}` bodies, 404/409/400), records every request, and can play a worker
(`finish()`), so CLI parsing/output tests run without the real engine.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


class FakeEngine:
    def __init__(self, sse: bool = True) -> None:
        self.sse = sse
        self.lock = threading.RLock()
        self.requests: list[dict] = []
        self.workflows: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.states: dict[str, dict] = {}
        self.schedules: dict[tuple[str, str], dict] = {}
        self.namespaces: dict[str, dict] = {"main": {"name": "main", "created_at": 1700000000.0}}
        self.workers: list[dict] = []
        self.queues: list[dict] = []
        self.subscribers: list[queue.Queue] = []
        self.stopping = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    # -- test controls ----------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping = True
        for q in list(self.subscribers):
            q.put(None)
        self.server.shutdown()
        self.server.server_close()

    def add_workflow(
        self,
        wid: str,
        wtype: str = "Demo",
        status: str = "PENDING",
        namespace: str = "main",
        parent_id: str | None = None,
        input=None,
        search_attributes=None,
        queue_name="default",
    ):
        now = time.time()
        with self.lock:
            rec = {
                "id": wid,
                "namespace": namespace,
                "run_id": f"run-{wid}-{int(now)}",
                "workflow_type": wtype,
                "task_queue": queue_name,
                "status": status,
                "input": input,
                "result": None,
                "error": None,
                "parent_id": parent_id,
                "claimed_by": None,
                "search_attributes": search_attributes,
                "archived_at": None,
                "archive_uri": None,
                "created_at": now + len(self.workflows) * 1e-3,
                "updated_at": now,
                "completed_at": None,
            }
            self.workflows[wid] = rec
            self.events[wid] = []
            self._event(wid, "WorkflowStarted", input)
        self.broadcast("workflow_started", wid)
        return rec

    def _event(self, wid: str, etype: str, payload) -> None:
        evs = self.events.setdefault(wid, [])
        evs.append(
            {
                "id": sum(len(v) for v in self.events.values()) + 1,
                "workflow_id": wid,
                "seq": len(evs) + 1,
                "event_type": etype,
                "payload": payload,
                "timestamp": time.time(),
            }
        )

    def append_event(self, wid: str, etype: str, payload=None) -> None:
        with self.lock:
            self._event(wid, etype, payload)

    def set_status(
        self,
        wid: str,
        status: str,
        *,
        result=None,
        error=None,
        event: str | None = None,
        payload=None,
        sse: str | None = None,
    ) -> None:
        with self.lock:
            rec = self.workflows[wid]
            rec["status"] = status
            rec["updated_at"] = time.time()
            if result is not None:
                rec["result"] = result
            if error is not None:
                rec["error"] = error
            if status in TERMINAL:
                rec["completed_at"] = time.time()
            if event:
                self._event(wid, event, payload)
        self.broadcast(sse or f"workflow_{status.lower()}", wid)

    def finish(self, wid: str, status: str = "COMPLETED", result=None, error: str | None = None) -> None:
        """Play the worker: end a workflow the way the engine records it."""
        if status == "COMPLETED":
            self.set_status(wid, status, result=result, event="WorkflowCompleted", payload=result)
        elif status == "FAILED":
            self.set_status(
                wid, status, error=error or "boom", event="WorkflowFailed", payload={"error": error or "boom"}
            )
        elif status == "CANCELLED":
            self.set_status(wid, status, event="WorkflowCancelled")
        else:
            self.set_status(wid, status)

    def broadcast(self, etype: str, wid: str) -> None:
        ns = self.workflows.get(wid, {}).get("namespace", "main")
        frame = f"event: {etype}\ndata: {json.dumps({'workflow_id': wid, 'namespace': ns, 'event_type': etype})}\n\n"
        for q in list(self.subscribers):
            q.put(frame)

    def last(self, method: str | None = None, path_prefix: str = "") -> dict:
        for r in reversed(self.requests):
            if (method is None or r["method"] == method) and r["path"].startswith(path_prefix):
                return r
        raise AssertionError(f"no {method} {path_prefix} request among {[r['path'] for r in self.requests]}")

    # -- routing ----------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if not raw:
                    return None
                return json.loads(raw)

            def _send(self, status, obj=None):
                data = b"" if obj is None else json.dumps(obj).encode()
                self.send_response(status)
                if obj is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dispatch(self, method):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                try:
                    body = self._body()
                except ValueError:
                    return self._send(400, {"error": "invalid JSON body"})
                fake.requests.append(
                    {
                        "method": method,
                        "path": parts.path,
                        "query": query,
                        "body": body,
                        "headers": dict(self.headers),
                    }
                )
                path = parts.path
                for prefix in ("/api/v1/engine/workflow", "/api/v1"):
                    if path.startswith(prefix + "/"):
                        path = path[len(prefix) :]
                        break
                else:
                    return self._send(404)
                if path == "/events/stream" and method == "GET":
                    return self._stream()
                with fake.lock:
                    status, obj = fake.route(method, path, query, body)
                self._send(status, obj)

            def _stream(self):
                if not fake.sse:
                    return self._send(404, {"error": "not found"})
                q: queue.Queue = queue.Queue()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b": connected\n\n")
                self.wfile.flush()
                fake.subscribers.append(q)
                try:
                    while not fake.stopping:
                        try:
                            frame = q.get(timeout=0.5)
                        except queue.Empty:
                            frame = ":\n\n"
                        if frame is None:
                            break
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    fake.subscribers.remove(q)
                    self.close_connection = True

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_PATCH(self):
                self._dispatch("PATCH")

            def do_DELETE(self):
                self._dispatch("DELETE")

        return Handler

    def route(self, method, path, query, body):  # noqa: C901 - a route table in one place
        ns = query.get("namespace", "main")
        seg = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        if path == "/health":
            return 200, {"service": "assay-workflow", "status": "ok"}
        if seg[0] == "workflows":
            if len(seg) == 1 and method == "POST":
                wid = body["workflow_id"]
                if wid in self.workflows:
                    return 409, {"error": f"workflow {wid} already exists"}
                rec = self.add_workflow(
                    wid,
                    body["workflow_type"],
                    namespace=body.get("namespace", "main"),
                    input=body.get("input"),
                    search_attributes=body.get("search_attributes"),
                    queue_name=body.get("task_queue", "default"),
                )
                return 201, {"workflow_id": wid, "run_id": rec["run_id"], "status": "PENDING"}
            if len(seg) == 1 and method == "GET":
                rows = [w for w in self.workflows.values() if w["namespace"] == ns]
                if "status" in query:
                    rows = [w for w in rows if w["status"] == query["status"]]
                if "type" in query:
                    rows = [w for w in rows if w["workflow_type"] == query["type"]]
                if "search_attrs" in query:
                    want = json.loads(query["search_attrs"])
                    rows = [
                        w
                        for w in rows
                        if all((w["search_attributes"] or {}).get(k) == v for k, v in want.items())
                    ]
                rows.sort(key=lambda w: w["created_at"], reverse=True)
                off, lim = int(query.get("offset", 0)), int(query.get("limit", 50))
                return 200, rows[off : off + lim]
            wid = seg[1]
            rec = self.workflows.get(wid)
            if len(seg) == 2:
                return (200, rec) if rec else (404, {"error": f"not found: workflow {wid}"})
            action = seg[2]
            if action == "events":
                return 200, self.events.get(wid, [])
            if action == "children":
                return 200, [w for w in self.workflows.values() if w["parent_id"] == wid]
            if rec is None:
                return 404, {"error": f"not found: workflow {wid}"}
            if action == "signal":
                self._event(wid, "SignalReceived", {"signal": seg[3], "payload": (body or {}).get("payload")})
                self.broadcast("signal_received", wid)
                return 200, None
            if action in ("cancel", "terminate"):
                if rec["status"] in TERMINAL:
                    return 404, {"error": f"not found: workflow {wid} not found or already terminal"}
                reason = (body or {}).get("reason")
                if action == "cancel":
                    self._event(wid, "WorkflowCancelRequested", {"reason": reason} if reason else None)
                    if rec["status"] == "PENDING":
                        self.set_status(wid, "CANCELLED", event="WorkflowCancelled")
                else:
                    self.set_status(
                        wid,
                        "FAILED",
                        error=reason or "terminated",
                        event="WorkflowFailed",
                        payload={"error": reason or "terminated", "terminated": True},
                        sse="workflow_terminated",
                    )
                return 200, None
            if action == "continue-as-new":
                new_id = (body or {}).get("workflow_id") or f"{wid}-continued-{int(time.time())}"
                self.set_status(
                    wid, "COMPLETED", event="WorkflowCompleted", payload={"continued_as_new": new_id}
                )
                new = self.add_workflow(
                    new_id, rec["workflow_type"], namespace=rec["namespace"], input=(body or {}).get("input")
                )
                return 201, {"workflow_id": new_id, "run_id": new["run_id"], "status": "PENDING"}
            if action == "state":
                st = self.states.get(wid)
                if st is None:
                    return 404, {"error": f"not found: state for workflow {wid}"}
                if len(seg) == 4:
                    if seg[3] not in st["state"]:
                        return 404, {"error": f"not found: query '{seg[3]}' for workflow {wid}"}
                    return 200, {
                        "value": st["state"][seg[3]],
                        "event_seq": st["event_seq"],
                        "created_at": st["created_at"],
                    }
                return 200, st
        if seg[0] == "schedules":
            if len(seg) == 1 and method == "POST":
                key = (body.get("namespace", "main"), body["name"])
                if key in self.schedules:
                    return 409, {"error": f"schedule {body['name']} already exists"}
                if body.get("timezone", "UTC") not in ("UTC", "Europe/Paris"):
                    return 400, {"error": f"invalid timezone: {body['timezone']}"}
                rec = {
                    "name": body["name"],
                    "namespace": key[0],
                    "workflow_type": body["workflow_type"],
                    "cron_expr": body["cron_expr"],
                    "timezone": body.get("timezone", "UTC"),
                    "input": body.get("input"),
                    "task_queue": body.get("task_queue", "default"),
                    "overlap_policy": body.get("overlap_policy", "skip"),
                    "paused": False,
                    "last_run_at": None,
                    "next_run_at": 1700003600.0,
                    "last_workflow_id": None,
                    "created_at": time.time(),
                    "next_runs": ["2023-11-14T23:13:20+00:00"],
                }
                self.schedules[key] = rec
                return 201, rec
            if len(seg) == 1:
                return 200, sorted(
                    (s for (n, _), s in self.schedules.items() if n == ns), key=lambda s: s["name"]
                )
            rec = self.schedules.get((ns, seg[1]))
            if rec is None:
                return 404, {"error": f"not found: schedule {seg[1]}"}
            if len(seg) == 2 and method == "GET":
                return 200, rec
            if len(seg) == 2 and method == "PATCH":
                rec.update({k: v for k, v in (body or {}).items() if v is not None})
                return 200, rec
            if len(seg) == 2 and method == "DELETE":
                del self.schedules[(ns, seg[1])]
                return 200, None
            if seg[2] in ("pause", "resume"):
                rec["paused"] = seg[2] == "pause"
                return 200, rec
            if seg[2] == "trigger":
                wid = f"{seg[1]}-{int(time.time() * 1000)}"
                w = self.add_workflow(wid, rec["workflow_type"], namespace=ns, input=rec["input"])
                return 201, {"workflow_id": wid, "run_id": w["run_id"], "status": "PENDING"}
        if seg[0] == "namespaces":
            if len(seg) == 1 and method == "POST":
                if body["name"] in self.namespaces:
                    return 409, {"error": f"namespace {body['name']} already exists"}
                self.namespaces[body["name"]] = {"name": body["name"], "created_at": time.time()}
                return 201, None
            if len(seg) == 1:
                return 200, sorted(self.namespaces.values(), key=lambda n: n["name"])
            name = seg[1]
            if method == "DELETE":
                if name == "main":
                    return 404, {"error": "not found: cannot delete the 'main' namespace"}
                if name not in self.namespaces:
                    return 404, {"error": f"not found: namespace {name}"}
                del self.namespaces[name]
                return 200, None
            wfs = [w for w in self.workflows.values() if w["namespace"] == name]
            count = {
                s: sum(1 for w in wfs if w["status"] == s)
                for s in ("RUNNING", "PENDING", "COMPLETED", "FAILED")
            }
            return 200, {
                "namespace": name,
                "total_workflows": len(wfs),
                "running": count["RUNNING"],
                "pending": count["PENDING"],
                "completed": count["COMPLETED"],
                "failed": count["FAILED"],
                "schedules": sum(1 for (n, _) in self.schedules if n == name),
                "workers": 0,
            }
        if seg[0] == "workers" and method == "GET":
            return 200, [w for w in self.workers if w["namespace"] == ns]
        if seg[0] == "queues":
            return 200, self.queues
        return 404, None
