"""EC2 error codes: the one place where kdiag's error tree becomes an EC2 error.

:func:`to_api_error` maps any exception to an :class:`ApiError` (code, message, HTTP status);
:func:`error_xml` and :func:`error_json` serialize it.  Protocol-level failures that have no
counterpart in :mod:`kdiag.errors` (a missing parameter, an unknown action, throttling,
DryRun) are raised as :class:`ApiError` directly.  Anything unexpected becomes
``InternalError`` with a fixed message: internals (paths, tracebacks, SQL) never reach the
client; the request id ties the answer to the audit row and the server log.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from kdiag.errors import (
    AccessDenied,
    AuthError,
    AuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    IncorrectState,
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    KdiagError,
    NMINotSupported,
    TargetNotFound,
)

__all__ = (
    "STATUS",
    "ApiError",
    "error_json",
    "error_xml",
    "to_api_error",
)

#: EC2 error code → HTTP status.
STATUS: dict[str, int] = {
    "AuthFailure": 401,
    "IncompleteSignature": 400,
    "MissingAuthenticationToken": 403,
    "RequestExpired": 400,
    "UnauthorizedOperation": 403,
    "DryRunOperation": 412,
    "MissingAction": 400,
    "MissingParameter": 400,
    "InvalidParameterValue": 400,
    "InvalidParameterCombination": 400,
    "InvalidAction": 400,
    "InvalidInstanceID.Malformed": 400,
    "InvalidInstanceID.NotFound": 400,
    "IncorrectInstanceState": 400,
    "UnsupportedOperation": 400,
    "RequestLimitExceeded": 503,
    "BackendTimeout": 409,
    "Unavailable": 503,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "RequestEntityTooLarge": 413,
    "InternalError": 500,
}

_INTERNAL = "An internal error has occurred; the request id identifies it in the audit log."
_DRY_RUN = "Request would have succeeded, but DryRun flag is set."


class ApiError(Exception):
    """An answer in the EC2 error envelope: ``code``, client-safe ``message``, HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"

    @classmethod
    def dry_run(cls) -> ApiError:
        return cls("DryRunOperation", _DRY_RUN)


def to_api_error(exc: BaseException) -> ApiError:
    """The EC2 error a client sees for ``exc``; never leaks an unexpected error's text."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AuthFailure):
        # IncompleteSignature, MissingAuthenticationToken, RequestExpired carry their codes.
        return ApiError(exc.code, exc.message or "authentication failed")
    if isinstance(exc, AccessDenied):
        return ApiError("UnauthorizedOperation", exc.message or _unauthorized())
    if isinstance(exc, AuthError):
        return ApiError("AuthFailure", exc.message or "authentication failed")
    if isinstance(exc, InvalidInstanceIDMalformed | InvalidInstanceIDNotFound):
        return ApiError(exc.code, exc.message)
    if isinstance(exc, IncorrectState):
        return ApiError("IncorrectInstanceState", exc.message or "the instance is not running")
    if isinstance(exc, NMINotSupported):
        return ApiError(
            "UnsupportedOperation",
            exc.message or "the instance cannot take a diagnostic interrupt",
        )
    if isinstance(exc, BackendTimeout):
        # Deliberately a 4xx: SDKs retry 5xx, and a second NMI must be a conscious choice.
        return ApiError(
            "BackendTimeout",
            "the hypervisor did not confirm delivery in time; "
            "the interrupt may or may not have been delivered",
        )
    if isinstance(exc, TargetNotFound):
        return ApiError(
            "IncorrectInstanceState", "the instance's hypervisor does not know the machine"
        )
    if isinstance(exc, BackendUnavailable):
        return ApiError("Unavailable", "the instance's hypervisor cannot be reached")
    if isinstance(exc, BackendError):
        return ApiError("InternalError", _INTERNAL)
    if isinstance(exc, KdiagError):
        return ApiError("InternalError", _INTERNAL)
    return ApiError("InternalError", _INTERNAL)


def _unauthorized() -> str:
    return "You are not authorized to perform this operation."


def error_xml(error: ApiError, request_id: str) -> bytes:
    """The EC2 Query error envelope botocore's ``ec2`` parser reads."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error></Errors>"
        f"<RequestID>{escape(request_id)}</RequestID></Response>"
    ).encode()


def error_json(error: ApiError, request_id: str) -> dict[str, Any]:
    """The same error for the JSON REST API."""
    return {"Error": {"Code": error.code, "Message": error.message}, "RequestId": request_id}
