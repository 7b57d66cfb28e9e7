"""Time every micro-model of a latency kit on each backend x threads x batch: the latency table.

The entries of one signature (the dense layer and its factor pairs) are timed together in
interleaved rounds, so drift hits them alike; every open reads the file once and checks its
SHA-256 on those bytes. An entry that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from lowrank_edge.benchmark.backends.runtimes import (
    FORMAT_OF,
    BackendOptions,
    RunnerSession,
    missing_runtime,
)
from lowrank_edge.benchmark.latency_table import (
    REFERENCE_PRECISION,
    TABLE_BACKENDS,
    Condition,
    LatencyTable,
    TableEntry,
)
from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.benchmark.system import system_facts
from lowrank_edge.benchmark.timing.calls import TimingPolicy
from lowrank_edge.benchmark.timing.interleave import Measurement, Opener, measure_interleaved
from lowrank_edge.benchmark.timing.stats import LatencyStats
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import sha256_file
from lowrank_edge.runtime.kit_manifest import (
    Kit,
    KitEntry,
    backend_precisions,
    file_key,
    kit_file_path,
    read_kit_file,
    split_key,
)
from lowrank_edge.runtime.runner import open_model_bytes


def kit_conditions(
    backends: Sequence[str],
    threads: Sequence[int],
    batches: Sequence[int],
    precisions: Sequence[str] = (REFERENCE_PRECISION,),
) -> list[Condition]:
    """Every backend x its precisions among `precisions` x threads x batch, validated, in the
    given order (LiteRT: float32, float16, int8-dynamic, int8-full; ONNX Runtime: float32,
    int8-qdq, int8-dynamic). A precision no chosen backend has is an error."""
    unknown = [b for b in backends if b not in TABLE_BACKENDS]
    if unknown:
        raise LowrankEdgeError(
            f"--backends: {', '.join(unknown)} cannot time a latency kit; "
            f"choose from {', '.join(TABLE_BACKENDS)}"
        )
    bad = [v for v in (*threads, *batches) if isinstance(v, bool) or v < 1]
    if not backends or not threads or not batches or bad:
        raise LowrankEdgeError(
            "--backends, --threads and --batch each need at least one value; thread counts "
            f"and batch sizes must be >= 1 (got threads {list(threads)}, batch {list(batches)})"
        )
    backends = list(dict.fromkeys(backends))
    known = dict.fromkeys(p for b in backends for p in backend_precisions(b))
    unknown = [p for p in precisions if p not in known]
    if unknown or not precisions:
        raise LowrankEdgeError(
            f"--precision: {', '.join(unknown) or 'none given'}: the chosen runtimes "
            f"({', '.join(backends)}) time {', '.join(known)}"
        )
    return [
        Condition(b, t, n, p)
        for b in backends
        for p in dict.fromkeys(precisions)
        if p in backend_precisions(b)
        for t in threads
        for n in batches
    ]


def entry_groups(kit: Kit) -> list[list[KitEntry]]:
    """Entries grouped by signature key (first-seen order), dense first, then by rank."""
    groups: dict[str, list[KitEntry]] = {}
    for entry in kit.entries:
        groups.setdefault(entry.key, []).append(entry)
    return [sorted(g, key=lambda e: -1 if e.rank is None else e.rank) for g in groups.values()]


def kit_input(entry: KitEntry, batch: int, seed: int = 0) -> np.ndarray:
    """A seeded standard-normal float32 batch of the entry's input shape."""
    features = entry.input_shape[1:]
    if any(d is None for d in features):
        raise LowrankEdgeError(f"kit entry {entry.label}: input shape {entry.input_shape} is open")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *features)).astype(np.float32)


def entry_opener(
    kit: Kit, entry: KitEntry, key: str, threads: int, x: np.ndarray, options: BackendOptions
) -> Opener:
    """An opener that loads the verified bytes of the entry's file `key` (`file_key`) in its
    runtime, bound to `x`."""
    fmt = split_key(key)[0]

    def open_session() -> RunnerSession:
        content = read_kit_file(kit, entry, key)
        runner = open_model_bytes(
            content,
            kit_file_path(kit, entry, key),
            fmt,
            threads=threads,
            use_xnnpack=options.use_xnnpack,
            allow_spinning=options.allow_spinning,
        )
        return RunnerSession(runner, x)

    return open_session


def table_entry(entry: KitEntry, condition: Condition, measurement: Measurement) -> TableEntry:
    """The table row of one timed entry: its statistics, or the error that stopped it."""
    if not measurement.ok:
        error = measurement.error or "not timed"
        return TableEntry(entry.key, entry.rank, entry.kind, condition, None, None, error)
    stats = LatencyStats.from_ns(measurement.pooled_ns(), condition.batch)
    return TableEntry(entry.key, entry.rank, entry.kind, condition, stats.p50_ms, stats.to_dict())


def measure_kit(
    kit: Kit,
    conditions: Sequence[Condition],
    policy: TimingPolicy | None = None,
    options: BackendOptions | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> LatencyTable:
    """Time every kit entry under every condition; a runtime that is not installed is an error."""
    policy, options = policy or TimingPolicy(), options or BackendOptions()
    for backend in dict.fromkeys(c.backend for c in conditions):
        problem = missing_runtime(backend)
        if problem is not None:
            raise LowrankEdgeError(problem)
    groups = entry_groups(kit)
    per_condition = sum(len(g) for g in groups) * policy.rounds * policy.repeats
    progress = progress or Progress(1, enabled=False)
    progress.total = max(per_condition * len(conditions), 1)
    rows: list[TableEntry] = []
    for condition in conditions:
        key = file_key(FORMAT_OF[condition.backend], condition.precision)
        missing = f"kit has no {key} file (build the kit with --precision {condition.precision})"
        for group in groups:
            timed = [e for e in group if key in e.files]
            rows.extend(
                TableEntry(e.key, e.rank, e.kind, condition, None, None, missing)
                for e in group
                if key not in e.files
            )
            if not timed:
                continue
            x = kit_input(timed[0], condition.batch, seed)
            openers = [entry_opener(kit, e, key, condition.threads, x, options) for e in timed]

            def step(index: int, repeat: int, rnd: int, group=timed, cond=condition) -> None:
                progress.step(str(cond), f"{group[index].label} round {rnd + 1}")

            measured = measure_interleaved(openers, policy, on_step=step)
            rows.extend(table_entry(e, condition, m) for e, m in zip(timed, measured, strict=True))
    progress.finish()
    return LatencyTable(
        entries=tuple(rows),
        device=system_facts(),
        kit=kit_summary(kit),
        policy=policy.to_dict(),
        options=asdict(options),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def kit_summary(kit: Kit) -> dict:
    """Which kit the table measured: its folder, kit.json checksum and source model."""
    return {
        "path": str(kit.folder),
        "sha256": sha256_file(kit.path) if kit.path is not None else None,
        "source": kit.source,
        "entries": len(kit.entries),
    }
