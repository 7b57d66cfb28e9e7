"""The latency table (`latency-table.json`, schema 1): measured p50 of every kit micro-model.

One entry per (signature key, rank or dense, backend, threads, batch), with its latency
statistics or the error that stopped it, beside the device facts and the timing policy.
`load_latency_table` validates the file, refuses it when a requested condition was not
measured, and warns when it was measured on a different device or runtime version.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import read_json_file, write_json_atomic
from lowrank_edge.runtime.kit_manifest import FLOAT32, LAYER, MODEL, backend_precisions
from lowrank_edge.runtime.manifest import _Fields

TABLE_SCHEMA = 1
TABLE_KIND = "lowrank-edge latency table"
TABLE_NAME = "latency-table.json"
TABLE_BACKENDS = ("litert", "onnxruntime")
COMPARED_FACTS = ("cpu_model", "cpu_count", "machine")
COMPARED_PACKAGES = ("numpy", "onnxruntime", "ai-edge-litert")


class LatencyTableWarning(UserWarning):
    """The table was measured on another device or with other runtime versions."""


REFERENCE_PRECISION = FLOAT32  # tables and kits from before precisions hold only this


@dataclass(frozen=True, order=True)
class Condition:
    """What a latency was measured under: runtime, intra-op threads, batch size, and the
    precision of the files timed (an export variant of the runtime's format: `float32`,
    `float16`, `int8-dynamic`, `int8-full` for LiteRT; `float32`, `int8-qdq`, `int8-dynamic`
    for ONNX Runtime)."""

    backend: str
    threads: int
    batch: int
    precision: str = REFERENCE_PRECISION

    def __str__(self) -> str:
        text = f"{self.backend}, {self.threads} thread(s), batch {self.batch}"
        return text if self.precision == REFERENCE_PRECISION else f"{text}, {self.precision}"


@dataclass(frozen=True)
class TableEntry:
    """The measured latency of one kit entry under one condition (p50 None: it failed)."""

    key: str
    rank: int | None
    kind: str
    condition: Condition
    p50_ms: float | None
    stats: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields, the condition spelled out."""
        return {
            "key": self.key,
            "rank": self.rank,
            "kind": self.kind,
            "backend": self.condition.backend,
            "threads": self.condition.threads,
            "batch": self.condition.batch,
            "precision": self.condition.precision,
            "p50_ms": self.p50_ms,
            "stats": self.stats,
            "error": self.error,
        }


@dataclass(frozen=True)
class LatencyTable:
    """A loaded or freshly measured table; look-ups by (key, rank, condition)."""

    entries: tuple[TableEntry, ...]
    device: dict[str, Any]
    kit: dict[str, Any]
    policy: dict[str, Any]
    options: dict[str, Any]
    created: str
    path: Path | None = None

    @cached_property
    def _index(self) -> dict[tuple[str, int | None, Condition], TableEntry]:
        return {(e.key, e.rank, e.condition): e for e in self.entries}

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition with at least one entry, sorted."""
        return tuple(sorted({e.condition for e in self.entries}))

    def where(self) -> str:
        """The file name for messages (or 'latency table' when not on disk)."""
        return str(self.path) if self.path is not None else "latency table"

    def p50(self, key: str, rank: int | None, condition: Condition) -> float | None:
        """Measured p50 (ms) of `key` at `rank` (None: dense); None when not measured or failed."""
        entry = self._index.get((key, rank, condition))
        return None if entry is None else entry.p50_ms

    def ranks(self, key: str, condition: Condition) -> list[int]:
        """The ranks of `key` measured successfully under `condition`, ascending."""
        return sorted(
            e.rank
            for e in self.entries
            if e.key == key
            and e.condition == condition
            and e.rank is not None
            and e.p50_ms is not None
        )

    def require(self, conditions: Iterable[Condition]) -> None:
        """Raise a clear error unless every condition in `conditions` was measured."""
        have = set(self.conditions)
        missing = [c for c in conditions if c not in have]
        if missing:
            listed = "; ".join(str(c) for c in self.conditions) or "none"
            raise LowrankEdgeError(
                f"{self.where()}: no measurements for {'; '.join(str(c) for c in missing)} "
                f"(it has: {listed}); measure them with latency-table"
            )

    def device_differences(self, facts: dict[str, Any]) -> list[str]:
        """How `facts` (system_facts of this machine) differ from the table's device."""
        problems = []
        for name in COMPARED_FACTS:
            if self.device.get(name) != facts.get(name):
                problems.append(f"{name} {self.device.get(name)!r} vs {facts.get(name)!r} here")
        ours, theirs = self.device.get("packages") or {}, facts.get("packages") or {}
        for name in COMPARED_PACKAGES:
            if ours.get(name) != theirs.get(name):
                problems.append(f"{name} {ours.get(name)} vs {theirs.get(name)} here")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """The `latency-table.json` content."""
        return {
            "schema": TABLE_SCHEMA,
            "kind": TABLE_KIND,
            "created": self.created,
            "device": self.device,
            "kit": self.kit,
            "policy": self.policy,
            "options": self.options,
            "conditions": [vars(c).copy() for c in self.conditions],
            "entries": [e.to_dict() for e in self.entries],
        }


