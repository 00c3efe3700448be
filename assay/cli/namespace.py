"""`assay namespace ...`: create, list, describe and delete namespaces."""

from __future__ import annotations

import click

from assay.cli import common
from assay.cli.common import complete_namespaces
from assay.cli.options import examples, group
from assay.output import Column

NAMESPACE_COLUMNS = [Column("NAME", "name", "id"), Column("CREATED", "created_at", "time")]

name_arg = click.argument("name", shell_complete=complete_namespaces)


@group(
    "namespace",
    "Manage namespaces (isolated sets of workflows, schedules and workers).",
    ("assay namespace create billing", "assay namespace list", "assay -n billing workflow list"),
)
def namespace() -> None:
    pass


@namespace.command("create", epilog=examples("assay namespace create billing"))
@click.argument("name")
def create(name: str) -> None:
    """Create namespace NAME."""
    common.client().create_namespace(name)
    common.message(f"namespace '{name}' created", {"name": name})


@namespace.command("list", epilog=examples("assay namespace list"))
def list_() -> None:
    """List all namespaces."""
    common.emit(common.client().list_namespaces(), NAMESPACE_COLUMNS)


@namespace.command("describe", epilog=examples("assay namespace describe billing"))
@name_arg
def describe(name: str) -> None:
    """Show a namespace's counts: workflows by status, schedules, workers."""
    common.emit(common.client().describe_namespace(name))


@namespace.command("delete", epilog=examples("assay namespace delete billing"))
@name_arg
def delete(name: str) -> None:
    """Delete namespace NAME (`main` cannot be deleted)."""
    common.client().delete_namespace(name)
    common.message(f"namespace '{name}' deleted", {"name": name})
