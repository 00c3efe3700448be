"""The one error hierarchy.

Every error carries the HTTP status the API answers with and the exit code the CLI uses.
Exit codes: assay.protocol.ExitStatus (0 ok, 1 HTTP/unreachable/not found, 2 wait timeout, 64 usage).
"""

from __future__ import annotations

from typing import Any

from assay.protocol import ExitStatus


class AssayError(Exception):
    status: int = 500
    exit_code: int = ExitStatus.FAILURE

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        body.update(self.detail)
        return body


class BadRequest(AssayError):
    status = 400
    exit_code = ExitStatus.USAGE


class Unauthorized(AssayError):
    status = 401


class Forbidden(AssayError):
    status = 403


class NotFound(AssayError):
    status = 404


class MethodNotAllowed(AssayError):
    status = 405


class Conflict(AssayError):
    status = 409


class Gone(AssayError):
    status = 410


class PayloadTooLarge(AssayError):
    status = 413


class UnsupportedMediaType(AssayError):
    status = 415


class TooManyRequests(AssayError):
    status = 429


class ServiceUnavailable(AssayError):
    status = 503


class UsageError(AssayError):
    """Bad command-line usage or unreadable input (CLI exit 64)."""

    status = 400
    exit_code = ExitStatus.USAGE


class ConfigError(AssayError):
    """A configuration problem (malformed config file, bad setting): exit 1."""

    status = 500
    exit_code = ExitStatus.FAILURE


class WaitTimeout(AssayError):
    exit_code = ExitStatus.WAIT_TIMEOUT


class StoreError(AssayError):
    """A storage-layer failure that is not the client's fault."""

    status = 500


class EngineLocked(StoreError):
    """Another engine holds the SQLite engine lock."""

    exit_code = ExitStatus.FAILURE
