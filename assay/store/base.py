"""The Store contract: documented domain verbs, no SQL.

A `Store` hands out transactions. `store.tx()` is a write transaction (one per state change: the engine
applies a whole command batch, its events and the lease release inside one); `store.read()` is a
read-only view. Both yield a `Tx` with the same verbs, so the engine can read inside a write.

Records are plain dicts keyed by column name; JSON columns come back as Python values (None for SQL
NULL). Timestamps are float seconds since the Unix epoch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from assay.protocol import DEFAULT_NAMESPACE

Record = dict[str, Any]


class Tx(abc.ABC):
    """One transaction. Every verb is atomic with the others in the same Tx."""

    # --- namespaces -------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_namespace(self, name: str, now: float) -> bool:
        """Create a namespace; False if it already exists."""

    @abc.abstractmethod
    def get_namespace(self, name: str) -> Record | None: ...

    @abc.abstractmethod
    def list_namespaces(self) -> list[Record]: ...

    @abc.abstractmethod
    def delete_namespace(self, name: str) -> bool: ...

    @abc.abstractmethod
    def namespace_stats(self, name: str) -> Record: ...

    # --- workflows ----------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_workflow(self, rec: Record, *, first_event: tuple[str, Any] | None = None) -> bool:
        """Insert a workflow row; False if the id is taken (in any namespace). `first_event` (type,
        payload): its event 1 too, stamped `created_at` (the row starts at last_seq 1)."""

    @abc.abstractmethod
    def get_workflow(self, wf_id: str, *, payloads: bool = True) -> Record | None:
        """The workflow row (locked for the transaction, in a Postgres write). `payloads=False`: without
        `input` and `result`, the caller's JSON that the engine's own steps never read (not decoded)."""

    @abc.abstractmethod
    def update_workflow(self, wf_id: str, **fields: Any) -> None: ...

    @abc.abstractmethod
    def list_workflows(
        self,
        *,
        namespace: str | None,
        status: str | list[str] | None = None,
        workflow_type: str | None = None,
        search: dict[str, Any] | None = None,
        parent_id: str | None = None,
        claimed_by: str | None = None,
        task_queue: str | None = None,
        build_id: str | None = None,
        stuck: bool | None = None,
        limit: int | None = 50,
        offset: int = 0,
        workflow_id: str | None = None,
        terminated: bool | None = None,
        continued: bool | None = None,
        after: tuple[float, str] | None = None,
    ) -> list[Record]:
        """Newest first (children: oldest first). `search`: AND of JSON-typed top-level equalities.
        `build_id`: one of the build ids that ran the workflow's tasks. `stuck`: flagged (or not) as stuck.
        `terminated`: only (un)terminated runs; `continued`: only runs that did (not) continue-as-new.
        `after`: keyset cursor, the (created_at, id) of the previous page's last row (rows strictly older)."""

    @abc.abstractmethod
    def list_children(self, parent_id: str) -> list[Record]: ...

    @abc.abstractmethod
    def mark_dispatchable(self, wf_id: str, now: float) -> None:
        """Set needs_dispatch (kept while a lease is held, so the workflow is re-dispatched after it)."""

    @abc.abstractmethod
    def claim_workflow_task(
        self, queue: str, namespace: str | None, worker_id: str, now: float
    ) -> Record | None:
        """Lease the oldest dispatchable non-terminal workflow on `queue` (PENDING becomes RUNNING).

        The returned record carries `previous_status`."""

    @abc.abstractmethod
    def claim_workflow_tasks(
        self, queue: str, namespace: str | None, worker_id: str, now: float, limit: int
    ) -> list[Record]:
        """Lease up to `limit` dispatchable workflows on `queue`, oldest first (as claim_workflow_task)."""

    @abc.abstractmethod
    def claim_workflow_by_id(self, wf_id: str, worker_id: str, now: float) -> Record | None:
        """Lease this workflow's task if it is dispatchable now (not leased, not terminal, due); else None."""

    @abc.abstractmethod
    def has_ready_workflow_task(self, queue: str, namespace: str | None, now: float) -> bool:
        """Is there a workflow task claim_workflow_task would lease? (A read: polls check before writing.)"""

    @abc.abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested step of the transaction: an exception inside undoes only that step."""

    @abc.abstractmethod
    def release_lease(self, wf_id: str, worker_id: str) -> Record | None:
        """Give back `worker_id`'s lease on the workflow task; returns the workflow's `status` and
        `needs_dispatch` after it (None: the worker did not hold the lease, nothing changed)."""

    @abc.abstractmethod
    def delay_dispatch(self, wf_id: str, not_before: float) -> int:
        """Make the workflow dispatchable again, but not before `not_before`; counts consecutive failed
        workflow tasks and returns the new count."""

    @abc.abstractmethod
    def delayed_workflow_queues(self, after: float, now: float) -> list[str]:
        """Queues of workflows whose delayed dispatch came due in (after, now]."""

    @abc.abstractmethod
    def next_delayed_dispatch(self, after: float) -> float | None: ...

    @abc.abstractmethod
    def extend_leases(self, worker_id: str, now: float) -> int:
        """Refresh every workflow-task lease the worker holds; returns how many."""

    @abc.abstractmethod
    def recover_stale_leases(self, cutoff: float) -> list[str]:
        """Release leases last refreshed at or before `cutoff` and mark those workflows dispatchable."""

    @abc.abstractmethod
    def oldest_lease(self) -> float | None:
        """The oldest dispatch_last_heartbeat of a held lease (for loop sleeping)."""

    @abc.abstractmethod
    def dispatchable_queues(self) -> list[str]: ...

    # --- events -----------------------------------------------------------------------------
    @abc.abstractmethod
    def append_event(
        self,
        wf_id: str,
        event_type: str,
        payload: Any,
        now: float,
        *,
        fields: Record | None = None,
        dispatchable: bool = False,
    ) -> int:
        """Append an event with the next gap-free seq (starting at 1); returns the seq. The same UPDATE
        of the workflow row (its seq counter) also sets `fields` (as update_workflow) and, with
        `dispatchable`, does what mark_dispatchable does (judged on the row as it was before)."""

    @abc.abstractmethod
    def list_events(
        self,
        wf_id: str,
        after_seq: int = 0,
        *,
        upto: int | None = None,
        limit: int | None = None,
        event_type: str | None = None,
    ) -> list[Record]:
        """Events with after_seq < seq (<= upto) (of one type), ascending, at most `limit`."""

    def written_events(self, wf_id: str, after_seq: int, upto: int) -> list[Record] | None:
        """The workflow's events after_seq < seq <= upto when THIS transaction wrote every one of them, as
        list_events would read them back (without their row `id`); None when it cannot tell (read them)."""
        return None

    # --- activities ---------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_activity(self, rec: Record) -> int: ...

    @abc.abstractmethod
    def insert_activity_if_new(self, rec: Record) -> Record | None:
        """Insert unless the workflow already has an activity with that seq; returns the inserted row
        (every column), or None when nothing was inserted."""

    @abc.abstractmethod
    def get_activity(self, act_id: int) -> Record | None: ...

    @abc.abstractmethod
    def update_activity_if(self, seen: Record, **fields: Any) -> bool:
        """Update the activity only while it is as `seen` (a record read earlier) shows it: same status,
        attempt and holder. False, nothing changed, when another transaction moved it on meanwhile."""

    @abc.abstractmethod
    def get_activity_by_seq(self, wf_id: str, seq: int) -> Record | None: ...

    @abc.abstractmethod
    def update_activity(self, act_id: int, **fields: Any) -> None: ...

    @abc.abstractmethod
    def list_activities(self, wf_id: str, statuses: tuple[str, ...] | None = None) -> list[Record]: ...

    @abc.abstractmethod
    def claim_activity(self, queue: str, namespace: str | None, worker_id: str, now: float) -> Record | None:
        """Claim the due (scheduled_at <= now) PENDING activity with the smallest scheduled_at (never one
        whose schedule_to_close deadline_at has passed)."""

    @abc.abstractmethod
    def activities_past_deadline(self, now: float, limit: int = 200) -> list[Record]:
        """PENDING or RUNNING activities whose schedule_to_close deadline (deadline_at) is <= now."""

    @abc.abstractmethod
    def claim_activities(
        self, queue: str, namespace: str | None, worker_id: str, now: float, limit: int
    ) -> list[Record]:
        """Claim up to `limit` due PENDING activities on `queue` (as claim_activity)."""

    @abc.abstractmethod
    def claim_activity_by_id(self, act_id: int, worker_id: str, now: float) -> Record | None:
        """Claim this activity if it is PENDING and due (one conditional UPDATE); else None."""

    @abc.abstractmethod
    def has_ready_activity(self, queue: str, namespace: str | None, now: float) -> bool:
        """Is there an activity claim_activity would claim?"""

    @abc.abstractmethod
    def expired_activities(self, now: float, grace_since: float, limit: int = 200) -> list[Record]:
        """RUNNING activities past start_to_close or heartbeat timeout (heartbeat counted from
        max(last heartbeat or start, grace_since))."""

    @abc.abstractmethod
    def next_activity_deadline(self, grace_since: float) -> float | None:
        """The soonest start_to_close / heartbeat / schedule_to_close deadline of a live activity."""

    @abc.abstractmethod
    def next_pending_activity(self, after: float) -> Record | None:
        """The earliest PENDING activity scheduled strictly after `after` (retry wake-ups)."""

    @abc.abstractmethod
    def pending_queues_due(self, after: float, now: float) -> list[str]:
        """Queues of PENDING activities that became due in (after, now] (retry backoffs ending)."""

    @abc.abstractmethod
    def lost_worker_activities(self, now: float, grace_since: float) -> list[Record]:
        """RUNNING activities held by a worker that declared a heartbeat interval and went silent."""

    @abc.abstractmethod
    def release_lost_worker_leases(self, now: float, grace_since: float) -> list[str]: ...

    @abc.abstractmethod
    def activities_held_by(self, worker_id: str) -> list[int]: ...

    @abc.abstractmethod
    def release_worker_leases(self, worker_id: str, now: float) -> list[str]:
        """Give back every workflow-task lease the worker holds (those workflows become dispatchable)."""

    @abc.abstractmethod
    def delete_worker(self, worker_id: str) -> bool: ...

    # --- timers, signals, side effects, snapshots ------------------------------------------------
    @abc.abstractmethod
    def insert_timer(self, wf_id: str, seq: int, fire_at: float) -> int | None:
        """None if a timer with that seq exists (idempotent)."""

    @abc.abstractmethod
    def due_timers(self, now: float, limit: int = 500) -> list[Record]: ...

    @abc.abstractmethod
    def mark_timer_fired(self, timer_id: int) -> bool: ...

    @abc.abstractmethod
    def cancel_timers(self, wf_id: str) -> int: ...

    @abc.abstractmethod
    def next_timer_due(self) -> float | None: ...

    @abc.abstractmethod
    def insert_signal(self, wf_id: str, name: str, payload: Any, now: float) -> None: ...

    @abc.abstractmethod
    def insert_side_effect(self, wf_id: str, seq: int, name: str, value: Any) -> bool:
        """False if that seq is already recorded (first value wins)."""

    @abc.abstractmethod
    def upsert_snapshot(self, wf_id: str, event_seq: int, state: Any, now: float) -> None: ...

    @abc.abstractmethod
    def get_snapshot(self, wf_id: str) -> Record | None: ...

    # --- schedules ----------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_schedule(self, rec: Record) -> bool: ...

    @abc.abstractmethod
    def get_schedule(self, namespace: str, name: str) -> Record | None: ...

    @abc.abstractmethod
    def list_schedules(self, namespace: str | None) -> list[Record]: ...

    @abc.abstractmethod
    def update_schedule(self, namespace: str, name: str, **fields: Any) -> None: ...

    @abc.abstractmethod
    def delete_schedule(self, namespace: str, name: str) -> bool: ...

    @abc.abstractmethod
    def due_schedules(self, now: float) -> list[Record]: ...

    @abc.abstractmethod
    def next_schedule_due(self) -> float | None: ...

    @abc.abstractmethod
    def schedules_with_queued_fires(self) -> list[Record]: ...

    # --- workers and queues --------------------------------------------------------------------
    @abc.abstractmethod
    def insert_worker(self, rec: Record) -> None: ...

    @abc.abstractmethod
    def get_worker(self, worker_id: str) -> Record | None: ...

    @abc.abstractmethod
    def touch_worker(self, worker_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    def touch_workers(self, seen: list[tuple[str, float]]) -> int: ...

    @abc.abstractmethod
    def list_workers(self, namespace: str | None) -> list[Record]: ...

    @abc.abstractmethod
    def reap_workers(self, cutoff: float) -> int:
        """Delete workers silent since `cutoff`, except those with a declared heartbeat interval that still
        hold a RUNNING activity or a lease (lost-worker recovery needs their row); returns how many."""

    @abc.abstractmethod
    def oldest_worker_heartbeat(self) -> float | None: ...

    @abc.abstractmethod
    def queue_stats(self, namespace: str) -> list[Record]: ...

    # --- api keys ---------------------------------------------------------------------------
    @abc.abstractmethod
    def insert_api_key(self, key_hash: str, prefix: str, label: str | None, now: float) -> None: ...

    @abc.abstractmethod
    def list_api_keys(self) -> list[Record]: ...

    @abc.abstractmethod
    def find_api_key(self, key_hash: str) -> Record | None: ...

    @abc.abstractmethod
    def touch_api_key(self, key_hash: str, now: float) -> None: ...

    @abc.abstractmethod
    def api_keys_by_prefix(self, prefix: str) -> list[Record]: ...

    @abc.abstractmethod
    def delete_api_key(self, key_hash: str) -> bool: ...

    @abc.abstractmethod
    def count_api_keys(self) -> int: ...

    # --- archival -------------------------------------------------------------------------------
    @abc.abstractmethod
    def archivable_workflows(self, before: float, limit: int) -> list[Record]: ...

    @abc.abstractmethod
    def purge_workflow_history(self, wf_id: str, archived_at: float, archive_uri: str | None) -> None: ...

    @abc.abstractmethod
    def delete_workflow(self, wf_id: str) -> None: ...

    # --- metrics ------------------------------------------------------------------------------
    def metrics_gauges(self, now: float) -> Record:
        """Grouped counts for /metrics: {"workflows": [(ns, queue, type, status, n)] for PENDING/RUNNING,
        "ready": [(ns, queue, kind, n, oldest ready time)] for claimable tasks (kind workflow|activity),
        "workers": [(ns, queue, n)]}."""
        raise NotImplementedError


class Store(abc.ABC):
    """A database: transactions, the engine lock, lifecycle."""

    dialect: str = "abstract"
    #: True when several engine instances may share this store (Postgres).
    multi_instance: bool = False
    #: called after each physical COMMIT with (seconds the commit took, logical transactions it covered)
    on_commit: Callable[[float, int], None] | None = None

    @abc.abstractmethod
    def tx(self) -> AbstractContextManager[Tx]:
        """A write transaction: commits on success, rolls back on any exception."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """A read-only view (a consistent snapshot where the backend offers one)."""

    def is_transient(self, exc: BaseException) -> bool:
        """True when `exc` means the transaction lost a race the database resolved by aborting it
        (deadlock, serialization failure, lock not available): the same work may simply be run again.
        The engine's transaction helper retries on it; nothing outside the store inspects driver errors."""
        return False

    @abc.abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending migrations, then `seed()`; returns the versions applied."""

    def seed(self) -> None:
        """Rows every database has: the `main` namespace (idempotent)."""
        import time

        with self.tx() as tx:
            if tx.get_namespace(DEFAULT_NAMESPACE) is None:
                tx.insert_namespace(DEFAULT_NAMESPACE, float(int(time.time())))

    @abc.abstractmethod
    def acquire_engine_lock(self, instance_id: str, now: float, stale_after: float) -> None:
        """Take the single-engine lock (SQLite); raises EngineLocked if a live engine holds it."""

    @abc.abstractmethod
    def refresh_engine_lock(self, instance_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    def release_engine_lock(self, instance_id: str) -> None: ...

    def try_leadership(self) -> bool:
        """True if this instance may run singleton loops (always, for single-instance stores)."""
        return True

    def release_leadership(self) -> None:
        return None

    def listen(
        self, callback: Callable[[str, str], None]
    ) -> None:  # pragma: no cover - multi-instance stores
        """Deliver cross-instance notifications to `callback(channel, payload)` (Postgres)."""
        return None

    def notify(self, channel: str, payload: str) -> None:
        """Publish a cross-instance notification (no-op on single-instance stores)."""
        return None

    @abc.abstractmethod
    def close(self) -> None: ...

    def describe(self) -> str:
        return self.dialect
