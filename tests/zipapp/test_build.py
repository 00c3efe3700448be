"""build_zipapp.sh: reproducible bytes, what the archive holds, the build id."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import tomllib
import zipfile

from assay import __version__
from assay._zipapp import platform_tag
from tests.helpers import ROOT

DATA_FILES = [
    "assay/dashboard/static/index.html",
    "assay/dashboard/static/app.js",
    "assay/lua/workflow.lua",
    "assay/lua/_prelude.lua",
    "assay/docs_ui/swagger-ui-bundle.js",
    "assay/docs_ui/swagger-ui.css",
]


def names(pyz) -> list[str]:
    with zipfile.ZipFile(pyz) as zf:
        return [i.filename for i in zf.infolist()]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_two_builds_are_byte_identical(pyz, pyz_again):
    assert pyz != pyz_again
    a, b = pyz.read_bytes(), pyz_again.read_bytes()
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    assert a == b


def test_shebang_and_executable(pyz):
    data = pyz.read_bytes()
    assert data.startswith(b"#!/usr/bin/env python3\n")
    assert pyz.stat().st_mode & 0o111 == 0o111
    assert zipfile.is_zipfile(pyz)


def test_entries_sorted_fixed_time_and_modes(pyz, build_info):
    with zipfile.ZipFile(pyz) as zf:
        infos = zf.infolist()
    got = [i.filename for i in infos]
    assert got == sorted(got)
    assert len(got) == len(set(got))
    expected_time = time.gmtime(max(build_info["SOURCE_DATE_EPOCH"], 315532800))[:6]
    expected_time = (*expected_time[:5], expected_time[5] // 2 * 2)  # zip stores 2-second steps
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True
    )
    if commit.returncode == 0 and commit.stdout.strip():
        assert build_info["SOURCE_DATE_EPOCH"] == int(commit.stdout)  # default: the last commit's time
    for i in infos:
        assert i.date_time == expected_time, i.filename
        assert i.create_system == 3
        compiled = i.filename.startswith("_native/") and i.filename.endswith(".so")
        assert i.external_attr >> 16 == (0o100755 if compiled else 0o100644), i.filename


def test_no_bytecode_no_caches(pyz):
    for n in names(pyz):
        assert not n.endswith((".pyc", ".pyo")), n
        assert "__pycache__" not in n, n
        assert not n.endswith("/"), n  # no directory entries


def test_assay_package_and_data_files_are_in(pyz):
    got = set(names(pyz))
    assert "__main__.py" in got
    assert "assay/_build.py" in got
    for f in DATA_FILES:
        assert f in got, f
    # every file of the source package is there, byte for byte
    with zipfile.ZipFile(pyz) as zf:
        for path in sorted((ROOT / "assay").rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if (
                path.is_dir()
                or "__pycache__" in rel
                or rel.endswith((".pyc", ".pyo"))
                or path.name.startswith(".")
            ):
                continue
            assert rel in got, rel
            assert zf.read(rel) == path.read_bytes(), rel
        assert zf.read("__main__.py") == (ROOT / "assay.py").read_bytes()
    assert not any(n.startswith("tests/") for n in got)


def test_dependencies_come_from_pyproject(pyz, build_info):
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    wanted = {norm(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in deps}
    bundled = {norm(d.split("==")[0]) for d in build_info["DEPENDENCIES"]}
    assert wanted <= bundled, wanted - bundled
    # nothing unused rides along: the cron parser is our own (no croniter, no python-dateutil)
    assert not bundled & {"croniter", "python-dateutil", "pytz"}, bundled
    got = set(names(pyz))
    for pure in (
        "click/__init__.py",
        "click/core.py",
        "bottle.py",
        "waitress/__init__.py",
        "yaml/__init__.py",
        "tzdata/__init__.py",
        "tzdata/zoneinfo/Europe/Berlin",
    ):
        assert pure in got, pure
    # the dependencies' tests and scripts stay out
    assert not any(re.match(r"[^/]+/tests?/", n) for n in got if not n.startswith(("assay/", "_native/")))
    assert not any(n.startswith("bin/") for n in got)


def test_compiled_code_only_under_native_dir(pyz, build_info):
    tag = platform_tag()
    assert build_info["NATIVE"] == {tag: ("lupa",)}
    compiled = [n for n in names(pyz) if re.search(r"\.(so|pyd|dylib)$|\.so\.", n)]
    assert compiled, "lupa's extension module is missing"
    for n in compiled:
        assert n.startswith(f"_native/{tag}/"), n
    # lupa: the Lua engine assay imports (lua54), not all seven; lupa's package and metadata along
    assert [n.rsplit("/", 1)[-1].split(".")[0] for n in compiled] == ["lua54"]
    got = set(names(pyz))
    assert f"_native/{tag}/lupa/__init__.py" in got
    assert any(n.startswith(f"_native/{tag}/lupa-") and n.endswith(".dist-info/METADATA") for n in got)
    assert "lupa/__init__.py" not in got
    # PyYAML's optional C extension is left out: the pure-Python yaml package is used
    assert not any(n.startswith("yaml/_yaml") for n in got)


def test_build_id_is_a_hash_of_the_entries(pyz, build_info):
    h = hashlib.sha256()
    with zipfile.ZipFile(pyz) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.filename == "assay/_build.py":
                continue
            data = zf.read(info)
            h.update(f"{info.filename}\0{(info.external_attr >> 16) & 0o777:o}\0{len(data)}\0".encode())
            h.update(data)
    assert build_info["SHA256"] == h.hexdigest()
    assert build_info["BUILD_ID"] == h.hexdigest()[:16]
    assert build_info["VERSION"] == __version__


def test_out_flag_and_help(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "build_zipapp.sh"), "--help"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    assert "--out DIR" in proc.stdout
    proc = subprocess.run(
        ["bash", str(ROOT / "build_zipapp.sh"), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 64
    assert "unknown argument: --bogus" in proc.stderr
