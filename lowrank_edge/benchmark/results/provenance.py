"""Provenance of a results folder: `command.json` says what ran, from which commit, when, where.

Every figure quoted from a results folder must trace back to the exact command
line, the git commit of the code that ran it (and whether the tree had
uncommitted changes), the UTC date and the machine facts (`system_facts`).
TensorFlow-free: only the stdlib, git (when present) and `benchmark.system`.
"""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge.benchmark.system import system_facts
from lowrank_edge.fileio import check_can_write, write_json_atomic

COMMAND_NAME = "command.json"
SCHEMA = 1
# Git variables that would point `git -C <checkout>` at another repository.
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def source_checkout() -> Path:
    """The folder above the `lowrank_edge` package that is running (a checkout's root, if any)."""
    return Path(__file__).resolve().parents[3]


def _git(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in _GIT_ENV}
    return subprocess.run(
        ["git", "-C", str(checkout), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def git_state(checkout: str | os.PathLike | None = None) -> dict:
    """{"commit", "dirty", "reason"} of the git checkout whose top folder is `checkout`.

    `commit` is the full HEAD hash and `dirty` whether tracked files differ from it
    (untracked files, such as the results being written, do not count). Both are
    None, with `reason` saying why, when `checkout` is not the top of a git checkout
    (e.g. the package was installed, not run from its source) or git is missing.
    """
    checkout = Path(checkout) if checkout is not None else source_checkout()

    def unknown(reason: str) -> dict:
        return {"commit": None, "dirty": None, "reason": reason}

    try:
        top = _git(checkout, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        return unknown("git is not installed")
    except (OSError, subprocess.TimeoutExpired) as error:
        return unknown(f"git failed: {error}")
    if top.returncode != 0:
        return unknown(f"{checkout} is not in a git checkout")
    if Path(top.stdout.strip()).resolve() != checkout.resolve():
        return unknown(
            f"{checkout} is not the top of a git checkout (that is {top.stdout.strip()})"
        )
    head = _git(checkout, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0:
        return unknown(f"{checkout} has no commit yet")
    status = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": head.stdout.strip(), "dirty": dirty, "reason": None}


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """The command as run (default `sys.argv`), with the interpreter in front of a `.py` script."""
    argv = [str(arg) for arg in (sys.argv if argv is None else argv)]
    if argv and argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    return argv


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_record(
    argv: Sequence[str] | None = None,
    *,
    checkout: str | os.PathLike | None = None,
    extra: dict | None = None,
) -> dict:
    """What `command.json` holds: command, argv, cwd, commit, dirty, UTC date, machine facts."""
    argv = command_line(argv)
    git = git_state(checkout)
    return {
        "schema": SCHEMA,
        "command": shlex.join(argv),
        "argv": argv,
        "cwd": os.getcwd(),
        "commit": git["commit"],
        "dirty": git["dirty"],
        "commit_reason": git["reason"],
        "date": utc_now(),
        "machine": system_facts(),
    } | (extra or {})


def write_command_json(
    folder: str | os.PathLike, record: dict | None = None, *, overwrite: bool = False
) -> Path:
    """Write `record` (default: `command_record()` now) to `folder/command.json`, atomically.

    An existing command.json is only replaced with `overwrite`.
    """
    record = command_record() if record is None else record
    return write_json_atomic(Path(folder) / COMMAND_NAME, record, overwrite=overwrite)


def start_results_folder(
    folder: str | os.PathLike, outputs: Sequence[str], *, overwrite: bool = False
) -> Path:
    """Make a benchmark's result folder and write its command.json, first refusing (before any
    slow work) if command.json or any of `outputs` is already there and not `overwrite`."""
    folder = Path(folder)
    for name in (COMMAND_NAME, *outputs):
        check_can_write(folder / name, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    return write_command_json(folder, overwrite=overwrite)
