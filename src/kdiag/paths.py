"""Where kdiag keeps things on the local machine.

- the cache (downloaded .debs, built guest images): ``$KDIAG_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/kdiag``, else ``~/.cache/kdiag``;
- the state (the SQLite database, the secret-key file, lab guests and their crash trees):
  ``$KDIAG_STATE_DIR``, else ``$XDG_STATE_HOME/kdiag``, else ``~/.local/state/kdiag``.

Both are created on first use with mode 0700: they hold credentials and machine memory.
"""

import os
from pathlib import Path

__all__ = ("cache_dir", "state_dir")


def _dir(override: str, xdg: str, fallback: str) -> Path:
    explicit = os.environ.get(override)
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get(xdg)
        path = Path(base) / "kdiag" if base else Path.home() / fallback / "kdiag"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The cache directory (safe to delete; rebuilt on demand)."""
    return _dir("KDIAG_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def state_dir() -> Path:
    """The state directory (database, key file, lab guests); private to the user."""
    return _dir("KDIAG_STATE_DIR", "XDG_STATE_HOME", ".local/state")
