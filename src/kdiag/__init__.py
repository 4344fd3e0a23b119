"""kdiag: send a diagnostic NMI to a frozen Linux machine, make sure kdump catches it, and read
the crash dump.

The top-level package stays cheap to import: it re-exports the error tree and the version.
Each capability lives in its own subpackage (``kdiag.vmcore``, ``kdiag.policy``,
``kdiag.lab``, ...), imported when used.
"""

from kdiag._version import __version__
from kdiag.errors import (
    AccessDenied,
    AuthError,
    AuthFailure,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    CorruptPage,
    DebuginfoMismatch,
    DumpFormatError,
    EntityAlreadyExists,
    IncompleteSignature,
    IncorrectState,
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    KdiagError,
    MissingAuthenticationToken,
    NMINotSupported,
    NoSuchEntity,
    NotACrashDump,
    PageNotPresent,
    PolicyError,
    ReadinessError,
    RequestExpired,
    TargetNotFound,
    TruncatedDump,
    UnsupportedDump,
)

__all__ = [
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
    "__version__",
]
