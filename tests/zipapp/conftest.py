"""Fixtures for the one-file build: assay.pyz built once per session, and a bare interpreter to run it.

"Bare" means the base interpreter of the test venv with ``-I -S``: isolated mode (no PYTHON* env
vars, no user site) and no site module, so neither the venv's nor the base install's
site-packages are on sys.path: only the standard library and the archive. A venv interpreter with
``-I`` alone still sees the venv's site-packages (pyvenv.cfg is read by site), hence ``-S``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

BUILD_TIMEOUT = 300


def build(out: Path) -> Path:
    proc = subprocess.run(
        ["bash", str(ROOT / "build_zipapp.sh"), "--out", str(out), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        pytest.fail(f"build_zipapp.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    pyz = out / "assay.pyz"
    assert pyz.is_file(), proc.stderr
    return pyz


@pytest.fixture(scope="session")
def pyz(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("zipapp-a"))


@pytest.fixture(scope="session")
def pyz_again(tmp_path_factory, pyz) -> Path:
    """A second, independent build of the same tree (for the reproducibility test)."""
    return build(tmp_path_factory.mktemp("zipapp-b"))


def read_build_info(pyz: Path) -> dict:
    with zipfile.ZipFile(pyz) as zf:
        src = zf.read("assay/_build.py").decode()
    ns: dict = {}
    exec(compile(src, "assay/_build.py", "exec"), ns)
    return {k: v for k, v in ns.items() if k.isupper()}


@pytest.fixture(scope="session")
def build_info(pyz) -> dict:
    return read_build_info(pyz)


def base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass
class Bare:
    """Runs the archive with a bare interpreter, an empty HOME and a minimal environment."""

    python: str
    home: Path
    pyz: Path

    @property
    def argv(self) -> list[str]:
        return [self.python, "-I", "-S", str(self.pyz)]

    def env(self, **extra: str) -> dict:
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 60, input: str | None = None, **env: str):
        return subprocess.run(
            [*self.argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(**env),
            cwd=str(self.home),
            input=input,
        )

    @property
    def cache(self) -> Path:
        return self.home / ".cache" / "assay"


@pytest.fixture
def bare(pyz, tmp_path, bare_python_checked) -> Bare:
    home = tmp_path / "home"
    home.mkdir()
    return Bare(bare_python_checked, home, pyz)


@pytest.fixture(scope="session")
def bare_python_checked() -> str:
    """The bare interpreter really has no click (else the tests would prove nothing)."""
    py = base_python()
    proc = subprocess.run(
        [py, "-I", "-S", "-c", "import click"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert proc.returncode != 0, f"{py} -I -S can import click: not a bare interpreter"
    return py
