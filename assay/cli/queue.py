"""`assay queue stats`: task queue depth and workers per queue."""

from __future__ import annotations

from assay.cli import common
from assay.cli.options import examples, group
from assay.output import Column
from assay.protocol import ActivityStatus

QUEUE_COLUMNS = [
    Column("QUEUE", "queue", "id"),
    Column(ActivityStatus.PENDING, "pending_activities", "num"),
    Column(ActivityStatus.RUNNING, "running_activities", "num"),
    Column("WORKERS", "workers", "num"),
]


@group("queue", "Inspect task queues.", ("assay queue stats",))
def queue() -> None:
    pass


@queue.command("stats", epilog=examples("assay queue stats", "assay queue stats -n billing -o json"))
def stats() -> None:
    """Show pending and running activities and registered workers per task queue."""
    common.emit(common.client().queue_stats(), QUEUE_COLUMNS)
