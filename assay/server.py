"""`assay serve`: store + engine + background loops + WSGI app on waitress, with graceful shutdown."""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from typing import Any

from assay import __version__
from assay.api.http import DELAY_ANSWER
from assay.config import Settings
from assay.errors import AssayError

log = logging.getLogger("assay.server")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _HangUpsAreRoutine(logging.Filter):
    """waitress logs every client that hangs up mid-response at INFO; for an SSE stream or a held
    long-poll that is how a client normally leaves. Say it at debug, on our logger, with the route."""

    PREFIX = "Client disconnected while serving "

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not msg.startswith(self.PREFIX):
            return True
        log.debug("client hung up on %s", msg[len(self.PREFIX) :])
        return False


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Formatter())
    root.addHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress_log = logging.getLogger("waitress")
    if not any(isinstance(f, _HangUpsAreRoutine) for f in waitress_log.filters):
        waitress_log.addFilter(_HangUpsAreRoutine())


def mask_url(url: str) -> str:
    """Hide the password of a database URL for printing."""
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.split("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer of a non-blocking socket hung up (EOF or reset); never consumes data."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


#: a body part up to this size leaves in one send with the answer's head (larger: sent apart, no copy)
GATHER_MAX = 256 * 1024


def _use_channel_class(wsgi: Any, inline: Any = None) -> None:
    """waitress's HTTP channel with these changes:

    - `waitress.client_disconnected` works without channel_request_lookahead (it peeks at the socket);
    - the main loop does not spin on a channel whose task thread is writing. waitress lists a channel as
      writable while its out-buffer holds bytes, even when the task thread holds the buffer's lock and
      is sending them itself; the loop then turns (select, try-lock, fail) until the task is done: ~7
      turns per request with one SSE stream open (measured), a third of the engine's CPU. Here that
      channel is not writable until the lock is free, and a task that leaves bytes behind wakes the
      loop after releasing the lock;
    - an answer's head and its first body part leave in one send (waitress sends them apart: two
      syscalls and two TCP segments for every small JSON answer);
    - with `inline` (see create_http_server), a quick request is served on the loop thread itself.
    """
    from waitress.channel import ClientDisconnected
    from waitress.task import WSGITask

    from assay.httploop import ChannelMap, TrackedChannel

    class Task(WSGITask):  # type: ignore[misc]
        def write(self, data: Any) -> None:
            if self.wrote_header or not isinstance(data, bytes) or len(data) > GATHER_MAX:
                return super().write(data)  # type: ignore[no-any-return]
            channel = self.channel
            channel.gather = []
            try:
                super().write(data)  # the head, then the body: both gathered
            finally:
                parts, channel.gather = channel.gather, None
            if parts:
                channel.write_soon(b"".join(parts))

    class Channel(TrackedChannel):
        task_class = Task
        answer_at = 0.0  # monotonic time before which the queued answer is not sent (delay_answer)
        gather: list[bytes] | None = None  # the writes of Task.write that leave together
        inline_due = False  # a quick request is ready: serve it on the loop thread once received() is done

        def handle_read(self) -> None:
            super().handle_read()
            # received() (inside handle_read) holds the requests lock while it queues a request, so a quick
            # request is served here, after it. A pipelined next request may be quick too (service()
            # queues it through add_task, which sets inline_due again).
            while self.inline_due and self.connected:
                self.inline_due = False
                self.service()
                if self.total_outbufs_len or self.will_close or self.close_when_flushed:
                    self.handle_write()  # the answer leaves now, not on the next turn

        def _flush_outbufs_below_high_watermark(self) -> None:
            # A task thread waits there for the loop to drain a huge answer; the loop cannot wait for
            # itself: served inline, the answer stays buffered and the loop sends it.
            if isinstance(self._map, ChannelMap) and self._map.on_loop_thread():
                return
            super()._flush_outbufs_below_high_watermark()

        def delay_answer(self, secs: float) -> None:
            """Send the answer being written `secs` from now, without keeping the task thread: the bytes
            wait in the out-buffer and the main loop sends them when the time comes (its poll wakes at
            least every second; assay.httploop's loop at the time itself). Used for empty long-poll
            answers to clients that may not honour retry_after, so they cannot come straight back."""
            self.answer_at = time.monotonic() + max(0.0, secs)

        def check_client_disconnected(self) -> bool:
            if not self.connected:
                return True
            sock = self.socket
            return sock is None or _peer_closed(sock)

        def writable(self) -> bool:
            if self.answer_at:
                if time.monotonic() < self.answer_at and self.total_outbufs_len and not self.will_close:
                    return False  # a delayed answer: not yet
                self.answer_at = 0.0
            if self.requests and self.total_outbufs_len and not (self.will_close or self.close_when_flushed):
                lock = self.outbuf_lock
                if not lock.acquire(False):
                    return False  # the task thread is flushing; it wakes the loop if bytes remain
                lock.release()
            return bool(super().writable())

        def write_soon(self, data: Any) -> int:
            if self.gather is not None and isinstance(data, bytes):
                self.gather.append(data)
                return len(data)
            if data and self.answer_at:  # a delayed answer: queue it, the main loop sends it later
                if not self.connected:
                    raise ClientDisconnected
                with self.outbuf_lock:
                    self.outbufs[-1].append(data)
                    self.current_outbuf_count += len(data)
                    self.total_outbufs_len += len(data)
                return len(data)
            n = super().write_soon(data)
            if self.total_outbufs_len:  # a partial send: let the loop flush the rest
                self.server.pull_trigger()
            return int(n)

    servers = [wsgi] if hasattr(wsgi, "channel_class") else list(getattr(wsgi, "map", {}).values())
    for srv in servers:
        if hasattr(srv, "channel_class"):
            srv.channel_class = Channel
            if inline is not None and isinstance(getattr(srv, "_map", None), ChannelMap):
                srv.add_task = _inline_dispatch(srv, srv._map, inline)


def _inline_dispatch(srv: Any, channels: Any, inline: Any) -> Any:
    """The server's add_task: a quick request that arrives on the loop thread is served right there (the
    channel's handle_read runs it) instead of being handed to a task thread and its answer handed back;
    anything else goes to the task threads as before."""
    to_threads = srv.add_task

    def add_task(channel: Any) -> None:
        if channels.on_loop_thread() and channel.requests:
            request = channel.requests[0]
            if not request.error and inline(request.command, request.path, request.headers):
                channel.inline_due = True
                return
        to_threads(channel)

    return add_task


def create_http_server(application: Any, inline: Any = None, **adjustments: Any) -> Any:
    """waitress.create_server(application, **adjustments) with assay's channel (above) on the loop of
    assay/httploop.py (where epoll or poll exist; waitress's own loop elsewhere). The server's
    `.channels` is that loop's socket map (None on waitress's loop).

    `inline(method, path, headers) -> bool`: requests it accepts are served on the loop thread itself
    (assay/httploop.py loop only); None: every request goes to a task thread, as in plain waitress."""
    import waitress

    from assay import httploop

    channels = httploop.ChannelMap() if httploop.available() else None
    adjustments = {
        "asyncore_use_poll": True,  # select() fails past 1024 descriptors; a thousand workers need more
        # 0: while a request runs, waitress's loop does not watch its socket. (1 made the loop spin on the
        # busy channel: ~30 loop turns per request instead of 2.) Held long-polls still notice a hang-up:
        # Channel.check_client_disconnected peeks at the socket itself.
        "channel_request_lookahead": 0,
        **adjustments,
    }
    srv = waitress.create_server(application, map=channels, **adjustments)
    _use_channel_class(srv, inline if channels is not None else None)
    if channels is not None:  # an idle connection costs the loop nothing per turn
        httploop.install(srv, channels)
    srv.channels = channels
    return srv


def connection_limit(s: Settings) -> int:
    """Connections waitress keeps open: every held poll the pool may grow to, the workers past it (told to
    come back later, their connections kept alive) and ordinary callers; never more than the open-files
    limit allows (raised toward it first)."""
    want = max(4096, 4 * s.threads, 2 * s.thread_ceiling)
    return max(100, min(want, raise_fd_limit(want + 256) - 256))


def raise_fd_limit(want: int) -> int:
    """Raise the soft limit on open files toward `want` (never above the hard limit); returns the limit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return want
        if soft < want:
            top = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
            soft = top
        return int(soft)
    except (ImportError, ValueError, OSError):  # pragma: no cover - not Unix, or not allowed
        return want


class PortUnavailable(AssayError):
    """The listening socket could not be bound (port in use, no permission): nothing else was touched."""


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wsgi = None
        self._channels: Any = None
        self._stopping = threading.Event()
        self.app: Any = None
        self._auth: Any = None
        self._inline = False  # quick requests may run on the loop thread (decided once the store is open)
        # The port first: a port in use must fail before the database is created, migrated or locked.
        self.bind()
        try:
            self._open()
        except BaseException:
            self._close_listener()
            raise

    def _open(self) -> None:
        from assay.api import make_app
        from assay.archive import Archiver
        from assay.auth import AuthConfig, Authenticator
        from assay.background import ArchiveLoop, Supervisor, default_loops
        from assay.engine import Engine
        from assay.store import open_store

        settings = self.settings
        self.store = open_store(settings.backend, synchronous=settings.sqlite_synchronous)
        self.engine = Engine(self.store, settings=settings)
        # Inline serving blocks the connection loop while a request waits on its database: fine for a
        # local SQLite file, not for a Postgres server across a network (ASSAY_INLINE_REQUESTS=1 forces it).
        inline = settings.inline_requests
        self._inline = inline if inline is not None else self.store.dialect == "sqlite"
        if self._wsgi is not None:  # held polls grow the pool up to ASSAY_MAX_THREADS (engine/core.py)
            self.engine.core.grow_pool = self._wsgi.task_dispatcher.set_thread_count
        if self.store.multi_instance:
            from assay.engine.notify import bridge

            bridge(self.store, self.engine.notifier, self.engine.broadcaster)
        self.archiver = Archiver.from_settings(self.engine, settings)
        if self.archiver is not None and self.archiver.s3 is not None:
            self.engine.archive_reader = self.archiver.s3
        self.locked = False
        if not self.store.multi_instance:
            self.store.acquire_engine_lock(self.engine.instance_id, self.engine.now(), stale_after=60.0)
            self.locked = True
        loops = default_loops(self.engine, engine_lock=self.locked)
        if self.archiver is not None:
            loops.append(ArchiveLoop(self.engine, self.archiver))
        self.supervisor = Supervisor(
            self.engine,
            loops,
            max_sleep=settings.loop_max_sleep_secs,
        )
        self.auth_config = AuthConfig(
            api_keys=settings.auth_api_key,
            issuer=settings.auth_issuer or None,
            audience=settings.auth_audience or None,
        )
        auth = Authenticator(self.store, self.auth_config) if self.auth_config.enabled else None
        self._auth = auth
        self.app = make_app(
            self.engine, settings, health_extra=self.supervisor.report, auth=auth, extra=self._extras()
        )

    def _extras(self) -> list:
        from assay.dashboard import register as dashboard_register

        return [lambda app, router: dashboard_register(app, self.engine, self.settings)]

    def _application(self, environ: dict, start_response: Any) -> Any:
        channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
        if channel is not None and hasattr(channel, "delay_answer"):
            environ[DELAY_ANSWER] = channel.delay_answer
        return self.app(environ, start_response)  # bound before the app exists: look it up per request

    def _is_quick(self, method: str, path: str, headers: dict[str, str]) -> bool:
        """May this request run on the connection loop's thread? A quick route (RouteSpec.quick), and no
        credential whose check may call another server."""
        if not self._inline:
            return False
        app = self.app
        router = getattr(app, "assay_router", None)
        if router is None or not router.is_quick(method, path):
            return False
        auth = self._auth
        return auth is None or not auth.may_call_out(headers.get("AUTHORIZATION", ""))

    def bind(self) -> Any:
        import waitress

        if self._wsgi is not None:
            return self._wsgi
        s = self.settings
        try:
            self._wsgi = self._create(waitress, s)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                hint = "is an engine already running there? Choose another with --port N (env ASSAY_PORT)"
            else:
                hint = "choose another address with --host / --port"
            raise PortUnavailable(f"cannot listen on {s.host}:{s.port}: {e.strerror or e}; {hint}") from None
        return self._wsgi

    def _create(self, waitress: Any, s: Settings) -> Any:
        srv = create_http_server(
            self._application,
            inline=self._is_quick if s.inline_requests is not False else None,
            host=s.host,
            port=s.port,
            threads=s.threads,
            ident="assay",
            max_request_body_size=s.max_body_bytes * 2 + 65536,
            channel_timeout=300,
            connection_limit=connection_limit(s),
            clear_untrusted_proxy_headers=True,
        )
        self._channels = getattr(srv, "channels", None)
        return srv

    def _close_listener(self) -> None:
        if self._wsgi is None:
            return
        try:
            self._wsgi.task_dispatcher.shutdown(timeout=1)
        except Exception:  # pragma: no cover
            pass
        try:
            self._wsgi.close()
        except Exception:  # pragma: no cover
            pass
        if self._channels is not None:
            self._channels.close_poller()

    @property
    def port(self) -> int:
        assert self._wsgi is not None
        return int(self._wsgi.effective_port)

    def serve_forever(self, install_signals: bool = True) -> None:
        if self._wsgi is None:
            self.bind()
        assert self._wsgi is not None
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        self.supervisor.start()
        host = self.settings.host
        log.info(
            "assay %s listening on http://%s:%s (backend %s, %s threads, auth: %s)",
            __version__,
            host if ":" not in host else f"[{host}]",
            self.port,
            mask_url(self.store.describe()),
            self.settings.threads,
            self.auth_config.describe(),
        )
        try:
            self._wsgi.run()
        except Exception:
            # The CLI turns an error into one line; a failure of the HTTP loop itself needs its traceback
            # in the engine's log to be diagnosed.
            log.exception("the HTTP server loop failed; the engine stops")
            raise
        finally:
            self.shutdown()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping.is_set():
            return
        log.info("received %s: finishing in-flight requests and shutting down", signal.Signals(signum).name)
        self.begin_shutdown()
        if self._channels is not None:
            # Our loop runs quick requests on this (the main) thread: the signal may land in the middle of
            # one, so no exception here; the loop ends after its current turn and serve_forever shuts down.
            self._channels.stop()
            return
        raise SystemExit(0)

    def begin_shutdown(self) -> None:
        self._stopping.set()
        self.engine.notifier.close()  # held long-polls answer, SSE streams end
        self.engine.broadcaster.close()

    def shutdown(self) -> None:
        self.begin_shutdown()
        if self._wsgi is not None:
            try:
                self._wsgi.task_dispatcher.shutdown(timeout=10)
            except Exception:  # pragma: no cover
                pass
            try:
                self._wsgi.close()
            except Exception:  # pragma: no cover
                pass
            if self._channels is not None:
                self._channels.close_poller()
        self.supervisor.stop()
        if self.locked:
            try:
                self.store.release_engine_lock(self.engine.instance_id)
                self.locked = False
            except AssayError:  # pragma: no cover
                log.exception("could not release the engine lock")
        self.store.close()
        log.info("engine stopped")
