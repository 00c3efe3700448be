"""The dashboard does not depend on the storage backend: its in-process tests use SQLite only."""

from __future__ import annotations

import pytest

from assay.engine import Engine
from assay.store import open_store


@pytest.fixture
def engine(tmp_path, clock, settings):
    store = open_store("sqlite:///" + str(tmp_path / "dashboard.db"))
    e = Engine(store, clock=clock, settings=settings)
    yield e
    e.notifier.close()
    store.close()
