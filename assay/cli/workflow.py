"""`assay workflow ...`: start, list, inspect, signal, cancel, terminate, continue and wait."""

from __future__ import annotations

import sys

import click

from assay.cli import common
from assay.cli.common import STATUSES, complete_workflow_ids
from assay.cli.options import examples, group
from assay.errors import UsageError, WaitTimeout
from assay.output import Column, fmt_time
from assay.protocol import DEFAULT_TASK_QUEUE, ExitStatus, WorkflowStatus

WORKFLOW_COLUMNS = [
    Column("ID", "id", "id"),
    Column("TYPE", "workflow_type"),
    Column("STATUS", "status", "id"),
    Column("QUEUE", "task_queue"),
    Column("CREATED", "created_at", "time"),
]
STUCK_COLUMNS = [
    Column("ID", "id", "id"),
    Column("TYPE", "workflow_type"),
    Column("FAILURES", lambda r: (r.get("stuck") or {}).get("failures"), "num"),
    Column("SINCE", lambda r: (r.get("stuck") or {}).get("since"), "time"),
    Column("REASON", lambda r: (r.get("stuck") or {}).get("reason")),
]
CHILD_COLUMNS = [
    Column("ID", "id", "id"),
    Column("TYPE", "workflow_type"),
    Column("STATUS", "status", "id"),
    Column("CREATED", "created_at", "time"),
]
EVENT_COLUMNS = [
    Column("SEQ", "seq", "num"),
    Column("TYPE", "event_type", "id"),
    Column("TIME", "timestamp", "time"),
    Column("PAYLOAD", "payload"),
]

workflow_id_arg = click.argument("workflow_id", metavar="ID", shell_complete=complete_workflow_ids)
status_type = common.CaseFreeChoice(STATUSES)
STATUS_LIST = ", ".join(STATUSES)


@group(
    "workflow",
    "Start, inspect, signal, cancel and wait for workflows.",
    (
        'assay workflow start --type Hello --input \'{"name": "ada"}\'',
        "assay workflow list --status RUNNING",
        "assay workflow wait wf-hello-1 --timeout 60",
    ),
)
def workflow() -> None:
    pass


