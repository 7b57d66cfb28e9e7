"""Ranks that shrink while fine-tuning: merging factor pairs back, the stage budgets, and a
scheduled compress-and-fine-tune that ends exactly at the budget. Oracles: the compressed
model's own outputs, the budget arithmetic written out, and a one-shot compression."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness.data import make_pattern_dataset
from harness.models import (
    assert_same_outputs,
    build_nested_model,
    build_residual_model,
    sample_inputs,
)

from lowrank_edge.compress import FractionPolicy, compress_model
from lowrank_edge.compress.merge import merged_model
from lowrank_edge.errors import CompressionError, LowrankEdgeError
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet
from lowrank_edge.model.train import FitConfig
from lowrank_edge.pipeline.rank_schedule import schedule_budgets
from lowrank_edge.pipeline.run import CompressOptions, compress_and_finetune

QUIET = dict(batch_size=16, verbose=0, patience=None)


@pytest.mark.parametrize("build", [build_residual_model, build_nested_model])
def test_merged_model_has_the_original_layers_and_the_compressed_function(build):
    original = build(rank=8)
    compressed = compress_model(original, FractionPolicy(0.5), break_even=False).model
    merged = merged_model(original, compressed)
    assert [w.shape for w in merged.weights] == [w.shape for w in original.weights]
    x = sample_inputs(original, n=8)
    # float32 products A.B summed in another order than two layers do: 1e-5 of logits ~1
    assert_same_outputs(merged, compressed, x, atol=1e-5)
    # neither input changed: the original still computes its own function
    assert_same_outputs(original, build(rank=8), x, atol=0)


def test_merging_a_model_of_another_architecture_names_the_layer():
    original = build_residual_model()
    other = keras.Model(original.input, original.get_layer("res_out").output)
    with pytest.raises(CompressionError, match="layer 'down' of the original model"):
        merged_model(original, other)


def test_schedule_budgets_step_geometrically_to_the_target():
    assert schedule_budgets(0.1, 2.0, 4) == pytest.approx([0.2, 0.2 * 2 ** (-1 / 3),
                                                            0.2 * 2 ** (-2 / 3), 0.1])  # fmt: skip
    assert schedule_budgets(0.1, 2.0, 4)[-1] == 0.1  # exactly: the final model meets it
    assert schedule_budgets(0.6, 2.0, 2) == [1.0, 0.6]  # never more than all of it
    assert schedule_budgets(0.3, 3.0, 1) == [0.3]


def test_scheduled_compression_meets_the_budget_and_records_every_stage():
    keras.utils.set_random_seed(0)
    model = build_mini_resnet(ResNetConfig(num_classes=5, widths=(8, 16), head_units=16))
    data = make_pattern_dataset(n_train=64, n_val=16, n_test=16)
    options = CompressOptions(target_macs=0.3, rank_schedule=2.0, calibration_images=32)
    finetune = FitConfig(epochs=3, distill=True, track_test=True, **QUIET)
    before = model.get_weights()
    result = compress_and_finetune(model, options, data, finetune, log=lambda m: None)

    stages = result.compression["rank_schedule"]
    assert [s["budget"] for s in stages] == pytest.approx(schedule_budgets(0.3, 2.0, 3))
    macs = [s["totals"]["macs_after"] / s["totals"]["macs_before"] for s in stages]
    assert macs == sorted(macs, reverse=True) and macs[0] > macs[-1]
    assert all(m <= b + 1e-9 for m, b in zip(macs, [s["budget"] for s in stages], strict=True))
    totals = result.compression["totals"]
    assert totals["macs_after"] <= 0.3 * totals["macs_before"]
    assert totals == stages[-1]["totals"]
    assert result.compression["options"]["rank_schedule"] == 2.0
    assert result.compression["finetune"]["epochs_run"] == 3
    assert len(result.finetune.history["test_accuracy"]) == 3
    assert result.accuracy == stages[-1]["accuracy_after"]
    # the original is untouched (it is the teacher of every stage)
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # the returned model is the last stage's, at the target's ranks
    ranks = {n: r for n, r in stages[-1]["ranks"].items() if r is not None}
    for layer in result.compression["layers"]:
        if layer["status"] == "factorised":
            assert (
                result.model.get_layer(layer["name"] + "_lr_a").kernel.shape[-1]
                == (ranks[layer["name"]])
            )


@pytest.mark.parametrize(
    "options, epochs, message",
    [
        (CompressOptions(energy=0.9, rank_schedule=2.0), 3, "does not apply to e90"),
        (CompressOptions(fraction=0.5, rank_schedule=2.0), 3, "does not apply to f0.5"),
        (CompressOptions(target_macs=0.3, rank_schedule=2.0), 1, "at least 2 fine-tuning"),
        (CompressOptions(target_macs=0.3, rank_schedule=2.0), 0, "at least 2 fine-tuning"),
        (CompressOptions(target_macs=0.3, rank_schedule=1.0), 3, "must be > 1"),
    ],
)
def test_a_schedule_that_cannot_apply_is_refused(options, epochs, message):
    with pytest.raises(LowrankEdgeError, match=message):
        options.check_schedule(epochs)
