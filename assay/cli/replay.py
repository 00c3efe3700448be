"""`assay replay`: the deploy gate. Replays workflow histories through a worker file's workflow code, with
no side effects and no writes to the engine, and reports the first divergence of each."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from assay.cli import common
from assay.cli.common import STATUSES
from assay.cli.options import AssayCommand, examples
from assay.errors import UsageError
from assay.output import Column

RESULT_COLUMNS = [
    Column("RESULT", lambda r: "OK" if r.get("ok") else "DIVERGED" if r.get("divergence") else "ERROR", "id"),
    Column("WORKFLOW", "workflow_id", "id"),
    Column("TYPE", "workflow_type"),
    Column("EVENT", lambda r: (r.get("divergence") or {}).get("event_seq"), "num"),
    Column("DETAIL", "detail"),
]


def _read_history(path: str) -> dict[str, Any]:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--history: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--history: {path} is not JSON: {e}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("workflow"), dict)
        or not isinstance(doc.get("events"), list)
        or not doc["workflow"].get("workflow_type")
    ):
        raise UsageError(
            f'--history: {path} is not an exported history (expected {{"workflow": {{...}}, "events": [...]}}'
            " as written by `assay workflow export`)"
        )
    return doc


def _fetch(
    workflow_ids: tuple[str, ...], workflow_type: str | None, status: str | None, limit: int
) -> list[dict]:
    c = common.client()
    ids = list(workflow_ids)
    if workflow_type:
        rows = c.list_workflows(
            workflow_type=workflow_type, status=status.upper() if status else None, limit=limit
        )
        ids += [r["id"] for r in rows if r["id"] not in ids]
    return [c.export_workflow(i) for i in ids]


def _replay(worker_file: str, docs: list[dict]) -> list[dict]:
    from assay.replay_gate import GateError, replay_file

    ext = os.path.splitext(worker_file)[1].lower()
    if ext not in (".lua", ".py"):
        raise UsageError(f"WORKER_FILE must be a .lua or .py worker file, got {worker_file}")
    try:
        return replay_file(worker_file, docs)
    except GateError as e:
        raise click.ClickException(str(e)) from None


@click.command(
    "replay",
    cls=AssayCommand,
    epilog=examples(
        "assay replay worker.lua --history order-17.history.json",
        "assay replay worker.lua --type Order --status RUNNING",
        "assay replay worker.lua --workflow-id order-17 --workflow-id order-18 -o json",
    ),
)
@click.argument("worker_file", metavar="WORKER_FILE", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--history",
    "histories",
    multiple=True,
    metavar="FILE",
    help="A history written by `assay workflow export` (repeatable).",
)
@click.option(
    "--workflow-id",
    "workflow_ids",
    multiple=True,
    metavar="ID",
    help="Fetch this workflow's history (repeatable).",
)
@click.option(
    "-t", "--type", "workflow_type", metavar="TYPE", help="Fetch the histories of this workflow type."
)
@click.option(
    "--status",
    type=common.CaseFreeChoice(STATUSES),
    metavar="STATUS",
    help="With --type: only workflows in this status (e.g. RUNNING: the ones the new code must continue).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1000),
    default=100,
    show_default=True,
    metavar="N",
    help="With --type: most workflows to fetch (newest first).",
)
def replay(
    worker_file: str,
    histories: tuple[str, ...],
    workflow_ids: tuple[str, ...],
    workflow_type: str | None,
    status: str | None,
    limit: int,
) -> None:
    """Replay workflow histories through WORKER_FILE's workflow code (.lua or .py): the deploy gate.

    Each history runs through the handlers the file defines, with no side effects: activities are not
    run, side effects are not computed, nothing is written to the engine (histories are only read), and
    the file's workflow.connect / workflow.listen do nothing. For each workflow it reports OK, or the
    first divergence: the event seq, what the history has there, and what the code did instead.

    \b
    Exit status: 0 when every history replays cleanly, 1 when one diverges (or the file does not load,
    or the engine cannot be read), 64 on a usage error. Use -o json in CI.
    """
    if status and not workflow_type:
        raise UsageError("--status needs --type")
    if not (histories or workflow_ids or workflow_type):
        raise UsageError("give the histories to replay: --history FILE, --workflow-id ID or --type TYPE")
    docs = [_read_history(h) for h in histories]
    if workflow_ids or workflow_type:
        docs += _fetch(workflow_ids, workflow_type, status, limit)
    results = []
    for doc, res in zip(docs, _replay(worker_file, docs), strict=True):
        wf = doc["workflow"]
        div = res.get("divergence")
        detail = div["message"] if div else res.get("error") or res.get("outcome")
        results.append(
            {
                "workflow_id": wf.get("id"),
                "workflow_type": wf.get("workflow_type"),
                "ok": bool(res.get("ok")),
                "outcome": res.get("outcome"),
                "divergence": div,
                "error": res.get("error"),
                "detail": detail,
            }
        )
    failed = [r for r in results if not r["ok"]]
    fmt = common.output_format()
    if fmt == "table":
        common.emit(results, RESULT_COLUMNS)
        click.echo(
            f"{len(results) - len(failed)} of {len(results)} workflow(s) replay cleanly with {worker_file}",
            err=bool(failed),
        )
    elif fmt == "jsonl":
        common.emit(results)
    else:
        common.emit({"ok": not failed, "worker_file": worker_file, "results": results})
    if failed:
        click.get_current_context().exit(1)
