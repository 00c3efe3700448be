"""Fixtures for the Lua runtime tests: run Lua code in-process and read back globals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assay.lua import Runtime
from assay.lua.natives import from_lua
from tests.helpers import ROOT, subprocess_env


class LuaRun:
    """Run a chunk in a fresh Lua state; `.get(name)` converts a global back to Python."""

    def __init__(self, code: str, path: str | None = None, args: tuple = ()) -> None:
        self.rt = Runtime(code=code, args=args) if path is None else Runtime(path=path, args=args)
        self.status = self.rt.run()

    def get(self, name: str):
        return from_lua(self.rt.lua.globals()[name.encode()])


@pytest.fixture
def lua():
    """lua(code) -> LuaRun; the chunk usually stores what the test checks in globals."""
    return LuaRun


def assay_run(
    *args: str,
    cwd: Path | str | None = None,
    env: dict | None = None,
    timeout: float = 30,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """`assay run ...` in a subprocess (Lua's print writes to the C-level stdout)."""
    return subprocess.run(
        [sys.executable, "-m", "assay", "run", *args],
        cwd=cwd or ROOT,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A live engine shared by a test module; leases expire after 2 s without heartbeats."""
    from tests.helpers import start_engine

    eng = start_engine(tmp_path_factory.mktemp("engine"), env={"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "2"})
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="module")
def ks_worker(engine, logdir):
    """The kitchen-sink test worker (tests/lua/workers/ks_worker.lua) on queue `ks`."""
    from tests.lua.e2e import WORKERS, Worker

    w = Worker(WORKERS / "ks_worker.lua", engine.url, logdir, queue="ks")
    w.wait_ready()
    yield w
    assert w.stop() == 0, w.log()
