#!/usr/bin/env bash
# Build dist/assay.pyz: assay and its runtime dependencies in one file that runs with a bare python3.
#
#   bash build_zipapp.sh [--out DIR] [--python PY] [--extra NAME]... [--no-pin]
#
#   --out DIR     where assay.pyz is written (default: dist/ next to this script)
#   --python PY   the interpreter that fetches the dependencies and whose platform the native
#                 modules are for (default: .venv/bin/python, else python3)
#   --extra NAME  also bundle an optional dependency group of pyproject.toml (e.g. postgres)
#   --no-pin      take the newest matching releases instead of the versions installed for PY
#
# The dependency list is [project].dependencies of pyproject.toml. pip (of PY) installs their wheels
# into a staging dir (no compile, binary wheels only). Pure-Python files go to the archive root; the
# files of a distribution with compiled code (lupa, psycopg-binary) go under _native/<platform tag>/
# and are extracted on first import (assay/_zipapp.py). PyYAML's optional C extension is dropped (it
# falls back to pure Python).
#
# Reproducible: entries sorted, every timestamp = SOURCE_DATE_EPOCH (default: the last commit's
# time), fixed permissions, no .pyc, and assay/_build.py carries BUILD_ID = sha256 over all other
# entries (names, modes, bytes). Building twice gives byte-identical files. See docs/zipapp.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT="$ROOT/dist"
PY=""
EXTRAS=""
PIN=1

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    --python=*) PY=${1#--python=}; shift ;;
    --extra) EXTRAS="$EXTRAS ${2:?--extra needs a name}"; shift 2 ;;
    --extra=*) EXTRAS="$EXTRAS ${1#--extra=}"; shift ;;
    --no-pin) PIN=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build_zipapp.sh: unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
done

if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || true)
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}  # 1980-01-01, the earliest zip date
fi
export SOURCE_DATE_EPOCH

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGING=$(mktemp -d "${TMPDIR:-/tmp}/assay-zipapp.XXXXXX")
trap 'rm -rf "$STAGING"' EXIT

"$PY" - "$ROOT" "$OUT" "$STAGING" "$PIN" $EXTRAS <<'PYTHON'
import hashlib
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import time
import tomllib
import zipfile

root, out, staging, pin, *extras = sys.argv[1:]
sys.path.insert(0, root)
from assay import __version__  # noqa: E402
from assay._zipapp import platform_tag  # noqa: E402  (the same tag the runtime looks for)

SHEBANG = b"#!/usr/bin/env python3\n"
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
OPTIONAL_SPEEDUPS = {"pyyaml"}  # compiled code is an optional accelerator: drop it, keep pure Python
SKIP_DIRS = {"__pycache__"}


def log(msg):
    print(f"build_zipapp: {msg}", file=sys.stderr)


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def is_native(path):
    base = path.rsplit("/", 1)[-1]
    return base.endswith(NATIVE_SUFFIXES) or ".so." in base or ".libs/" in path


def skipped(rel):
    parts = rel.split("/")
    name = parts[-1]
    return (
        any(p in SKIP_DIRS for p in parts[:-1])
        or name.endswith((".pyc", ".pyo"))
        or name.startswith(".")
        or name.endswith("~")
    )


# 1. the dependency list: pyproject.toml, nothing hand-maintained
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
reqs = list(project["dependencies"])
for extra in extras:
    try:
        reqs += project["optional-dependencies"][extra]
    except KeyError:
        sys.exit(f"build_zipapp: no optional dependency group {extra!r} in pyproject.toml")

