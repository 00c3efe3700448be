"""Archival and retention steps of the engine (no S3 here: the archiver in assay/archive.py uploads)."""

from __future__ import annotations

from typing import Any

from assay.engine import states
from assay.engine.core import Service
from assay.errors import Gone
from assay.store.base import Record


class ArchiveOps(Service):
    #: set by the server when archival is on: an object with fetch(uri) -> bundle dict
    archive_reader: Any = None

    def archivable_workflows(self, older_than_secs: float, limit: int) -> list[Record]:
        with self.store.read() as tx:
            return tx.archivable_workflows(self.now() - older_than_secs, limit)

    def export_workflow(self, wf_id: str) -> dict[str, Any]:
        """Everything the archive keeps of a workflow, read in one consistent snapshot (store records)."""
        with self.store.read() as tx:
            wf = self._get_wf(tx, wf_id)
            return {
                "workflow": wf,
                "events": tx.list_events(wf_id),
                "activities": tx.list_activities(wf_id),
                "snapshot": tx.get_snapshot(wf_id),
            }

    def mark_archived(self, wf_id: str, uri: str) -> bool:
        """Purge a verified-uploaded workflow's history in one transaction, keeping the row as a stub."""
        with self._tx() as (tx, _fx):
            wf = tx.get_workflow(wf_id)
            if wf is None or wf["archived_at"] is not None or not states.is_terminal(wf["status"]):
                return False
            tx.purge_workflow_history(wf_id, self.now(), uri)
            return True

    def delete_expired(self, older_than_secs: float, limit: int = 500) -> int:
        """Local retention: delete terminal workflows (and their history) finished long enough ago."""
        n = 0
        with self._tx() as (tx, _fx):
            for wf in tx.archivable_workflows(self.now() - older_than_secs, limit):
                tx.delete_workflow(wf["id"])
                n += 1
        return n

    def archived_events(self, wf: Record) -> list[dict[str, Any]]:
        """Events of an archived workflow, read back from the archive (410 when it cannot be reached)."""
        uri = wf.get("archive_uri")
        if self.archive_reader is None or not uri:
            raise Gone(
                f"workflow {wf['id']} is archived at {uri}; archive access is not configured", archive_uri=uri
            )
        try:
            bundle = self.archive_reader.fetch(uri)
        except Exception as e:
            raise Gone(
                f"workflow {wf['id']} is archived at {uri} and the archive is unreachable: {e}",
                archive_uri=uri,
            ) from None
        return list(bundle.get("events") or [])
