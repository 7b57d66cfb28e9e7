"""Per-layer time from ONNX Runtime profiles: each original layer, unfactorised vs its factors.

ORT's profiler (`enable_profiling`) writes a Chrome-trace JSON with one `Node` event per
kernel call. Each kernel is attributed to the Keras layer it computes, using the exported
graph (the ONNX bytes ORT was given), so that a rank allocator can read one row per
original layer: the time of the layer in the baseline against the sum of its factors.

How a kernel finds its layer, and why:

1. The profiled session runs with every graph optimisation, like the timed one, so its
   kernels are ORT's fused and re-laid-out nodes. ORT derives their names from the exported
   graph (this is how ORT's own op-profiling tools map them back): the NCHWc transformer
   names a node `<output tensor>_nchwc`, fusions keep the first node's name behind a
   `fused ` prefix or before a `/<Name>Fusion` suffix, and a name already taken gets
   `_token_<n>`. Each kernel is traced back to the exported node it came from; kernels ORT
   added (layout reorders, reshapes) have none and are unattributed.
2. A convolution or matrix product belongs to the layer owning its weights, read from the
   weight tensor's name: tf2onnx names a Conv+BatchNorm it folded after the BatchNorm's op
   (`<bn>/batchnorm/mul_1`) or anonymously (`Conv__<n>`), but the folded weight keeps the
   convolution's scope (`<conv>/convolution/merged_input`). A kernel named after an
   activation or add that ORT fused into a convolution is traced back to the one
   convolution feeding it (through tensors nothing else reads); if there are several, it is
   unattributed.
3. tf2onnx's helper nodes `<node>__<n>` (e.g. the input transpose) go with `<node>`.
4. A scope `<model>_1/<outer>_1/<layer>_1/<op>` gives the layer path `outer/layer`: the
   exported model's own scope is dropped and TensorFlow's uniquifier `_<n>`, which every
   layer scope carries, is stripped. Factor layers `<layer>_lr_a|b` map back to `<layer>`.

Rows: one per original layer (fused BatchNorm, activations and residual adds are counted
with the convolution whose kernel runs them, in the baseline and the model alike), one
"(unattributed)" row for other kernels without a layer, and one row per unattributed
compute kernel. No row ever holds two layers.

Calibration: the profiler adds a cost to every kernel, so the model with more (smaller)
kernels looks slower than it is, and the profiled sums disagree with timed whole-model
latency. Each model's kernel times are therefore also given scaled by (timed p50 per call ÷
profiled kernel sum per run), so the calibrated rows add up to the timed whole-model p50;
the raw figures are kept beside them.

LiteRT: the ai_edge_litert Python Interpreter exposes no per-op profiler (op profiling needs
the C++ benchmark_model tool), so only ORT is profiled.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lowrank_edge.benchmark.onnx_graph import GraphNode, OnnxGraph
from lowrank_edge.errors import DataFormatError

FACTOR_SUFFIX = re.compile(r"^(?P<layer>.+)_lr_(?P<part>[ab])$")
UNIQUIFIER = re.compile(r"^(?P<name>.*[^_])_\d+$")
HELPER_NODE = re.compile(r"^(?P<node>.+)__\d+$")
ORT_TOKEN = re.compile(r"_token_\d+$")
ORT_FUSION = re.compile(r"/\w*Fusion/?$")
ORT_FUSED_PREFIX = "fused "
NCHWC_SUFFIX = "_nchwc"
UNATTRIBUTED = "(unattributed)"
MAX_FUSION_DEPTH = 3  # Conv -> Add -> Relu is the longest chain ORT fuses into one kernel
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


def original_layer(path: str) -> str:
    """`<layer>` for a factor path `<layer>_lr_a|b`, the path itself otherwise."""
    match = FACTOR_SUFFIX.match(path)
    return match["layer"] if match else path


class LayerPaths:
    """Layer paths from the TensorFlow scopes in a graph's names (module docstring, point 4)."""

    def __init__(self, graph: OnnxGraph):
        split = [name.split("/") for name in graph.by_name if "/" in name]
        firsts = {parts[0] for parts in split}
        # the exported model's own scope: shared by every scoped name, each with a layer and op
        shared = len(firsts) == 1 and all(len(parts) >= 3 for parts in split)
        self.model_scope = firsts.pop() if shared else None
        skip = 1 if shared else 0
        scopes = [parts[skip] for parts in split if len(parts) > skip + 1]
        self.uniquified = bool(scopes) and all(UNIQUIFIER.match(scope) for scope in scopes)

    def path(self, name: str) -> str | None:
        """`outer/layer` for a node or tensor name; None when it has no layer scope."""
        parts = name.split("/")
        if self.model_scope is not None and parts[0] == self.model_scope:
            parts = parts[1:]
        scopes = parts[:-1]  # the last component names the op or tensor
        if not scopes:
            return None
        if not self.uniquified:
            return scopes[0]  # cannot tell nested layers from op scopes: keep the layer only
        layers = []
        for scope in scopes:
            match = UNIQUIFIER.match(scope)
            if match is None:
                break
            layers.append(match["name"])
        return "/".join(layers) or None


