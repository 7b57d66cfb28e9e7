"""Latency budgets end to end: allocation from a table, the measured back-off, the sidecar,
the CLI, the pipeline's table cache and the report.

Allocation and the back-off loop run on synthetic tables and fake measurements (no clock);
one test times a real tiny model only to check the loop's invariants, never a speed.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from harness.bench import FAST_POLICY
from harness.latency import LITERT_1_1, fake_table, tiny_model

from lowrank_edge.benchmark.latency_table import write_latency_table
from lowrank_edge.benchmark.system import system_facts
from lowrank_edge.cli import main
from lowrank_edge.compress.analyse import analyse_model
from lowrank_edge.compress.choose import plan_from_ranks
from lowrank_edge.compress.result import FACTORISED, KEPT_BACKED_OFF
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.latency.back_off import SpeedCheck, back_off, relax
from lowrank_edge.latency.kit import build_kit_from_model
from lowrank_edge.latency.speed_check import plan_measurer
from lowrank_edge.latency.table_cache import ensure_latency_table
from lowrank_edge.latency.target import LatencyTarget, predict_latency
from lowrank_edge.model.saving import save_model, sidecar_path
from lowrank_edge.pipeline.report import latency_section
from lowrank_edge.pipeline.run import CompressOptions, compress_and_finetune, parse_speedups

QUIET = {"log": lambda message: None}


def favourable(path, rank, shape):
    """Dense 1 ms; a factor pair 0.1 ms per rank unit, except 'conv', whose pair is slower."""
    if rank is None:
        return 1.0
    return 2.0 if path == "conv" else 0.1 * rank


@pytest.fixture()
def table_file(tmp_path):
    model = tiny_model()
    table = fake_table(analyse_model(model), favourable)
    table = dataclasses.replace(table, device=system_facts())  # this machine: no warning
    path = write_latency_table(table, tmp_path / "table.json", overwrite=False)
    return model, path


# --- the back-off loop, on fake measurements --------------------------------------------------


def three_layer_plan():
    analysis = analyse_model(tiny_model())
    plan = plan_from_ranks(analysis, {"conv": 2, "fc": 4, "logits": 2}, {})
    full = {c.path: c.spectrum.full_rank for c in analysis.factorable}
    return plan, full


def fake_measure(effect):
    """Speedup = 1 + the summed effects of the factorised layers; records every call."""
    calls = []

    def measure(plan):
        calls.append(dict(plan.ranks))
        value = 1.0 + sum(effect[path] for path in plan.ranks)
        return SpeedCheck(plan.ranks, value, value - 0.01, value + 0.01)

    return measure, calls


def test_the_back_off_drops_the_smallest_gain_first_until_the_target_is_met():
    plan, full = three_layer_plan()
    measure, calls = fake_measure({"conv": -0.3, "fc": 0.2, "logits": 0.25})
    gains = {"conv": -0.5, "fc": 0.1, "logits": 0.3}  # conv's pair is predicted slower
    chosen, record = back_off(plan, gains, measure, full, target=1.4)
    assert calls == [{"conv": 2, "fc": 4, "logits": 2}, {"fc": 4, "logits": 2}]
    assert chosen.ranks == {"fc": 4, "logits": 2}
    assert chosen.decision("conv").status == KEPT_BACKED_OFF
    assert chosen.decision("conv").rank_kept == full["conv"]
    assert record.chosen == 1 and record.checks[1].dropped == "conv"
    assert "meets the target" in record.verdict


def test_a_plan_that_measures_slower_is_never_recommended():
    plan, full = three_layer_plan()
    measure, calls = fake_measure({"conv": -0.2, "fc": -0.1, "logits": -0.05})
    chosen, record = back_off(plan, {"conv": 1, "fc": 2, "logits": 3}, measure, full)
    assert len(calls) == 3  # conv dropped, then fc; the last one is not dropped and re-timed
    assert all(check.measured < 1.0 for check in record.checks)
    assert record.chosen is None and "keep the original" in record.verdict
    assert chosen.ranks == {}  # every layer dense: the original's structure
    assert {d.status for d in chosen.decisions} == {KEPT_BACKED_OFF}


def test_a_missed_target_keeps_the_fastest_plan_that_is_not_slower():
    plan, full = three_layer_plan()
    measure, _ = fake_measure({"conv": 0.05, "fc": 0.3, "logits": -0.1})
    chosen, record = back_off(plan, {"conv": 0.0, "fc": 1.0, "logits": 2.0}, measure, full,
                              target=3.0, max_checks=2)  # fmt: skip
    assert len(record.checks) == 2  # the budget of checks holds
    assert [c.measured for c in record.checks] == pytest.approx([1.25, 1.2])
    assert record.chosen == 0 and chosen.ranks == plan.ranks
    assert "missed" in record.verdict and "1.25x" in record.verdict


def test_the_measurer_never_lets_the_loop_recommend_a_slower_model():
    """Real timings of a tiny model are noise; whatever they say, the invariant holds."""
    model = tiny_model()
    analysis = analyse_model(model)
    plan = plan_from_ranks(analysis, {"fc": 2, "logits": 1}, {})
    measure = plan_measurer(analysis, LITERT_1_1, policy=FAST_POLICY)
    full = {c.path: c.spectrum.full_rank for c in analysis.factorable}
    chosen, record = back_off(plan, {"fc": 0.1, "logits": 0.2}, measure, full, max_checks=2)
    assert 1 <= len(record.checks) <= 2
    assert record.checks[0].ranks == {"fc": 2, "logits": 1}
    if record.chosen is None:
        assert chosen.ranks == {}
    else:
        assert record.checks[record.chosen].measured >= 1.0
        assert chosen.ranks == record.checks[record.chosen].ranks


# --- allocation and the sidecar record ----------------------------------------------------------


def test_a_latency_budget_keeps_slower_layers_dense_and_records_its_prediction(table_file):
    model, path = table_file
    options = CompressOptions(
        target_latency=0.5,
        factoriser="svd",
        latency=LatencyTarget(path, "litert", 1, 1),
        speed_check=False,
    )
    result = compress_and_finetune(model, options, **QUIET)
    status = {layer["name"]: layer["status"] for layer in result.compression["layers"]}
    assert status["conv"] != FACTORISED  # its pair is slower in the table
    assert status["fc"] == FACTORISED and status["logits"] == FACTORISED
    latency = result.compression["latency"]
    assert latency["condition"] == {"backend": "litert", "threads": 1, "batch": 1,
                                    "precision": "float32"}  # fmt: skip
    assert latency["table"] == str(path) and len(latency["table_sha256"]) == 64
    ranks = {la["name"]: la["rank_kept"] for la in result.compression["layers"]}
    dense = 3.0  # three layers at 1 ms, no whole-model entry
    planned = 1.0 + 0.1 * ranks["fc"] + 0.1 * ranks["logits"]
    assert latency["predicted_speedup"] == pytest.approx(dense / planned)
    assert planned <= 0.5 * dense + 1e-9  # the latency budget holds
    assert latency["headroom_speedup"] == pytest.approx(3.0 / (1.0 + 0.1 + 0.1))
    assert latency["back_off"] is None and latency["measured_speedup"] is None


def test_prediction_refuses_a_rank_the_table_did_not_measure(table_file):
    model, path = table_file
    analysis = analyse_model(model)
    plan = plan_from_ranks(analysis, {"fc": 3}, {})
    table = LatencyTarget(path, "litert", 1, 1).load()
    with pytest.raises(LowrankEdgeError, match="'fc' has no measurement at rank 3"):
        predict_latency(table, analysis, plan, LITERT_1_1)


# --- the CLI --------------------------------------------------------------------------------------


def test_compress_takes_a_speedup_target_and_writes_the_latency_record(table_file, tmp_path):
    model, table = table_file
    source = save_model(model, tmp_path / "tiny.keras")
    out = tmp_path / "fast.keras"
    args = ["compress", str(source), "--target-speedup", "2", "--latency-table", str(table),
            "--backend", "litert", "--threads", "1", "--batch", "1", "--factoriser", "svd",
            "--finetune-epochs", "0", "--no-speed-check", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = json.loads(sidecar_path(out).read_text())
    assert record["latency"]["target_speedup"] == pytest.approx(2.0)
    assert record["options"]["target_latency"] == pytest.approx(0.5)
    assert record["options"]["latency"]["table"] == str(table)


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "need --latency-table"),
        (["--latency-table", "TABLE", "--batch", "32"], "no measurements for litert, 1 thread"),
        (["--latency-table", "TABLE", "--target-latency", "0.5"], "not both"),
    ],
)
def test_compress_refuses_a_latency_target_it_cannot_price(table_file, tmp_path, extra, message):
    model, table = table_file
    source = save_model(model, tmp_path / "tiny.keras")
    extra = [str(table) if item == "TABLE" else item for item in extra]
    args = ["compress", str(source), "--target-speedup", "2", "--factoriser", "svd",
            "--finetune-epochs", "0", *extra]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "l0.5.keras").exists()


def test_ranks_prints_the_headroom(table_file, tmp_path):
    model, table = table_file
    source = save_model(model, tmp_path / "tiny.keras")
    args = ["ranks", str(source), "--target-speedup", "2", "--latency-table", str(table),
            "--batch", "1", "--factoriser", "svd"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "can gain at most 2.50x" in result.output  # 3 ms dense, 1.2 ms at best
    assert "predicted 3.000 ->" in result.output


# --- the pipeline's table cache and the report ---------------------------------------------


def test_the_pipeline_measures_a_missing_table_once_then_reuses_it(tmp_path, monkeypatch):
    model = tiny_model()
    target = LatencyTarget(tmp_path / "cache" / "table.json", "litert", 1, 1)
    path = ensure_latency_table(model, target, policy=FAST_POLICY, **QUIET)
    table = target.load()
    assert table.conditions == (LITERT_1_1,)
    assert {e.key for e in table.entries} >= {e.key for e in predict_keys(model)}
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise AssertionError("the cached table should have been reused")

    monkeypatch.setattr("lowrank_edge.latency.table_cache.build_kit_from_model", fail)
    assert ensure_latency_table(model, target, **QUIET) == path
    assert path.read_bytes() == before


def predict_keys(model):
    """Kit entries of `model` (layer signatures and the whole model) without timing them."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return build_kit_from_model(model, Path(folder) / "kit", **QUIET).entries


