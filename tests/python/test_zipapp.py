"""A Python worker runs from assay.pyz with a bare python3 (-I -S, no venv) and needs no native code."""

from __future__ import annotations

import pytest

from assay._zipapp import platform_tag
from tests.helpers import ROOT, wait_until
from tests.lua.e2e import start, wait_status
from tests.zipapp.conftest import Bare, bare, bare_python_checked, pyz  # noqa: F401 - fixtures
from tests.zipapp.test_e2e import Proc

pytestmark = pytest.mark.e2e
HELLO = ROOT / "examples" / "workflows" / "hello-workflow" / "worker.py"


def test_python_worker_from_the_pyz(bare: Bare, engine, tmp_path):  # noqa: F811
    w = Proc(
        bare, ["run", str(HELLO)], tmp_path / "worker.log", ASSAY_ENGINE_URL=engine.url, ASSAY_QUEUE="zip-py"
    )
    try:
        wait_until(lambda: " listening on queue " in w.log() or w.proc.poll() is not None, 30, what="worker")
        assert w.proc.poll() is None, w.log()
        start(engine, "HelloWorkflow", "zip-hello-py", {"name": "Zip"}, queue="zip-py")
        wf = wait_status(engine, "zip-hello-py", timeout=30)
    finally:
        assert w.stop() == 0, w.log()
    assert wf["result"] == {"greeting": "Hello, Zip!", "workflow_id": "zip-hello-py"}
    assert sorted(bare.cache.glob(f"*/{platform_tag()}")) == []  # no lupa, nothing extracted
