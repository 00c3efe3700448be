"""Plumbing shared by the native (Python) halves of the Lua stdlib.

The Lua runtime is created with ``encoding=None``: every Lua string reaches Python as ``bytes`` and
every value handed back must be ``bytes`` for a Lua string. ``to_lua`` / ``from_lua`` convert whole
values; ``text`` / ``raw`` convert single strings.

Native functions never raise into Lua. ``@native`` turns their result into ``(true, values...)`` and
any exception into ``(false, message)``; the Lua prelude wraps each native with a checker that calls
``error(message, 2)`` so the message carries the caller's ``file:line:``.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any

import lupa.lua54 as lua54

log = logging.getLogger("assay.lua.natives")

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class LuaRaise(Exception):
    """Raise from a native to make the Lua caller see ``error(message)``.

    The message is prefixed with the native's name (``fs.read: ...``) unless ``bare`` is set.
    """

    def __init__(self, message: str, bare: bool = False) -> None:
        super().__init__(message)
        self.bare = bare


def text(v: Any, what: str = "argument") -> str:
    """A Lua string (bytes) as Python text; numbers are accepted like Lua's tostring."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        raise LuaRaise(f"{what} must be a string, got {lua_type_name(v)}")
    if isinstance(v, int | float):
        return str(v)
    raise LuaRaise(f"{what} must be a string, got {lua_type_name(v)}")


def opt_text(v: Any, what: str = "argument") -> str | None:
    return None if v is None else text(v, what)


def raw(v: Any) -> bytes:
    """Python text or bytes as a Lua string."""
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8", "surrogateescape")


def lua_type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, bytes | str):
        return "string"
    t = lua54.lua_type(v)
    return t or "userdata"


def is_table(v: Any) -> bool:
    return lua54.lua_type(v) == "table"


def to_lua(lua: Any, v: Any) -> Any:
    """Convert a JSON-like Python value into Lua values (nil entries are simply absent)."""
    if v is None or isinstance(v, bool | float | bytes):
        return v
    if isinstance(v, int):
        return v if INT_MIN <= v <= INT_MAX else float(v)
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if isinstance(v, dict):
        t = lua.table()
        for k, x in v.items():
            if x is not None:
                t[k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k] = to_lua(lua, x)
        return t
    if isinstance(v, list | tuple):
        t = lua.table()
        for i, x in enumerate(v, 1):
            if x is not None:
                t[i] = to_lua(lua, x)
        return t
    return raw(str(v))


def from_lua(v: Any, depth: int = 0) -> Any:
    """Convert a (small) Lua value into Python: tables with keys 1..n become lists, others dicts."""
    if depth > 100:
        raise LuaRaise("table nested too deeply (cyclic?)")
    if v is None or isinstance(v, bool | int | float):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if is_table(v):
        items = list(v.items())
        keys = [k for k, _ in items]
        if keys and all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
            n = len(keys)
            if sorted(keys) == list(range(1, n + 1)):
                return [from_lua(v[i], depth + 1) for i in range(1, n + 1)]
        if not keys:
            return {}
        return {(text(k) if isinstance(k, bytes) else str(k)): from_lua(x, depth + 1) for k, x in items}
    raise LuaRaise(f"cannot convert a {lua_type_name(v)} value")


def native(name: str) -> Callable[[Callable[..., Any]], Callable[..., tuple]]:
    """Decorator: run a native, returning ``(True, *results)`` or ``(False, message)``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., tuple]:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> tuple:
            try:
                r = fn(*args)
            except LuaRaise as e:
                return (False, raw(str(e) if e.bare else f"{name}: {e}"))
            except OSError as e:
                where = f": {e.filename}" if e.filename else ""
                return (False, raw(f"{name}: {e.strerror or e}{where}"))
            except Exception as e:  # a bug or an unexpected OS error: never crash the script
                log.debug("native %s failed:\n%s", name, traceback.format_exc())
                return (False, raw(f"{name}: {type(e).__name__}: {e}"))
            if isinstance(r, tuple):
                return (True, *r)
            return (True, r)

        wrapper.native_name = name  # type: ignore[attr-defined]
        return wrapper

    return deco


def collect(obj: Any) -> dict[str, Callable[..., tuple]]:
    """All ``@native`` methods of an object, keyed by their Lua name."""
    out: dict[str, Callable[..., tuple]] = {}
    for attr in dir(obj):
        fn = getattr(obj, attr, None)
        name = getattr(fn, "native_name", None)
        if name:
            out[name] = fn
    return out