def test_the_report_shows_target_headroom_prediction_and_measurement():
    latency = {
        "condition": {"backend": "onnxruntime", "threads": 1, "batch": 32},
        "target_speedup": 1.6,
        "headroom_speedup": 1.9,
        "predicted_speedup": 1.62,
        "measured_speedup": 1.41,
        "back_off": {
            "chosen": 1,
            "verdict": "target 1.60x missed: the fastest plan measured 1.41x",
            "checks": [
                {"ranks": {"a": 1, "b": 2}, "dropped": None, "predicted_speedup": 1.62,
                 "measured_speedup": 0.97, "measured_q1": 0.95, "measured_q3": 0.99},
                {"ranks": {"b": 2}, "dropped": "a", "predicted_speedup": 1.3,
                 "measured_speedup": 1.41, "measured_q1": 1.38, "measured_q3": 1.44},
            ],
        },
    }  # fmt: skip
    summary = {"models": [{"name": "base", "kind": "original"},
                          {"name": "l0.625", "kind": "compressed",
                           "compression": {"latency": latency}}]}  # fmt: skip
    text = latency_section(summary)
    assert "| l0.625 | onnxruntime, 1 thread(s), batch 32 | 1.60x | 1.90x | 1.62x | 1.41x |" in text
    assert "| l0.625 | 2 (chosen) | 1 | a | 1.30x | 1.41x (1.38–1.44) |" in text
    assert latency_section({"models": summary["models"][:1]}) == ""


