"""Fixtures for the operator CLI tests: an isolated environment, a fake engine, a CliRunner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from assay.cli import cli  # noqa: E402
from tests.cli.fake_engine import FakeEngine  # noqa: E402

ASSAY_VARS = (
    "ASSAY_ENGINE_URL",
    "ASSAY_API_KEY",
    "ASSAY_API_KEY_FILE",
    "ASSAY_NAMESPACE",
    "ASSAY_OUTPUT",
    "ASSAY_CONFIG_FILE",
    "ASSAY_TRACEBACK",
    "_ASSAY_COMPLETE",
    "COLUMNS",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No config file or ASSAY_* variable of the machine leaks into a test."""
    for name in ASSAY_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return home


@pytest.fixture
def fake():
    eng = FakeEngine()
    yield eng
    eng.stop()


@pytest.fixture
def run(fake):
    """Invoke the CLI in-process against the fake engine: run("workflow", "list", input=None, env=None)."""

    def invoke(*args, input=None, env=None, url=True):
        argv = ["--engine-url", fake.url, *args] if url else list(args)
        return CliRunner().invoke(cli, argv, input=input, env=env, prog_name="assay", catch_exceptions=False)

    return invoke
