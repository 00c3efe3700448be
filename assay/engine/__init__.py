"""The state machine: no HTTP, no SQL.

`Engine` composes the engine's services explicitly over one shared core (store, clock, settings,
wake-ups): `workflows`, `tasks`, `commands`, `schedules`, `archive`, `deploy`, `resets`, and `lifecycle` (the state-machine
steps they share). Its public operations are the services' own, each wrapped by `core.retrying` so a
transaction that fails transiently (Store.is_transient) is rerun, for API requests and loops alike.
"""

from __future__ import annotations

from typing import Any

from assay.clock import Clock
from assay.config import Settings
from assay.engine.archive_ops import ArchiveOps
from assay.engine.commands import CommandOps
from assay.engine.core import EngineCore
from assay.engine.deploy import DeployOps
from assay.engine.dispatch import DispatchOps
from assay.engine.lifecycle import Lifecycle
from assay.engine.notify import Broadcaster, Notifier
from assay.engine.reset import ResetOps
from assay.engine.schedule_ops import ScheduleOps
from assay.engine.tasks import TaskOps
from assay.engine.workflows import WorkflowOps
from assay.store.base import Store


class Engine:
    """All engine operations. Construct with Engine(store, clock=..., settings=...)."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        settings: Settings | None = None,
        notifier: Notifier | None = None,
        broadcaster: Broadcaster | None = None,
    ) -> None:
        core = self.core = EngineCore(store, clock, settings, notifier, broadcaster)
        self.lifecycle = Lifecycle(core)
        self.workflows = WorkflowOps(core, self.lifecycle)
        self.tasks = TaskOps(core, self.lifecycle)
        self.commands = CommandOps(core, self.lifecycle, self.tasks, self.workflows)
        self.schedules = ScheduleOps(core, self.lifecycle)
        self.archive = ArchiveOps(core)
        self.deploy = DeployOps(core)
        self.resets = ResetOps(core, self.lifecycle)
        # polls, claims, hand-over to held polls, eager dispatch (dispatch.py)
        self.dispatch = DispatchOps(core, self.tasks)
        core.hand_over = self.dispatch._hand_over
        core.load_histories = self.dispatch.load_histories
        self.tasks.dispatch = self.commands.dispatch = self.dispatch

        # shared resources
        self.store = core.store
        self.clock = core.clock
        self.settings = core.settings
        self.notifier = core.notifier
        self.broadcaster = core.broadcaster
        self.metrics = core.metrics
        self.instance_id = core.instance_id
        self.started_at = core.started_at
        self.now = core.now
        self.try_hold = core.try_hold
        self.release_hold = core.release_hold

        r = core.retrying
        w, t, c, s, a = self.workflows, self.tasks, self.commands, self.schedules, self.archive
        # workflows and namespaces
        self.start_workflow = r(w.start_workflow)
        self.get_workflow = r(w.get_workflow)
        self.list_workflows = r(w.list_workflows)
        self.list_events = r(w.list_events)
        self.list_children = r(w.list_children)
        self.signal = r(w.signal)
        self.cancel = r(w.cancel)
        self.terminate = r(w.terminate)
        self.continue_as_new = r(w.continue_as_new)
        self.get_state = r(w.get_state)
        self.create_namespace = r(w.create_namespace)
        self.list_namespaces = r(w.list_namespaces)
        self.namespace_stats = r(w.namespace_stats)
        self.delete_namespace = r(w.delete_namespace)
        # workers, tasks, activities, periodic steps
        self.register_worker = r(t.register_worker)
        self.heartbeat_worker = r(t.heartbeat_worker)
        self.deregister_worker = r(t.deregister_worker)
        self.list_workers = r(t.list_workers)
        self.queue_stats = r(t.queue_stats)
        d = self.dispatch
        self.claim_workflow_task = r(d.claim_workflow_task)
        self.claim_activity_task = r(d.claim_activity_task)
        self.claim_task = r(d.claim_task)
        self.claim_tasks = r(d.claim_tasks)
        self.poll = r(d.poll)
        self.poll_tasks = r(d.poll_tasks)
        self.report_activities = r(d.report_activities)
        self.schedule_activity = r(t.schedule_activity)
        self.get_activity = r(t.get_activity)
        self.complete_activity = r(t.complete_activity)
        self.fail_activity = r(t.fail_activity)
        self.heartbeat_activity = r(t.heartbeat_activity)
        self.fire_due_timers = r(t.fire_due_timers)
        self.next_timer_due = r(t.next_timer_due)
        self.expire_activities = r(t.expire_activities)
        self.next_activity_deadline = r(t.next_activity_deadline)
        self.wake_due_retries = r(t.wake_due_retries)
        self.recover_leases = r(t.recover_leases)
        self.next_lease_expiry = r(t.next_lease_expiry)
        self.reap_workers = r(t.reap_workers)
        self.write_noted_heartbeats = r(t.write_noted_heartbeats)
        self.next_worker_reap = r(t.next_worker_reap)
        # workflow-task commands
        self.submit_commands = r(c.submit_commands)
        # safe deploys: failed workflow tasks, reset
        self.fail_workflow_task = r(self.deploy.fail_workflow_task)
        self.reset_workflow = r(self.resets.reset_workflow)
        # schedules
        self.create_schedule = r(s.create_schedule)
        self.get_schedule = r(s.get_schedule)
        self.list_schedules = r(s.list_schedules)
        self.patch_schedule = r(s.patch_schedule)
        self.set_schedule_paused = r(s.set_schedule_paused)
        self.delete_schedule = r(s.delete_schedule)
        self.trigger_schedule = r(s.trigger_schedule)
        self.fire_due_schedules = r(s.fire_due_schedules)
        self.next_schedule_due = r(s.next_schedule_due)
        # archive and retention
        self.archivable_workflows = r(a.archivable_workflows)
        self.export_workflow = r(a.export_workflow)
        self.mark_archived = r(a.mark_archived)
        self.delete_expired = r(a.delete_expired)
        self.archived_events = r(a.archived_events)

    @property
    def held_requests(self) -> int:
        return self.core.held_requests

    @property
    def archive_reader(self) -> Any:
        """Set by the server when archival is on: an object with fetch(uri) -> bundle dict."""
        return self.archive.archive_reader

    @archive_reader.setter
    def archive_reader(self, reader: Any) -> None:
        self.archive.archive_reader = reader


__all__ = ["Engine"]
