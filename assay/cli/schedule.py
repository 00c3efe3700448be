"""`assay schedule ...`: cron schedules that start workflows."""

from __future__ import annotations

import click

from assay.cli import common
from assay.cli.common import OVERLAP_POLICIES, complete_schedule_names
from assay.cli.options import examples, group
from assay.errors import UsageError
from assay.output import Column, fmt_time
from assay.protocol import DEFAULT_OVERLAP_POLICY, DEFAULT_TASK_QUEUE


def _next_run(row: dict) -> object:
    """The next fire time: the engine's first `next_runs` entry (ISO text), else `next_run_at` (epoch)."""
    runs = row.get("next_runs")
    if isinstance(runs, list) and runs:
        return runs[0]
    return row.get("next_run_at")


SCHEDULE_COLUMNS = [
    Column("NAME", "name", "id"),
    Column("TYPE", "workflow_type"),
    Column("CRON", "cron_expr", "id"),
    Column("TZ", "timezone"),
    Column("OVERLAP", "overlap_policy"),
    Column("PAUSED", "paused"),
    Column("NEXT RUN", lambda r: fmt_time(_next_run(r)), "id"),
    Column("LAST WORKFLOW", "last_workflow_id", "id"),
]

name_arg = click.argument("name", shell_complete=complete_schedule_names)
overlap_type = common.CaseFreeChoice(OVERLAP_POLICIES)
OVERLAP_HELP = (
    "What to do when a fire comes while the previous run is still going: "
    + ", ".join(OVERLAP_POLICIES[:-1])
    + f" or {OVERLAP_POLICIES[-1]}."
)


@group(
    "schedule",
    "Manage cron schedules that start workflows.",
    (
        "assay schedule create nightly --type Report --cron '0 0 2 * * *' --timezone Europe/Paris",
        "assay schedule list",
        "assay schedule trigger nightly",
    ),
)
def schedule() -> None:
    pass


@schedule.command("list", epilog=examples("assay schedule list", "assay schedule list -n billing -o json"))
def list_() -> None:
    """List the schedules of the namespace."""
    common.emit(common.client().list_schedules(), SCHEDULE_COLUMNS)


@schedule.command("describe", epilog=examples("assay schedule describe nightly"))
@name_arg
def describe(name: str) -> None:
    """Show one schedule, with its next fire times."""
    common.emit(common.client().describe_schedule(name))


@schedule.command(
    "create",
    epilog=examples(
        "assay schedule create nightly --type Report --cron '0 0 2 * * *'",
        "assay schedule create hourly --type Sync --cron '0 * * * *' --timezone UTC --overlap skip",
        "assay schedule create weekly --type Digest --cron '0 0 9 * * MON' --input @digest.json --queue mail",
    ),
)
@click.argument("name")
@click.option("-t", "--type", "workflow_type", required=True, metavar="TYPE", help="Workflow type to start.")
@click.option(
    "--cron",
    required=True,
    metavar="EXPR",
    help="Cron expression: 6/7 fields (seconds first) or classic 5-field crontab.",
)
@click.option("--timezone", metavar="TZ", help="IANA zone the cron is read in [default: UTC].")
@click.option("--input", "input_", metavar="JSON", help="Input of every run: JSON text, @FILE or -.")
@click.option("--queue", default=DEFAULT_TASK_QUEUE, show_default=True, help="Task queue of the runs.")
@click.option(
    "--overlap",
    type=overlap_type,
    metavar="POLICY",
    help=OVERLAP_HELP + f" [default: {DEFAULT_OVERLAP_POLICY}]",
)
def create(
    name: str,
    workflow_type: str,
    cron: str,
    timezone: str | None,
    input_: str | None,
    queue: str,
    overlap: str | None,
) -> None:
    """Create schedule NAME, which starts a TYPE workflow on every cron fire."""
    value = common.read_json_arg(input_, "--input")
    common.emit(
        common.client().create_schedule(
            name,
            workflow_type,
            cron,
            input=value,
            task_queue=queue,
            timezone=timezone,
            overlap_policy=overlap.lower() if overlap else None,
        )
    )


@schedule.command(
    "patch",
    epilog=examples(
        "assay schedule patch nightly --cron '0 30 2 * * *'",
        "assay schedule patch nightly --input '{\"full\": true}' --overlap queue",
    ),
)
@name_arg
@click.option("--cron", metavar="EXPR", help="New cron expression.")
@click.option("--timezone", metavar="TZ", help="New time zone.")
@click.option("--input", "input_", metavar="JSON", help="New input: JSON text, @FILE or -.")
@click.option("--queue", help="New task queue.")
@click.option("--overlap", type=overlap_type, metavar="POLICY", help=OVERLAP_HELP)
def patch(
    name: str,
    cron: str | None,
    timezone: str | None,
    input_: str | None,
    queue: str | None,
    overlap: str | None,
) -> None:
    """Change some fields of a schedule (the others stay as they are)."""
    value = common.read_json_arg(input_, "--input")
    fields = {
        "cron_expr": cron,
        "timezone": timezone,
        "task_queue": queue,
        "overlap_policy": overlap.lower() if overlap else None,
    }
    if all(v is None for v in fields.values()) and input_ is None:
        raise UsageError(
            "schedule patch: nothing to change (give --cron, --timezone, --input, --queue or --overlap)"
        )
    if input_ is not None:
        fields["input"] = value
    common.emit(common.client().patch_schedule(name, **fields))


@schedule.command("pause", epilog=examples("assay schedule pause nightly"))
@name_arg
def pause(name: str) -> None:
    """Stop a schedule from firing until it is resumed."""
    rec = common.client().pause_schedule(name)
    common.message(f"{name} paused", record=rec)


@schedule.command("resume", epilog=examples("assay schedule resume nightly"))
@name_arg
def resume(name: str) -> None:
    """Let a paused schedule fire again (from now on; missed fires are not made up)."""
    rec = common.client().resume_schedule(name)
    common.message(f"{name} resumed", record=rec)


@schedule.command("trigger", epilog=examples("assay schedule trigger nightly"))
@name_arg
def trigger(name: str) -> None:
    """Start a run of the schedule's workflow now (the cron timetable is unchanged)."""
    common.emit(common.client().trigger_schedule(name))


@schedule.command("delete", epilog=examples("assay schedule delete nightly"))
@name_arg
def delete(name: str) -> None:
    """Delete a schedule. Runs it already started are not affected."""
    common.client().delete_schedule(name)
    common.message(f"{name} deleted", {"name": name})
