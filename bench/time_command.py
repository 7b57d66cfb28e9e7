"""Time one command end to end: wall seconds and exit code into DIR/timing.json, plus command.json.

Usage (from the repo root; plain `python3` is enough, it needs nothing beyond the stdlib):

    python3 bench/time_command.py --out bench/results/test-suite -- bash scripts/run-tests.sh
    python3 bench/time_command.py --out bench/results/main-job -- bash scripts/run-mnist.sh

The command runs in the current folder with this process's stdin/stdout/stderr. Afterwards
DIR/timing.json holds the timed command, its exit code, its wall seconds and its start and end
(UTC), and DIR/command.json the provenance of this timing (this command line, git commit, UTC
date, machine facts; `lowrank_edge.benchmark.results.provenance`), the .venv's package versions,
and `environment`: every variable a timed shell script reads, and the project's own, that is set.
Both are written atomically, and existing ones are never replaced without `--overwrite` (checked
before the command starts).
This script exits with the command's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.results.provenance import (  # noqa: E402
    COMMAND_NAME,
    command_record,
    utc_now,
    write_command_json,
)
from lowrank_edge.errors import LowrankEdgeError  # noqa: E402
from lowrank_edge.fileio import check_can_write, write_json_atomic  # noqa: E402

TIMING_NAME = "timing.json"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """--out DIR [--overwrite] -- COMMAND..."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace timing.json/command.json in --out"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to time")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the command to time after --, e.g. -- bash scripts/run-tests.sh")
    return args


def time_command(
    command: Sequence[str], out: Path, *, provenance: dict, overwrite: bool = False
) -> dict:
    """Run `command`, then write out/timing.json and out/command.json; return the timing."""
    for name in (TIMING_NAME, COMMAND_NAME):
        check_can_write(out / name, overwrite)
    started = utc_now()
    start = time.perf_counter()
    try:
        exit_code = subprocess.run(list(command), check=False).returncode
    except OSError as error:
        raise LowrankEdgeError(f"cannot run {command[0]!r}: {error}") from error
    wall = time.perf_counter() - start
    timing = {
        "command": list(command),
        "exit_code": exit_code,
        "wall_seconds": round(wall, 3),
        "started": started,
        "finished": utc_now(),
    }
    write_json_atomic(out / TIMING_NAME, timing, overwrite=overwrite)
    write_command_json(out, with_venv_packages(provenance), overwrite=overwrite)
    return timing


PROJECT_VARIABLES = ("LOWRANK_EDGE_CACHE", "LOWRANK_EDGE_OFFLINE", "LOWRANK_EDGE_EMNIST_DIR",
                     "KERAS_HOME", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                     "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")  # fmt: skip
SCRIPT_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def read_variables(command: Sequence[str], environ: dict[str, str]) -> dict[str, str]:
    """The environment variables that change what `command` runs and are set: the project's own
    (`PROJECT_VARIABLES`) and every `$NAME` a shell script in the command reads (MODEL=,
    RUNTIMES=, ...), so command.json says how a run was configured, not only its argv."""
    names = list(PROJECT_VARIABLES)
    for arg in command:
        path = Path(arg)
        if path.suffix == ".sh" and path.is_file():
            names += SCRIPT_VARIABLE.findall(path.read_text(errors="replace"))
    return {name: environ[name] for name in dict.fromkeys(names) if name in environ}


def with_venv_packages(provenance: dict, venv: Path = REPO / ".venv" / "bin" / "python") -> dict:
    """`provenance` with the runtime versions of the project's .venv, read after the command
    ran (this script runs on a bare python3, whose own versions are mostly absent)."""
    if not venv.exists():
        return provenance
    snippet = (
        "import json; from lowrank_edge.benchmark.system import package_versions; "
        "print(json.dumps(package_versions()))"
    )
    done = subprocess.run([str(venv), "-c", snippet], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return provenance
    machine = dict(provenance.get("machine") or {})
    machine["packages"] = json.loads(done.stdout)
    machine["packages_from"] = str(venv.relative_to(REPO))
    return {**provenance, "machine": machine}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    provenance = command_record(
        None if argv is None else [__file__, *argv],
        checkout=REPO,
        extra={
            "timed_command": list(args.command),
            "environment": read_variables(args.command, dict(os.environ)),
        },
    )
    try:
        timing = time_command(
            args.command, args.out, provenance=provenance, overwrite=args.overwrite
        )
    except LowrankEdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{' '.join(args.command)}: exit code {timing['exit_code']}, "
        f"{timing['wall_seconds']:.1f} s wall ({args.out / TIMING_NAME})",
        file=sys.stderr,
    )
    code = timing["exit_code"]
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as shells report


if __name__ == "__main__":
    sys.exit(main())
