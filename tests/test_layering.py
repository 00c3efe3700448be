"""Import layering: lower layers never import higher ones (every import, including ones inside
functions, counts: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "assay"


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str) -> set[str]:
    """Every module `module` imports (absolute names), wherever the import statement is."""
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                base = ".".join([*pkg, node.module])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _all_modules(package: str) -> list[str]:
    return sorted(_module(p) for p in (ROOT.parent / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("assay.protocol", "assay."),  # the vocabulary depends on nothing of assay
        ("assay.archive", "assay.api"),
        ("assay.records", "assay.api"),
        ("assay.engine", "assay.api"),
        ("assay.store", "assay.engine"),
        ("assay.store", "assay.api"),
        ("assay.errors", "assay.store"),
    ],
)
def test_lower_layers_do_not_import_higher_ones(lower: str, higher: str) -> None:
    mods = _all_modules(lower) if (ROOT.parent / lower.replace(".", "/")).is_dir() else [lower]
    bad = {m: sorted(i for i in imports_of(m) if i.startswith(higher)) for m in mods}
    assert not {m: i for m, i in bad.items() if i}


def test_lua_runtime_and_worker_do_not_import_each_other_both_ways() -> None:
    assert any(i.startswith("assay.lua.worker") for i in imports_of("assay.lua.runtime"))
    assert not any(i.startswith("assay.lua.runtime") for i in imports_of("assay.lua.worker"))


def test_the_scanner_sees_lazy_imports() -> None:
    """imports_of would make the tests above vacuous if it missed imports inside functions."""
    assert "assay.output.Console" in imports_of("assay.cli.common")  # imported inside console()
