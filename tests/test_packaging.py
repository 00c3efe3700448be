"""pyproject.toml in the forms current setuptools builds without deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_files():
    project = PYPROJECT["project"]
    # a table ({text = ...}) makes setuptools >= 77 print a deprecation warning on every build
    assert isinstance(project["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.\-]+( (AND|OR) [A-Za-z0-9.\-]+)*", project["license"])
    for pattern in project["license-files"]:
        assert list(ROOT.glob(pattern)), pattern
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    # the string form needs setuptools 77 or newer at build time
    (req,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert tuple(int(x) for x in req.split(">=")[1].split(".")) >= (77,)


def test_documentation_url_is_declared():
    assert PYPROJECT["project"]["urls"]["Documentation"].startswith("https://")
