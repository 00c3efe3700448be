"""Field readers for JSON bodies and commands: each raises BadRequest (400) naming the field."""

from __future__ import annotations

import math
from typing import Any

from assay.errors import BadRequest

_MISSING = object()


def as_object(body: Any, what: str = "body") -> dict[str, Any]:
    """An object body; `[]`, `null` and no body mean "no fields" (docs/design.md, "Lenient empty bodies")."""
    if body is None or body == [] or body == {}:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return body


def req_str(d: dict[str, Any], key: str, *, allow_empty: bool = False, max_len: int = 1000) -> str:
    v = d.get(key)
    if v is None:
        raise BadRequest(f"missing required field '{key}'")
    if not isinstance(v, str):
        raise BadRequest(f"field '{key}' must be a string")
    if not allow_empty and not v.strip():
        raise BadRequest(f"field '{key}' must not be empty")
    if len(v) > max_len:
        raise BadRequest(f"field '{key}' is longer than {max_len} characters")
    return v


def opt_str(
    d: dict[str, Any], key: str, default: str | None = None, *, allow_empty: bool = False, max_len: int = 1000
) -> str | None:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise BadRequest(f"field '{key}' must be a string")
    if not allow_empty and not v.strip():
        raise BadRequest(f"field '{key}' must not be empty")
    if len(v) > max_len:
        raise BadRequest(f"field '{key}' is longer than {max_len} characters")
    return v


def url_safe(v: str | None, key: str) -> str | None:
    """Ids and names that appear in URL paths (workflow ids, schedule and namespace names) cannot hold
    a '/': the resource could never be addressed again."""
    if v is not None and "/" in v:
        raise BadRequest(f"field '{key}' must not contain '/'")
    return v


def req_id(d: dict[str, Any], key: str, *, max_len: int = 500) -> str:
    v = req_str(d, key, max_len=max_len)
    url_safe(v, key)
    return v


def opt_num(
    d: dict[str, Any],
    key: str,
    default: float | None = None,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
) -> float | None:
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadRequest(f"field '{key}' must be a number")
    if min_value is not None and v < min_value:
        raise BadRequest(f"field '{key}' must be >= {min_value}")
    if max_value is not None and v > max_value:
        raise BadRequest(f"field '{key}' must be <= {max_value}")
    return float(v)


def opt_int(
    d: dict[str, Any],
    key: str,
    default: int | None = None,
    *,
    min_value: int | None = None,
    max_value: int | None = 2**53,
) -> int | None:
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f"field '{key}' must be an integer")
    if min_value is not None and v < min_value:
        raise BadRequest(f"field '{key}' must be >= {min_value}")
    if max_value is not None and v > max_value:
        raise BadRequest(f"field '{key}' must be <= {max_value}")
    return v


def req_int(d: dict[str, Any], key: str, *, min_value: int | None = None) -> int:
    if d.get(key) is None:
        raise BadRequest(f"missing required field '{key}'")
    v = opt_int(d, key, min_value=min_value)
    assert v is not None
    return v


def opt_bool(d: dict[str, Any], key: str, default: bool = False) -> bool:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise BadRequest(f"field '{key}' must be a boolean")
    return v


def opt_str_list(d: dict[str, Any], key: str) -> list[str] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadRequest(f"field '{key}' must be an array of strings")
    return v


def opt_object(d: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise BadRequest(f"field '{key}' must be a JSON object")
    return v
