"""Capture what converters and runtimes print, including C++ logs written straight to fd 1/2.

TensorFlow, tf2onnx and LiteRT print pages of chatter (SavedModel listings, absl logs, delegate
notices). Inside `captured_output()` it goes to a temporary file instead of the terminal; the text
stays available (e.g. to attach to an error) and nothing is lost with `enabled=False`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator


class Capture:
    """The text printed inside a `captured_output` block (filled in when the block ends)."""

    def __init__(self) -> None:
        self.text = ""

    def tail(self, lines: int = 15) -> str:
        """The last `lines` non-empty lines, for an error message."""
        kept = [line for line in self.text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def captured_output(enabled: bool = True) -> Iterator[Capture]:
    """Redirect fd 1 and 2 and sys.stdout/stderr to a temp file while the block runs."""
    capture = Capture()
    if not enabled:
        yield capture
        return
    _flush_all()
    python_text = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(python_text), contextlib.redirect_stderr(python_text):
                yield capture
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            native = sink.read().decode("utf-8", errors="replace")
            capture.text = python_text.getvalue() + native
