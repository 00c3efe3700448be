"""SQLite read connections are pooled, not one per thread (#16): the HTTP pool hands requests to its 64
threads in turn, and a connection per thread cost ~1 ms of CPU on each thread's first read."""

from __future__ import annotations

import threading

from assay.store import open_store


def test_reads_from_many_threads_one_after_another_share_one_connection(tmp_path):
    store = open_store("sqlite:///" + str(tmp_path / "r.db"))
    try:
        seen: list[int] = []

        def read() -> None:
            with store.read() as tx:
                seen.append(id(tx.conn))
                assert tx.get_workflow("nope") is None

        for _ in range(10):
            t = threading.Thread(target=read)
            t.start()
            t.join(10)
        assert len(seen) == 10 and len(set(seen)) == 1
        assert len(store._readers) == 1
    finally:
        store.close()


def test_overlapping_reads_get_their_own_connections_and_give_them_back(tmp_path):
    store = open_store("sqlite:///" + str(tmp_path / "r.db"))
    try:
        with store.read() as outer, store.read() as inner:
            assert outer.conn is not inner.conn  # (one connection cannot hold two read transactions)
        assert len(store._readers) == 2 and len(store._idle) == 2
        with store.tx() as tx:  # a write between reads is seen by the next read on a pooled connection
            tx.insert_namespace("seen-later", 1.0)
        with store.read() as tx:
            assert tx.get_namespace("seen-later") is not None
        assert len(store._readers) == 2
    finally:
        store.close()
    assert store._idle == []
