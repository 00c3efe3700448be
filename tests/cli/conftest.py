"""Fixtures for the operator CLI and SDK tests: an isolated environment, the real engine app, a CliRunner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from assay.cli import cli  # noqa: E402
from tests.cli.real_app import RealApp  # noqa: E402

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
def real(tmp_path):
    """The real engine app on a loopback port (see tests/cli/real_app.py)."""
    eng = RealApp(str(tmp_path / "cli.db"))
    yield eng
    eng.stop()


@pytest.fixture
def run(real):
    """Invoke the CLI in-process against the real app: run("workflow", "list", input=None, env=None)."""

    def invoke(*args, input=None, env=None, url=True):
        argv = ["--engine-url", real.url, *args] if url else list(args)
        return CliRunner().invoke(cli, argv, input=input, env=env, prog_name="assay", catch_exceptions=False)

    return invoke
