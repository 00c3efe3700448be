"""Namespaces, workers, queues and API keys."""

from __future__ import annotations

from assay import auth, records
from assay.api.http import Router, empty, json_response, q_str, read_body
from assay.engine import Engine
from assay.engine.validate import as_object, opt_bool, opt_str, req_id
from assay.protocol import DEFAULT_NAMESPACE

NS = [("namespace", "string", f"namespace (default {DEFAULT_NAMESPACE})")]


def register(r: Router, engine: Engine) -> None:
    mb = r.max_body

    @r(
        "POST",
        "/namespaces",
        "Create a namespace",
        "namespaces",
        body="CreateNamespace",
        body_required=True,
        responses={201: "Namespace", 400: "Error", 409: "Error"},
    )
    def create_namespace() -> str:
        b = as_object(read_body(mb))
        return json_response(engine.create_namespace(req_id(b, "name", max_len=200)), 201)

    @r("GET", "/namespaces", "List namespaces", "namespaces", responses={200: "NamespaceList"})
    def list_namespaces() -> str:
        return json_response(engine.list_namespaces())

    @r(
        "GET",
        "/namespaces/{name}",
        "Namespace statistics",
        "namespaces",
        responses={200: "NamespaceStats", 404: "Error"},
    )
    def namespace_stats(name: str) -> str:
        return json_response(engine.namespace_stats(name))

    @r(
        "DELETE",
        "/namespaces/{name}",
        "Delete a namespace (refused while it has live workflows)",
        "namespaces",
        responses={200: None, 400: "Error", 404: "Error", 409: "Error"},
    )
    def delete_namespace(name: str) -> str:
        engine.delete_namespace(name)
        return empty(200)

    @r("GET", "/workers", "Registered workers", "workers", query=NS, responses={200: "WorkerList"})
    def list_workers() -> str:
        return json_response(
            [records.worker(w) for w in engine.list_workers(q_str("namespace", DEFAULT_NAMESPACE))]
        )

    @r(
        "GET",
        "/queues",
        "Per-queue pending/running counts and workers",
        "workers",
        query=NS,
        responses={200: "QueueStatsList"},
    )
    def queues() -> str:
        return json_response(engine.queue_stats(q_str("namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE))

    @r(
        "POST",
        "/api-keys",
        "Mint an API key (open while no key exists)",
        "api-keys",
        auth="bootstrap",
        body="CreateApiKey",
        responses={200: "ApiKey", 201: "ApiKeyCreated", 400: "Error"},
    )
    def create_key() -> str:
        b = as_object(read_body(mb))
        label = opt_str(b, "label", allow_empty=True)
        if opt_bool(b, "idempotent", False) and label is not None:
            existing = auth.find_by_label(engine.store, label)
            if existing is not None:
                return json_response(auth.public_key(existing), 200)
        return json_response(auth.mint_api_key(engine.store, label, engine.now()), 201)

    @r(
        "GET",
        "/api-keys",
        "List API keys (prefix, label, created, last used)",
        "api-keys",
        responses={200: "ApiKeyList"},
    )
    def list_keys() -> str:
        return json_response(auth.list_api_keys(engine.store))

    @r(
        "DELETE",
        "/api-keys/{prefix}",
        "Revoke an API key by its display prefix",
        "api-keys",
        responses={204: None, 404: "Error", 409: "Error"},
    )
    def delete_key(prefix: str) -> str:
        auth.revoke_api_key(engine.store, prefix)
        return empty(204)
