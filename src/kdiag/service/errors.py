"""The EC2 error envelope: where an exception becomes the answer a client sees.

Each class of :mod:`kdiag.errors` carries its EC2 code and HTTP status; :func:`to_api_error`
reads them off the exception, and :func:`error_xml` / :func:`error_json` serialize the
result.  An exception whose class has no HTTP status (an unexpected error, a bug, a
database failure) becomes ``InternalError`` with a fixed message: internals (paths,
tracebacks, SQL) never reach the client; the request id ties the answer to the audit row
and the server log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from kdiag.errors import InternalError, KdiagError

__all__ = (
    "STATUS",
    "ApiError",
    "error_json",
    "error_xml",
    "safe_text",
    "to_api_error",
    "xml_text",
)

#: What XML 1.0 cannot carry, even escaped (C0 controls but tab, CR, LF; lone surrogates;
#: U+FFFE/U+FFFF), and what UTF-8 cannot encode (surrogates), so JSON cannot send it either.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def safe_text(text: str) -> str:
    """``text`` with every character XML 1.0 or UTF-8 cannot carry shown as ``\\uXXXX``.

    Every value a request can echo back (an action name, a parameter name, an id) passes
    through here before it reaches an answer, so hostile input never breaks the envelope.
    """
    return _NOT_XML.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def xml_text(text: str) -> str:
    """``text`` escaped for XML character data: :func:`safe_text`, then ``& < >``."""
    return escape(safe_text(text))


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
    message = safe_text(error.public_message or str(error))
    return ApiError(error.code, message, error.http_status or 500)


def error_xml(error: ApiError, request_id: str) -> bytes:
    """The EC2 Query error envelope botocore's ``ec2`` parser reads."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{xml_text(error.code)}</Code>"
        f"<Message>{xml_text(error.message)}</Message></Error></Errors>"
        f"<RequestID>{xml_text(request_id)}</RequestID></Response>"
    ).encode()


def error_json(error: ApiError, request_id: str) -> dict[str, Any]:
    """The same error for the JSON REST API."""
    return {
        "Error": {"Code": safe_text(error.code), "Message": safe_text(error.message)},
        "RequestId": request_id,
    }
