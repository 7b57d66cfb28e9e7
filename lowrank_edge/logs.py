"""Progress messages: where data is read or fetched from, printed to stderr by default."""

from __future__ import annotations

import sys
from collections.abc import Callable

Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    """Print one progress line to stderr (stdout stays clean for results)."""
    print(message, file=sys.stderr, flush=True)
