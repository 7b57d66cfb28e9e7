"""Ranks priced in the precision that ships: kits and tables per precision, the speed check in
that precision, and refusals that name what is missing.

One tiny kit (the `harness.latency.tiny_model`, 12 micro-models) is built with an int8 variant of
each format; timings are never asserted, only that each precision's files exist, run, are what
they claim (int8 tensors in an int8 file) and are timed under their own condition.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from harness.bench import FAST_POLICY
from harness.latency import fake_table, tiny_model

from lowrank_edge.benchmark.kit_timing import kit_conditions, measure_kit
from lowrank_edge.benchmark.latency_table import Condition, table_from_dict
from lowrank_edge.cli import main
from lowrank_edge.compress.analyse import analyse_model
from lowrank_edge.compress.choose import plan_from_ranks
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.latency.hardware_cost import headroom, latency_cost
from lowrank_edge.latency.kit import build_kit_from_model
from lowrank_edge.latency.layer_signature import signature_keys
from lowrank_edge.latency.speed_check import model_bytes, plan_measurer
from lowrank_edge.model.saving import save_model
from lowrank_edge.runtime.kit_manifest import kit_precisions, load_kit, read_kit_file

INT8_FULL = Condition("litert", 1, 2, "int8-full")
QDQ = Condition("onnxruntime", 1, 2, "int8-qdq")


@pytest.fixture(scope="module")
def int8_kit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-kit")
    model = tiny_model()
    kit = build_kit_from_model(
        model, folder / "kit", precisions=("int8-full", "int8-qdq"), log=lambda m: None
    )
    return model, kit


def _tflite_tensor_types(content: bytes) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    return {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}


def test_the_kit_holds_each_precision_beside_float32(int8_kit):
    model, kit = int8_kit
    assert kit_precisions(load_kit(kit.folder)) == ("float32", "int8-full", "int8-qdq")
    for entry in kit.entries:
        assert set(entry.files) == {"tflite", "onnx", "tflite:int8-full", "onnx:int8-qdq"}
        assert entry.parity["tflite"]["passed"] is True  # float32 is gated against Keras
        assert entry.parity["tflite:int8-full"]["passed"] is None  # int8 is timed, not gated
    dense = next(e for e in kit.entries if e.rank is None)
    assert "int8" in _tflite_tensor_types(read_kit_file(kit, dense, "tflite:int8-full"))
    assert "int8" not in _tflite_tensor_types(read_kit_file(kit, dense, "tflite"))
    onnx_int8 = read_kit_file(kit, dense, "onnx:int8-qdq")
    assert b"QuantizeLinear" in onnx_int8 and b"QuantizeLinear" not in read_kit_file(
        kit, dense, "onnx"
    )


def test_each_precision_is_timed_under_its_own_condition_and_prices_ranks(int8_kit):
    model, kit = int8_kit
    conditions = kit_conditions(["litert", "onnxruntime"], [1], [2], ["int8-full", "int8-qdq"])
    assert conditions == [INT8_FULL, QDQ]  # each runtime takes its own precision
    table = measure_kit(kit, conditions, FAST_POLICY)
    again = table_from_dict(table.to_dict())  # the precision survives the file
    assert {e.condition for e in again.entries} == {INT8_FULL, QDQ}
    assert [e for e in again.entries if e.p50_ms is None] == []
    analysis = analyse_model(model)
    for condition in conditions:
        limit = headroom(again, analysis, condition)
        assert limit.condition == condition and limit.speedup >= 1.0
    missing = Condition("litert", 1, 2, "float16")
    with pytest.raises(LowrankEdgeError, match="float16"):
        latency_cost(again, missing, signatures=signature_keys(analysis))


def test_a_kit_without_a_precision_says_how_to_build_it(int8_kit):
    model, kit = int8_kit
    table = measure_kit(kit, [Condition("litert", 1, 1, "float16")], FAST_POLICY)
    assert {e.error for e in table.entries} == {
        "kit has no tflite:float16 file (build the kit with --precision float16)"
    }
    with pytest.raises(LowrankEdgeError, match="int8-qdq.*time float32, float16"):
        kit_conditions(["litert"], [1], [1], ["int8-qdq"])


def test_the_speed_check_times_the_file_in_the_shipped_precision(int8_kit):
    """The end-to-end check converts the original and the plan's model in the condition's
    precision: an int8-full condition times int8 files."""
    model, _ = int8_kit
    content = model_bytes(model, Condition("litert", 1, 2, "int8-full"))
    assert "int8" in _tflite_tensor_types(content)
    assert "int8" not in _tflite_tensor_types(model_bytes(model, Condition("litert", 1, 2)))
    analysis = analyse_model(model)
    lines = []
    measure = plan_measurer(analysis, QDQ, policy=FAST_POLICY, log=lines.append)
    check = measure(plan_from_ranks(analysis, {"fc": 2}, {"policy": "test"}))
    assert check.measured > 0 and "int8-qdq" in lines[0]


def test_precision_refusals_name_the_fix(tmp_path):
    model_path = save_model(tiny_model(), tmp_path / "tiny.keras")
    table = fake_table(analyse_model(tiny_model()), lambda path, rank, shape: 1.0)
    table_path = tmp_path / "table.json"
    table_path.write_text(__import__("json").dumps(table.to_dict()))
    runner = CliRunner()
    without = runner.invoke(main, ["ranks", str(model_path), "--target-macs", "0.5",
                                   "--factoriser", "svd", "--precision", "int8-full"])  # fmt: skip
    assert without.exit_code == 1
    assert "--precision int8-full prices ranks from a latency table: give --latency-table" in (
        without.output
    )
    wrong = runner.invoke(main, ["ranks", str(model_path), "--target-speedup", "1.5",
                                 "--factoriser", "svd", "--latency-table", str(table_path),
                                 "--backend", "litert", "--precision", "int8-qdq"])  # fmt: skip
    assert wrong.exit_code == 1
    assert "--precision int8-qdq is not a precision of --backend litert" in wrong.output
    unmeasured = runner.invoke(main, ["ranks", str(model_path), "--target-speedup", "1.5",
                                      "--factoriser", "svd", "--latency-table", str(table_path),
                                      "--backend", "litert", "--threads", "1", "--batch", "1",
                                      "--precision", "int8-full"])  # fmt: skip
    assert unmeasured.exit_code == 1
    assert "int8-full" in unmeasured.output
