"""The pipeline's latency table: reuse the file when it is there, else measure it once.

A table is keyed by layer shape signatures, so the one measured for a base model serves every
run with the same layer shapes; the second run reads it instead of timing again. A table
that lacks the model's layers or the condition is refused when it is used, with a message
that says so.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from lowrank_edge.benchmark.kit_timing import measure_kit
from lowrank_edge.benchmark.latency_table import write_latency_table
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.latency.kit import build_kit_from_model
from lowrank_edge.latency.target import LatencyTarget
from lowrank_edge.logs import Log, log_stderr


def ensure_latency_table(
    model, target: LatencyTarget, log: Log = log_stderr, policy: TimingPolicy | None = None
) -> Path:
    """`target.table`, measured for `model` under `target.condition` unless it exists."""
    path = Path(target.table)
    if path.is_file():
        log(f"[latency] reusing the latency table {path}")
        return path
    start = time.perf_counter()
    log(f"[latency] no table at {path}: building the kit and timing it on {target.condition}")
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-kit-") as folder:
        kit = build_kit_from_model(
            model, Path(folder) / "kit", precisions=(target.precision,), log=log
        )
        table = measure_kit(kit, [target.condition], policy)
    table = dataclasses.replace(table, kit={**table.kit, "path": None, "built_from": model.name})
    write_latency_table(table, path, overwrite=False)
    log(f"[latency] wrote {path} in {time.perf_counter() - start:.0f} s")
    return path
