"""Every runtime dependency in pyproject.toml is used by the package (the zipapp bundles exactly these)."""

from __future__ import annotations

import ast
import re
import tomllib

from tests.helpers import ROOT

# distribution name -> the top-level module assay imports (tzdata is read by zoneinfo, not imported)
IMPORT_NAME = {"pyyaml": "yaml", "tzdata": "zoneinfo"}


def imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "assay").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    used = imported_top_levels()
    unused = []
    for dep in deps:
        dist = re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0].lower()
        if IMPORT_NAME.get(dist, dist) not in used:
            unused.append(dist)
    assert unused == [], f"declared but never imported (the zipapp would bundle them): {unused}"


def test_croniter_is_not_a_dependency():
    # the schedule engine has its own cron parser (assay/engine/cron.py); see docs/design.md
    text = (ROOT / "pyproject.toml").read_text()
    assert "croniter" not in text
    assert "croniter" not in imported_top_levels()
