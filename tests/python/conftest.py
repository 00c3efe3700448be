"""Fixtures of the Python-worker tests: a live engine per module (short lease timeout) and a log folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from tests.helpers import start_engine

    eng = start_engine(tmp_path_factory.mktemp("engine"), env={"ASSAY_WF_DISPATCH_TIMEOUT_SECS": "2"})
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("workers")
