"""S3 archival of finished workflows (optional: the `s3` extra) and local retention.

Each round (leader only) takes terminal workflows finished more than ASSAY_ARCHIVE_RETENTION_DAYS ago,
uploads `{"format_version": 1, "workflow", "events", "activities", "snapshot"}` to
`s3://<bucket>/<prefix>/<namespace>/<workflow_id>.json`, verifies the upload (HEAD: size and ETag = MD5),
and only then purges the history in one transaction, keeping the workflow row with `archived_at` and
`archive_uri`. A failed upload leaves everything as it was (retried next round); a crash between upload
and purge simply uploads the same key again. Credentials come from boto3's default chain and are never
logged; AWS_ENDPOINT_URL(_S3) points at S3-compatible stores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from assay import records
from assay.config import Settings
from assay.errors import ConfigError

log = logging.getLogger("assay.archive")

FORMAT_VERSION = 1
DAY = 86400.0


def bundle(export: dict[str, Any]) -> dict[str, Any]:
    snap = export["snapshot"]
    return {
        "format_version": FORMAT_VERSION,
        "workflow": records.workflow(export["workflow"]),
        "events": [records.event(e) for e in export["events"]],
        "activities": [records.activity(a) for a in export["activities"]],
        "snapshot": None
        if snap is None
        else {"state": snap["state_json"], "event_seq": snap["event_seq"], "created_at": snap["created_at"]},
    }


class S3Archive:
    """Upload / verify / fetch archive bundles. boto3 is imported only when archival is configured."""

    def __init__(self, bucket: str, prefix: str = "assay/", client: Any = None) -> None:
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ConfigError(
                    "ASSAY_ARCHIVE_S3_BUCKET is set but boto3 is missing: install the extra with  "
                    "pip install 'assay-workflow[s3]'"
                ) from None
            client = boto3.client(
                "s3",
                config=Config(
                    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30
                ),
            )
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, namespace: str, wf_id: str) -> str:
        return f"{self.prefix}/{namespace}/{wf_id}.json" if self.prefix else f"{namespace}/{wf_id}.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def upload(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def verify(self, key: str, body: bytes) -> None:
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        etag = str(head.get("ETag", "")).strip('"')
        if head.get("ContentLength") != len(body) or etag != hashlib.md5(body).hexdigest():  # noqa: S324
            raise RuntimeError(
                f"uploaded object {key} does not match (size {head.get('ContentLength')} "
                f"vs {len(body)}, etag {etag})"
            )

    def fetch(self, uri: str) -> dict[str, Any]:
        bucket, key = uri[len("s3://") :].split("/", 1)
        obj = self.client.get_object(Bucket=bucket, Key=key)
        return json.loads(obj["Body"].read())


class Archiver:
    """One archival + retention round over the engine (driven by ArchiveLoop, or by tests directly)."""

    def __init__(self, engine: Any, settings: Settings, s3: S3Archive | None) -> None:
        self.engine = engine
        self.settings = settings
        self.s3 = s3
        self.archived = 0
        self.failed = 0
        self.deleted = 0

    @classmethod
    def from_settings(cls, engine: Any, settings: Settings) -> Archiver | None:
        s3 = None
        if settings.archive_s3_bucket:
            s3 = S3Archive(settings.archive_s3_bucket, settings.archive_s3_prefix)
        if s3 is None and settings.retention_days is None:
            return None
        return cls(engine, settings, s3)

    def upload_one(self, wf: dict[str, Any]) -> tuple[str, bytes]:
        assert self.s3 is not None
        body = json.dumps(
            bundle(self.engine.export_workflow(wf["id"])),
            separators=(",", ":"),
            ensure_ascii=False,
            sort_keys=True,
        ).encode()
        key = self.s3.key(wf["namespace"], wf["id"])
        self.s3.upload(key, body)
        self.s3.verify(key, body)
        return key, body

    def archive_one(self, wf: dict[str, Any]) -> bool:
        key, _ = self.upload_one(wf)
        return self.engine.mark_archived(wf["id"], self.s3.uri(key))  # type: ignore[union-attr]

    def run_once(self) -> dict[str, int]:
        done = failed = 0
        if self.s3 is not None:
            age = self.settings.archive_retention_days * DAY
            for wf in self.engine.archivable_workflows(age, self.settings.archive_batch_size):
                try:
                    if self.archive_one(wf):
                        done += 1
                except Exception as e:  # left intact; retried next round
                    failed += 1
                    log.warning(
                        "archiving %s failed (kept; retried next round): %s", wf["id"], type(e).__name__
                    )
                    log.debug("archive failure detail for %s: %s", wf["id"], e)
        deleted = 0
        if self.settings.retention_days is not None:
            deleted = self.engine.delete_expired(self.settings.retention_days * DAY)
        self.archived += done
        self.failed += failed
        self.deleted += deleted
        if done or failed or deleted:
            log.info("archive round: %d archived, %d failed, %d deleted by retention", done, failed, deleted)
        return {"archived": done, "failed": failed, "deleted": deleted}
