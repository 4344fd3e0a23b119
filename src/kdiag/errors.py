"""Every error kdiag raises on purpose.

The tree::

    KdiagError                      exit 1 unless a subtree says otherwise
    ├── DumpFormatError(ValueError)         exit 5: the dump cannot be read as asked
    │   ├── NotACrashDump                   no known dump signature
    │   ├── TruncatedDump                   a length or offset runs past the end of the file
    │   ├── UnsupportedDump                 a format, version, codec or architecture we do not read
    │   ├── CorruptPage                     a page that does not decompress to one page
    │   └── PageNotPresent(LookupError)     an excluded or missing page: never silent zeros
    ├── AuthError                           exit 3
    │   ├── AuthFailure                     the caller could not be authenticated
    │   │   ├── IncompleteSignature         the SigV4 signature is malformed or incomplete
    │   │   ├── MissingAuthenticationToken  the request carries no signature at all
    │   │   └── RequestExpired              the signed date is outside the allowed window
    │   └── AccessDenied(PermissionError)   authenticated, but no policy allows it
    ├── BackendError                        exit 4: the hypervisor, BMC or cloud side
    │   ├── BackendUnavailable              unreachable, or its SDK extra is not installed
    │   ├── TargetNotFound(LookupError)     the backend does not know the target
    │   │   └── InvalidInstanceIDNotFound   a well-formed instance id kdiag does not manage
    │   ├── NMINotSupported                 the backend or architecture cannot take an NMI
    │   ├── IncorrectState                  the target is not running
    │   └── BackendTimeout(TimeoutError)    no answer in time
    ├── ReadinessError                      exit 1: a readiness check or a drill failed
    └── ConfigError                         exit 2: bad input from the user (policy, option, file)
        ├── InvalidInstanceIDMalformed      not ``i-`` followed by 8 or 17 hex digits
        ├── EntityAlreadyExists             a user, access key or instance that already exists
        ├── NoSuchEntity                    an unknown user, account or access key
        ├── PolicyError                     a malformed IAM policy document (statement and field)
        ├── LimitExceeded                   over an IAM quota (policy size, access keys per user)
        └── DebuginfoMismatch               a vmlinux whose build id or release is not the dump's

Every class carries ``code``, a short stable identifier printed by the CLI and mapped onto
EC2 error codes by the service, and ``exit_code`` for the CLI.  Messages never contain
secrets: access keys are shown by id, never by value.
"""

__all__ = (
    "AccessDenied",
    "AuthError",
    "AuthFailure",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigError",
    "CorruptPage",
    "DebuginfoMismatch",
    "DumpFormatError",
    "EntityAlreadyExists",
    "IncompleteSignature",
    "IncorrectState",
    "InvalidInstanceIDMalformed",
    "InvalidInstanceIDNotFound",
    "KdiagError",
    "LimitExceeded",
    "MissingAuthenticationToken",
    "NMINotSupported",
    "NoSuchEntity",
    "NotACrashDump",
    "PageNotPresent",
    "PolicyError",
    "ReadinessError",
    "RequestExpired",
    "TargetNotFound",
    "TruncatedDump",
    "UnsupportedDump",
)


class KdiagError(Exception):
    """The root of every error kdiag raises on purpose."""

    code: str = "KdiagError"
    exit_code: int = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message or self.code


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


class IncompleteSignature(AuthFailure):
    """The SigV4 Authorization header or query parameters are malformed or incomplete."""

    code = "IncompleteSignature"


class MissingAuthenticationToken(AuthFailure):
    """The request carries neither an Authorization header nor a presigned signature."""

    code = "MissingAuthenticationToken"


class RequestExpired(AuthFailure):
    """The signed date is more than the allowed skew away from now, or a presigned URL expired."""

    code = "RequestExpired"


class AccessDenied(AuthError, PermissionError):
    """Authenticated, but no policy allows the action on the resource (or one denies it)."""

    code = "UnauthorizedOperation"


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


class TargetNotFound(BackendError, LookupError):
    """The backend does not know the target machine."""

    code = "TargetNotFound"


class NMINotSupported(BackendError):
    """The backend or the target's architecture cannot take a diagnostic interrupt."""

    code = "UnsupportedOperation"


class IncorrectState(BackendError):
    """The target is not in a state that can take an NMI (for example, it is stopped)."""

    code = "IncorrectInstanceState"


class InvalidInstanceIDNotFound(TargetNotFound):
    """A well-formed instance id that is not in the caller's account and region."""

    code = "InvalidInstanceID.NotFound"


class BackendTimeout(BackendError, TimeoutError):
    """The backend did not answer in time; delivery is unconfirmed."""

    code = "BackendTimeout"


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
