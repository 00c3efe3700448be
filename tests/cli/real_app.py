"""The real engine for the CLI and SDK tests: the production WSGI app, served on a loopback port.

`RealApp` is the app `assay serve` runs (make_app over an Engine on a fresh SQLite file), on a FakeClock
so timestamps are fixed, served in a thread by a threading wsgiref server (SSE included; `assay serve`'s
waitress is exercised by the real-process tests in test_e2e.py). No background loops: a test
drives the engine itself, in-process, through the same verbs a worker or the API uses (`start`,
`finish`, `schedule_activity`, ...). A thin WSGI wrapper records what each request carried (method,
path, query, JSON body, headers), so a test can also check what the CLI sent; `without_sse=True`
answers the event stream 404, like an engine that has none; `unfiltered_sse=True` drops the stream's
`workflow_id` filter, like an engine that does not know it (every frame, no record in terminal frames).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from assay.api import make_app
from assay.clock import FakeClock
from assay.config import load_settings
from assay.engine import Engine
from assay.store import open_store
from tests.engine.support import Worker

START = 1_700_000_000.0
API_PREFIXES = ("/api/v1/engine/workflow", "/api/v1")


class RealApp:
    def __init__(self, db_path: str, *, without_sse: bool = False, unfiltered_sse: bool = False) -> None:
        self.clock = FakeClock(START)
        self.store = open_store(f"sqlite:///{db_path}")
        settings = load_settings({"backend": f"sqlite:///{db_path}", "sse_keepalive_secs": 0.5}, environ={})
        self.engine = Engine(self.store, clock=self.clock, settings=settings)
        self.app = make_app(self.engine, settings)
        self.without_sse = without_sse
        self.unfiltered_sse = unfiltered_sse
        self.requests: list[dict[str, Any]] = []
        self._workers: dict[tuple[str, str], Worker] = {}
        self._held: dict[str, Worker] = {}
        self.server = make_server("127.0.0.1", 0, self._record, server_class=_Server, handler_class=_Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="real-app", daemon=True
        )
        self._thread.start()

    # -- the recorder ----------------------------------------------------------------------------------
    def _record(self, environ: dict, start_response: Any) -> Any:
        import io

        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.requests.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ.get("PATH_INFO", ""),
                "query": dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""))),
                "body": body,
                "headers": headers,
            }
        )
        if self.without_sse and environ.get("PATH_INFO", "").endswith("/events/stream"):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not found"}']
        if self.unfiltered_sse and environ.get("PATH_INFO", "").endswith("/events/stream"):
            environ["QUERY_STRING"] = ""
        return self.app(environ, start_response)

    def last(self, method: str | None = None, path_prefix: str = "") -> dict[str, Any]:
        for r in reversed(self.requests):
            if (method is None or r["method"] == method) and r["path"].startswith(path_prefix):
                return r
        raise AssertionError(f"no {method} {path_prefix} request among {[r['path'] for r in self.requests]}")

    @property
    def subscribers(self) -> int:
        return self.engine.broadcaster.count

    # -- driving the engine (in-process, the verbs workers and the API use) -----------------------------
    def start(
        self,
        wid: str,
        wtype: str = "Demo",
        *,
        namespace: str = "main",
        queue: str | None = None,
        input: Any = None,
        search_attributes: Any = None,
        status: str = "PENDING",
    ) -> dict[str, Any]:
        """Start `wid` (on its own task queue unless told: claims then never pick another workflow)."""
        self.clock.advance(1)  # distinct, ordered creation times
        self.engine.start_workflow(
            workflow_type=wtype,
            workflow_id=wid,
            namespace=namespace,
            task_queue=queue or f"q-{wid}",
            input=input,
            search_attributes=search_attributes,
        )
        if status == "RUNNING":
            self.hold(wid)
        elif status != "PENDING":
            self.finish(wid, status)
        return self.engine.get_workflow(wid)

    def hold(self, wid: str) -> Worker:
        """Play the worker: hold `wid`'s workflow task (it is RUNNING), waking it first when it is idle."""
        if wid in self._held:
            return self._held[wid]
        wf = self.engine.get_workflow(wid)
        key = (wf["namespace"], wf["task_queue"])
        if key not in self._workers:
            self._workers[key] = Worker(self.engine, queue=key[1], namespace=key[0])
        w = self._workers[key]
        if not wf["needs_dispatch"]:  # waiting on its activities: the worker runs them
            while (a := w.claim_activity()) is not None:
                w.complete(a["id"], None)
        task = w.claim()
        assert task is not None and task["id"] == wid, task
        self._held[wid] = w
        return w

    def command(self, wid: str, *commands: dict) -> None:
        """Submit one batch of commands for `wid` as its worker (the task is then done)."""
        w = self.hold(wid)
        del self._held[wid]
        self.engine.submit_commands(wid, w.id, list(commands))

    def finish(
        self, wid: str, status: str = "COMPLETED", result: Any = None, error: str | None = None
    ) -> None:
        """End a workflow the way its worker (or, for CANCELLED, the operator) does."""
        if status == "CANCELLED":
            self.engine.cancel(wid)
            if self.engine.get_workflow(wid)["status"] != "CANCELLED":
                self.command(wid, {"type": "CancelWorkflow"})
            return
        if status == "COMPLETED":
            self.command(wid, {"type": "CompleteWorkflow", "result": result})
        else:
            self.command(wid, {"type": "FailWorkflow", "error": error or "boom"})

    def stop(self) -> None:
        self.engine.notifier.close()  # held streams end
        self.engine.broadcaster.close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.store.close()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a held event stream never blocks the test's end


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
