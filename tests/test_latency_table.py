"""The latency table file (TF-free): round trip, refusal of unmeasured conditions, device
warnings, validation errors naming the field, and a TF-free import of its modules."""

from __future__ import annotations

import json
import warnings

import pytest
from harness.bench import TF_BLOCKER
from harness.export import run_python

from lowrank_edge.benchmark.kit_timing import kit_conditions
from lowrank_edge.benchmark.latency_table import (
    Condition,
    LatencyTable,
    LatencyTableWarning,
    TableEntry,
    load_latency_table,
    write_latency_table,
)
from lowrank_edge.errors import LowrankEdgeError

DEVICE = {
    "cpu_model": "Test CPU",
    "cpu_count": 2,
    "machine": "x86_64",
    "packages": {"numpy": "2.0", "onnxruntime": "1.0", "ai-edge-litert": "1.0"},
}


LITERT_1_1 = (Condition("litert", 1, 1),)


def synthetic_table(conditions=LITERT_1_1) -> LatencyTable:
    """Two signatures, dense plus two ranks each, one failed entry, under each condition."""
    entries = []
    for condition in conditions:
        for key in ("Dense in=8 k=8x16 act=relu bias", "Conv2D in=8x8x4 k=3x3x4x8"):
            for rank, p50 in ((None, 1.0), (1, 0.5), (2, 0.7)):
                entries.append(TableEntry(key, rank, "layer", condition, p50, {"p50_ms": p50}))
        entries.append(TableEntry("model:tiny", None, "model", condition, None, None, "boom"))
    return LatencyTable(
        entries=tuple(entries),
        device=DEVICE,
        kit={"path": "kit", "sha256": "0" * 64},
        policy={"rounds": 2},
        options={"use_xnnpack": True},
        created="2025-01-01T00:00:00+00:00",
    )


def test_a_table_round_trips(tmp_path):
    conditions = (Condition("litert", 1, 1), Condition("onnxruntime", 2, 32))
    table = synthetic_table(conditions)
    path = write_latency_table(table, tmp_path / "latency-table.json", overwrite=False)
    back = load_latency_table(path, conditions, facts=DEVICE)
    assert back.to_dict() == table.to_dict()
    assert back.entries == table.entries
    assert back.conditions == tuple(sorted(conditions))
    key = "Dense in=8 k=8x16 act=relu bias"
    assert back.p50(key, 1, conditions[1]) == 0.5
    assert back.p50(key, 4, conditions[1]) is None
    assert back.ranks(key, conditions[0]) == [1, 2]
    assert back.p50("model:tiny", None, conditions[0]) is None  # failed: no latency


def test_an_existing_table_is_not_replaced(tmp_path):
    path = write_latency_table(synthetic_table(), tmp_path / "t.json", overwrite=False)
    with pytest.raises(LowrankEdgeError, match="already exists; pass --overwrite"):
        write_latency_table(synthetic_table(), path, overwrite=False)


def test_a_table_from_another_condition_is_refused(tmp_path):
    path = write_latency_table(synthetic_table(), tmp_path / "t.json", overwrite=False)
    wanted = Condition("onnxruntime", 4, 1)
    with pytest.raises(LowrankEdgeError) as error:
        load_latency_table(path, [wanted], facts=DEVICE)
    message = str(error.value)
    assert str(path) in message
    assert "no measurements for onnxruntime, 4 thread(s), batch 1" in message
    assert "it has: litert, 1 thread(s), batch 1" in message


def test_another_device_warns_and_the_same_device_does_not(tmp_path):
    path = write_latency_table(synthetic_table(), tmp_path / "t.json", overwrite=False)
    other = {**DEVICE, "cpu_model": "Other CPU", "packages": {**DEVICE["packages"], "numpy": "3"}}
    with pytest.warns(LatencyTableWarning, match="cpu_model 'Test CPU' vs 'Other CPU'.*numpy"):
        load_latency_table(path, facts=other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_latency_table(path, facts=DEVICE)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"backend": "keras"}, "entries[0].backend"),
        ({"threads": 0}, "entries[0].threads"),
        ({"p50_ms": None, "error": None}, "entries[0].p50_ms"),
        ({"p50_ms": -1.0}, "entries[0].p50_ms"),
        ({"rank": "dense"}, "entries[0].rank"),
    ],
)
def test_a_bad_entry_is_refused_naming_its_field(tmp_path, change, field):
    data = synthetic_table().to_dict()
    data["entries"][0].update(change)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LowrankEdgeError) as error:
        load_latency_table(path, facts=DEVICE)
    assert f"{path}: field '{field}'" in str(error.value)


def test_a_repeated_entry_and_a_foreign_file_are_refused(tmp_path):
    data = synthetic_table().to_dict()
    data["entries"].append(data["entries"][0])
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LowrankEdgeError, match="appears twice"):
        load_latency_table(path, facts=DEVICE)
    path.write_text(json.dumps({"schema": 1, "kind": "something else"}))
    with pytest.raises(LowrankEdgeError, match="not a schema-1 latency table"):
        load_latency_table(path, facts=DEVICE)
    with pytest.raises(LowrankEdgeError, match="latency table not found"):
        load_latency_table(tmp_path / "missing.json")


def test_conditions_are_validated():
    assert kit_conditions(["litert", "onnxruntime"], [1, 2], [1]) == [
        Condition("litert", 1, 1),
        Condition("litert", 2, 1),
        Condition("onnxruntime", 1, 1),
        Condition("onnxruntime", 2, 1),
    ]
    with pytest.raises(LowrankEdgeError, match="keras cannot time a latency kit"):
        kit_conditions(["keras"], [1], [1])
    with pytest.raises(LowrankEdgeError, match="must be >= 1"):
        kit_conditions(["litert"], [0], [1])


def test_the_table_modules_import_without_tensorflow(tmp_path):
    modules = [
        "lowrank_edge.benchmark.latency_table",
        "lowrank_edge.benchmark.kit_timing",
        "lowrank_edge.runtime.kit_manifest",
        "lowrank_edge.cli.latency_cmd",
        "lowrank_edge.cli",
    ]
    code = TF_BLOCKER + (
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "blocked = ('tensorflow', 'keras', 'tf2onnx')\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in blocked]\n"
        "assert not leaked, leaked\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
