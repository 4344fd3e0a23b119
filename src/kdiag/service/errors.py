"""The EC2 error envelope: where an exception becomes the answer a client sees.

Each class of :mod:`kdiag.errors` carries its EC2 code and HTTP status; :func:`to_api_error`
reads them off the exception, and :func:`error_xml` / :func:`error_json` serialize the
result.  An exception whose class has no HTTP status (an unexpected error, a bug, a
database failure) becomes ``InternalError`` with a fixed message: internals (paths,
tracebacks, SQL) never reach the client; the request id ties the answer to the audit row
and the server log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from kdiag.errors import InternalError, KdiagError

__all__ = (
    "STATUS",
    "ApiError",
    "error_json",
    "error_xml",
    "to_api_error",
)

#: EC2 error code → HTTP status, for every code the service answers with.
STATUS: dict[str, int] = {
    cls.code: cls.http_status for cls in KdiagError.tree() if cls.http_status is not None
}


@dataclass(frozen=True, slots=True)
class ApiError:
    """An answer in the EC2 error envelope: ``code``, client-safe ``message``, HTTP status."""

    code: str
    message: str
    status: int

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


def to_api_error(exc: BaseException) -> ApiError:
    """The EC2 error a client sees for ``exc``; never leaks an unexpected error's text."""
    error = exc if isinstance(exc, KdiagError) and exc.http_status is not None else InternalError()
    return ApiError(error.code, error.public_message or str(error), error.http_status or 500)


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
