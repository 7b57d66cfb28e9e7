"""Budgeted rank allocation: the budget holds on every model kind, bad budgets are refused,
and the errors it trades off are the spectra's (checked against hand-made spectra)."""

import numpy as np
import pytest
from harness.models import (
    build_nested_model,
    build_residual_model,
    build_sequential_model,
    build_shared_layer_model,
    set_low_rank_kernels,
)

from lowrank_edge.compress import analyse_model, apply_plan
from lowrank_edge.compress.allocate import (
    Option,
    allocate,
    allocate_ranks,
    layer_options,
    mac_cost,
)
from lowrank_edge.compress.cost import model_cost
from lowrank_edge.compress.spectrum import LayerSpectrum
from lowrank_edge.errors import CompressionError

BUILDERS = [build_sequential_model, build_residual_model, build_nested_model]


def full_rank_model(build):
    model = build(rank=2)
    return set_low_rank_kernels(model, rank=64, seed=3)  # rank capped at each layer's full rank


def rank_step_macs(analysis):
    """The largest MAC change one rank step can make in any factorable layer."""
    return max(c.spectrum.positions * sum(c.spectrum.matrix_shape) for c in analysis.factorable)


@pytest.mark.parametrize("build", [*BUILDERS, build_shared_layer_model])
@pytest.mark.parametrize("fraction", [0.9, 0.6, 0.45])
def test_the_mac_budget_holds_within_one_rank_step(build, fraction):
    model = full_rank_model(build)
    analysis = analyse_model(model)
    whole = model_cost(model).macs
    try:
        plan = allocate_ranks(analysis, fraction)
    except CompressionError as error:  # some toy models cannot go that low
        assert "smallest reachable fraction" in str(error)
        return
    result = apply_plan(analysis, plan)
    kept = model_cost(result.model).macs  # measured on the rebuilt model, not the plan
    assert kept <= fraction * whole
    assert fraction * whole - kept <= rank_step_macs(analysis)
    assert plan.settings["planned_fraction"] == pytest.approx(kept / whole)


@pytest.mark.parametrize("fraction", [0.7, 0.4])
def test_the_param_budget_holds(fraction):
    model = full_rank_model(build_residual_model)
    analysis = analyse_model(model)
    plan = allocate_ranks(analysis, fraction, budget="params")
    kept = model_cost(apply_plan(analysis, plan).model).params
    assert kept <= fraction * model_cost(model).params


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan"), "half", True])
def test_a_budget_outside_0_1_is_refused(fraction):
    analysis = analyse_model(full_rank_model(build_residual_model))
    with pytest.raises(CompressionError, match=r"fraction in \(0, 1\]"):
        allocate_ranks(analysis, fraction)


def test_an_unreachable_budget_names_the_smallest_reachable_fraction():
    model = full_rank_model(build_residual_model)
    analysis = analyse_model(model, exclude=["stem", "down"])  # their MACs cannot shrink
    with pytest.raises(CompressionError, match="smallest reachable fraction is 0\\.[0-9]{4}"):
        allocate_ranks(analysis, 0.01)


def test_a_budget_of_one_keeps_every_layer_dense():
    analysis = analyse_model(full_rank_model(build_residual_model))
    plan = allocate_ranks(analysis, 1.0)
    assert plan.ranks == {}


def spectrum(name, values, shape=(16, 16), positions=1):
    return LayerSpectrum(
        name=name,
        class_name="Dense",
        kernel_shape=shape,
        matrix_shape=shape,
        singular_values=np.asarray(values, dtype=float),
        positions=positions,
    )


def test_the_fast_decaying_layer_gets_the_lower_rank():
    flat = spectrum("flat", np.ones(16))
    steep = spectrum("steep", 0.5 ** np.arange(16))
    options = {
        s.name: [Option(None, mac_cost(s, None), 0.0)]
        + [Option(r, mac_cost(s, r), 1 - s.energy_kept(r)) for r in range(1, 8)]
        for s in (flat, steep)
    }
    for opts in options.values():
        opts.sort(key=lambda o: o.cost)
    chosen = allocate(options, available=2 * 32 * 4)  # room for 8 ranks in all
    assert chosen["steep"].rank < chosen["flat"].rank
    assert sum(o.cost for o in chosen.values()) <= 2 * 32 * 4


@pytest.mark.parametrize("seed", range(6))
def test_allocation_matches_brute_force(seed):
    """Random spectra and positions, every combination tried: the allocator finds the best
    (rounding the costs to 4000 steps of the budget loses nothing at these sizes)."""
    import itertools

    rng = np.random.default_rng(seed)
    layers = [
        spectrum(f"l{i}", np.sort(rng.random(6))[::-1], (6, 6), positions=int(rng.integers(1, 5)))
        for i in range(4)
    ]
    options = {}
    for s in layers:
        opts = [Option(None, mac_cost(s, None), 0.0)]
        opts += [Option(r, mac_cost(s, r), 1 - s.energy_kept(r)) for r in (1, 2)]
        options[s.name] = sorted(opts, key=lambda o: o.cost)
    budget = float(rng.uniform(0.4, 0.9)) * sum(mac_cost(s, None) for s in layers)
    feasible = [
        combo
        for combo in itertools.product(*options.values())
        if sum(o.cost for o in combo) <= budget
    ]
    best = min(sum(o.error for o in combo) for combo in feasible)
    chosen = allocate(options, budget)
    assert sum(o.cost for o in chosen.values()) <= budget
    assert sum(o.error for o in chosen.values()) <= best + 1e-12


def test_measured_error_curves_replace_the_spectrum_and_limit_the_ranks():
    s = spectrum("l", np.ones(16))
    options = layer_options(s, mac_cost, errors={2: 0.5, 4: 0.1, 16: 0.0})
    # rank 16 costs more than the dense layer (break-even), so it is not offered
    assert [(o.rank, o.error) for o in options] == [(2, 0.5), (4, 0.1), (None, 0.0)]


def test_eval_curves_measure_accuracy_drops_per_candidate_rank():
    from harness.models import model_outputs, sample_inputs

    from lowrank_edge.compress.eval_curves import accuracy_drop_curves

    model = full_rank_model(build_residual_model)
    x = sample_inputs(model, n=64, seed=5)
    y = np.argmax(model_outputs(model, x), axis=-1)  # the model is right on all of them
    analysis = analyse_model(model)
    curves = accuracy_drop_curves(analysis, x, y, fractions=(0.25, 0.5, 1.0))
    assert set(curves) == {c.path for c in analysis.factorable}
    for candidate in analysis.factorable:
        full = candidate.spectrum.full_rank
        ranks = sorted(curves[candidate.path])
        assert full not in ranks and all(1 <= r < full for r in ranks)
        assert all(0.0 <= drop <= 1.0 for drop in curves[candidate.path].values())
    # the drops are real measurements: rank 1 of the classifier cannot keep every label
    assert max(curves["logits"].values()) > 0
    plan = allocate_ranks(analysis, 0.6, errors=curves)
    assert all(rank in curves[path] for path, rank in plan.ranks.items())
