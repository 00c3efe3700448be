"""prometheus_client lives in the one-file build: assay.pyz run by a bare python3 serves /metrics, and
`assay db backup` works from it too."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, http, wait_until
from tests.zipapp.conftest import Bare, base_python, build
from tests.zipapp.test_e2e import Proc

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def bare_pyz(tmp_path_factory) -> Bare:
    pyz = build(tmp_path_factory.mktemp("zipapp-metrics"))
    home = tmp_path_factory.mktemp("home")
    return Bare(base_python(), home, pyz)


def test_metrics_and_db_backup_from_the_zipapp(bare_pyz, tmp_path):
    port = free_port()
    db = tmp_path / "z.db"
    engine = Proc(
        bare_pyz, ["serve", "--port", str(port), "--backend", f"sqlite:///{db}"], tmp_path / "e.log"
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: _up(base), 60, what=f"zipapp engine /health\n{engine.log()}")
        assert http("POST", base + "/workflows", {"workflow_type": "Zip", "workflow_id": "z1"})[0] == 201
        status, text, headers = http("GET", base + "/metrics")
        assert status == 200, text
        samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["assay_workflows_started_total"].value == 1
        assert "process_resident_memory_bytes" in samples
        out = bare_pyz.run(
            "db", "backup", str(tmp_path / "b.db"), "--backend", f"sqlite:///{db}", "-o", "json"
        )
        assert out.returncode == 0, out.stderr
        assert '"workflows": 1' in out.stdout
    finally:
        engine.stop()


def _up(base: str) -> bool:
    try:
        return http("GET", base + "/health", timeout=2)[0] == 200
    except OSError:
        return False
