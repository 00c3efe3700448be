"""The state machine: no HTTP, no SQL. `Engine` = the operations of each module over one Store."""

from __future__ import annotations

from assay.engine.archive_ops import ArchiveOps
from assay.engine.commands import CommandOps
from assay.engine.deploy import DeployOps
from assay.engine.reset import ResetOps
from assay.engine.schedule_ops import ScheduleOps
from assay.engine.tasks import TaskOps
from assay.engine.workflows import WorkflowOps


class Engine(WorkflowOps, TaskOps, CommandOps, ScheduleOps, ArchiveOps, DeployOps, ResetOps):
    """All engine operations. Construct with Engine(store, clock=..., settings=...)."""


__all__ = ["Engine"]
