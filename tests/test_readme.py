"""The README stays true: its settings table is the generated one, its links and commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from assay.config import SETTINGS
from assay.config.markdown import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_settings_table_is_generated_and_fresh():
    block = README.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0].strip()
    assert block == settings_markdown(), "run: python -m assay.config and paste between the markers"
    for s in SETTINGS:
        assert f"`{s.env}`" in README


def test_local_links_exist():
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", README):
        assert (ROOT / target).exists(), target


def test_quick_start_is_two_commands_that_exist():
    quick = README.split("## Quick start")[1].split("```sh")[1].split("```")[0].strip().splitlines()
    assert len(quick) == 2
    assert "assay serve" in quick[0] and quick[1].startswith("bash .ci/run")
    assert (ROOT / ".ci" / "run").exists()
    for bench in re.findall(r"`(bench/[a-z_]+\.py)`", README):
        assert (ROOT / bench).exists(), bench


def test_package_version_matches_pyproject():
    import tomllib

    from assay import __version__

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["version"] == __version__
