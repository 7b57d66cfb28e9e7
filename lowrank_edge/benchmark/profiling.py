"""Per-layer time from ONNX Runtime profiles: each original layer, unfactorised vs its factors.

ORT's profiler (`enable_profiling`) writes a Chrome-trace JSON with one `Node`
event per kernel call. tf2onnx names nodes after the Keras layer scope
(`<model>_1/<layer>_1/<op>`), so a node's layer is the first name component
after the prefix all nodes share; a trailing `_<n>` that every scope carries is
TensorFlow's uniquifier and is dropped. Factor layers (`<layer>_lr_a`,
`<layer>_lr_b`) map back to `<layer>`.

Fusion renames nodes: ORT fuses Conv+BatchNorm+ReLU into one node named after
the last op's scope (e.g. `s1_relu`), in the baseline and in the compressed
model alike. When a factorised layer's second factor has no node of its own,
the compute node right after its first factor is that fused second factor, so
its scope is grouped with the layer; groups are shared by the baseline and the
compressed model, so "time unfactorised vs sum of its factors" compares like
with like. Nodes without a layer scope (layout reorders ORT inserts) are
reported as "(unattributed)".

LiteRT: the ai_edge_litert Python Interpreter exposes no per-op profiler (op
profiling needs the C++ benchmark_model tool), so only ORT is profiled.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lowrank_edge.errors import DataFormatError

FACTOR_SUFFIX = re.compile(r"^(?P<layer>.+)_lr_(?P<part>[ab])$")
UNIQUIFIER = re.compile(r"^(?P<name>.+)_\d+$")
UNATTRIBUTED = "(unattributed)"
_KERNEL_SUFFIX = "_kernel_time"


def is_compute_op(op_name: str) -> bool:
    """Convolutions and matrix products: the ops a factorisation changes."""
    return any(kind in op_name for kind in ("Conv", "MatMul", "Gemm"))


@dataclass(frozen=True)
class NodeEvent:
    """One kernel call in a trace: node name, op type, start and duration (microseconds)."""

    name: str
    op: str
    ts: int
    dur: int


@dataclass
class TraceProfile:
    """Node time per run from one ORT profile, by raw layer scope, in execution order."""

    runs: int
    scope_us: dict[str, float] = field(default_factory=dict)  # mean per run
    compute_order: list[str] = field(default_factory=list)  # scopes of compute nodes, one run


def parse_ort_trace(path: str | os.PathLike, skip_runs: int = 0) -> tuple[list[NodeEvent], int]:
    """Kernel events of the runs after the first `skip_runs` (warm-up), and how many runs remain."""
    path = Path(path)
    try:
        events = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(f"{path}: not an ONNX Runtime profile ({error})") from error
    if not isinstance(events, list):
        raise DataFormatError(f"{path}: not an ONNX Runtime profile (expected a JSON list)")
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    kept = runs[skip_runs:]
    if not kept:
        return [], 0
    start = kept[0][0]
    nodes = [
        NodeEvent(
            e["name"][: -len(_KERNEL_SUFFIX)],
            str(e.get("args", {}).get("op_name", "")),
            e["ts"],
            e["dur"],
        )
        for e in events
        if isinstance(e, dict)
        and e.get("cat") == "Node"
        and str(e.get("name", "")).endswith(_KERNEL_SUFFIX)
        and e.get("ts", -1) >= start
    ]
    return sorted(nodes, key=lambda n: n.ts), len(kept)


def node_scopes(names: Sequence[str]) -> dict[str, str]:
    """Map node names to their layer scope (see the module docstring); unscoped → UNATTRIBUTED."""
    # ORT names some fused nodes "fused <original name>": the scope is the original's.
    split = {name: name.removeprefix("fused ").split("/") for name in set(names)}
    scoped = [parts for parts in split.values() if len(parts) >= 2]
    prefix = 0
    if scoped:
        limit = min(len(parts) for parts in scoped) - 2
        while prefix < limit and len({parts[prefix] for parts in scoped}) == 1:
            prefix += 1
    raw = {name: parts[prefix] for name, parts in split.items() if len(parts) >= 2}
    distinct = set(raw.values())
    stripped = {scope: m["name"] for scope in distinct if (m := UNIQUIFIER.match(scope))}
    if len(stripped) == len(distinct) and len(set(stripped.values())) == len(distinct):
        raw = {name: stripped[scope] for name, scope in raw.items()}
    return {name: raw.get(name, UNATTRIBUTED) for name in split}


def trace_profile(nodes: Sequence[NodeEvent], runs: int) -> TraceProfile:
    """Mean time per run of each raw scope, and the scopes of one run's compute nodes in order."""
    scopes = node_scopes([n.name for n in nodes])
    profile = TraceProfile(runs=runs)
    seen: set[str] = set()
    for node in nodes:
        scope = scopes[node.name]
        profile.scope_us[scope] = profile.scope_us.get(scope, 0.0) + node.dur / max(runs, 1)
        if is_compute_op(node.op) and node.name not in seen:
            seen.add(node.name)
            profile.compute_order.append(scope)
    return profile


def original_layer(scope: str) -> str:
    """`<layer>` for a factor scope `<layer>_lr_a|b`, the scope itself otherwise."""
    match = FACTOR_SUFFIX.match(scope)
    return match["layer"] if match else scope


def fused_aliases(profile: TraceProfile) -> list[tuple[str, str]]:
    """(layer, scope) pairs: a second factor fused into the next node, named after `scope`."""
    pairs = []
    scopes = set(profile.scope_us)
    for i, scope in enumerate(profile.compute_order):
        match = FACTOR_SUFFIX.match(scope)
        if match and match["part"] == "a" and f"{match['layer']}_lr_b" not in scopes:
            if i + 1 < len(profile.compute_order):
                following = original_layer(profile.compute_order[i + 1])
                if following != match["layer"]:
                    pairs.append((match["layer"], following))
    return pairs


class _Groups:
    """Union-find over layer names; a group is labelled by its members joined with '+'."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        self.parent.setdefault(name, name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def members(self, name: str, order: Sequence[str]) -> list[str]:
        root = self.find(name)
        return [n for n in order if self.find(n) == root]


def compare_layers(
    baseline: TraceProfile, model: TraceProfile, aliases: Sequence[tuple[str, str]]
) -> list[dict]:
    """Per original layer (group): baseline vs model time in µs per run, in execution order."""
    groups = _Groups()
    for a, b in aliases:
        groups.union(a, b)
    order: list[str] = []
    for profile in (baseline, model):
        for scope in profile.scope_us:  # first appearance = execution order
            layer = original_layer(scope)
            if layer not in order:
                order.append(layer)
    factored = {a for a, _ in aliases}

    def label(layer: str) -> str:
        members = groups.members(layer, order)
        return "+".join(sorted(members, key=lambda n: (n not in factored, order.index(n))))

    rows: dict[str, dict] = {}
    first: dict[str, int] = {}
    for profile, key in ((baseline, "baseline_us"), (model, "model_us")):
        for scope, us in profile.scope_us.items():
            layer = original_layer(scope)
            group = label(layer)
            first[group] = min(first.get(group, len(order)), order.index(layer))
            row = rows.setdefault(
                group, {"layer": group, "baseline_us": 0.0, "model_us": 0.0, "factorised": False}
            )
            row[key] += us
            if profile is model and FACTOR_SUFFIX.match(scope):
                row["factorised"] = True
    ordered = sorted(rows.values(), key=lambda r: first[r["layer"]])
    for row in ordered:
        row["speedup"] = row["baseline_us"] / row["model_us"] if row["model_us"] > 0 else None
    return ordered
