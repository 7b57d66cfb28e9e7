"""The node list of an ONNX model, read straight from its protobuf bytes (no `onnx` package).

A benchmark device has ONNX Runtime but not the `onnx` package (the `bench` extra leaves it
out), yet the per-layer profile needs the graph ORT was given: node names, op types and the
tensors each node reads and writes (see `profiling`). Only that much is decoded, by hand from
the protobuf wire format: ModelProto.graph (field 7) → GraphProto.node (field 1) →
NodeProto input (1), output (2), name (3), op_type (4). Everything else, initializer bytes
included, is skipped without being copied; subgraphs (If/Loop bodies) are not read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from lowrank_edge.errors import DataFormatError

_MODEL_GRAPH, _GRAPH_NODE = 7, 1
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP = 1, 2, 3, 4


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph as exported: name, op type, input and output tensor names."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class OnnxGraph:
    """The nodes in file order, with lookups by node name and by the tensor a node writes."""

    nodes: list[GraphNode]
    by_name: dict[str, GraphNode] = field(init=False)
    producer: dict[str, GraphNode] = field(init=False)
    consumers: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {node.name: node for node in self.nodes if node.name}
        self.producer = {out: node for node in self.nodes for out in node.outputs if out}
        self.consumers = Counter(t for node in self.nodes for t in node.inputs if t)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise DataFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field or None for scalars) of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        value = None
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        elif wire == 5:
            pos += 4
        else:
            raise DataFormatError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise DataFormatError("truncated protobuf field")
        yield key >> 3, value


def _node(data: memoryview) -> GraphNode:
    parts: dict[int, list[str]] = {}
    for number, value in _fields(data):
        if value is not None and number in (_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP):
            parts.setdefault(number, []).append(bytes(value).decode("utf-8"))
    return GraphNode(
        name="".join(parts.get(_NODE_NAME, [])),
        op="".join(parts.get(_NODE_OP, [])),
        inputs=tuple(parts.get(_NODE_INPUT, [])),
        outputs=tuple(parts.get(_NODE_OUTPUT, [])),
    )


def read_onnx_graph(content: bytes, what: str = "ONNX model") -> OnnxGraph:
    """The main graph's nodes of a serialised ModelProto; `what` names it in errors."""
    try:
        nodes = [
            _node(node)
            for number, graph in _fields(memoryview(content))
            if number == _MODEL_GRAPH and graph is not None
            for inner, node in _fields(graph)
            if inner == _GRAPH_NODE and node is not None
        ]
    except (DataFormatError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{what}: not a readable ONNX model ({error})") from error
    if not nodes:
        raise DataFormatError(f"{what}: not a readable ONNX model (no graph nodes)")
    return OnnxGraph(nodes)