class Attribution:
    """Which layer path each ORT kernel computes, from the exported graph (module docstring)."""

    def __init__(self, graph: OnnxGraph):
        self.graph, self.paths = graph, LayerPaths(graph)

    def exported_node(self, kernel: str) -> GraphNode | None:
        """The exported node an ORT kernel name derives from; None for nodes ORT added."""
        graph, name = self.graph, kernel
        while True:
            if name in graph.by_name:
                return graph.by_name[name]
            if name.endswith(NCHWC_SUFFIX) and name[: -len(NCHWC_SUFFIX)] in graph.producer:
                return graph.producer[name[: -len(NCHWC_SUFFIX)]]
            shorter = name.removeprefix(ORT_FUSED_PREFIX)
            if shorter == name:
                shorter = ORT_TOKEN.sub("", name)
            if shorter == name:
                shorter = ORT_FUSION.sub("", name)
            if shorter == name:
                return None
            name = shorter

    def fused_source(self, node: GraphNode) -> GraphNode | None:
        """The one compute node whose kernel ORT fused `node` (an activation, an add) into."""
        frontier = [node]
        for _ in range(MAX_FUSION_DEPTH):
            found, upstream = [], []
            for current in frontier:
                for tensor in current.inputs:
                    producer = self.graph.producer.get(tensor)
                    if producer is None or self.graph.consumers[tensor] != 1:
                        continue  # a tensor read elsewhere cannot be inside a fused kernel
                    (found if is_compute_op(producer.op) else upstream).append(producer)
            if found:
                return found[0] if len(found) == 1 else None
            frontier = upstream
        return None

    def layer(self, kernel: str, op: str) -> str | None:
        """Layer path (factor suffix kept) of kernel `kernel` running `op`; None if unknown."""
        node = self.exported_node(kernel)
        if node is None:
            return None
        helper = HELPER_NODE.match(node.name)
        if helper and not is_compute_op(node.op) and helper["node"] in self.graph.by_name:
            node = self.graph.by_name[helper["node"]]
        if is_compute_op(op) and not is_compute_op(node.op):
            node = self.fused_source(node)
            if node is None:
                return None
        if is_compute_op(node.op) and len(node.inputs) > 1:
            weight_path = self.paths.path(node.inputs[1])
            if weight_path is not None:
                return weight_path
        return self.paths.path(node.name)


@dataclass
class LayerTimes:
    """Kernel time per run of one profiled model, by row (original layer), in execution order."""

    runs: int
    us: dict[str, float] = field(default_factory=dict)  # mean µs per run
    kernels: dict[str, list[str]] = field(default_factory=dict)  # "name (op)" of each kernel
    factorised: set[str] = field(default_factory=set)  # rows that ran a factor's kernel

    @property
    def total_us(self) -> float:
        """Sum of all kernel times per run (every kernel is in exactly one row)."""
        return sum(self.us.values())


