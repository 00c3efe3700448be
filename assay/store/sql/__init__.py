"""The Tx verbs in portable SQL (`?` placeholders), one mixin per area. Dialects subclass SqlTx and override
the few places that differ (placeholders, JSON codecs, search conditions, claim lock clause)."""

from __future__ import annotations

from assay.store.sql.admin import AdminVerbs
from assay.store.sql.core import BOOL_COLUMNS, JSON_COLUMNS, SqlBase, dump_json, load_json
from assay.store.sql.metrics import MetricsVerbs
from assay.store.sql.tasks import TaskVerbs
from assay.store.sql.workflows import WorkflowVerbs


class SqlTx(WorkflowVerbs, TaskVerbs, AdminVerbs, MetricsVerbs, SqlBase):
    """Every Tx verb over a DB-API connection inside an open transaction."""


__all__ = ["BOOL_COLUMNS", "JSON_COLUMNS", "SqlTx", "dump_json", "load_json"]
