"""A progress line on stderr: what is being timed, how far along, and an estimate of time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`) for a duration in seconds."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts timed steps out of `total`; the estimate is elapsed time per step x steps left.

    On a terminal the line is redrawn in place; otherwise a line is printed when
    the description changes, so logs stay readable.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ):
        self.total, self.done = max(total, 1), 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock, self.start = clock, clock()
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_description: str | None = None
        self._last_group: str | None = None
        self._width = 0

    def estimate_left(self) -> float | None:
        """Seconds left at the pace so far (None before the first step finished)."""
        if self.done == 0:
            return None
        return (self.clock() - self.start) / self.done * (self.total - self.done)

    def line(self, description: str) -> str:
        """The text of the progress line for the current state."""
        left = self.estimate_left()
        eta = "?" if left is None else format_duration(left)
        elapsed = format_duration(self.clock() - self.start)
        return f"[{self.done}/{self.total}] {description} | elapsed {elapsed}, left ~{eta}"

    def step(self, group: str, detail: str = "") -> None:
        """Announce the step about to run (the previous one is counted as done).

        Off a terminal, a line is printed only when `group` changes.
        """
        if self._last_description is not None:
            self.done = min(self.done + 1, self.total)
        if self.enabled:
            text = self.line(f"{group} {detail}".strip())
            if self.tty:
                padding = " " * max(0, self._width - len(text))
                self.stream.write("\r" + text + padding)
                self._width = len(text)
            elif group != self._last_group:
                self.stream.write(text + "\n")
            self.stream.flush()
        self._last_description, self._last_group = detail, group

    def note(self, message: str) -> None:
        """Print a message on its own line (a warning or skipped configuration)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self._width = 0
        self.stream.write(message + "\n")
        self.stream.flush()

    def finish(self, message: str = "done") -> None:
        """Count the last step and end the line."""
        if self._last_description is not None:
            self.done = min(self.done + 1, self.total)
        if self.enabled:
            self.note(self.line(message))
