"""`assay worker list`: the workers registered with the engine."""

from __future__ import annotations

from assay.cli import common
from assay.cli.options import examples, group
from assay.output import Column

WORKER_COLUMNS = [
    Column("ID", "id", "id"),
    Column("IDENTITY", "identity"),
    Column("QUEUE", "task_queue"),
    Column("ACTIVE", "active_tasks", "num"),
    Column("LAST HEARTBEAT", "last_heartbeat", "time"),
]


@group("worker", "Inspect the workers polling this engine.", ("assay worker list",))
def worker() -> None:
    pass


@worker.command("list", epilog=examples("assay worker list", "assay worker list -n billing -o json"))
def list_() -> None:
    """List the workers registered in the namespace (oldest first)."""
    common.emit(common.client().list_workers(), WORKER_COLUMNS)
