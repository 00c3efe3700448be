"""The Lua worker's ASSAY_* defaults come from the declarations in assay/config.py."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from assay.config import ClientSettings, WorkerSettings, declared
from tests.helpers import ROOT, subprocess_env, wait_until
from tests.lua.test_client import LegacyEngine, legacy_engine  # noqa: F401 - fixture

NAMES = (
    "concurrency",
    "poll_wait_secs",
    "heartbeat_secs",
    "max_backoff_secs",
    "debug",
    "engine_url",
    "api_key",
)


def test_defaults_are_the_declared_ones(lua, monkeypatch):
    for s in [*declared(WorkerSettings).values(), *declared(ClientSettings).values()]:
        monkeypatch.delenv(s.env, raising=False)
    r = lua('OK, S = require("assay._native").settings()')
    assert r.get("OK") is True
    got = r.get("S")
    rows = {**declared(WorkerSettings), **declared(ClientSettings)}
    for name in NAMES:
        assert got.get(name) == rows[name].default, name


def test_a_bad_worker_variable_is_a_lua_error_naming_it(lua, monkeypatch, legacy_engine):  # noqa: F811
    monkeypatch.setenv("ASSAY_WORKER_CONCURRENCY", "lots")
    r = lua(
        f"""
local workflow = require("assay.workflow")
workflow.connect("{legacy_engine}")
workflow.define("X", function() return 1 end)
OK, ERR = pcall(workflow.listen, {{}})
"""
    )
    assert r.get("OK") is False
    err = r.get("ERR")
    assert "ASSAY_WORKER_CONCURRENCY" in err and "'lots'" in err and "workflow.listen" in err


WORKER = """
local workflow = require("assay.workflow")
workflow.connect()
workflow.define("Double", function(ctx, input) return ctx:execute_activity("double", input) end)
workflow.activity("double", function(actx, input) return input.n * 2 end)
workflow.listen({ queue = "legacy" })
"""


@pytest.mark.e2e
def test_environment_reaches_connect_and_listen(legacy_engine):  # noqa: F811
    env = subprocess_env({"ASSAY_ENGINE_URL": legacy_engine, "ASSAY_WORKER_HEARTBEAT_SECS": "0.3"})
    p = subprocess.Popen(
        [sys.executable, "-m", "assay", "run", "-e", WORKER],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: any(s[0] == "/workers/register" for s in LegacyEngine.seen), 15, what="register")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    assert dict(LegacyEngine.seen)["/workers/register"]["heartbeat_interval_secs"] == 0.3
