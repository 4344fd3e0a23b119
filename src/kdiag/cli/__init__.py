"""The ``kdiag`` command line: a thin layer that parses, calls the library and maps errors.

Each command group lives in its own module here and exposes ``register(app)``; ``main`` imports
only the group being run, so ``kdiag analyze`` never pays for the service's imports.
"""

__all__: tuple[str, ...] = ()
