"""A user's own model and data through the whole CLI (issue 16's "done when").

The model is one the project has never seen: RGB 16x16 input, raw `keras.ops` nodes
(preprocess_input-style arithmetic and a hard-swish) and a softmax head, trained briefly with
plain Keras (a user's model is trained: a random one's near-tied outputs make the int8 parity
checks a coin toss). The data is either a folder of class sub-folders with PNGs of another size
(12x10, resized to the model) or an .npz file; in both, each class brightens one channel.

Each runs `evaluate -> compress (whitened, data-aware) -> export --all-variants -> bench ->
recommend`, and the test checks what each step hands the next: the agreed preprocessing in
the manifest, every variant exported with its parity checked, every variant timed, and a
recommendation naming a file that was exported. `pipeline --base` does the same in one call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness.bench import FAST_CLI_ARGS
from harness.cli import run_cli
from harness.data import make_rgb_images, write_image_folder
from harness.models import build_raw_ops_model

from lowrank_edge.model.saving import sidecar_path

CLASSES = {"cat": 12, "dog": 12, "fox": 12}
INPUT_SHAPE = (16, 16, 3)
TFLITE_VARIANTS = {"float32", "float16", "int8-dynamic", "int8-full"}
ONNX_VARIANTS = {"float32", "int8-qdq", "int8-dynamic"}


def learnable_arrays(count: int, size: tuple[int, int], seed: int):
    """uint8 RGB images and int64 labels, class i with channel i brightened."""
    labels = np.arange(count) % len(CLASSES)
    images = np.concatenate(
        [make_rgb_images(int(np.sum(labels == c)), size, seed + c, bright=c) for c in range(3)]
    )
    return images, np.sort(labels).astype(np.int64)


@pytest.fixture(scope="module")
def own_model(tmp_path_factory) -> Path:
    """The user's model, trained a little and saved as .keras (3 classes, softmax head)."""
    import keras

    path = tmp_path_factory.mktemp("user") / "my_net.keras"
    model = build_raw_ops_model(INPUT_SHAPE, num_classes=len(CLASSES), seed=1)
    x, y = learnable_arrays(96, INPUT_SHAPE[:2], seed=11)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x / np.float32(255), y, epochs=30, batch_size=32, verbose=0)
    model.save(path)
    return path


def image_folder(root: Path) -> list[str]:
    """`--data` arguments for a train/ + test/ folder of 12x10 RGB PNGs."""
    write_image_folder(root / "train", CLASSES, size=(12, 10), seed=0, learnable=True)
    test = {name: 4 for name in CLASSES}
    write_image_folder(root / "test", test, size=(12, 10), seed=7, learnable=True)
    return ["--data", str(root), "--preprocess", "unit"]


def npz_file(path: Path) -> list[str]:
    """`--data` arguments for an .npz with x_train/y_train/x_test/y_test uint8 images."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x_train, y_train = learnable_arrays(36, INPUT_SHAPE[:2], seed=3)
    x_test, y_test = learnable_arrays(12, INPUT_SHAPE[:2], seed=4)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return ["--data", str(path), "--preprocess", "unit"]


def check_ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def exported(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    formats: dict[str, set[str]] = {}
    for artifact in manifest["artifacts"]:
        formats.setdefault(artifact["format"], set()).add(artifact["variant"])
        assert (folder / artifact["file"]).is_file(), artifact["file"]
    assert formats == {"tflite": TFLITE_VARIANTS, "onnx": ONNX_VARIANTS}, formats
    return manifest


@pytest.mark.parametrize("make_data", [image_folder, npz_file], ids=["folder", "npz"])
def test_own_model_and_data_through_every_command(own_model, make_data, tmp_path):
    data = make_data(tmp_path / "data" / "flowers.npz" if make_data is npz_file else tmp_path / "d")

    report = check_ok(run_cli("evaluate", own_model, *data))
    assert "MACs" in report, report
    test_line = next(line for line in report.splitlines() if line.startswith("test"))
    assert float(test_line.split()[-1]) > 0.8, report  # it learned the channels

    small = tmp_path / "my_net-m0.6.keras"
    check_ok(run_cli("compress", own_model, "--target-macs", 0.6, *data, "--out", small))
    facts = json.loads(sidecar_path(small).read_text())
    assert facts["settings"]["factoriser"] == "whitened"
    assert facts["totals"]["layers_factorised"] >= 1, facts["totals"]
    assert facts["totals"]["macs_after"] <= 0.6 * facts["totals"]["macs_before"], facts["totals"]

    folders = {}
    for name, model in (("base", own_model), ("m0.6", small)):
        folders[name] = tmp_path / "export" / name
        check_ok(run_cli("export", model, "--all-variants", *data, "--out-dir", folders[name]))
        manifest = exported(folders[name])
        model_input = manifest["model"]["input"]
        assert model_input["preprocessing"] == "unit" and model_input["range"] == [0, 1]
        assert model_input["shape"][-3:] == list(INPUT_SHAPE)

    bench = tmp_path / "bench"
    args = [folders["base"], folders["m0.6"], *FAST_CLI_ARGS, "--out", bench]
    check_ok(run_cli("bench", *args))
    records = [json.loads(line) for line in (bench / "results.jsonl").read_text().splitlines()]
    timed = {(r["backend"], r["variant"]) for r in records if r["status"] == "ok"}
    assert timed == {("litert", v) for v in TFLITE_VARIANTS} | {
        ("onnxruntime", v) for v in ONNX_VARIANTS
    }, timed

    check_ok(run_cli("recommend", bench, "--max-accuracy-drop", 100))
    recommendation = json.loads((bench / "recommendation.json").read_text())
    for condition in recommendation["conditions"]:
        chosen = condition["recommended"]
        manifest = json.loads(Path(chosen["manifest"]).read_text())
        assert chosen["file"] in [a["file"] for a in manifest["artifacts"]]


def test_pipeline_runs_the_whole_job_on_the_users_model(own_model, tmp_path):
    data = image_folder(tmp_path / "d")
    out = tmp_path / "run"
    result = run_cli(
        "pipeline", "--base", own_model, *data, "--target-macs", "0.6", "--finetune-epochs", 1,
        "--export", "tflite,onnx", "--tflite-variants", "float32,int8-full",
        "--onnx-variants", "int8-qdq", "--max-accuracy-drop", 100, "--out-dir", out,
    )  # fmt: skip
    check_ok(result)
    summary = json.loads((out / "results.json").read_text())
    base, small = summary["models"]
    assert base["name"] == "base" and small["compression"]["settings"]["factoriser"] == "whitened"
    assert small["compression"]["totals"]["macs_ratio"] <= 0.6
    assert small["finetune"]["from_logits"] is False  # the softmax head was seen (auto)
    recommendation = json.loads((out / "bench/recommendation.json").read_text())
    assert {c["backend"] for c in recommendation["conditions"]} == {"litert", "onnxruntime"}
    assert not (out / "base.keras").exists()  # the user's model is used where it is
