"""On Postgres every instance exports its own counters and only the leader the cluster-wide gauges;
`assay db check|vacuum` work there too, and `assay db backup` points at pg_dump."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from assay.api import make_app
from assay.cli import cli
from assay.config import load_settings
from assay.engine import Engine
from assay.store import open_store
from tests import pg
from tests.wsgi import Client

pytestmark = pytest.mark.postgres

if not pg.available():
    pytest.skip("no PostgreSQL server binaries", allow_module_level=True)


def scrape(engine: Engine) -> dict[str, float]:
    r = Client(make_app(engine)).get("/metrics")
    assert r.status == 200, r.text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            key = s.name + json.dumps(s.labels, sort_keys=True)
            out[key] = s.value
    return out


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(name + "{"))


def test_leader_alone_exports_cluster_gauges():
    url = pg.fresh_database()
    settings = load_settings({"backend": url}, environ={})
    stores = [open_store(url, min_size=1, max_size=4) for _ in range(2)]
    try:
        a, b = (Engine(s, settings=settings) for s in stores)
        a.start_workflow(workflow_type="T", workflow_id="w1", task_queue="q")
        a.start_workflow(workflow_type="T", workflow_id="w2", task_queue="q")
        assert stores[0].try_leadership() is True
        assert stores[1].try_leadership() is False
        ma, mb = scrape(a), scrape(b)
        assert total(ma, "assay_cluster_gauges_exported") == 1
        assert total(mb, "assay_cluster_gauges_exported") == 0
        assert total(ma, "assay_workflows") == 2 and total(ma, "assay_queue_depth") == 2
        assert total(mb, "assay_workflows") == 0 and total(mb, "assay_queue_depth") == 0
        # counters are per instance: the starts happened on a
        assert total(ma, "assay_workflows_started_total") == 2
        assert total(mb, "assay_workflows_started_total") == 0
        assert total(ma, "assay_store_commit_seconds_count") >= 2
    finally:
        for s in stores:
            s.close()


def test_db_check_and_vacuum_on_postgres():
    url = pg.fresh_database()
    open_store(url, min_size=1, max_size=2).close()
    r = CliRunner().invoke(cli, ["db", "check", "--backend", url, "-o", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["backend"] == "postgres" and report["ok"] is True and report["rows"]["namespaces"] == 1
    r = CliRunner().invoke(cli, ["db", "vacuum", "--backend", url, "-o", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["db", "backup", "x.dump", "--backend", url], catch_exceptions=False)
    assert r.exit_code == 69 and "pg_dump" in r.output
