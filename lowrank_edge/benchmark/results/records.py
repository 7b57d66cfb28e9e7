"""One result record per configuration (model x backend x variant x threads x batch).

A record holds the latency statistics, the actual speedup against the
baseline (median of per-round ratios, with spread), the theoretical speedup
from MACs, their ratio (efficiency) and flags - or the error that stopped it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from lowrank_edge.benchmark.suite import BenchModel
from lowrank_edge.benchmark.timing.interleave import Measurement
from lowrank_edge.benchmark.timing.ratios import paired_speedup, relative_spread, repeat_p50s
from lowrank_edge.benchmark.timing.stats import LatencyStats
from lowrank_edge.runtime.kit_manifest import FLOAT32

LOW_EFFICIENCY = 0.5
FLAG_SLOWER = "slower_than_baseline"
FLAG_LOW_EFFICIENCY = "efficiency_below_0.5"
REFERENCE_VARIANT = FLOAT32  # every variant's paired speedup is against this one
SPREAD_LIMIT = 0.05  # p50 spread over repeats above this: the configuration is flagged as noisy


@dataclass(frozen=True)
class GroupContext:
    """What the models of one interleaved group share: backend, variant, threads, batch, run."""

    backend: str
    variant: str
    threads: int
    batch: int
    run: dict  # run_id, host, created, cpus, policy - copied into every record
    warnings: tuple[str, ...] = field(default_factory=tuple)


def theoretical_speedup(baseline_macs: int | None, model_macs: int | None) -> float | None:
    """MACs(baseline) / MACs(model), None when either is unknown or zero."""
    if not baseline_macs or not model_macs:
        return None
    return baseline_macs / model_macs


def comparison_flags(
    actual: float | None, efficiency: float | None, is_baseline: bool
) -> list[str]:
    """Flags for a compressed model slower than the baseline, or far below its theoretical gain."""
    if is_baseline:
        return []
    flags = []
    if actual is not None and actual < 1.0:
        flags.append(FLAG_SLOWER)
    if efficiency is not None and efficiency < LOW_EFFICIENCY:
        flags.append(FLAG_LOW_EFFICIENCY)
    return flags


def spread_warning(record: dict) -> str | None:
    """A warning naming the configuration when its p50 spread over repeats exceeds 5%, else None.

    The spread is (max - min) / median of the per-repeat p50s (`repeat_spread`); it needs at
    least two repeats.
    """
    spread = record.get("repeat_spread")
    if record.get("status") != "ok" or spread is None or spread <= SPREAD_LIMIT:
        return None
    return (
        f"p50 spread over repeats {100 * spread:.1f}% > {100 * SPREAD_LIMIT:g}%: "
        f"{record['backend']} {record['model']} {record['variant']} "
        f"threads={record['threads']} batch={record['batch']} on {record.get('device', '?')}; "
        "its latency and speedup are uncertain by about as much"
    )


def failure_record(
    context: GroupContext, model: BenchModel, artifact: str | None, error: str
) -> dict:
    """A record for a configuration that could not be timed, carrying its error."""
    return _base(context, model, artifact) | {"status": "failed", "error": error}


def _base(context: GroupContext, model: BenchModel, artifact: str | None) -> dict:
    return {
        **context.run,
        "model": model.label,
        "model_dir": str(model.folder),
        "model_name": model.manifest.model.name if model.manifest else None,
        "backend": context.backend,
        "variant": context.variant,
        "artifact": artifact,
        "threads": context.threads,
        "batch": context.batch,
        "macs": model.macs,
        "warnings": list(context.warnings),
    }


def build_records(
    context: GroupContext,
    models: Sequence[BenchModel],
    artifacts: Sequence[str | None],
    measurements: Sequence[Measurement],
    baseline: int,
    reference: Measurement | None = None,
) -> list[dict]:
    """Records for every model of a group that was measured (or failed while measured).

    `actual_speedup` is against the baseline model in this group's variant; `reference_speedup`
    against `reference`, the baseline's float32 timed in the same interleaved rounds as every
    variant of this backend/threads/batch (the one speedup `recommend` quotes), when given.
    """
    base_model, base_measurement = models[baseline], measurements[baseline]
    base_ok = base_measurement.ok
    records = []
    for index, (model, artifact, measurement) in enumerate(
        zip(models, artifacts, measurements, strict=True)
    ):
        if not measurement.ok:
            error = measurement.error or "not measured"
            records.append(failure_record(context, model, artifact, error))
            continue
        stats = LatencyStats.from_ns(measurement.pooled_ns(), context.batch)
        p50s = repeat_p50s(measurement)
        record = _base(context, model, artifact) | {
            "status": "ok",
            "error": None,
            "is_baseline": index == baseline,
            "baseline": base_model.label,
            "latency": stats.to_dict(),
            "p50_repeats_ms": p50s,
            "repeat_spread": relative_spread(p50s),
        }
        summary = paired_speedup(base_measurement, measurement) if base_ok else None
        paired = paired_speedup(reference, measurement) if reference and reference.ok else None
        record |= {
            "reference": f"{base_model.label} {REFERENCE_VARIANT}" if paired else None,
            "reference_speedup": paired.median if paired else None,
            "reference_spread": paired.to_dict() if paired else None,
        }
        actual = summary.median if summary else None
        theory = theoretical_speedup(base_model.macs, model.macs)
        efficiency = actual / theory if actual is not None and theory else None
        if efficiency is not None and not math.isfinite(efficiency):
            efficiency = None
        record |= {
            "baseline_macs": base_model.macs,
            "theoretical_speedup": theory,
            "actual_speedup": actual,
            "speedup_spread": summary.to_dict() if summary else None,
            "efficiency": efficiency,
            "flags": comparison_flags(actual, efficiency, index == baseline),
        }
        if not base_ok:
            record["warnings"] = record["warnings"] + [
                f"no speedup: the baseline {base_model.label} failed in this configuration"
            ]
        noisy = spread_warning(record)
        if noisy is not None:
            record["warnings"] = record["warnings"] + [noisy]
        records.append(record)
    return records
