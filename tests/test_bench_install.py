"""INSTALL TEST (slow, ~1 min): scripts/install-bench.sh makes a TF-free venv that benchmarks.

Creates a fresh virtual environment with the same script the Dockerfile and CI run
(`pip install .[bench]`, no TensorFlow), then benchmarks a tiny exported model in it
with the LiteRT and ONNX Runtime backends. Set LOWRANK_EDGE_SKIP_INSTALL_TEST=1 to skip
it (e.g. offline, without a package index).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.bench import FAST_CLI_ARGS, export_bench_models

from lowrank_edge.benchmark.results.storage import read_results

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("LOWRANK_EDGE_SKIP_INSTALL_TEST") == "1",
    reason="LOWRANK_EDGE_SKIP_INSTALL_TEST=1",
)


def test_install_script_makes_a_tf_free_venv_that_benchmarks(tmp_path):
    venv = tmp_path / "bench-venv"
    install = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-bench.sh"), str(venv), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    python = venv / "bin" / "python"
    no_tf = subprocess.run(
        [str(python), "-c", "import tensorflow"], capture_output=True, text=True, timeout=60
    )
    assert no_tf.returncode != 0 and "No module named 'tensorflow'" in no_tf.stderr

    models = export_bench_models(tmp_path / "models")
    out = tmp_path / "results"
    bench = subprocess.run(
        [str(venv / "bin" / "lowrank-edge"), "bench", str(models["base"]), str(models["e50"]),
         "--backends", "litert,onnxruntime", "--batch", "1,2", "--out", str(out), *FAST_CLI_ARGS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    records = read_results(out)
    assert len(records) == 2 * 2 * 2
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    assert all(r["system"]["packages"]["tensorflow"] is None for r in records)
    assert "matplotlib is not installed" in (out / "report.md").read_text()
