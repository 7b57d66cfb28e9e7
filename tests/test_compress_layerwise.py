"""The streamed calibration passes: the step-by-step graph runner and the one-pass paired
moments of a layer-by-layer fit, against Keras itself and a plain float64 reference."""

import io

import keras
import numpy as np
import pytest
from harness.models import (
    build_branch_model,
    build_nested_model,
    build_residual_model,
    build_sequential_model,
    build_shared_layer_model,
    model_outputs,
    sample_inputs,
)

from lowrank_edge.benchmark.reporting.progress import Progress
from lowrank_edge.compress import FractionPolicy, analyse_model, choose_ranks
from lowrank_edge.compress.calibration import capture_inputs, kernel_rows, layers_by_path
from lowrank_edge.compress.data_aware import fitted_factors
from lowrank_edge.compress.graph_run import flat_graph, run_steps
from lowrank_edge.compress.layerwise import sequential_moments, streams
from lowrank_edge.compress.rebuild import rebuild_model

MOMENT_RTOL = 1e-4  # float32 products summed in float64 vs all-float64 moments


def raw_ops_model():
    """A hard-swish written with raw keras.ops nodes (constants in the call), as users do."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = x * keras.layers.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x), name="raw_ops")


@pytest.mark.parametrize(
    "build",
    [
        build_residual_model,
        build_sequential_model,
        build_nested_model,
        build_shared_layer_model,
        build_branch_model,
        lambda rank: raw_ops_model(),
    ],
)
def test_run_steps_reproduces_the_model_and_keeps_only_the_outputs(build):
    model = build(rank=2)
    x = sample_inputs(model, n=3)
    graph = flat_graph(model)
    values = run_steps(graph, {graph.inputs[0]: x})
    assert set(values) == set(graph.outputs)  # every intermediate tensor was dropped
    np.testing.assert_allclose(
        np.asarray(values[graph.outputs[0]]), model_outputs(model, x), rtol=1e-6, atol=1e-6
    )


def reference_moments(working, reference, x, path):
    """X^T X^, X^T X W and column sums in float64 from every input the two layers see."""
    layer, ref_layer = layers_by_path(working)[path], layers_by_path(reference)[path]
    with capture_inputs({path: layer}) as new, capture_inputs({path: ref_layer}) as old:
        working(x, training=False)
        reference(x, training=False)
    rows_new = kernel_rows(layer, new[path][0]).astype(np.float64)
    rows_old = kernel_rows(ref_layer, old[path][0]).astype(np.float64)
    kernel = ref_layer.kernel.numpy().reshape(-1, ref_layer.kernel.shape[-1]).astype(np.float64)
    return {
        "gram": rows_new.T @ rows_new,
        "cross": rows_new.T @ rows_old @ kernel,
        "sum_new": rows_new.sum(axis=0),
        "sum_old": rows_old.sum(axis=0),
        "count": len(rows_new),
    }


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=MOMENT_RTOL, atol=MOMENT_RTOL * np.abs(want).max())


@pytest.mark.parametrize("build", [build_residual_model, build_nested_model, build_branch_model])
def test_streamed_moments_equal_a_plain_reference_as_weights_change(build):
    model = build(rank=3, seed=1)
    x = sample_inputs(model, n=7, seed=2)
    working = rebuild_model(model, {})
    paths = [c.path for c in analyse_model(model).factorable]
    assert streams(working, model, paths)
    rng = np.random.default_rng(3)
    seen = []
    for path, moments in sequential_moments(working, model, x, paths, batch_size=3):
        want = reference_moments(working, model, x, path)
        for name in ("gram", "cross", "sum_new", "sum_old"):
            _close(getattr(moments, name), want[name])
        assert moments.count == want["count"]
        seen.append(path)
        layer = layers_by_path(working)[path]  # later layers must see this change
        kernel = layer.kernel.numpy()
        layer.kernel.assign(kernel * rng.uniform(0.5, 1.5, kernel.shape).astype(kernel.dtype))
    assert seen == paths


def test_a_shared_layer_is_not_streamed_and_still_fits():
    model = build_shared_layer_model(rank=3)
    x = sample_inputs(model, n=6)
    analysis = analyse_model(model)
    paths = [c.path for c in analysis.factorable]
    assert not streams(rebuild_model(model, {}), model, paths)
    plan = choose_ranks(analysis, FractionPolicy(0.5), break_even=False)
    assert fitted_factors(analysis, plan, x).factors


def test_the_fit_prints_one_line_per_layer_off_a_terminal():
    model = build_residual_model(rank=3)
    analysis = analyse_model(model)
    plan = choose_ranks(analysis, FractionPolicy(0.5), break_even=False)
    stream = io.StringIO()
    fitted_factors(analysis, plan, sample_inputs(model, n=4), progress=Progress(1, stream=stream))
    lines = stream.getvalue().splitlines()
    paths = [c.path for c in analysis.factorable]
    assert [line.split()[2] for line in lines[:-1]] == paths
    assert lines[0].startswith(f"[0/{len(paths)}] fit {paths[0]}")
    assert lines[-1].startswith(f"[{len(paths)}/{len(paths)}] fitted {len(paths)} layers")
