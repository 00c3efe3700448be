"""Benchmark: start-up time of `assay --version` from assay.pyz and from the venv; archive and cache sizes.

Run by hand:  .venv/bin/python bench/startup.py [--pyz dist/assay.pyz] [--runs 20] [--python python3] [--flags "-I -S"]
(builds dist/assay.pyz first when it is missing). Each run is a new process with its own empty HOME;
"first run" means an empty assay cache (nothing compiled, nothing extracted yet).
Goal: `python3 assay.pyz --version` p50 <= 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 200.0


def timed(argv: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    dt = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return dt


def series(label: str, argv: list[str], env: dict, cwd: str, runs: int, fresh_cache: bool = False) -> float:
    values = []
    for _ in range(runs):
        if fresh_cache:
            with tempfile.TemporaryDirectory() as cache:
                values.append(timed(argv, {**env, "ASSAY_CACHE": cache}, cwd))
        else:
            values.append(timed(argv, env, cwd))
    p50 = statistics.median(values)
    print(f"  {label:<52} p50 {p50:7.1f} ms   min {min(values):7.1f} ms   ({runs} runs)")
    return p50


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyz", type=Path, default=ROOT / "dist" / "assay.pyz")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument(
        "--python",
        default=getattr(sys, "_base_executable", None) or sys.executable,
        help="interpreter for the archive (default: the base python3, outside any venv)",
    )
    ap.add_argument("--flags", default="", help="interpreter flags for the pyz runs, e.g. '-I -S' (no site)")
    a = ap.parse_args()
    if not a.pyz.is_file():
        subprocess.run(["bash", str(ROOT / "build_zipapp.sh"), "--out", str(a.pyz.parent)], check=True)
    with zipfile.ZipFile(a.pyz) as zf:
        ns: dict = {}
        exec(zf.read("assay/_build.py").decode(), ns)
        entries = len(zf.infolist())
    build_id = ns["BUILD_ID"]

    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        py = [a.python, *a.flags.split()]
        pyz = [*py, str(a.pyz)]
        print(f"assay.pyz: {a.pyz.stat().st_size / 1e6:.2f} MB, {entries} entries, build id {build_id}")
        version = subprocess.run([a.python, "-V"], capture_output=True, text=True).stdout.strip()
        print(f"interpreter: {' '.join(py)} ({version})")
        print("\n--version")
        series("baseline: python3 -c pass (interpreter start-up)", [*py, "-c", "pass"], env, home, a.runs)
        few = max(3, a.runs // 4)
        series("pyz, first run (empty cache)", [*pyz, "--version"], env, home, few, fresh_cache=True)
        timed([*pyz, "--version"], env, home)  # fill the bytecode cache
        warm = series("pyz (bytecode cache filled)", [*pyz, "--version"], env, home, a.runs)
        series(
            "pyz, ASSAY_BYTECODE_CACHE=0 (plain zipimport)",
            [*pyz, "--version"],
            {**env, "ASSAY_BYTECODE_CACHE": "0"},
            home,
            few,
        )
        venv = ROOT / ".venv" / "bin" / "python"
        if venv.exists():
            series(
                "python -m assay (venv, checkout)",
                [str(venv), "-m", "assay", "--version"],
                {**env, "PYTHONPATH": str(ROOT)},
                str(ROOT),
                a.runs,
            )

        print("\nrun -e 'print(1)' (imports lupa)")
        series(
            "pyz, first run (extracts lupa)",
            [*pyz, "run", "-e", "print(1)"],
            env,
            home,
            few,
            fresh_cache=True,
        )
        series("pyz (extracted)", [*pyz, "run", "-e", "print(1)"], env, home, a.runs)

        cache = Path(home) / ".cache" / "assay" / build_id
        print("\ncache (after the runs above)")
        for d in sorted(cache.iterdir()):
            if d.is_dir():
                files = sum(1 for p in d.rglob("*") if p.is_file())
                print(f"  {d.name:<52} {du(d) / 1e6:7.2f} MB  ({files} files)")
        print(f"  {'total':<52} {du(cache) / 1e6:7.2f} MB  ({cache})")

    verdict = "OK" if warm <= GOAL_MS else "OVER"
    print(f"\ngoal: --version p50 <= {GOAL_MS:.0f} ms from the pyz: {verdict} ({warm:.1f} ms)")


if __name__ == "__main__":
    main()
