"""assay.pyz at run time: a bare python3, lazy native extraction under a lock, the bytecode cache,
a clear message on a platform the archive was not built for."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from assay import __version__
from assay._zipapp import NativeFinder, cache_root, extract, platform_tag
from assay.errors import AssayError
from tests.helpers import ROOT
from tests.zipapp.conftest import Bare

GROUPS = ["serve", "run", "workflow", "schedule", "namespace", "worker", "queue", "completion"]


def native_dirs(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/*") if p.is_dir() and not p.name.startswith("bytecode-"))


def test_version_with_a_bare_python(bare: Bare, build_info):
    proc = bare.run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"assay {__version__}"
    assert proc.stderr == ""
    assert native_dirs(bare.cache) == []  # nothing extracted for --version
    assert not list(bare.cache.rglob("*.so"))


def test_every_cli_group_answers_without_native_code(bare: Bare):
    top = bare.run("--help")
    assert top.returncode == 0, top.stderr
    for group in GROUPS:
        assert group in top.stdout
        proc = bare.run(group, "--help")
        assert proc.returncode == 0, (group, proc.stderr)
        assert "Usage: assay " + group in proc.stdout, group
    proc = bare.run("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "_ASSAY_COMPLETE" in proc.stdout
    assert native_dirs(bare.cache) == []  # `run --help` does not import lupa either
    assert not list(bare.cache.rglob("*.so"))


def test_run_extracts_lupa_once_into_the_cache(bare: Bare, build_info):
    proc = bare.run("run", "-e", 'print(json.encode({sum = 1 + 2, y = yaml.parse("a: [1, 2]").a[2]}))')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '{"sum":3,"y":2}'
    tag = platform_tag()
    target = bare.cache / build_info["BUILD_ID"] / tag
    assert native_dirs(bare.cache) == [target]
    assert [p.name for p in (target / "lupa").glob("*.so")] == [
        n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(bare.pyz).namelist() if n.endswith(".so")
    ]
    before = {
        p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    again = bare.run("run", "-e", "print(1)")
    assert again.returncode == 0, again.stderr
    after = {
        p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert after == before  # the second run reused the extracted tree


def test_assay_cache_env_and_stale_temp_dirs(bare: Bare, build_info, tmp_path):
    cache = tmp_path / "elsewhere"
    tag = platform_tag()
    stale = cache / build_info["BUILD_ID"] / f".tmp-{tag}-crashed"
    stale.mkdir(parents=True)
    (stale / "half-written.so").write_bytes(b"\0" * 10)
    proc = bare.run("run", "-e", "print('ok')", ASSAY_CACHE=str(cache))
    assert proc.returncode == 0, proc.stderr
    assert (cache / build_info["BUILD_ID"] / tag / "lupa").is_dir()
    assert not stale.exists()  # removed under the lock
    assert not bare.cache.exists()  # ~/.cache untouched when ASSAY_CACHE is set


def test_unwritable_cache_falls_back_to_a_private_temp_dir(bare: Bare, build_info, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = bare.run("run", "-e", "print('ok')", ASSAY_CACHE=str(blocker), TMPDIR=str(tmp))
    assert proc.returncode == 0, proc.stderr
    fallback = tmp / f"assay-cache-{os.getuid()}"
    assert (fallback / build_info["BUILD_ID"] / platform_tag() / "lupa").is_dir()
    assert fallback.stat().st_mode & 0o777 == 0o700


def test_a_shared_temp_dir_is_refused(bare: Bare, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    tmp = tmp_path / "tmp"
    planted = tmp / f"assay-cache-{os.getuid()}"
    planted.mkdir(parents=True)
    planted.chmod(0o777)  # anyone could have put code in here
    version = bare.run("--version", ASSAY_CACHE=str(blocker), TMPDIR=str(tmp))
    assert version.returncode == 0, version.stderr  # no cache at all: still works
    proc = bare.run("run", "-e", "print('ok')", ASSAY_CACHE=str(blocker), TMPDIR=str(tmp))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot extract lupa"), proc.stderr
    assert "set ASSAY_CACHE" in lines[0]
    assert os.listdir(planted) == []


CONCURRENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import assay._zipapp as z
z.install()
sys.stdin.read()  # the barrier: the test closes every stdin at once
import lupa.lua54
print(lupa.__file__)
print(lupa.lua54.LuaRuntime().eval("6 * 7"))
"""


def test_concurrent_first_imports_share_one_extraction(bare: Bare, build_info, tmp_path):
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [bare.python, "-I", "-S", "-c", CONCURRENT, str(bare.pyz)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=bare.env(ASSAY_CACHE=str(cache)),
        )
        for _ in range(6)
    ]
    for p in procs:
        p.stdin.close()
    outs = []
    for p in procs:
        p.wait(60)
        out, err = p.stdout.read(), p.stderr.read()  # a few bytes each: the pipes never filled up
        p.stdout.close()
        p.stderr.close()
        assert p.returncode == 0, err
        outs.append(out.split())
    tag = platform_tag()
    expected = str(cache / build_info["BUILD_ID"] / tag / "lupa" / "__init__.py")
    assert {tuple(o) for o in outs} == {(expected, "42")}
    assert os.listdir(cache) == [build_info["BUILD_ID"]]
    left = set(os.listdir(cache / build_info["BUILD_ID"]))
    assert left - {f"bytecode-{sys.implementation.cache_tag}"} == {".lock", tag}, left