# --- giving compression back when a plan beat its target -----------------------------------


@pytest.mark.parametrize(
    "first, looser, expect_call, chosen",
    [
        (1.72, 1.62, True, 1),  # well above target: re-allocated, the looser plan still meets it
        (1.72, 1.55, True, 0),  # the looser plan falls short: the first plan is kept
        (1.62, None, False, 0),  # within the margin: nothing to give back
    ],
)
def test_a_plan_well_above_its_target_is_reallocated_more_loosely(first, looser, expect_call,
                                                                  chosen):  # fmt: skip
    plan, full = three_layer_plan()
    loose_plan = plan_from_ranks(analyse_model(tiny_model()), {"fc": 8, "logits": 4}, {})
    calls = []

    def measure(candidate):
        value = first if candidate.ranks == plan.ranks else looser
        return SpeedCheck(candidate.ranks, value, value, value, predicted=1.61)

    def reallocate(fraction):
        calls.append(fraction)
        return loose_plan

    kept, record = back_off(plan, {}, measure, full, target=1.6)
    kept, record = relax(kept, record, 0.625, reallocate, measure)
    assert bool(calls) == expect_call
    if expect_call:
        assert calls[0] == pytest.approx(first / (1.61 * 1.6))  # calibrated on the measurement
        assert record.checks[-1].note.startswith("re-allocated at latency")
    assert record.chosen == chosen
    assert kept.ranks == (loose_plan.ranks if chosen == 1 else plan.ranks)
    assert record.checks[record.chosen].measured >= 1.6


