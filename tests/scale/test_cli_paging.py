"""`assay workflow list` pages by keyset cursor against the real app on a port: more rows than one API
page (1000) come back whole, in order, without duplicates; `--cursor` continues a listing."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from assay.api import make_app
from assay.cli import cli
from assay.engine import Engine
from assay.store import open_store
from tests.store.records import T0, wf


@pytest.fixture
def served(tmp_path, monkeypatch):
    from waitress.server import create_server

    for name in ("ASSAY_ENGINE_URL", "ASSAY_API_KEY", "ASSAY_NAMESPACE", "ASSAY_OUTPUT", "ASSAY_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    store = open_store("sqlite:///" + str(tmp_path / "cli.db"))
    with store.tx() as tx:
        for i in range(1203):
            tx.insert_workflow(wf(f"w{i:04d}", created_at=T0 + i // 2))  # pairs share a created_at
    engine = Engine(store)
    srv = create_server(make_app(engine), host="127.0.0.1", port=0, threads=2)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    t.join(5)
    engine.notifier.close()
    store.close()


def listing(url: str, *args: str) -> list[str]:
    res = CliRunner().invoke(
        cli, ["--engine-url", url, "workflow", "list", "-o", "json", *args], prog_name="assay"
    )
    assert res.exit_code == 0, res.output
    return [w["id"] for w in json.loads(res.stdout)]


def test_list_pages_past_the_api_page_size(served):
    rows = listing(served, "--limit", "1500")
    assert len(rows) == 1203 and len(set(rows)) == 1203
    assert rows == sorted(rows, reverse=True)  # newest first; ties by id
    assert listing(served, "--limit", "1001") == rows[:1001]


def test_cursor_option_continues_a_listing(served):
    from assay.sdk.client import Client

    c = Client(served)
    first = c.list_workflows(limit=10)
    cursor = c.next_cursor()
    assert cursor and [w["id"] for w in first] == [f"w{i:04d}" for i in range(1202, 1192, -1)]
    assert listing(served, "--limit", "3", "--cursor", cursor) == ["w1192", "w1191", "w1190"]
    res = CliRunner().invoke(
        cli, ["--engine-url", served, "workflow", "list", "--cursor", "x", "--offset", "2"]
    )
    assert res.exit_code == 64 and "--cursor" in res.output