@workflow.command(
    "start",
    epilog=examples(
        'assay workflow start --type Hello --id hello-1 --input \'{"name": "ada"}\'',
        "assay workflow start --type Report --input @params.json --queue reports",
        "echo '{\"n\": 3}' | assay workflow start --type Count --input -",
    ),
)
@click.option(
    "-t", "--type", "workflow_type", required=True, metavar="TYPE", help="Workflow type (handler name)."
)
@click.option("--id", "workflow_id", metavar="ID", help="Workflow id [default: wf-<type>-<unix ms>].")
@click.option("--input", "input_", metavar="JSON", help="Input: JSON text, @FILE or - for stdin.")
@click.option("--queue", default=DEFAULT_TASK_QUEUE, show_default=True, help="Task queue.")
@click.option("--search-attrs", metavar="JSON", help="Search attributes object: JSON text, @FILE or -.")
def start(
    workflow_type: str, workflow_id: str | None, input_: str | None, queue: str, search_attrs: str | None
) -> None:
    """Start a workflow run.

    Prints the engine's answer: the workflow id, its run id and status PENDING.
    """
    value = common.read_json_arg(input_, "--input")
    attrs = common.read_json_arg(search_attrs, "--search-attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise UsageError("--search-attrs: expected a JSON object")
    common.emit(
        common.client().start_workflow(
            workflow_type, workflow_id, input=value, task_queue=queue, search_attributes=attrs
        )
    )


#: the API's largest page
PAGE_MAX = 1000


@workflow.command(
    "list",
    epilog=examples(
        "assay workflow list",
        "assay workflow list --status FAILED --type Report --limit 100",
        'assay workflow list --search-attrs \'{"env": "prod"}\' --output json',
        "assay workflow list --stuck",
        "assay workflow list --build-id 3f2a9c1b7d4e",
    ),
)
@click.option(
    "--status", type=status_type, metavar="STATUS", help="Only workflows in this status: " + STATUS_LIST + "."
)
@click.option("-t", "--type", "workflow_type", metavar="TYPE", help="Only workflows of this type.")
@click.option("--search-attrs", metavar="JSON", help="Filter on search attributes: JSON object, @FILE or -.")
@click.option(
    "--stuck",
    is_flag=True,
    help="Only workflows whose workflow tasks keep failing (shows why and how often).",
)
@click.option("--build-id", metavar="ID", help="Only workflows a worker with this build id ran tasks of.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most rows to show.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Rows to skip.")
@click.option(
    "--cursor",
    metavar="TOKEN",
    help="Continue where a previous page ended (the token it printed on stderr after 'next page:').",
)
def list_(
    status: str | None,
    workflow_type: str | None,
    search_attrs: str | None,
    stuck: bool,
    build_id: str | None,
    limit: int,
    offset: int,
    cursor: str | None,
) -> None:
    """List workflows of the namespace, newest first. Pages of up to 1000 rows are fetched by keyset
    cursor (stable while new workflows start); on a terminal, the cursor of the next page goes to stderr."""
    attrs = common.read_json_arg(search_attrs, "--search-attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise UsageError("--search-attrs: expected a JSON object")
    if cursor and offset:
        raise UsageError("--offset cannot be combined with --cursor")
    client = common.client()
    rows: list[dict] = []
    while True:
        page = client.list_workflows(
            status=status.upper() if status else None,
            workflow_type=workflow_type,
            search_attrs=attrs,
            limit=min(PAGE_MAX, limit - len(rows)),
            offset=(offset or None) if cursor is None else None,
            stuck=True if stuck else None,
            build_id=build_id,
            cursor=cursor,
        )
        rows += page
        cursor = client.next_cursor()
        if cursor is None or len(rows) >= limit:
            break
    common.emit(rows, STUCK_COLUMNS if stuck else WORKFLOW_COLUMNS)
    if cursor and sys.stderr.isatty():
        click.echo(f"next page: --cursor {cursor}", err=True)


@workflow.command(
    "describe",
    epilog=examples(
        "assay workflow describe wf-hello-1", "assay workflow describe wf-hello-1 -o json | jq .result"
    ),
)
@workflow_id_arg
def describe(workflow_id: str) -> None:
    """Show one workflow record (status, input, result, error, timestamps)."""
    common.emit(common.client().describe_workflow(workflow_id))


@workflow.command(
    "state",
    epilog=examples("assay workflow state wf-approval-7", "assay workflow state wf-approval-7 progress"),
)
@workflow_id_arg
@click.argument("name", required=False, metavar="[NAME]")
def state(workflow_id: str, name: str | None) -> None:
    """Show the latest state snapshot a workflow published (or one query NAME of it).

    The answer is the engine's object: {"state": ..., "event_seq": N, "created_at": T}, or
    {"value": ...} for a NAME.
    """
    common.emit(common.client().workflow_state(workflow_id, name))


def _follow_line(ev: dict, fmt: str, width: int | None) -> str:
    from assay.output import cell, to_json, to_yaml

    if fmt == "yaml":
        return to_yaml(ev, document=True)
    if fmt != "table":
        return to_json(ev, compact=True)
    line = f"{ev.get('seq', ''):>4}  {str(ev.get('event_type', '')):<26}  {fmt_time(ev.get('timestamp'))}"
    payload = ev.get("payload")
    if payload is not None:
        text = cell(payload)
        if width and len(line) + 2 + len(text) > width:
            text = text[: max(8, width - len(line) - 3)] + "…"
        line += "  " + text
    return line


@workflow.command(
    "events", epilog=examples("assay workflow events wf-hello-1", "assay workflow events wf-hello-1 --follow")
)
@workflow_id_arg
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events as they happen; end when the workflow completes, fails or is "
    "cancelled (JSON output is then one object per line, YAML one document per event).",
)
def events(workflow_id: str, follow: bool) -> None:
    """Show a workflow's event history (oldest first)."""
    c = common.client()
    fmt = common.output_format()
    if not follow:
        rows = c.workflow_events(workflow_id)
        if not rows:
            c.describe_workflow(workflow_id)  # an unknown id is an error, not an empty history
        common.emit(rows, EVENT_COLUMNS)
        return
    con = common.console()
    width = con.width() if con.out_is_tty else None
    if fmt == "table":
        con.print(f"{'SEQ':>4}  {'TYPE':<26}  TIME                  PAYLOAD")
    for ev in c.follow_events(workflow_id):
        con.print(_follow_line(ev, fmt, width))


@workflow.command("children", epilog=examples("assay workflow children wf-parent-1"))
@workflow_id_arg
def children(workflow_id: str) -> None:
    """List the child workflows a workflow started."""
    common.emit(common.client().workflow_children(workflow_id), CHILD_COLUMNS)


@workflow.command(
    "signal",
    epilog=examples(
        'assay workflow signal wf-approval-7 approve \'{"by": "ada"}\'',
        "assay workflow signal wf-approval-7 approve @decision.json",
        "assay workflow signal wf-approval-7 nudge",
    ),
)
@workflow_id_arg
@click.argument("name")
@click.argument("payload", required=False, metavar="[PAYLOAD]")
def signal(workflow_id: str, name: str, payload: str | None) -> None:
    """Send signal NAME to a workflow, with an optional JSON PAYLOAD (JSON text, @FILE or -)."""
    value = common.read_json_arg(payload, "payload")
    common.client().signal_workflow(workflow_id, name, value)
    common.message(f"signal '{name}' sent to {workflow_id}", {"workflow_id": workflow_id, "signal": name})


@workflow.command("cancel", epilog=examples("assay workflow cancel wf-hello-1 --reason 'not needed'"))
@workflow_id_arg
@click.option("--reason", help="Why (recorded in the WorkflowCancelRequested event).")
def cancel(workflow_id: str, reason: str | None) -> None:
    """Ask a workflow to cancel. Its worker runs the cancellation; a PENDING run ends at once."""
    common.client().cancel_workflow(workflow_id, reason)
    common.message(f"cancel requested for {workflow_id}", {"workflow_id": workflow_id})


@workflow.command("terminate", epilog=examples("assay workflow terminate wf-stuck-3 --reason 'bad deploy'"))
@workflow_id_arg
@click.option("--reason", help="Why (becomes the workflow's error) [default: terminated].")
def terminate(workflow_id: str, reason: str | None) -> None:
    """Stop a workflow now, without running any workflow code. It ends FAILED."""
    common.client().terminate_workflow(workflow_id, reason)
    common.message(f"{workflow_id} terminated", {"workflow_id": workflow_id})


@workflow.command(
    "continue-as-new", epilog=examples("assay workflow continue-as-new wf-loop-1 --input '{\"cursor\": 500}'")
)
@workflow_id_arg
@click.option("--input", "input_", metavar="JSON", help="Input of the new run: JSON text, @FILE or -.")
@click.option("--new-id", metavar="ID", help="Id of the new run [default: derived by the engine].")
def continue_as_new(workflow_id: str, input_: str | None, new_id: str | None) -> None:
    """Close a workflow run and start a fresh one of the same type with new input."""
    value = common.read_json_arg(input_, "--input")
    common.emit(common.client().continue_as_new(workflow_id, value, new_id))


def _nobody_polls(c, workflow_id: str) -> str | None:
    """Why a PENDING workflow may never start: no registered worker polls its queue, or none of those
    that do declared its type. None when one might take it (or when the registry cannot be read)."""
    try:
        wf = c.describe_workflow(workflow_id)
        queue, wtype = wf.get("task_queue"), wf.get("workflow_type")
        on_queue = [w for w in c.list_workers(wf.get("namespace")) if w.get("task_queue") == queue]
    except Exception:  # noqa: BLE001 - a hint, never a second error
        return None
    # a worker that did not declare its types (the field is optional) could take any type
    if any(w.get("workflows") is None or wtype in w["workflows"] for w in on_queue):
        return None
    return f"no worker is polling queue {queue!r} for type {wtype!r} (see 'assay worker list')"


@workflow.command(
    "wait",
    epilog=examples(
        "assay workflow wait wf-hello-1",
        "assay workflow wait wf-hello-1 --timeout 30 && echo done",
        "assay workflow wait wf-approval-7 --target RUNNING",
    ),
)
@workflow_id_arg
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECS",
    help="Give up after this many seconds (exit 2).",
)
@click.option(
    "--target",
    type=status_type,
    metavar="STATUS",
    help="Wait for this status instead of any terminal one (" + STATUS_LIST + ").",
)
def wait(workflow_id: str, timeout: float, target: str | None) -> None:
    """Block until a workflow finishes (or reaches --target).

    \b
    Exit status: 0 COMPLETED (or the --target status), 1 FAILED / CANCELLED / other terminal
    status or an HTTP error, 2 timeout. Follows the engine's event stream, so it returns as soon
    as the status changes. Prints the workflow record (table: "ID STATUS").
    """
    from assay.cli.spinner import Spinner

    c = common.client()
    fmt = common.output_format()
    con = common.console()
    target = target.upper() if target else None
    spin = Spinner(f"waiting for {workflow_id}", con.err, enabled=con.err_is_tty)
    try:
        record = c.wait(
            workflow_id, timeout=timeout, target=target, on_tick=spin.update if spin.enabled else None
        )
    except WaitTimeout as e:
        why = _nobody_polls(c, workflow_id) if e.detail.get("last_status") == WorkflowStatus.PENDING else None
        if why is None:
            raise
        raise WaitTimeout(f"{e.message}: {why}", **e.detail) from None
    finally:
        spin.clear()
    status = str(record.get("status", "")).upper()
    if fmt == "table":
        con.print(f"{record.get('id', workflow_id)}  {status}")
    else:
        common.emit(record)
    ok = status == target if target else status == WorkflowStatus.COMPLETED
    if not ok:
        why = f": {record['error']}" if record.get("error") else ""
        goal = f" before reaching {target}" if target else ""
        con.error(f"Error: workflow {workflow_id} ended {status}{goal}{why}")
        click.get_current_context().exit(ExitStatus.FAILURE)


