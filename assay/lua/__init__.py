"""Lua workers and scripts: a lupa (Lua 5.4) runtime, the assay stdlib, and ``assay.workflow``.

``assay run FILE.lua`` (assay/cli/run.py) builds a :class:`Runtime` and runs the script. The stdlib
globals are documented in docs/lua.md; the Lua modules shipped here (``workflow.lua`` ...) are found
by ``require("assay.<name>")`` through importlib.resources, so they also work from a zipapp.
"""

from assay.lua.runtime import Runtime, ScriptError

__all__ = ["Runtime", "ScriptError"]
