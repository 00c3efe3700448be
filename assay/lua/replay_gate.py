"""`assay replay` for Lua worker files: load the file in replay mode (connect and listen do nothing, so no
engine traffic and no worker), then replay each exported history through its workflow handlers."""

from __future__ import annotations

import json
from typing import Any

from assay.lua.runtime import Runtime, ScriptError


def replay_lua(path: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per history: {"ok": bool, "outcome": str, "divergence": {...} | None, "error": str | None}.
    Raises ScriptError when the worker file itself does not load."""
    rt = Runtime(path=path, replay=True)
    rt.run()
    worker = rt.lua.globals().require(b"assay.workflow.worker")
    check = worker[b"replay_check"]
    out = []
    for doc in docs:
        try:
            raw = check(json.dumps(doc).encode())
            res = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except Exception as e:  # a Lua error outside the handler (the harness itself)
            res = {"ok": False, "outcome": "error", "error": str(e)}
        out.append(res)
    return out


__all__ = ["ScriptError", "replay_lua"]
