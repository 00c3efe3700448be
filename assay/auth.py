"""Authentication: API keys (SHA-256 at rest, constant-time compare). JWT/OIDC and the request gate
are added by the auth issue; the key helpers live here so the CLI and API share them."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from assay.errors import Conflict, NotFound
from assay.store.base import Record, Store


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def key_prefix(plaintext: str) -> str:
    body = plaintext[len("assay_") :] if plaintext.startswith("assay_") else plaintext
    return "assay_" + body[:8] + "..."


def mint_api_key(store: Store, label: str | None, now: float) -> dict[str, Any]:
    plaintext = "assay_" + secrets.token_hex(32)
    prefix = key_prefix(plaintext)
    with store.tx() as tx:
        tx.insert_api_key(hash_key(plaintext), prefix, label, now)
    return {"plaintext": plaintext, "prefix": prefix, "label": label, "created_at": now}


def public_key(rec: Record) -> dict[str, Any]:
    return {
        "prefix": rec["prefix"],
        "label": rec["label"],
        "created_at": rec["created_at"],
        "last_used_at": rec.get("last_used_at"),
    }


def list_api_keys(store: Store) -> list[dict[str, Any]]:
    with store.read() as tx:
        return [public_key(r) for r in tx.list_api_keys()]


def find_by_label(store: Store, label: str) -> Record | None:
    with store.read() as tx:
        for r in tx.list_api_keys():
            if r["label"] == label:
                return r
    return None


def revoke_api_key(store: Store, prefix: str) -> dict[str, Any]:
    """Delete the one key with this display prefix (with or without the trailing '...')."""
    shown = prefix if prefix.endswith("...") else prefix + "..."
    with store.tx() as tx:
        matches = tx.api_keys_by_prefix(shown)
        if not matches:
            raise NotFound(f"not found: api key {prefix}")
        if len(matches) > 1:
            raise Conflict(f"prefix {prefix} matches {len(matches)} keys; refusing to revoke more than one")
        tx.delete_api_key(matches[0]["key_hash"])
        return public_key(matches[0])


def verify_api_key(store: Store, token: str, now: float) -> bool:
    digest = hash_key(token)
    with store.read() as tx:
        rec = tx.find_api_key(digest)
    if rec is None or not secrets.compare_digest(rec["key_hash"], digest):
        return False
    with store.tx() as tx:
        tx.touch_api_key(digest, now)
    return True