def write_latency_table(table: LatencyTable, path: str | os.PathLike, overwrite: bool) -> Path:
    """Write `table` to `path` atomically; an existing file is replaced only with `overwrite`."""
    return write_json_atomic(path, table.to_dict(), overwrite=overwrite)


def load_latency_table(
    path: str | os.PathLike,
    conditions: Iterable[Condition] = (),
    facts: dict[str, Any] | None = None,
) -> LatencyTable:
    """Read and validate a table; refuse it unless every one of `conditions` was measured.

    Warns (LatencyTableWarning) when the device facts differ from `facts`, by default this
    machine's `system_facts()`.
    """
    path = Path(path)
    if not path.is_file():
        raise LowrankEdgeError(f"{path}: latency table not found (measure one with latency-table)")
    table = table_from_dict(read_json_file(path, "latency table"), path)
    table.require(conditions)
    if facts is None:
        from lowrank_edge.benchmark.system import system_facts

        facts = system_facts()
    differences = table.device_differences(facts)
    if differences:
        warnings.warn(
            f"{path}: measured on another device or runtime: {'; '.join(differences)}",
            LatencyTableWarning,
            stacklevel=2,
        )
    return table


def table_from_dict(data: Any, path: Path | None = None) -> LatencyTable:
    """Build a `LatencyTable` from parsed JSON, validating every field against schema 1."""
    root = _Fields(data, "", str(path) if path is not None else TABLE_NAME)
    if root.get("kind", str) != TABLE_KIND or root.get("schema", int) != TABLE_SCHEMA:
        raise LowrankEdgeError(
            f"{root.source}: not a schema-{TABLE_SCHEMA} latency table (kind "
            f"{data.get('kind')!r}, schema {data.get('schema')!r}); measure it again"
        )
    entries = tuple(_entry(item) for item in root.items("entries"))
    seen: set[tuple] = set()
    for entry in entries:
        ident = (entry.key, entry.rank, entry.condition)
        if ident in seen:
            raise LowrankEdgeError(
                f"{root.source}: entry {entry.key} rank {entry.rank} under {entry.condition} "
                "appears twice"
            )
        seen.add(ident)
    return LatencyTable(
        entries=entries,
        device=root.get("device", dict),
        kit=root.get("kit", dict),
        policy=root.get("policy", dict),
        options=root.get("options", dict),
        created=root.get("created", str),
        path=path,
    )


def _entry(f: _Fields) -> TableEntry:
    backend = f.get("backend", str)
    if backend not in TABLE_BACKENDS:
        raise f.error("backend", f"must be one of {', '.join(TABLE_BACKENDS)}, got {backend!r}")
    threads, batch = f.get("threads", int), f.get("batch", int)
    for name, value in (("threads", threads), ("batch", batch)):
        if value < 1:
            raise f.error(name, f"must be >= 1, got {value}")
    kind = f.get("kind", str)
    if kind not in (LAYER, MODEL):
        raise f.error("kind", f"must be {LAYER!r} or {MODEL!r}, got {kind!r}")
    rank = f.get("rank", int, nullable=True)
    if rank is not None and rank < 1:
        raise f.error("rank", f"must be null or a positive integer, got {rank}")
    precision = f.data.get("precision", REFERENCE_PRECISION)  # tables before precisions: float32
    if precision not in backend_precisions(backend):
        raise f.error(
            "precision", f"must be one of {', '.join(backend_precisions(backend))} for {backend}, "
            f"got {precision!r}",
        )  # fmt: skip
    p50 = f.get("p50_ms", float, nullable=True)
    error = f.get("error", str, nullable=True)
    if p50 is None and error is None:
        raise f.error("p50_ms", "is null but no error says why")
    if p50 is not None and not (math.isfinite(p50) and p50 >= 0):
        raise f.error("p50_ms", f"must be a non-negative number, got {p50}")
    return TableEntry(
        key=f.get("key", str),
        rank=rank,
        kind=kind,
        condition=Condition(backend, threads, batch, precision),
        p50_ms=p50,
        stats=f.get("stats", dict, nullable=True),
        error=error,
    )
