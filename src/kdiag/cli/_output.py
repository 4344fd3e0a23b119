"""Output helpers shared by the command modules: JSON for scripts, Rich for people."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ("err_console", "print_json", "stdout_console")


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout, keys in a stable order, newline-terminated."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str))
    sys.stdout.write("\n")


def stdout_console() -> Any:
    """A Rich console on stdout (imported lazily: Rich costs start-up time)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Any:
    """A Rich console on stderr, for progress bars and notes that must not pollute stdout."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)
