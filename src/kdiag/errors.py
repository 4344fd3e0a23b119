"""Every error kdiag raises on purpose.

The tree (with the HTTP status of the classes the service answers with)::

    KdiagError                      exit 1 unless a subtree says otherwise
    ├── DumpFormatError(ValueError)         exit 5: the dump cannot be read as asked
    │   ├── NotACrashDump                   no known dump signature
    │   ├── TruncatedDump                   a length or offset runs past the end of the file
    │   ├── UnsupportedDump                 a format, version, codec or architecture we do not read
    │   ├── CorruptPage                     a page that does not decompress to one page
    │   └── PageNotPresent(LookupError)     an excluded or missing page: never silent zeros
    ├── AuthError                           exit 3
    │   ├── AuthFailure                 401 the caller could not be authenticated
    │   │   ├── IncompleteSignature     400 the SigV4 signature is malformed or incomplete
    │   │   ├── MissingAuthenticationToken 403 the request carries no signature at all
    │   │   └── RequestExpired          400 the signed date is outside the allowed window
    │   └── AccessDenied(PermissionError) 403 authenticated, but no policy allows it
    ├── BackendError                        exit 4: the hypervisor, BMC or cloud side
    │   ├── BackendUnavailable          503 unreachable, or its SDK extra is not installed
    │   │   └── BackendAuthFailure      503 the BMC or API refused kdiag's stored credentials
    │   ├── TargetNotFound(LookupError) 400 the backend does not know the target
    │   │   └── InvalidInstanceIDNotFound 400 a well-formed instance id kdiag does not manage
    │   ├── NMINotSupported             400 the backend or architecture cannot take an NMI
    │   ├── IncorrectState              400 the target is not running
    │   ├── BackendTimeout(TimeoutError) 409 no answer in time
    │   └── DeliveryUnconfirmed         409 the NMI may have left: never retry blindly
    ├── ReadinessError                      exit 1: a readiness check or a drill failed
    ├── ConfigError                         exit 2: bad input from the user (policy, option, file)
    │   ├── InvalidInstanceIDMalformed  400 not ``i-`` followed by 8 or 17 hex digits
    │   ├── EntityAlreadyExists             a user, access key or instance that already exists
    │   ├── NoSuchEntity                    an unknown user, account or access key
    │   ├── PolicyError                     a malformed IAM policy document (statement and field)
    │   ├── LimitExceeded                   over an IAM quota (policy size, access keys per user)
    │   ├── DebuginfoMismatch               a vmlinux whose build id or release is not the dump's
    │   └── RequestError                    an API request the service cannot take as sent
    │       ├── MissingAction           400 no ``Action`` parameter
    │       ├── InvalidAction           400 an action the service does not offer
    │       ├── MissingParameter        400 a required parameter is absent
    │       ├── InvalidParameterValue   400 a parameter (or the body) does not parse
    │       ├── InvalidParameterCombination 400 a parameter given twice with different values
    │       ├── UnknownParameter        400 a parameter the action does not define
    │       ├── RequestEntityTooLarge   413 a body over the service's limit
    │       ├── UnknownEndpoint         404 no such path
    │       └── MethodNotAllowed        405 no such method on that path
    ├── RequestLimitExceeded            503 the caller's token bucket is empty (throttled)
    ├── DryRunOperation                 412 authorized, and nothing done: the answer to DryRun
    └── InternalError                   500 the service failed; the details stay in its log

Every class sets, in its own body: ``code``, a short stable identifier that the CLI prints,
the audit log records and the service answers with (an EC2 error code where EC2 has one);
``exit_code`` for the CLI, where its subtree's differs; and, on the classes the service
answers with, ``http_status`` (the others reach a client as ``InternalError``).
``public_message``, when set, is what a client is told instead of the message, which may
name internals (a socket path, a host).  :meth:`KdiagError.tree` lists the classes: the
service's status table and ``kdiag send``'s code → class map are derived from it.  Messages
never contain secrets: access keys are shown by id, never by value.
"""

__all__ = (
    "AccessDenied",
    "AuthError",
    "AuthFailure",
    "BackendAuthFailure",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigError",
    "CorruptPage",
    "DebuginfoMismatch",
    "DeliveryUnconfirmed",
    "DryRunOperation",
    "DumpFormatError",
    "EntityAlreadyExists",
    "IncompleteSignature",
    "IncorrectState",
    "InternalError",
    "InvalidAction",
    "InvalidInstanceIDMalformed",
    "InvalidInstanceIDNotFound",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "KdiagError",
    "LimitExceeded",
    "MethodNotAllowed",
    "MissingAction",
    "MissingAuthenticationToken",
    "MissingParameter",
    "NMINotSupported",
    "NoSuchEntity",
    "NotACrashDump",
    "PageNotPresent",
    "PolicyError",
    "ReadinessError",
    "RequestEntityTooLarge",
    "RequestError",
    "RequestExpired",
    "RequestLimitExceeded",
    "TargetNotFound",
    "TruncatedDump",
    "UnknownEndpoint",
    "UnknownParameter",
    "UnsupportedDump",
)


