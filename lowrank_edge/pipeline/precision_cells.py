"""Does low-rank pay in each precision that ships? One cell per model, runtime and precision.

Read from the closing bench's records (`<out_dir>/bench/results.jsonl`): every compressed
model's file against the original's file **in the same precision and runtime**, timed in the
same interleaved rounds (the record's same-variant paired speedup). A cell below 1.0x is flagged
with the reason in words, from the figures beside it: the MACs it saved (theoretical speedup)
and what the CPU does with that precision.
"""

from __future__ import annotations

from pathlib import Path

from lowrank_edge.benchmark.cpu_features import precision_advice
from lowrank_edge.benchmark.results.storage import read_results


def _reason(record: dict) -> str:
    """Why a low-rank file is slower than the original in its precision, in words."""
    theory = record.get("theoretical_speedup")
    variant = record["variant"]
    saved = (
        f"it needs {theory:.2f}x fewer MACs, but "
        if theory and theory > 1
        else "it saves no MACs; "
    )
    features = (record.get("system") or {}).get("cpu_features")
    int8_fast = bool(features) and any(features.get(f) for f in ("amx_int8", "vnni", "neon_dot"))
    if variant.startswith("int8") and int8_fast:
        advice = precision_advice(features)[0]
        return (
            f"{saved}{advice.split(':')[0]}, so the original's int8 file is already fast, and each "
            "factorised layer adds a second layer and its requantisation, which cost more than the "
            "MACs saved"
        )
    return (
        f"{saved}each factorised layer runs as two smaller layers, and at these shapes the "
        f"runtime's {variant} kernels lose more to the extra layer than they gain from the "
        "fewer MACs"
    )


def same_precision_cells(bench: Path) -> list[dict]:
    """One cell per compressed model x runtime x precision of the bench folder `bench`: its
    paired speedup over the original in that precision, its IQR, and `slower` with the reason
    when below 1.0x. The original's own records and failed ones are left out."""
    cells = []
    for record in read_results(bench):
        if record.get("status") != "ok" or record.get("is_baseline"):
            continue
        if record.get("backend") == "keras" or record.get("actual_speedup") is None:
            continue
        spread = record.get("speedup_spread") or {}
        speedup = float(record["actual_speedup"])
        cells.append(
            {
                "model": record["model"],
                "backend": record["backend"],
                "variant": record["variant"],
                "speedup": speedup,
                "q1": spread.get("q1"),
                "q3": spread.get("q3"),
                "rounds": spread.get("rounds"),
                "theoretical_speedup": record.get("theoretical_speedup"),
                "slower": speedup < 1.0,
                "reason": _reason(record) if speedup < 1.0 else None,
            }
        )
    return cells