def test_speedup_lists_become_latency_fractions_and_bad_ones_are_refused():
    assert parse_speedups("1.6, 2") == pytest.approx((0.625, 0.5))
    for text, message in (("1.6,x", "expected comma-separated numbers like 1.6,2"),
                          ("0.9", "every speedup must be a number >= 1"),
                          ("", "every speedup must be a number >= 1")):  # fmt: skip
        with pytest.raises(LowrankEdgeError, match=message):
            parse_speedups(text)


def test_the_pipeline_refuses_both_latency_targets_at_once():
    args = ["pipeline", "--dataset", "mnist", "--target-speedup", "2", "--target-latency", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "choose --target-speedup or --target-latency, not both" in result.output


def test_in_a_precision_where_no_plan_is_faster_the_original_is_kept_and_said_so(
    tmp_path, monkeypatch
):
    """An int8-full table whose every plan measures slower end to end: the compression keeps
    the original's structure and the verdict names the precision and the headroom."""
    from lowrank_edge.benchmark.latency_table import Condition
    from lowrank_edge.latency import speed_check

    model = tiny_model()
    int8 = Condition("litert", 1, 1, "int8-full")
    table = fake_table(analyse_model(model), favourable, int8)
    table = dataclasses.replace(table, device=system_facts())
    path = write_latency_table(table, tmp_path / "int8.json", overwrite=False)
    seen = []

    def slower(analysis, condition, predict, policy, log):
        seen.append(condition)
        return lambda plan: SpeedCheck(plan.ranks, 0.9, 0.88, 0.92, predict(plan))

    monkeypatch.setattr(speed_check, "plan_measurer", slower)
    lines = []
    target = LatencyTarget(path, "litert", 1, 1, "int8-full")
    options = CompressOptions(target_latency=0.5, factoriser="svd", latency=target)
    result = compress_and_finetune(model, options, log=lines.append)
    assert seen and all(c == int8 for c in seen)  # timed in the precision that ships
    status = {layer["name"]: layer["status"] for layer in result.compression["layers"]}
    assert FACTORISED not in status.values()
    verdict = result.compression["latency"]["back_off"]["verdict"]
    assert verdict.startswith("low-rank adds nothing to int8-full on this CPU")
    assert "headroom 2.50x predicted" in verdict
    assert any(verdict in line for line in lines)


def test_an_unreachable_speedup_names_the_headroom(table_file, tmp_path):
    model, table = table_file
    source = save_model(model, tmp_path / "tiny.keras")
    args = ["compress", str(source), "--target-speedup", "5", "--latency-table", str(table),
            "--backend", "litert", "--threads", "1", "--batch", "1", "--factoriser", "svd",
            "--finetune-epochs", "0", "--no-speed-check"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "at most 2.50x faster, the headroom under this condition" in result.output
