"""compress_model settings and report: rounding, break-even, patterns, errors, JSON, totals."""

import json

import keras
import pytest
from harness.models import build_nested_model, build_residual_model

from lowrank_edge.compress import (
    FACTORISED,
    KEPT_BREAK_EVEN,
    KEPT_EXCLUDED,
    CompressionError,
    EnergyPolicy,
    FixedRankPolicy,
    FractionPolicy,
    compress_model,
)


@pytest.fixture(scope="module")
def residual():
    return build_residual_model(rank=2)


def test_break_even_rule_decides_which_layers_stay_dense(residual):
    result = compress_model(residual, FixedRankPolicy(7))
    statuses = {}
    for report in result.layers:
        m, n = report.matrix_shape
        assert report.chosen_rank == min(7, report.full_rank)
        expected = KEPT_BREAK_EVEN if report.chosen_rank * (m + n) >= m * n else FACTORISED
        assert report.status == expected
        statuses[report.name] = report.status
    # both outcomes occur: res_a (72x8: 7*80 < 576) and logits (16x5: 5*21 >= 80)
    assert statuses["res_a"] == FACTORISED and statuses["logits"] == KEPT_BREAK_EVEN
    kept = result.layer("logits")
    assert (kept.rank_kept, kept.energy_squared, kept.params_after) == (5, 1.0, kept.params_before)
    unrestricted = compress_model(residual, FixedRankPolicy(7), break_even=False)
    assert all(r.status == FACTORISED for r in unrestricted.layers)


def test_rounding_rounds_up_and_caps_at_full_rank(residual):
    result = compress_model(residual, FixedRankPolicy(3), rounding=4, break_even=False)
    assert {r.name: r.rank_kept for r in result.layers} == {
        "stem": 4,
        "res_a": 4,
        "res_b": 4,
        "down": 4,
        "fc": 4,
        "logits": 4,  # full rank 5
    }
    capped = compress_model(residual, FixedRankPolicy(6), rounding=4, break_even=False)
    assert capped.layer("logits").rank_kept == 5  # 8 capped at full rank 5
    assert capped.layer("res_a").rank_kept == 8  # full rank 8
    assert capped.settings["rounding"] == 4


def test_exclude_and_include_patterns(residual):
    excluded = compress_model(residual, EnergyPolicy(0.9999), exclude=["res_*", "logits"])
    assert {r.name for r in excluded.layers if r.status == KEPT_EXCLUDED} == {
        "res_a",
        "res_b",
        "logits",
    }
    names = {layer.name for layer in excluded.model.layers}
    assert {"res_a", "res_b", "logits", "stem_lr_a"} <= names
    included = compress_model(residual, EnergyPolicy(0.9999), include=["fc", "down"])
    assert {r.name for r in included.layers if r.factorised} == {"fc", "down"}


def test_patterns_match_nested_paths_and_plain_names():
    model = build_nested_model(rank=2)
    by_path = compress_model(model, FractionPolicy(0.25), include=["block/*"])
    assert {r.name for r in by_path.layers if r.factorised} == {"block/conv_a", "block/conv_b"}
    by_name = compress_model(model, FractionPolicy(0.25), exclude=["conv_?", "fc"])
    assert {r.name for r in by_name.layers if r.factorised} == {"stem", "head/logits"}


def test_unmatched_include_is_an_error_and_unmatched_exclude_a_warning(residual):
    with pytest.raises(CompressionError, match=r"include pattern\(s\) \['nope\*'\] match no layer"):
        compress_model(residual, EnergyPolicy(0.9), include=["stem", "nope*"])
    result = compress_model(residual, EnergyPolicy(0.9), exclude=["missing"])
    assert result.warnings == ["exclude pattern 'missing' matches no layer"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rounding": 0}, "rounding must be None or an integer >= 1, got 0"),
        ({"rounding": 2.5}, "rounding must be"),
        ({"include": "stem"}, "include must be a list of non-empty name patterns"),
        ({"exclude": [""]}, "exclude must be a list"),
    ],
)
def test_bad_arguments_are_clear_errors(residual, kwargs, match):
    with pytest.raises(CompressionError, match=match):
        compress_model(residual, EnergyPolicy(0.9), **kwargs)


def test_bad_policy_and_bad_policy_output_are_clear_errors(residual):
    with pytest.raises(CompressionError, match="policy must have a choose_rank"):
        compress_model(residual, 0.9)

    class ZeroPolicy:
        def choose_rank(self, layer):
            return 0

    with pytest.raises(CompressionError, match=r"returned 0 for layer 'stem'; expected an integer"):
        compress_model(residual, ZeroPolicy())


