"""Storage. ALL SQL lives in this package; the engine talks to the Store ABC only."""

from __future__ import annotations

from typing import Any

from assay.store.base import Store, Tx


def open_store(url: str, **options: Any) -> Store:
    """Open the store named by a database URL (sqlite:///path or postgres://...)."""
    if url.startswith(("postgres://", "postgresql://")):
        from assay.store.postgres import PostgresStore  # imported lazily: psycopg is an extra

        return PostgresStore(url, **options)
    from assay.store.sqlite import SqliteStore

    return SqliteStore(url, **options)


__all__ = ["Store", "Tx", "open_store"]
