"""Result files: `results.jsonl` written record by record, read back, flattened to CSV.

Each record is appended and flushed as soon as its configuration is done, so
an interrupted sweep (Ctrl-C) keeps everything finished before it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from lowrank_edge.errors import DataFormatError, LowrankEdgeError
from lowrank_edge.fileio import write_text_atomic

RESULTS_NAME = "results.jsonl"
PROFILE_NAME = "profile.jsonl"

CSV_COLUMNS = (
    "device", "host", "cpu_model", "model", "backend", "variant", "threads", "batch", "status",
    "runs", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "std_ms", "throughput",
    "macs", "theoretical_speedup", "actual_speedup", "speedup_q1", "speedup_q3", "speedup_min",
    "speedup_max", "efficiency", "repeat_spread", "flags", "warnings", "error",
)  # fmt: skip


class JsonlWriter:
    """Append JSON records to a file, one per line, flushed after each (a context manager)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = open(self.path, "a", encoding="utf-8")
        self.count = 0

    def write(self, record: dict) -> None:
        """Append one record and flush it to the OS."""
        self._handle.write(json.dumps(record, allow_nan=False) + "\n")
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL file; a bad line raises DataFormatError naming file and line."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(
                    f"{path}: line {number}: not valid JSON ({error.msg})"
                ) from error
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}: line {number}: expected a JSON object")
            records.append(record)
    return records


def read_results(folder: str | os.PathLike) -> list[dict]:
    """The records of a result folder's results.jsonl; `device` defaults to the folder name."""
    folder = Path(folder)
    path = folder / RESULTS_NAME if folder.is_dir() else folder
    if not path.is_file():
        raise LowrankEdgeError(
            f"{path}: no benchmark results here (run `lowrank-edge bench` first)"
        )
    device = path.parent.name
    records = read_jsonl(path)
    for number, record in enumerate(records, start=1):
        for key in ("model", "backend", "variant", "threads", "batch", "status"):
            if key not in record:
                raise DataFormatError(f"{path}: record {number} lacks the field '{key}'")
        record.setdefault("device", device)
    return records


def flat_row(record: dict) -> dict:
    """The CSV columns of one record (latency and spread fields lifted to the top level)."""
    row = {key: record.get(key) for key in CSV_COLUMNS}
    row["cpu_model"] = (record.get("system") or {}).get("cpu_model")
    for key, value in (record.get("latency") or {}).items():
        if key in row:
            row[key] = value
    for key, value in (record.get("speedup_spread") or {}).items():
        if f"speedup_{key}" in row:
            row[f"speedup_{key}"] = value
    row["flags"] = ";".join(record.get("flags") or [])
    row["warnings"] = ";".join(record.get("warnings") or [])
    return row


def write_csv(records: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write the records as CSV (atomically), one row per configuration."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(flat_row(record))
    return write_text_atomic(path, buffer.getvalue())