def test_a_custom_policy_sees_cost_facts():
    seen = {}

    class CheapestMacs:
        """Keeps rank 1 where the layer has many MACs, full rank elsewhere."""

        def choose_rank(self, layer):
            seen[layer.name] = (layer.macs, layer.macs_at_rank(1), layer.calls)
            return 1 if layer.macs > 10_000 else layer.full_rank

    model = build_residual_model(rank=2)
    result = compress_model(model, CheapestMacs(), break_even=False)
    assert seen["stem"] == (8 * 8 * 27 * 8, 8 * 8 * (27 + 8), 1)
    assert result.layer("stem").rank_kept == 1 and result.layer("logits").rank_kept == 5
    assert result.settings["policy"]["type"] == "CheapestMacs"


def test_subclassed_model_is_rejected():
    class Tiny(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(CompressionError, match="expected a Sequential or Functional"):
        compress_model(Tiny(), EnergyPolicy(0.9))


def test_report_totals_and_layers_match_a_hand_count(residual):
    """The residual harness model (8x8x3 input) at rank 2 everywhere, counted by hand.

    Conv MACs: out_h*out_w*filters*kh*kw*cin; Dense MACs: in*out; a rank-r pair of an m x n
    kernel matrix costs r*(m+n) weights and positions*r*(m+n) MACs; biases stay.
      stem    3x3x3->8 no bias, 8x8 out: m,n = 27,8  params 216 -> 2*35 = 70
              MACs 64*8*27 = 13,824 -> 64*2*35 = 4,480
      stem_bn 4*8 = 32 params, unchanged
      res_a   3x3x8->8 + bias, 8x8 out: m,n = 72,8   params 584 -> 2*80 + 8 = 168
              MACs 64*8*72 = 36,864 -> 64*2*80 = 10,240;   res_b the same
      down    3x3x8->16 + bias, stride 2, 4x4 out: m,n = 72,16  params 1,168 -> 2*88 + 16 = 192
              MACs 16*16*72 = 18,432 -> 16*2*88 = 2,816
      fc      Dense 16->16 + bias: params 272 -> 2*32 + 16 = 80; MACs 256 -> 64
      logits  Dense 16->5 + bias:  params 85 -> 2*21 + 5 = 47;   MACs 80 -> 42
    """
    result = compress_model(residual, FixedRankPolicy(2))
    totals = result.totals
    assert totals.params_before == 216 + 32 + 584 + 584 + 1_168 + 272 + 85  # 2,941
    assert totals.params_after == 70 + 32 + 168 + 168 + 192 + 80 + 47  # 757
    assert totals.macs_before == 13_824 + 2 * 36_864 + 18_432 + 256 + 80  # 106,320
    assert totals.macs_after == 4_480 + 2 * 10_240 + 2_816 + 64 + 42  # 27,882
    assert (totals.layers_factorised, totals.layers_kept) == (6, 0)
    by_layer = {r.name: (r.params_before, r.params_after, r.macs_before, r.macs_after)
                for r in result.layers}  # fmt: skip
    assert by_layer == {
        "stem": (216, 70, 13_824, 4_480),
        "res_a": (584, 168, 36_864, 10_240),
        "res_b": (584, 168, 36_864, 10_240),
        "down": (1_168, 192, 18_432, 2_816),
        "fc": (272, 80, 256, 64),
        "logits": (85, 47, 80, 42),
    }
    assert result.to_dict()["totals"]["params_ratio"] == pytest.approx(757 / 2_941)
    assert result.model.count_params() == 757  # Keras' own count of the new model


def test_to_dict_is_plain_json(residual):
    result = compress_model(residual, EnergyPolicy(0.95, measure="abs"), exclude=["logits"])
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["model"] == "residual"
    seconds = data["settings"].pop("seconds")
    assert set(seconds) == {"analyse_and_choose", "analyse", "allocation", "apply", "total"}
    assert data["settings"] == {
        "policy": {"type": "EnergyPolicy", "energy": 0.95, "measure": "abs"},
        "rounding": None,
        "break_even": True,
        "include": [],
        "exclude": ["logits"],
        "factoriser": "svd",
        "calibration_images": 0,
        "sequential": False,
        "damping": None,
        "bn_recalibrate": False,
        "refit_dense": False,
        "intercept": False,
    }
    stem = data["layers"][0]
    assert stem["name"] == "stem" and stem["kernel_shape"] == [3, 3, 3, 8]
    assert stem["matrix_shape"] == [27, 8] and stem["full_rank"] == 8
    assert stem["energy_abs"] >= 0.95
    assert 0 < data["totals"]["params_ratio"] < 1
