"""nightly-report in Python: a cron-fired workflow with side effects and child workflows.

Run: assay run worker.py   (or: python worker.py; with `assay serve` running), then create the schedule
with `assay run schedule.lua` (README.md). Same workflow and activity names as worker.lua.
"""

import datetime
import logging
import os
import secrets

from assay import workflow

log = logging.getLogger("assay.examples.nightly")


# Parent: fired by the schedule.
@workflow.define("NightlyReport")
def nightly_report(ctx, input):
    region = (input or {}).get("region") or "eu-west-1"
    # A fresh report id is non-deterministic, so it is a side effect: recorded once in the history and
    # replayed from there, even if this worker crashes right after generating it.
    report_id = ctx.side_effect(
        "report_id",
        lambda: (
            "rep-"
            + datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
            + "-"
            + secrets.token_hex(3)
        ),
    )
    ctx.upsert_search_attributes({"report_id": report_id, "region": region})

    scan = ctx.execute_activity("scan_anomalies", {"region": region, "report_id": report_id})

    # One child per anomaly. Child ids derive from the report id, so a replay finds the same children.
    handled = []
    for i, anomaly in enumerate(scan["anomalies"], 1):
        handled.append(
            ctx.start_child_workflow(
                "HandleAnomaly",
                {"anomaly": anomaly, "report_id": report_id},
                workflow_id=f"{report_id}-anomaly-{i}",
            )
        )

    summary = ctx.execute_activity("publish_report", {"report_id": report_id, "handled": handled})
    return {
        "report_id": report_id,
        "region": region,
        "anomalies_handled": len(handled),
        "published": summary["url"],
    }


# Child: handles one anomaly.
@workflow.define("HandleAnomaly")
def handle_anomaly(ctx, input):
    result = ctx.execute_activity("remediate", input["anomaly"], max_attempts=3)
    return {"id": input["anomaly"]["id"], "fixed": result["fixed"], "action": result["action"]}


# Activities: deterministic stand-ins for a real scan, fix and publish.
@workflow.activity("scan_anomalies")
def scan_anomalies(actx, input):
    log.info("scanning %s for report %s", input["region"], input["report_id"])
    return {
        "anomalies": [
            {"id": "a-1", "kind": "stale_lock"},
            {"id": "a-2", "kind": "missing_index"},
            {"id": "a-3", "kind": "orphaned_record"},
        ]
    }


FIXES = {"stale_lock": "released lock", "missing_index": "created index", "orphaned_record": "archived row"}


@workflow.activity("remediate")
def remediate(actx, anomaly):
    return {"fixed": True, "action": FIXES.get(anomaly["kind"], "escalated")}


@workflow.activity("publish_report")
def publish_report(actx, input):
    return {"url": "https://reports.example/" + input["report_id"]}


if __name__ == "__main__":
    workflow.connect(os.environ.get("ASSAY_ENGINE_URL", "http://127.0.0.1:8080"))
    log.info("nightly-report worker ready; create the schedule to fire it (see README.md)")
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"))
