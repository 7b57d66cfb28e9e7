"""Benchmark test helpers: tiny exported models and fast timing budgets.

- `export_bench_models(folder)`: the tiny mini-ResNet ("base", untrained) and its rank-halved
  compression ("e50", with its compression sidecar), each exported (TFLite float32 + ONNX +
  real samples) with `lowrank_edge.export.export_model`; returns {"base": dir, "e50": dir}.
  Datasets, the model config and the sidecar writer come from `harness.export`.
- `shared_bench_models(tmp_path_factory)`: those two exports made once per test session and
  shared by the bench test modules; read-only (copy a folder before damaging it).
- `FAST_POLICY` / `FAST_CLI_ARGS`: timing budgets small enough for tests (never timed on).
- `TF_BLOCKER`: `harness.export.block_imports_code()`, for subprocesses that must prove a code
  path is TensorFlow-free.
"""

from __future__ import annotations

from pathlib import Path

from harness.data import make_pattern_dataset
from harness.export import TINY_CONFIG, block_imports_code, save_with_sidecar
from lowrank_edge.benchmark.timing.calls import TimingPolicy

PARITY_SAMPLES = 16
_SHARED: dict[str, dict[str, Path]] = {}

FAST_POLICY = TimingPolicy(
    warmup_runs=1, warmup_s=0.0, min_runs=4, min_time_s=0.0, max_time_s=2.0, rounds=2, repeats=1
)
FAST_CLI_ARGS = [
    "--warmup-runs", "1", "--warmup-time", "0", "--min-runs", "4", "--min-time", "0",
    "--max-time", "2", "--rounds", "2", "--repeats", "1", "--quiet",
]  # fmt: skip

TF_BLOCKER = block_imports_code()


def export_bench_models(folder: Path) -> dict[str, Path]:
    """Export a tiny baseline and its rank-halved compression into `folder`; their export dirs."""
    from lowrank_edge.compress import FractionPolicy, compress_model
    from lowrank_edge.export import export_model
    from lowrank_edge.model.resnet import build_mini_resnet

    base = build_mini_resnet(TINY_CONFIG)
    compressed = compress_model(base, FractionPolicy(0.5), break_even=False)
    dataset = make_pattern_dataset(n_train=64, n_val=8, n_test=48)
    folders = {}
    for name, model, sidecar in (
        ("base", base, None),
        ("e50", compressed.model, compressed.to_dict()),
    ):
        model_path = save_with_sidecar(model, folder / f"{name}.keras", sidecar)
        export_model(
            model_path,
            folder / name,
            dataset=dataset,
            parity_samples=PARITY_SAMPLES,
            log=lambda message: None,
        )
        folders[name] = folder / name
    return folders


def shared_bench_models(tmp_path_factory) -> dict[str, Path]:
    """The session's `export_bench_models` folders (made on first use); treat them as read-only."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _SHARED:
        _SHARED[key] = export_bench_models(tmp_path_factory.mktemp("bench-models"))
    return _SHARED[key]
