"""The CLI end to end on a tiny MNIST-format folder: commands, exit codes, one-line errors."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from harness.data import make_images, make_labels, write_idx_images, write_idx_labels

from lowrank_edge.cli import main
from lowrank_edge.fileio import sha256_file

TINY_MODEL = ["--widths", "4,8", "--head-units", "8"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """A real-format MNIST IDX folder with 80 train and 20 test images."""
    folder = tmp_path_factory.mktemp("mnist")
    write_idx_images(folder / "train-images-idx3-ubyte.gz", make_images(80, seed=1))
    write_idx_labels(folder / "train-labels-idx1-ubyte.gz", make_labels(80, 10, seed=1))
    write_idx_images(folder / "t10k-images-idx3-ubyte.gz", make_images(20, seed=2))
    write_idx_labels(folder / "t10k-labels-idx1-ubyte.gz", make_labels(20, 10, seed=2))
    return folder


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "base.keras"
    result = run(
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        *TINY_MODEL,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    return out


def test_compress_without_data_saves_model_and_sidecar(trained, tmp_path):
    before = sha256_file(trained)
    out = tmp_path / "r2.keras"
    result = run("compress", trained, "--rank", "2", "--finetune-epochs", "0", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "r2.compression.json").is_file()
    assert "factorised" in result.output  # the per-layer table
    assert sha256_file(trained) == before  # the input model is never modified


def test_compress_with_finetune_and_evaluate(trained, mnist_dir, tmp_path):
    out = tmp_path / "e75.keras"
    result = run(
        "compress",
        trained,
        "--energy",
        "0.75",
        "--dataset",
        "mnist",
        "--data-dir",
        mnist_dir,
        "--finetune-epochs",
        "1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "accuracy before fine-tuning" in result.output
    assert "accuracy after fine-tuning" in result.output
    result = run("evaluate", out, "--dataset", "mnist", "--data-dir", mnist_dir)
    assert result.exit_code == 0, result.output
    assert "MACs" in result.output and "test acc" in result.output


def test_compress_refuses_to_replace_output(trained, tmp_path):
    out = tmp_path / "r2.keras"
    out.write_bytes(b"precious")
    result = run("compress", trained, "--rank", "2", "--finetune-epochs", "0", "--out", out)
    assert result.exit_code == 1
    assert "already exists; pass --overwrite" in result.output
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "args, message",
    [
        (["compress", "missing.keras", "--energy", "0.5"], "missing.keras: model file not found"),
        (["compress", "{model}", "--energy", "0.5", "--rank", "3"], "exactly one of --energy"),
        (["compress", "{model}", "--energy", "0.5", "--finetune-epochs", "1"], "pass --dataset"),
        (["evaluate", "{bad}", "--dataset", "mnist"], "not a Keras v3 .keras archive"),
        (["pipeline", "--dataset", "mnist", "--energies", "0.5,2"], "outside (0, 1]"),
    ],
)
def test_user_mistakes_give_one_error_line(args, message, trained, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    args = [a.format(model=trained, bad=bad) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.output
    assert "Traceback" not in result.output


def test_every_command_has_help():
    for command in ("data", "train", "compress", "evaluate", "pipeline"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_pipeline_command_trains_compresses_and_exports(mnist_dir, tmp_path):
    out = tmp_path / "run"
    result = run(
        "pipeline",
        "--dataset",
        "mnist",
        "--data-dir",
        mnist_dir,
        "--epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--energies",
        "0.5",
        *TINY_MODEL,
        "--export",
        "tflite,onnx",
        "--tflite-variants",
        "float32",
        "--out-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    for name in (
        "base.keras",
        "e50.keras",
        "results.json",
        "report.md",
        "base/manifest.json",
        "e50/manifest.json",
        "e50/e50.onnx",
        "e50/e50-float32.tflite",
    ):
        assert (out / name).is_file(), name
    again = run("pipeline", "--dataset", "mnist", "--data-dir", mnist_dir, "--out-dir", out)
    assert again.exit_code == 1 and "--overwrite" in again.output