def test_extract_under_threads_is_atomic(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(50):
            zf.writestr(f"_native/tag-x/pkg/f{i:02d}.txt", f"file {i}\n" * 1000)
    results, errors = [], []

    def go():
        try:
            results.append(extract(str(archive), "bid", "tag-x", str(tmp_path / "c")))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert set(results) == {str(tmp_path / "c" / "bid" / "tag-x")}
    files = sorted(os.listdir(tmp_path / "c" / "bid" / "tag-x" / "pkg"))
    assert len(files) == 50
    assert sorted(os.listdir(tmp_path / "c" / "bid")) == [".lock", "tag-x"]


def test_extract_refuses_unsafe_paths(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("_native/t/../../../escape.txt", "x")
    with pytest.raises(OSError, match="unsafe path"):
        extract(str(archive), "bid", "t", str(tmp_path / "c"))
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(os.listdir(tmp_path / "c" / "bid")) == [".lock"]  # the temp dir is gone


def test_mismatched_platform_is_one_clear_error(pyz, build_info):
    finder = NativeFinder(str(pyz), build_info["BUILD_ID"], {"cp00-nowhere-none": ("assay_fake_native_mod",)})
    assert finder.find_spec("json") is None  # not one of its names: untouched
    with pytest.raises(ImportError) as ei:
        finder.find_spec("assay_fake_native_mod")
    assert isinstance(ei.value, AssayError)  # so the CLI prints "Error: <message>", exit 1
    msg = str(ei.value)
    assert "\n" not in msg
    assert "built for cp00-nowhere-none" in msg and f"this Python is {platform_tag()}" in msg
    assert ei.value.name == "assay_fake_native_mod"


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("ASSAY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert cache_root() == str(tmp_path / "h" / ".cache" / "assay")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == str(tmp_path / "xdg" / "assay")
    monkeypatch.setenv("ASSAY_CACHE", str(tmp_path / "mine"))
    assert cache_root() == str(tmp_path / "mine")


def test_bytecode_cache_is_used_and_survives_garbage(bare: Bare, build_info):
    first = bare.run("--version")
    assert first.returncode == 0, first.stderr
    bc = bare.cache / build_info["BUILD_ID"] / f"bytecode-{sys.implementation.cache_tag}"
    core = bc / "click.core.pyc"
    assert core.is_file() and (bc / "assay.cli.pyc").is_file()
    core.write_bytes(b"garbage")  # a damaged entry is recompiled, not fatal
    second = bare.run("--version")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert core.read_bytes() != b"garbage"
    off = bare.run("workflow", "--help", ASSAY_BYTECODE_CACHE="0")
    assert off.returncode == 0, off.stderr
    assert not (bc / "assay.cli.workflow.pyc").exists()


def test_cached_code_names_the_archive_it_runs_from(bare: Bare, tmp_path):
    # code objects read from the bytecode cache carry the current archive's file names (tracebacks)
    assert bare.run("--version").returncode == 0  # fills the cache from bare.pyz
    moved = tmp_path / "moved" / "assay.pyz"
    moved.parent.mkdir()
    moved.write_bytes(bare.pyz.read_bytes())
    for archive in (bare.pyz, moved):
        proc = Bare(bare.python, bare.home, archive).run(
            "--traceback", "workflow", "list", "--engine-url", "http://127.0.0.1:9/"
        )
        assert proc.returncode == 1
        assert "Traceback" in proc.stderr
        assert f"{archive}/assay/cli/" in proc.stderr, proc.stderr
        other = moved if archive == bare.pyz else bare.pyz
        assert f"{other}/" not in proc.stderr


def other_python() -> str | None:
    """An interpreter of another minor version (>= 3.11) to play 'another platform'."""
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [f"python3.{n}" for n in range(11, 16)]
    found = [p for c in candidates if (p := _which(c))]
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += sorted(glob.glob(os.path.join(pyenv, "versions", "3.*", "bin", "python3")))
    for exe in found:
        try:
            out = subprocess.run(
                [exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except OSError:
            continue
        v = out.stdout.strip()
        if out.returncode == 0 and v != mine and tuple(map(int, v.split("."))) >= (3, 11):
            return exe
    return None


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def test_other_python_version_runs_the_cli_and_says_why_run_cannot(bare: Bare, build_info):
    exe = other_python()
    if exe is None:
        pytest.skip("no Python >= 3.11 of another minor version on this machine")
    other = Bare(exe, bare.home, bare.pyz)
    v = other.run("--version")
    assert v.returncode == 0, v.stderr
    assert v.stdout.strip() == f"assay {__version__}"
    assert other.run("workflow", "--help").returncode == 0
    proc = other.run("run", "-e", "print(1)")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: lupa (native code")
    assert f"built for {platform_tag()}" in lines[0]
    assert native_dirs(bare.cache) == []


def test_system_python3(bare: Bare, build_info):
    """The distribution's own /usr/bin/python3 (not the one the archive was built with)."""
    exe = "/usr/bin/python3"
    if not os.path.exists(exe):
        pytest.skip("no /usr/bin/python3 on this machine")
    probe = subprocess.run(
        [
            exe,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from assay._zipapp import platform_tag; "
            "print(platform_tag(), sys.version_info >= (3, 11))",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    tag, recent = probe.stdout.split()
    if recent != "True":
        pytest.skip(f"{exe} is older than Python 3.11")
    system = Bare(exe, bare.home, bare.pyz)
    system_argv = [exe, "-I", str(bare.pyz)]  # -I only: the system site-packages stay (they hold no click)
    v = subprocess.run(
        [*system_argv, "--version"], capture_output=True, text=True, timeout=60, env=system.env()
    )
    assert v.returncode == 0, v.stderr
    assert v.stdout.strip() == f"assay {__version__}"
    r = subprocess.run(
        [*system_argv, "run", "-e", "print(6 * 7)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=system.env(),
    )
    if tag in build_info["NATIVE"]:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "42"
    else:
        assert r.returncode == 1 and "Error: lupa (native code" in r.stderr
