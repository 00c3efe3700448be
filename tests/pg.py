"""A throwaway PostgreSQL cluster for the test session: initdb + pg_ctl on a free loopback port in a temp dir.

Found through PATH or /usr/lib/postgresql/*/bin. Run as the `postgres` OS user when the tests run as root
(initdb refuses root). ASSAY_TEST_POSTGRES_URL=postgresql://... uses an existing server instead.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.helpers import free_port

_lock = threading.Lock()
_cluster: Cluster | None = None
_counter = itertools.count(1)


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def available() -> bool:
    if os.environ.get("ASSAY_TEST_POSTGRES_URL"):
        return True
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return bool(pg_bin("initdb") and pg_bin("pg_ctl"))


class Cluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="assay-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "assay", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        for attempt in range(3):  # the free port may be taken before the server binds it: try another
            if attempt:
                self.port = free_port()
            opts = (
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            try:
                self._run(
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    opts,
                    "start",
                )
                break
            except RuntimeError:
                log = self.dir / "log"
                if attempt == 2 or "could not bind" not in (log.read_text() if log.exists() else ""):
                    raise
        self.base = f"postgresql://assay@127.0.0.1:{self.port}"
        atexit.register(self.stop)

    def _run(self, *args: str | None) -> None:
        r = subprocess.run(
            [*self.as_user, *[a for a in args if a is not None]], capture_output=True, text=True, timeout=120
        )
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout}\n{r.stderr}")

    def url(self, db: str) -> str:
        return f"{self.base}/{db}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self.as_user, pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
            shutil.rmtree(self.dir, ignore_errors=True)


def server_url(db: str = "postgres") -> str:
    env = os.environ.get("ASSAY_TEST_POSTGRES_URL")
    if env:
        return env.rsplit("/", 1)[0] + "/" + db
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = Cluster()
        return _cluster.url(db)


def fresh_database() -> str:
    """A new, empty database on the test server; returns its URL."""
    import psycopg

    name = f"assay_t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url(name)
