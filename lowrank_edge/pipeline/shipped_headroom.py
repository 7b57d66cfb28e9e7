"""Low-rank in the original's fastest precision: how much it could still give on this machine.

After the closing bench, per runtime: the precision in which the original's own file is fastest
(its paired speedup over its float32 file), a latency table of the original in that precision
(the product's kit and timing, on this machine) and the headroom it gives. Below `MIN_HEADROOM`
the report says low-rank adds nothing worth having to the file that ships; at or above it, it
gives the command for a latency budget in that precision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lowrank_edge.benchmark.latency_table import Condition, write_latency_table
from lowrank_edge.benchmark.results.storage import read_results
from lowrank_edge.logs import Log

MIN_HEADROOM = 1.2  # below this, a latency budget has too little to give to be worth a model
TABLE_NAME = "latency-table-shipped.json"


def fastest_original_precisions(bench: Path) -> dict[str, tuple[str, float]]:
    """backend -> (variant, paired speedup over the original float32) of the original's fastest
    file in the bench folder `bench`."""
    best: dict[str, tuple[str, float]] = {}
    for record in read_results(bench):
        if record.get("status") != "ok" or not record.get("is_baseline"):
            continue
        speedup = record.get("reference_speedup")
        if speedup is None or record.get("backend") == "keras":
            continue
        backend = record["backend"]
        if backend not in best or speedup > best[backend][1]:
            best[backend] = (record["variant"], float(speedup))
    return best


def shipped_headroom(model, model_path: Path, bench: Path, threads: int, batch: int,
                     log: Log) -> list[dict]:  # fmt: skip
    """One row per runtime: the original's fastest precision, the latency table measured for it
    (`bench/latency-table-shipped.json`) and the headroom low-rank has there, with the advice."""
    from lowrank_edge.benchmark.kit_timing import measure_kit
    from lowrank_edge.compress.analyse import analyse_model
    from lowrank_edge.latency.hardware_cost import headroom
    from lowrank_edge.latency.kit import build_kit_from_model

    fastest = fastest_original_precisions(bench)
    if not fastest:
        return []
    conditions = [Condition(b, threads, batch, p) for b, (p, _) in fastest.items()]
    log(f"[headroom] latency table of the original in its fastest precisions: "
        f"{', '.join(str(c) for c in conditions)}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lowrank-edge-kit-") as folder:
        precisions = tuple(dict.fromkeys(c.precision for c in conditions))
        kit = build_kit_from_model(model, Path(folder) / "kit", precisions=precisions, log=log)
        table = measure_kit(kit, conditions)
    table_path = write_latency_table(table, bench / TABLE_NAME, overwrite=True)
    analysis = analyse_model(model)
    rows = []
    for condition in conditions:
        limit = headroom(table, analysis, condition).speedup
        precision, over_float32 = fastest[condition.backend]
        rows.append(
            {
                "backend": condition.backend,
                "precision": precision,
                "original_speedup_over_float32": over_float32,
                "headroom": limit,
                "table": str(table_path),
                "advice": _advice(condition, limit, model_path, table_path),
            }
        )
        log(f"[headroom] {condition}: {rows[-1]['advice']}")
    return rows


def _advice(condition: Condition, limit: float, model_path: Path, table: Path) -> str:
    if limit < MIN_HEADROOM:
        return (
            f"low-rank adds nothing worth a model to {condition.precision} on this CPU: headroom "
            f"{limit:.2f}x (below {MIN_HEADROOM:g}x); ship the original's {condition.precision} "
            "file, or a low-rank one only for its size"
        )
    target = 0.9 * limit
    return (
        f"a latency budget in {condition.precision} can give up to {limit:.2f}x: "
        f"`lowrank-edge compress {model_path} --latency-table {table} --backend "
        f"{condition.backend} --threads {condition.threads} --batch {condition.batch} "
        f"--precision {condition.precision} --target-speedup {target:.2f}`"
    )