def layer_times(nodes: Sequence[NodeEvent], runs: int, graph: OnnxGraph) -> LayerTimes:
    """Attribute every kernel of a trace to a row (see the module docstring)."""
    attribution = Attribution(graph)
    paths: dict[str, str | None] = {}
    times = LayerTimes(runs)
    for node in nodes:
        if node.name not in paths:
            paths[node.name] = attribution.layer(node.name, node.op)
        path = paths[node.name]
        if path is not None:
            row = original_layer(path)
        elif is_compute_op(node.op):
            row = f"{UNATTRIBUTED} {node.name}"  # its own row: never lumped with others
        else:
            row = UNATTRIBUTED
        times.us[row] = times.us.get(row, 0.0) + node.dur / max(runs, 1)
        kernels = times.kernels.setdefault(row, [])
        if f"{node.name} ({node.op})" not in kernels:
            kernels.append(f"{node.name} ({node.op})")
        if path is not None and FACTOR_SUFFIX.match(path):
            times.factorised.add(row)
    return times


def calibration(
    baseline: LayerTimes,
    model: LayerTimes,
    baseline_p50_us: float | None,
    model_p50_us: float | None,
) -> dict:
    """Profiled kernel sums against timed p50s (µs per call) and the scale factors between."""

    def scale(times: LayerTimes, p50: float | None) -> float | None:
        return p50 / times.total_us if p50 and times.total_us > 0 else None

    return {
        "baseline_profiled_us": baseline.total_us,
        "model_profiled_us": model.total_us,
        "baseline_timed_p50_us": baseline_p50_us,
        "model_timed_p50_us": model_p50_us,
        "baseline_scale": scale(baseline, baseline_p50_us),
        "model_scale": scale(model, model_p50_us),
    }


def _ratio(baseline: float | None, model: float | None) -> float | None:
    return baseline / model if baseline and model else None


def _note(layer: str, baseline_us: float, model_us: float) -> str:
    if layer == UNATTRIBUTED:
        return "kernels with no layer: added by ORT (layout reorders, reshapes) or unscoped"
    if layer.startswith(UNATTRIBUTED):
        return "compute kernel whose layer the exported graph does not name"
    if baseline_us == 0:
        return "no kernel of its own in the baseline (fused into another layer's kernel there)"
    if model_us == 0:
        return "no kernel of its own in the model (fused into another layer's kernel there)"
    return ""


def compare_layers(
    baseline: LayerTimes,
    model: LayerTimes,
    baseline_p50_us: float | None = None,
    model_p50_us: float | None = None,
) -> list[dict]:
    """One row per original layer: baseline vs model µs per run, raw and calibrated.

    `*_p50_us` are the timed (unprofiled) whole-model p50s per call; without them the
    calibrated figures are None. A speedup is None when either side has no kernel of its own
    (`note` says why), never 0.
    """
    summary = calibration(baseline, model, baseline_p50_us, model_p50_us)
    base_scale, model_scale = summary["baseline_scale"], summary["model_scale"]
    rows = []
    for layer in dict.fromkeys([*baseline.us, *model.us]):
        base_us, model_us = baseline.us.get(layer, 0.0), model.us.get(layer, 0.0)
        base_cal = base_us * base_scale if base_scale else None
        model_cal = model_us * model_scale if model_scale else None
        rows.append(
            {
                "layer": layer,
                "baseline_us": base_us,
                "model_us": model_us,
                "speedup": _ratio(base_us, model_us),
                "baseline_calibrated_us": base_cal,
                "model_calibrated_us": model_cal,
                "calibrated_speedup": _ratio(base_cal, model_cal),
                "factorised": layer in model.factorised,
                "note": _note(layer, base_us, model_us),
                "baseline_kernels": baseline.kernels.get(layer, []),
                "model_kernels": model.kernels.get(layer, []),
                "calibration": summary,
            }
        )
    return rows
