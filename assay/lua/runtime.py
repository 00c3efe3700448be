"""One Lua 5.4 state (lupa) with the assay stdlib, able to run a script file or a code string.

Each Lua state belongs to one thread. ``Runtime.run()`` returns the exit status or raises
``ScriptError`` with the Lua message (``file:line: message``) and the Lua traceback.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from typing import Any

import lupa.lua54 as lua54

from assay.lua import protocol_lua
from assay.lua.natives import collect, raw
from assay.lua.std_data import DataNatives
from assay.lua.std_http import HttpNatives
from assay.lua.std_sys import SysNatives
from assay.lua.worker import WorkerNatives

log = logging.getLogger("assay.lua.runtime")

PACKAGE = "assay.lua"


class ScriptError(Exception):
    """A Lua error (or a load failure) that ended a script."""

    def __init__(self, message: str, lua_traceback: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.lua_traceback = lua_traceback
        self.exit_code = exit_code


def _deny_attributes(obj: Any, attr: Any, is_setting: bool) -> Any:
    raise AttributeError("Python objects are opaque to Lua scripts")


def read_resource(relpath: str) -> bytes | None:
    """Read a file shipped under assay/lua/ (works from a wheel, a checkout or a zipapp)."""
    node = importlib.resources.files(PACKAGE)
    for part in relpath.split("/"):
        node = node.joinpath(part)
    try:
        return node.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, OSError):
        return None


def embedded_module(name: str) -> tuple[bytes, str] | None:
    """``assay.workflow`` -> (source of assay/lua/workflow.lua, chunk name)."""
    if not name.startswith("assay.") or name.startswith("assay._prelude"):
        return None
    if name == protocol_lua.MODULE:
        return protocol_lua.render().encode(), protocol_lua.CHUNK_NAME
    parts = name[len("assay.") :].split(".")
    if not parts or not all(p and p.replace("_", "a").isalnum() for p in parts):
        return None
    base = "/".join(parts)
    for rel in (base + ".lua", base + "/init.lua"):
        src = read_resource(rel)
        if src is not None:
            return src, "@assay/lua/" + rel
    return None


class Runtime:
    def __init__(
        self,
        path: str | None = None,
        code: str | None = None,
        args: list[str] | tuple = (),
        *,
        replica: dict | None = None,
        replay: bool = False,
    ) -> None:
        if (path is None) == (code is None):
            raise ValueError("give exactly one of path or code")
        self.path, self.code, self.args = path, code, list(args)
        self.replica = replica
        self.replay = replay  # `assay replay`: the script only defines handlers (connect/listen do nothing)
        self.lua = lua54.LuaRuntime(
            unpack_returned_tuples=True,
            encoding=None,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attributes,
        )
        self.worker = WorkerNatives(self.lua, self)
        natives: dict[str, Any] = {}
        for obj in (SysNatives(self.lua), DataNatives(self.lua), HttpNatives(self.lua), self.worker):
            natives.update(collect(obj))
        table = self.lua.table()
        for name, fn in natives.items():
            table[raw(name)] = fn
        prelude = read_resource("_prelude.lua")
        if prelude is None:  # pragma: no cover - broken install
            raise ScriptError("assay: the Lua prelude is missing from the package")
        setup = self.lua.globals().load(prelude, b"@assay/lua/_prelude.lua", b"t")
        if isinstance(setup, tuple) or setup is None:  # pragma: no cover - broken install
            raise ScriptError(f"assay: the Lua prelude does not compile: {setup!r}")
        self.script_dir = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
        self._main = setup(table, self._load_module, raw(self.script_dir))

    def _load_module(self, name: Any) -> tuple[bytes, bytes] | None:
        try:
            found = embedded_module(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name))
        except Exception:  # pragma: no cover - defensive: a searcher must not raise a Python error
            log.debug("module lookup failed", exc_info=True)
            return None
        if found is None:
            return None
        return found[0], raw(found[1])

    def source(self) -> tuple[bytes, bytes, str]:
        """(source, chunk name, script name for arg[0])."""
        if self.code is not None:
            return raw(self.code), b"=(command line)", "-e"
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                src = f.read()
        except OSError as e:
            raise ScriptError(f"cannot open {self.path}: {e.strerror or e}") from None
        if src.startswith(b"#"):  # shebang: keep the line count so positions stay right
            nl = src.find(b"\n")
            src = b"" if nl < 0 else src[nl:]
        return src, raw("@" + self.path), self.path

    def run_replica(self, info: dict) -> None:
        """Run this script again in a fresh Lua state as worker slot `info` (called on the slot's thread)."""
        try:
            Runtime(self.path, self.code, self.args, replica=info).run()
        except ScriptError as e:
            log.error("worker slot %s stopped: %s", info.get("slot"), e.message)

    def run(self) -> int:
        src, chunkname, script_name = self.source()
        argv = self.lua.table_from([raw(a) for a in self.args])
        try:
            ok, msg, tb, pyerr = self._unpack(self._main(src, chunkname, argv, raw(script_name)))
        finally:
            self.worker.shutdown()
        if ok:
            return 0
        if isinstance(pyerr, BaseException) and not isinstance(pyerr, Exception):
            raise pyerr  # KeyboardInterrupt / SystemExit travelling through Lua
        text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        trace = tb.decode("utf-8", "replace") if isinstance(tb, bytes) else None
        raise ScriptError(text, trace)

    @staticmethod
    def _unpack(r: Any) -> tuple[Any, Any, Any, Any]:
        if not isinstance(r, tuple):
            r = (r,)
        r = tuple(r) + (None,) * (4 - len(r))
        return r[0], r[1], r[2], r[3]
