"""Schedule routes: CRUD, pause/resume, trigger now."""

from __future__ import annotations

from assay import records
from assay.api.http import Router, empty, json_response, q_str, read_body
from assay.engine import Engine
from assay.protocol import DEFAULT_NAMESPACE

NS = [("namespace", "string", f"namespace (default {DEFAULT_NAMESPACE})")]


def register(r: Router, engine: Engine) -> None:
    mb = r.max_body

    def out(rec):
        return records.schedule(rec, engine.now())

    @r(
        "POST",
        "/schedules",
        "Create a cron schedule",
        "schedules",
        body="CreateSchedule",
        body_required=True,
        responses={201: "Schedule", 400: "Error", 409: "Error"},
        example={
            "name": "nightly",
            "workflow_type": "Report",
            "cron_expr": "0 0 2 * * *",
            "timezone": "Europe/Berlin",
            "input": {"lookback_hours": 24},
        },
    )
    def create() -> str:
        return json_response(out(engine.create_schedule(read_body(mb))), 201)

    @r(
        "GET",
        "/schedules",
        "List schedules (by name)",
        "schedules",
        query=NS,
        responses={200: "ScheduleList"},
    )
    def list_() -> str:
        return json_response([out(s) for s in engine.list_schedules(q_str("namespace", DEFAULT_NAMESPACE))])

    @r(
        "GET",
        "/schedules/{name}",
        "Describe a schedule",
        "schedules",
        query=NS,
        responses={200: "Schedule", 404: "Error"},
    )
    def describe(name: str) -> str:
        return json_response(out(engine.get_schedule(q_str("namespace", DEFAULT_NAMESPACE), name)))

    @r(
        "PATCH",
        "/schedules/{name}",
        "Change a schedule (next_run_at is recomputed from now)",
        "schedules",
        query=NS,
        body="PatchSchedule",
        responses={200: "Schedule", 400: "Error", 404: "Error"},
    )
    def patch(name: str) -> str:
        return json_response(
            out(engine.patch_schedule(q_str("namespace", DEFAULT_NAMESPACE), name, read_body(mb)))
        )

    @r(
        "DELETE",
        "/schedules/{name}",
        "Delete a schedule (its runs are left alone)",
        "schedules",
        query=NS,
        responses={200: None, 404: "Error"},
    )
    def delete(name: str) -> str:
        engine.delete_schedule(q_str("namespace", DEFAULT_NAMESPACE), name)
        return empty(200)

    @r(
        "POST",
        "/schedules/{name}/pause",
        "Pause a schedule",
        "schedules",
        query=NS,
        responses={200: "Schedule", 404: "Error"},
    )
    def pause(name: str) -> str:
        read_body(mb)
        return json_response(
            out(engine.set_schedule_paused(q_str("namespace", DEFAULT_NAMESPACE), name, True))
        )

    @r(
        "POST",
        "/schedules/{name}/resume",
        "Resume a schedule (no backfill: next run computed from now)",
        "schedules",
        query=NS,
        responses={200: "Schedule", 404: "Error"},
    )
    def resume(name: str) -> str:
        read_body(mb)
        return json_response(
            out(engine.set_schedule_paused(q_str("namespace", DEFAULT_NAMESPACE), name, False))
        )

    @r(
        "POST",
        "/schedules/{name}/trigger",
        "Start a run of the schedule now",
        "schedules",
        query=NS,
        responses={201: "StartResponse", 404: "Error"},
    )
    def trigger(name: str) -> str:
        read_body(mb)
        rec = engine.trigger_schedule(q_str("namespace", DEFAULT_NAMESPACE), name)
        return json_response(records.start_response(rec), 201)
