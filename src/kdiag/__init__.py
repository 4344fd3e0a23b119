"""kdiag: send a diagnostic NMI to a frozen Linux machine, make sure kdump catches it, and read
the crash dump.

The top-level package stays cheap to import: it re-exports the error tree (every name in
``kdiag.errors.__all__``) and the version.  Each capability lives in its own subpackage
(``kdiag.vmcore``, ``kdiag.policy``, ``kdiag.lab``, ...), imported when used.
"""

from kdiag import errors
from kdiag._version import __version__
from kdiag.errors import *  # noqa: F403 - the error tree is public API; errors.__all__ lists it

# The `+=` form is the one both type checkers and linters read as a static __all__.
__all__: list[str] = []
__all__ += errors.__all__
__all__ += ["__version__"]
