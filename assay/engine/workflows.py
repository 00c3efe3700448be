"""Workflow lifecycle: start, read, signal, cancel, terminate, continue-as-new, children, query state."""

from __future__ import annotations

import re
from typing import Any

from assay.engine import states
from assay.engine.core import EngineCore, Service
from assay.engine.lifecycle import Lifecycle
from assay.engine.notify import Effects
from assay.errors import BadRequest, Conflict, NotFound
from assay.protocol import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, EventType, SseEvent, WorkflowStatus
from assay.store.base import Record, Tx

_CONTINUED = re.compile(r"-continued-\d+(?:-\d+)?$")


class WorkflowOps(Service):
    def __init__(self, core: EngineCore, life: Lifecycle) -> None:
        super().__init__(core)
        self.life = life

    def start_workflow(
        self,
        *,
        workflow_type: str,
        workflow_id: str,
        namespace: str = DEFAULT_NAMESPACE,
        task_queue: str = DEFAULT_TASK_QUEUE,
        input: Any = None,
        search_attributes: Any = None,
    ) -> Record:
        with self._tx() as (tx, fx):
            return self.life.create_workflow(
                tx,
                fx,
                workflow_id=workflow_id,
                workflow_type=workflow_type,
                namespace=namespace,
                task_queue=task_queue,
                input=input,
                search_attributes=search_attributes,
            )

    def get_workflow(self, wf_id: str) -> Record:
        with self.store.read() as tx:
            return self._get_wf(tx, wf_id)

    def list_workflows(self, **filters: Any) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_workflows(**filters)

    def list_events(self, wf_id: str, after_seq: int = 0, *, limit: int | None = None) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_events(wf_id, after_seq, limit=limit)

    def list_children(self, wf_id: str) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_children(wf_id)

    def signal(self, wf_id: str, name: str, payload: Any) -> None:
        with self._tx() as (tx, fx):
            wf = self._get_wf(tx, wf_id)
            if states.is_terminal(wf["status"]):
                raise Conflict(
                    f"workflow {wf_id} is {wf['status']}; signal '{name}' not delivered",
                    workflow_id=wf_id,
                    status=wf["status"],
                )
            now = self.now()
            tx.insert_signal(wf_id, name, payload, now)
            event = {"signal": name, "payload": payload}
            tx.append_event(wf_id, EventType.SignalReceived, event, now, dispatchable=True)
            fx.ready_workflow(wf)
            fx.sse(SseEvent.signal_received, wf, signal=name)

    def cancel(self, wf_id: str, reason: str | None = None) -> None:
        with self._tx() as (tx, fx):
            wf = self._live_wf(tx, wf_id)
            self.life.request_cancel(tx, fx, wf, reason)

    def terminate(self, wf_id: str, reason: str | None = None) -> None:
        with self._tx() as (tx, fx):
            wf = self._live_wf(tx, wf_id)
            self.life.terminate(tx, fx, wf, reason)

    def _live_wf(self, tx: Tx, wf_id: str) -> Record:
        wf = self._get_wf(tx, wf_id)
        if states.is_terminal(wf["status"]):
            raise Conflict(
                f"workflow {wf_id} is already {wf['status']}", workflow_id=wf_id, status=wf["status"]
            )
        return wf

    def continue_as_new(self, wf_id: str, input: Any = None, new_id: str | None = None) -> Record:
        with self._tx() as (tx, fx):
            old = self._get_wf(tx, wf_id)
            return self._continue_as_new(tx, fx, old, input, new_id)

    def _continue_as_new(self, tx: Tx, fx: Effects, old: Record, input: Any, new_id: str | None) -> Record:
        if new_id is not None and new_id.strip():
            if tx.get_workflow(new_id) is not None:
                raise Conflict(f"workflow already exists: {new_id}", workflow_id=new_id)
        else:
            new_id = self._derive_continued_id(tx, old["id"])
        sa = old.get("search_attributes")
        # (a run that already ended has told its parent; a new run from it starts a fresh, parentless chain)
        inherit = old.get("parent_id") if not states.is_terminal(old["status"]) else None
        new = self.life.create_workflow(
            tx,
            fx,
            workflow_id=new_id,
            workflow_type=old["workflow_type"],
            namespace=old["namespace"],
            task_queue=old["task_queue"],
            input=input,
            search_attributes=sa,
            stamp=False,
            # a child's chain stays the child: the parent hears once, under the id it started, when it ends
            parent_id=inherit,
            child_ref=(old.get("child_ref") or old["id"]) if inherit else None,
        )
        if not states.is_terminal(old["status"]):
            marker = {"continued_as_new": new_id}
            self.life.finish(
                tx,
                fx,
                old,
                WorkflowStatus.COMPLETED,
                event_type=EventType.WorkflowCompleted,
                payload=marker,
                result=marker,
                sse=SseEvent.workflow_completed,
                notify_parent=False,
            )
        return new

    def _derive_continued_id(self, tx: Tx, old_id: str) -> str:
        base = _CONTINUED.sub("", old_id)
        stamp = int(self.now())
        candidate = f"{base}-continued-{stamp}"
        n = 1
        while tx.get_workflow(candidate) is not None:
            n += 1
            candidate = f"{base}-continued-{stamp}-{n}"
        return candidate

    def get_state(self, wf_id: str, name: str | None = None) -> Record:
        with self.store.read() as tx:
            snap = tx.get_snapshot(wf_id)
        if snap is None:
            raise NotFound(f"not found: state for workflow {wf_id}")
        state = snap["state_json"]
        if name is None:
            return {"state": state, "event_seq": snap["event_seq"], "created_at": snap["created_at"]}
        if not isinstance(state, dict) or name not in state:
            raise NotFound(f"not found: query '{name}' for workflow {wf_id}")
        return {"value": state[name], "event_seq": snap["event_seq"], "created_at": snap["created_at"]}

    # --- namespaces ---------------------------------------------------------------------------
    def create_namespace(self, name: str) -> Record:
        now = self.now()
        with self._tx() as (tx, _fx):
            if not tx.insert_namespace(name, now):
                raise Conflict(f"namespace already exists: {name}", namespace=name)
            ns = tx.get_namespace(name)
            assert ns is not None
            return ns

    def list_namespaces(self) -> list[Record]:
        with self.store.read() as tx:
            return tx.list_namespaces()

    def namespace_stats(self, name: str) -> Record:
        with self.store.read() as tx:
            if tx.get_namespace(name) is None:
                raise NotFound(f"not found: namespace {name}")
            return tx.namespace_stats(name)

    def delete_namespace(self, name: str) -> None:
        if name == DEFAULT_NAMESPACE:
            raise BadRequest(f"cannot delete the '{DEFAULT_NAMESPACE}' namespace")
        with self._tx() as (tx, _fx):
            if tx.get_namespace(name) is None:
                raise NotFound(f"not found: namespace {name}")
            stats = tx.namespace_stats(name)
            live = stats["running"] + stats["pending"]
            if live:
                raise Conflict(
                    f"namespace {name} still has {live} pending or running workflows; "
                    "cancel or terminate them first",
                    namespace=name,
                )
            tx.delete_namespace(name)
            self.core.registry.forget_namespace(name)  # inside the transaction: no start can see it after
        self.core.registry.forget_namespace(name)
