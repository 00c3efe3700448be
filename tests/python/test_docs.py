"""Every public function of assay.workflow, ctx, actx and assay.testing is documented in docs/python.md,
and the pytest example there runs."""

from __future__ import annotations

import inspect
import subprocess
import sys

from assay import testing, workflow
from assay.workflow import ActivityContext, WorkflowContext
from tests.helpers import ROOT, subprocess_env

DOC = (ROOT / "docs" / "python.md").read_text()


def public(cls: type) -> list[str]:
    return sorted(
        n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))
    )


def documented_names() -> list[str]:
    names = [f"workflow.{n}" for n in workflow.__all__ if inspect.isfunction(getattr(workflow, n))]
    names += [f"ctx.{n}" for n in public(WorkflowContext)]
    names += [f"actx.{n}" for n in public(ActivityContext)]
    names += [f"env.{n}" for n in public(testing.Engine)]
    return names


def test_every_public_function_is_documented():
    names = documented_names()
    for expected in ("workflow.connect", "workflow.listen", "workflow.start", "ctx.execute_activity",
                     "ctx.get_version", "ctx.info", "actx.heartbeat", "env.result", "env.mock_activity"):  # fmt: skip
        assert expected in names
    missing = []
    for n in names:
        obj = n.split(".", 1)
        attr = {"workflow": workflow, "ctx": WorkflowContext, "actx": ActivityContext, "env": testing.Engine}[
            obj[0]
        ]
        is_prop = isinstance(vars(attr).get(obj[1]) if obj[0] != "workflow" else None, property)
        needle = f"`{n}`" if is_prop else f"`{n}("
        if needle not in DOC:
            missing.append(n)
    assert missing == [], f"document these in docs/python.md: {missing}"
    for cls in workflow.__all__:
        if inspect.isclass(getattr(workflow, cls)):
            assert f"workflow.{cls}" in DOC, cls
    assert "`Engine(" in DOC and "`replay.run(" in DOC


def test_the_documented_pytest_example_passes(tmp_path):
    blocks = DOC.split("```python\n")
    worker = next(b for b in blocks if b.startswith("# worker.py")).split("```")[0]
    test = next(b for b in blocks if b.startswith("# test_greet.py")).split("```")[0]
    (tmp_path / "worker.py").write_text(worker)
    (tmp_path / "test_greet.py").write_text(test)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_greet.py"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
