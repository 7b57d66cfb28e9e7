"""Every compression option under every rank policy is honoured (it reaches the plan) or
refused with an error naming it: nothing accepted is silently ignored (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from harness.models import build_residual_model, sample_inputs

from lowrank_edge.compress.steps import plan_compression
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.pipeline.run import CompressOptions

POLICIES = {
    "energy": {"energy": 0.9},
    "rank": {"rank": 2},
    "fraction": {"fraction": 0.5},
    "macs": {"target_macs": 0.5},
    "params": {"target_params": 0.5},
}
PER_LAYER = {"energy", "rank", "fraction"}
# option -> (policies that take it, plan settings it must show, else the refusal's words)
OPTIONS = {
    "no break-even": (
        {"break_even": False},
        PER_LAYER,
        {"break_even": False},
        "--no-break-even applies to --energy",
    ),
    "sensitivity eval": (
        {"sensitivity": "eval", "sensitivity_images": 10},
        {"macs", "params"},
        {"sensitivity": "eval"},
        "--sensitivity eval applies to a budget",
    ),
    "sensitivity images alone": (
        {"sensitivity_images": 10},
        set(),
        {},
        "--sensitivity-images applies with --sensitivity eval",
    ),
    "round to 2": ({"round_to": 2}, set(POLICIES), {"rounding": 2}, ""),
}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_each_option_is_honoured_or_refused(policy, option):
    settings, takes, shows, refusal = OPTIONS[option]
    options = CompressOptions(**POLICIES[policy], **settings)
    if policy not in takes:
        with pytest.raises(LowrankEdgeError, match=refusal):
            options.policy()
        return
    model = build_residual_model(rank=4)
    calibration = sample_inputs(model, n=32)
    labels = np.random.default_rng(0).integers(0, 5, 10)
    _, plan = plan_compression(
        model,
        options.policy(),
        calibration=calibration,
        evaluation=(calibration[:10], labels) if options.sensitivity == "eval" else None,
        **options.plan_kwargs(),
    )
    assert {key: plan.settings.get(key) for key in shows} == shows, plan.settings
