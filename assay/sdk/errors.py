"""How the client SDK reports failures: the classes of `assay.errors`, built from HTTP answers."""

from __future__ import annotations

import json
from typing import Any

from assay import errors
from assay.protocol import ExitStatus

_BY_STATUS: dict[int, type[errors.AssayError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    410: errors.Gone,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.TooManyRequests,
    503: errors.ServiceUnavailable,
}


class EngineUnreachable(errors.AssayError):
    """The engine could not be reached (refused, reset, DNS, timeout)."""

    status = 503
    exit_code = ExitStatus.FAILURE


class ProtocolError(errors.AssayError):
    """The engine answered something the client cannot understand."""

    status = 502
    exit_code = ExitStatus.FAILURE


def error_from_response(status: int, reason: str, raw: bytes, content_type: str = "") -> errors.AssayError:
    """Map a non-2xx answer to an AssayError subclass.

    The instance carries `http_status` (the status the engine answered) and `body` (the parsed JSON
    error object, or None). Its message is the engine's `error` text when there is one, else the reason.
    """
    body: Any = None
    text = raw.decode("utf-8", "replace").strip() if raw else ""
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    elif text and "html" not in content_type:
        message = text.splitlines()[0][:300]
    else:
        message = reason or "error"
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = errors.ServiceUnavailable if status == 503 else errors.AssayError
    err = cls(message)
    err.http_status = status  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    err.body = body if isinstance(body, dict) else None  # type: ignore[attr-defined]
    return err