class KdiagError(Exception):
    """The root of every error kdiag raises on purpose."""

    code: str = "KdiagError"
    exit_code: int = 1
    #: the HTTP status when the service answers with this class; None: ``InternalError``
    http_status: int | None = None
    #: what a client is told instead of the message (None: the message itself)
    public_message: str | None = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message or self.code

    @classmethod
    def tree(cls) -> "list[type[KdiagError]]":
        """This class and every class below it, each once, parents before children."""
        found: dict[type[KdiagError], None] = {cls: None}
        for sub in cls.__subclasses__():
            found.update(dict.fromkeys(sub.tree()))
        return list(found)


# --- crash dumps ---------------------------------------------------------------------------


class DumpFormatError(KdiagError, ValueError):
    """The dump cannot be read as asked; ``offset`` is where in the file, when known."""

    code = "DumpFormatError"
    exit_code = 5

    def __init__(self, message: str = "", *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset

    def __str__(self) -> str:
        base = self.message or self.code
        if self.offset is not None:
            return f"{base} (at file offset {self.offset:#x})"
        return base


class NotACrashDump(DumpFormatError):
    """No known crash-dump signature at the start of the file."""

    code = "NotACrashDump"


class TruncatedDump(DumpFormatError):
    """A length or offset read from the file runs past its end."""

    code = "TruncatedDump"


class UnsupportedDump(DumpFormatError):
    """A format, header version, codec or architecture this reader does not handle."""

    code = "UnsupportedDump"


class CorruptPage(DumpFormatError):
    """A page whose stored bytes do not decode to exactly one page."""

    code = "CorruptPage"

    def __init__(
        self, message: str = "", *, offset: int | None = None, address: int | None = None
    ) -> None:
        super().__init__(message, offset=offset)
        self.address = address


class PageNotPresent(DumpFormatError, LookupError):
    """The page at ``address`` was excluded from the dump or is not in it at all."""

    code = "PageNotPresent"

    def __init__(self, message: str = "", *, address: int | None = None) -> None:
        super().__init__(message)
        self.address = address


# --- authentication and authorization -------------------------------------------------------


class AuthError(KdiagError):
    """The caller is not who it says, or may not do what it asks."""

    code = "AuthError"
    exit_code = 3


class AuthFailure(AuthError):
    """The request could not be authenticated (bad signature, unknown key, stale date)."""

    code = "AuthFailure"
    http_status = 401


class IncompleteSignature(AuthFailure):
    """The SigV4 Authorization header or query parameters are malformed or incomplete."""

    code = "IncompleteSignature"
    http_status = 400


class MissingAuthenticationToken(AuthFailure):
    """The request carries neither an Authorization header nor a presigned signature."""

    code = "MissingAuthenticationToken"
    http_status = 403


class RequestExpired(AuthFailure):
    """The signed date is more than the allowed skew away from now, or a presigned URL expired."""

    code = "RequestExpired"
    http_status = 400


class AccessDenied(AuthError, PermissionError):
    """Authenticated, but no policy allows the action on the resource (or one denies it)."""

    code = "UnauthorizedOperation"
    http_status = 403

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        #: why the policies said no (for the audit log; the client sees only the message)
        self.reason = reason


# --- backends ---------------------------------------------------------------------------------


class BackendError(KdiagError):
    """The hypervisor, BMC or cloud API failed; ``target`` names what we talked to."""

    code = "BackendError"
    exit_code = 4

    def __init__(self, message: str = "", *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class BackendUnavailable(BackendError):
    """The backend cannot be reached, or its optional SDK is not installed."""

    code = "BackendUnavailable"
    http_status = 503
    public_message = "the instance's hypervisor cannot be reached"


class BackendAuthFailure(BackendUnavailable):
    """The BMC or cloud API refused the credentials the target names (a wrong password, a
    locked account): nothing was sent.  Not the caller's fault, so not an ``AuthError``."""

    code = "BackendAuthFailure"
    http_status = 503
    public_message = "the instance's BMC or API refused kdiag's credentials for it"


class TargetNotFound(BackendError, LookupError):
    """The backend does not know the target machine."""

    code = "TargetNotFound"
    http_status = 400
    public_message: str | None = "the instance's hypervisor does not know the machine"


class NMINotSupported(BackendError):
    """The backend or the target's architecture cannot take a diagnostic interrupt."""

    code = "UnsupportedOperation"
    http_status = 400


class IncorrectState(BackendError):
    """The target is not in a state that can take an NMI (for example, it is stopped)."""

    code = "IncorrectInstanceState"
    http_status = 400


class InvalidInstanceIDNotFound(TargetNotFound):
    """A well-formed instance id that is not in the caller's account and region."""

    code = "InvalidInstanceID.NotFound"
    http_status = 400
    public_message = None  # the id the caller sent, nothing of the backend's


class BackendTimeout(BackendError, TimeoutError):
    """The backend did not answer in time; delivery is unconfirmed."""

    code = "BackendTimeout"
    # Deliberately a 4xx: SDKs retry 5xx, and a second NMI must be a conscious choice.
    http_status = 409
    public_message = (
        "the hypervisor did not confirm delivery in time; "
        "the interrupt may or may not have been delivered"
    )


class DeliveryUnconfirmed(BackendError):
    """The NMI may have left: the failure came after it was (or may have been) handed to
    the hypervisor, or its outcome could not be recorded.  ``audit_id`` names the audit row.

    A 409 with a code no SDK retries (botocore retries 5xx, throttling codes and a few
    transient ones), so a client's automatic retry never sends a second NMI; the message
    names the audit row and is safe to show (no socket path, no host).
    """

    code = "DeliveryUnconfirmed"
    http_status = 409
    public_message = None  # built below from the instance id and audit row only

    def __init__(
        self, message: str = "", *, target: str | None = None, audit_id: int | None = None
    ) -> None:
        super().__init__(message, target=target)
        self.audit_id = audit_id

    @classmethod
    def for_row(cls, instance_id: str, audit_id: int, why: str) -> "DeliveryUnconfirmed":
        """The client-facing error for audit row ``audit_id``: ``why`` is a short phrase
        that names nothing internal."""
        return cls(
            f"The diagnostic interrupt for instance '{instance_id}' may have been delivered: "
            f"{why}; delivery is unconfirmed (audit row {audit_id}). Do not retry before "
            "checking the guest.",
            target=instance_id,
            audit_id=audit_id,
        )


# --- readiness and configuration ---------------------------------------------------------------


class ReadinessError(KdiagError):
    """A readiness check or a fire drill found the machine unprepared."""

    code = "ReadinessError"
    exit_code = 1


class ConfigError(KdiagError):
    """Bad input from the user: an option, a policy document, a configuration file."""

    code = "ConfigError"
    exit_code = 2


class InvalidInstanceIDMalformed(ConfigError):
    """An instance id that is not ``i-`` followed by 8 or 17 lowercase hex digits."""

    code = "InvalidInstanceID.Malformed"
    http_status = 400


class EntityAlreadyExists(ConfigError):
    """A user, policy name, access key or instance id that is already taken."""

    code = "EntityAlreadyExists"


class NoSuchEntity(ConfigError, LookupError):
    """An unknown user, account or access key."""

    code = "NoSuchEntity"


class PolicyError(ConfigError):
    """A malformed IAM policy document; ``path`` names the statement and field at fault.

    The message reads like IAM's own ``MalformedPolicyDocument`` errors but points at the
    place: ``Statement[1].Condition.StringEquals: value must be a string or list of strings``.
    """

    code = "MalformedPolicyDocument"

    def __init__(self, message: str = "", *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        base = self.message or self.code
        return f"{self.path}: {base}" if self.path else base


class LimitExceeded(ConfigError):
    """Over an IAM quota: the size of a user's inline policies, or access keys per user."""

    code = "LimitExceeded"


class DebuginfoMismatch(ConfigError):
    """A vmlinux given for a dump whose build id or kernel release it does not match."""

    code = "DebuginfoMismatch"


class RequestError(ConfigError):
    """An API request the service cannot take as sent (the protocol's own errors)."""

    code = "RequestError"


class MissingAction(RequestError):
    """An EC2 Query request without an ``Action`` parameter."""

    code = "MissingAction"
    http_status = 400


class InvalidAction(RequestError):
    """An action the service does not offer."""

    code = "InvalidAction"
    http_status = 400


class MissingParameter(RequestError):
    """A required parameter is absent."""

    code = "MissingParameter"
    http_status = 400


class InvalidParameterValue(RequestError):
    """A parameter, a filter or the body that does not parse or is out of range."""

    code = "InvalidParameterValue"
    http_status = 400


class InvalidParameterCombination(RequestError):
    """A parameter given twice with different values."""

    code = "InvalidParameterCombination"
    http_status = 400


class UnknownParameter(RequestError):
    """A parameter (or JSON key) the action does not define: refused, never ignored."""

    code = "UnknownParameter"
    http_status = 400


class RequestEntityTooLarge(RequestError):
    """A request body over the service's limit."""

    code = "RequestEntityTooLarge"
    http_status = 413


class UnknownEndpoint(RequestError):
    """A path the service does not serve."""

    code = "NotFound"
    http_status = 404


class MethodNotAllowed(RequestError):
    """A method the path does not take."""

    code = "MethodNotAllowed"
    http_status = 405


# --- the service's own answers ---------------------------------------------------------------


class RequestLimitExceeded(KdiagError):
    """The caller's token bucket is empty: the request did nothing and may be retried."""

    code = "RequestLimitExceeded"
    http_status = 503


class DryRunOperation(KdiagError):
    """The request would have succeeded, and nothing was done: EC2's answer to ``DryRun``."""

    code = "DryRunOperation"
    http_status = 412
    public_message = "Request would have succeeded, but DryRun flag is set."


class InternalError(KdiagError):
    """The service failed; the request id ties the answer to its audit row and log."""

    code = "InternalError"
    http_status = 500
    public_message = (
        "An internal error has occurred; the request id identifies it in the audit log."
    )
