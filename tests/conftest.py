"""Shared fixtures: a fresh store (SQLite; Postgres when available), an engine on a FakeClock, a WSGI client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assay.clock import FakeClock  # noqa: E402
from assay.config import load_settings  # noqa: E402
from assay.engine import Engine  # noqa: E402
from assay.store import open_store  # noqa: E402
from tests import pg  # noqa: E402
from tests.wsgi import Client  # noqa: E402

BACKENDS = ["sqlite"]
if pg.available() and os.environ.get("ASSAY_TEST_POSTGRES", "1") != "0":
    BACKENDS.append("postgres")


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store("sqlite:///" + str(tmp_path / "test.db"))
    else:
        s = open_store(pg.fresh_database(), min_size=1, max_size=5)
    yield s
    s.close()


@pytest.fixture
def clock():
    return FakeClock(1_750_000_000.0)


@pytest.fixture
def settings():
    return load_settings({"backend": "sqlite::memory:"}, environ={})


@pytest.fixture
def engine(store, clock, settings):
    e = Engine(store, clock=clock, settings=settings)
    yield e
    e.notifier.close()


@pytest.fixture
def app(engine):
    from assay.api import make_app

    return make_app(engine)


@pytest.fixture
def client(app):
    return Client(app)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that talked to a live engine which died on its own says so, with the engine's exit
    status and log tail (a "connection refused" alone does not tell a crash from a kill)."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    from tests.helpers import STARTED_ENGINES

    for eng in list(STARTED_ENGINES):
        why = eng.died()
        if why:
            report.sections.append(("engine exited", why))
