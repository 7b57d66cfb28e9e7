"""Atomic file output and hashing, shared by every step that writes files.

A step writes to a temporary name in the destination folder and renames it into
place only when the write succeeded, so a crash never leaves a half-written file
that looks valid. Existing outputs are only replaced when asked to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lowrank_edge.errors import LowrankEdgeError


def check_can_write(path: Path, overwrite: bool) -> None:
    """Raise a clear error if `path` exists and the user did not ask to overwrite it."""
    if path.exists() and not overwrite:
        raise LowrankEdgeError(f"{path} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    The temporary name keeps the final suffix (Keras and the converters look at it).
    On any exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let the writer create it; some writers refuse an existing file
    try:
        yield tmp
        if not tmp.exists():
            raise LowrankEdgeError(f"writing {path} produced no file")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def write_json_atomic(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    """Write `obj` as indented JSON to `path` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", overwrite)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


JSON_MAX_BYTES = 16 << 20  # manifests and sidecars are kilobytes; refuse anything absurd


def read_json_file(path: str | os.PathLike, what: str, max_bytes: int = JSON_MAX_BYTES) -> Any:
    """Parse a small JSON file; any problem is one LowrankEdgeError naming the file.

    `what` ("manifest", "compression sidecar") ends each message. Reads in small chunks
    and stops once past `max_bytes`. Covers unreadable files, non-UTF-8
    text, syntax errors (with line and column), nesting too deep for the parser and
    integers too long to convert.
    """
    path = Path(path)
    expected = f"expected a {what}"
    chunks, total = [], 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 16):  # small reads: no max_bytes buffer up front
                total += len(chunk)
                if total > max_bytes:
                    raise LowrankEdgeError(f"{path}: larger than {max_bytes:,} bytes; {expected}")
                chunks.append(chunk)
    except OSError as error:
        raise LowrankEdgeError(f"{path}: cannot read ({error.strerror or error})") from error
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LowrankEdgeError(f"{path}: not UTF-8 text ({error}); {expected}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LowrankEdgeError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            f"{expected}"
        ) from error
    except RecursionError:
        raise LowrankEdgeError(f"{path}: not valid JSON (nested too deeply); {expected}") from None
    except ValueError as error:  # e.g. an integer literal longer than Python converts
        raise LowrankEdgeError(f"{path}: not valid JSON ({error}); {expected}") from error