@workflow.command(
    "export",
    epilog=examples(
        "assay workflow export order-17 > order-17.history.json",
        "assay replay worker.lua --history order-17.history.json",
    ),
)
@workflow_id_arg
def export(workflow_id: str) -> None:
    """Print a workflow's replayable history: its record and its events, as one JSON document.

    The format ("assay-history/1": {"format", "workflow", "events"}) is described in
    docs/versioning.md; `assay replay --history FILE` reads it. Always JSON, whatever --output says.
    """
    from assay.output import to_json

    click.echo(to_json(common.client().export_workflow(workflow_id)))


@workflow.command(
    "reset",
    epilog=examples(
        "assay workflow reset order-17 --to-last-task",
        "assay workflow reset order-17 --to-event 6",
    ),
)
@workflow_id_arg
@click.option(
    "--to-event", type=click.IntRange(min=1), metavar="SEQ", help="Keep the history up to this event."
)
@click.option(
    "--to-last-task",
    is_flag=True,
    help="Keep the history up to the event that started the last workflow task (re-run that task).",
)
def reset(workflow_id: str, to_event: int | None, to_last_task: bool) -> None:
    """Start a new run from a point of this workflow's history, with the code deployed now.

    The new run's history is this one's up to the chosen event (signals received later are delivered
    again); it continues from there. This run ends FAILED (terminated) with the reason
    "reset to <new id>"; both records link to each other (reset_to / reset_from). Prints the new run.
    """
    if (to_event is None) == (not to_last_task):
        raise UsageError("give exactly one of --to-event SEQ or --to-last-task")
    rec = common.client().reset_workflow(workflow_id, to_event=to_event, to_last_task=to_last_task)
    common.message(f"{workflow_id} reset to {rec.get('id')}", record=rec)