# 2. fetch wheels into the staging dir, pinned to what is installed for this interpreter (the
#    versions the test suite ran against) unless --no-pin
pip = [
    sys.executable,
    "-m",
    "pip",
    "install",
    "--target",
    staging,
    "--no-compile",
    "--only-binary",
    ":all:",
    "--disable-pip-version-check",
    "--no-warn-script-location",
    "--quiet",
]
if pin == "1":
    # the installed versions of the requirements and of what they require, transitively
    pins, seen, todo = set(), set(), list(reqs)
    while todo:
        req = todo.pop()
        name = norm(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        pins.add(f"{name}=={dist.version}")
        todo += [r for r in dist.requires or [] if not re.search(r"\bextra\s*==", r)]
    pins = sorted(pins)
    cfile = staging + ".constraints.txt"
    with open(cfile, "w") as f:
        f.write("\n".join(pins) + "\n")
    pip += ["-c", cfile]
try:
    subprocess.run(pip + reqs, check=True, stdout=sys.stderr)
except (subprocess.CalledProcessError, FileNotFoundError) as e:
    sys.exit(f"build_zipapp: pip failed ({e}); needs {sys.executable} -m pip and access to the package index")
finally:
    if pin == "1":
        os.unlink(cfile)

# 3. sort the staged files: pure Python to the archive root, compiled distributions to _native/<tag>/
tag = platform_tag()
lupa_engines = set()  # which Lua engines of lupa assay imports (lupa ships seven, ~0.6-1 MB each)
for dirpath, _dirnames, filenames in os.walk(os.path.join(root, "assay")):
    for fn in filenames:
        if fn.endswith(".py"):
            with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                text = f.read()
            lupa_engines |= set(re.findall(r"\blupa\.(lua(?:jit)?\d+)\b", text))
            for names in re.findall(r"from\s+lupa\s+import\s+([\w ,]+)", text):
                lupa_engines |= {
                    n.strip() for n in names.split(",") if re.fullmatch(r"lua(jit)?\d+", n.strip())
                }

owner = {}  # staged relative path -> distribution (normalized name)
dists = {}  # normalized name -> (name, version, files)
for entry in sorted(os.listdir(staging)):
    if not entry.endswith(".dist-info"):
        continue
    meta = importlib.metadata.PathDistribution(pathlib.Path(staging, entry))
    name = norm(meta.metadata["Name"])
    files = []
    for line in (meta.read_text("RECORD") or "").splitlines():
        path = line.rsplit(",", 2)[0].strip('"')
        if path and not path.startswith("..") and os.path.isfile(os.path.join(staging, path)):
            files.append(path)
    dists[name] = (meta.metadata["Name"], meta.version, files)
    for p in files:
        owner[p] = name

native_dists = {
    n for n, (_, _, files) in dists.items() if n not in OPTIONAL_SPEEDUPS and any(is_native(p) for p in files)
}
entries = {}  # archive name -> (bytes, mode)
native_top = set()
dropped = []


def add(name, data, mode=0o644):
    if name in entries:
        sys.exit(f"build_zipapp: two files would be stored as {name}")
    entries[name] = (data, mode)


for dirpath, dirnames, filenames in os.walk(staging):
    dirnames.sort()
    for fn in sorted(filenames):
        full = os.path.join(dirpath, fn)
        rel = os.path.relpath(full, staging).replace(os.sep, "/")
        parts = rel.split("/")
        if skipped(rel) or parts[0] == "bin" or parts[1:2] in (["tests"], ["test"]):
            continue  # scripts (assay has its own entry point) and the dependencies' own tests
        dist = owner.get(rel, "")
        with open(full, "rb") as f:
            data = f.read()
        if dist in native_dists:
            top = rel.split("/", 1)[0]
            if dist == "lupa" and lupa_engines and is_native(rel):
                if rel.rsplit("/", 1)[-1].split(".", 1)[0] not in lupa_engines:
                    dropped.append(rel)
                    continue
            if "/" not in rel:
                top = rel.split(".", 1)[0]  # a top-level extension module: name.cpython-311-....so
            if not top.endswith((".dist-info", ".libs")):  # psycopg_binary.libs is not an import name
                native_top.add(top)
            add(f"_native/{tag}/{rel}", data, 0o755 if is_native(rel) else 0o644)
        elif is_native(rel):
            dropped.append(rel)  # an optional accelerator (PyYAML's _yaml): the pure code is used
        else:
            add(rel, data)
native_top = sorted(native_top)

# 4. assay itself (with its data files) and the entry point
for dirpath, dirnames, filenames in os.walk(os.path.join(root, "assay")):
    dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
    for fn in sorted(filenames):
        full = os.path.join(dirpath, fn)
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        if skipped(rel) or rel == "assay/_build.py" or rel.endswith(NATIVE_SUFFIXES):
            continue
        with open(full, "rb") as f:
            add(rel, f.read())
with open(os.path.join(root, "assay.py"), "rb") as f:
    add("__main__.py", f.read())

# 5. the build id: sha256 over every entry's name, mode and bytes, in archive order
h = hashlib.sha256()
for name in sorted(entries):
    data, mode = entries[name]
    h.update(f"{name}\0{mode:o}\0{len(data)}\0".encode())
    h.update(data)
digest = h.hexdigest()
build_id = digest[:16]
epoch = int(os.environ["SOURCE_DATE_EPOCH"])
deps = sorted(f"{n}=={v}" for n, v, _ in dists.values())
native = {tag: tuple(native_top)} if native_top else {}
add(
    "assay/_build.py",
    (
        '"""Written by build_zipapp.sh: identifies this build of assay.pyz. Do not edit."""\n\n'
        f"BUILD_ID = {build_id!r}\n"
        f"SHA256 = {digest!r}  # over all other entries of the archive\n"
        f"VERSION = {__version__!r}\n"
        f"DOCS_URL = {project.get('urls', {}).get('Documentation')!r}  # [project.urls] of pyproject.toml\n"
        f"SOURCE_DATE_EPOCH = {epoch}\n"
        f"DEPENDENCIES = {tuple(deps)!r}\n"
        f"NATIVE = {native!r}  # platform tag -> top-level names under _native/<tag>/\n"
    ).encode(),
)

# 6. write the archive: shebang + zip, sorted, fixed timestamps and permissions
date_time = time.gmtime(max(epoch, 315532800))[:6]
os.makedirs(out, exist_ok=True)
target = os.path.join(out, "assay.pyz")
tmp = target + ".tmp"
with open(tmp, "wb") as f:
    f.write(SHEBANG)
    with zipfile.ZipFile(f, "w") as zf:
        for name in sorted(entries):
            data, mode = entries[name]
            info = zipfile.ZipInfo(name, date_time)
            info.create_system = 3  # unix, so external_attr carries the permissions
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
os.chmod(tmp, 0o755)
os.replace(tmp, target)

size = os.path.getsize(target)
log(f"{target}: {size / 1e6:.2f} MB, {len(entries)} entries, build id {build_id}")
log(f"dependencies: {', '.join(deps)}")
log(
    f"native ({tag}): {', '.join(native_top) or 'none'}"
    + (f"; lupa engines kept: {', '.join(sorted(lupa_engines))}" if lupa_engines else "")
)
if dropped:
    log(f"left out {len(dropped)} compiled file(s): {', '.join(sorted(dropped))}")
print(target)
PYTHON
