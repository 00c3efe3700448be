"""The README's "A first workflow" block, run exactly as written: bash in the repository root, output on a
terminal as a reader sees it, a real engine on a free port. Only the environment differs from a
reader's (ASSAY_ENGINE_URL names that engine; PATH also has this interpreter's bin directory)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, start_engine, subprocess_env, wait_until

pytestmark = pytest.mark.e2e


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("A first workflow", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_walkthrough_block_says_where_and_how():
    block = walkthrough()
    assert block.startswith('export PATH="$PWD/.venv/bin:$PATH"')  # how `assay` gets on PATH
    assert "kill %1" in block  # how the background worker stops
    assert "from the\nrepository root" in (ROOT / "README.md").read_text()


def read_all(fd: int, proc: subprocess.Popen, timeout: float) -> str:
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the walk-through did not finish; output so far:\n{screen(out.decode())}")
        ready, _, _ = select.select([fd], [], [], min(1.0, left))
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return screen(out.decode("utf-8", "replace"))


def screen(raw: str) -> str:
    """What the terminal shows: a carriage return starts the line over, erase-line codes vanish."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        lines.append(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.rsplit("\r", 1)[-1]))
    return "\n".join(lines)


def test_readme_first_workflow_runs_as_written(tmp_path):
    eng = start_engine(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "COLUMNS": "200"})
    for name in [n for n in env if n.startswith("ASSAY_")]:
        del env[name]
    env["ASSAY_ENGINE_URL"] = eng.url
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["bash", "-e", "-c", walkthrough()],
        cwd=str(ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # its own process group: the worker it starts is ours to clean up
    )
    os.close(slave)
    try:
        out = read_all(master, proc, 90)
        assert proc.wait(30) == 0, out
        # `kill %1` stopped the worker: nothing of the walk-through is left running
        wait_until(lambda: not _group_alive(proc.pid), timeout=30, what="the background worker to exit")
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)
        eng.stop()
    lines = out.splitlines()
    assert "hello-1  COMPLETED" in lines, out  # `wait`: one line on a terminal
    assert re.search(r'"greeting":\s*"Hello, Ada!"', out), out  # `describe`: the record with its result
    assert out.count("hello-1  COMPLETED") == 1
    assert "Traceback" not in out and "Error" not in out, out


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True
