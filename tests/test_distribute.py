"""Training on tf.distribute, on this machine only: TF_CONFIG checks, `mirrored` over 2 logical
CPU devices, and `multi-worker` refused with its reason (Keras 3.15's fit fails under it).

TensorFlow fixes its devices and collectives at start-up, so every distributed run is its own
Python process. The data are real-format MNIST IDX folders: 96 train and 24 test random images
for the training runs, and 192 train and 48 test stripe images (classes 0-4, learnable) where
the compressed model's accuracy is compared: at chance level, accuracies are noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.cli import write_mnist_folder

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.distribute import tf_config
from lowrank_edge.model.local_workers import free_ports, run_local_workers, tf_config_for
from lowrank_edge.pipeline.outputs import accuracies, output_files, rank_plans

TINY_MODEL = ["--widths", "4,8", "--head-units", "8"]
# ONEDNN_NOTE: in a fresh process, TensorFlow 2.21's oneDNN kernels sometimes corrupt the heap
# ("free(): invalid size", "double free or corruption") while fitting this 4/8-channel net; with
# TF_ENABLE_ONEDNN_OPTS=0 the same runs pass every time. The subprocess tests turn oneDNN off.
TIMEOUT = 300
SUBPROCESS_ENV = {
    **os.environ,
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}  # ONEDNN_NOTE


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("mnist"), n_train=96, n_test=24)


def test_tf_config_is_checked_and_names_what_is_wrong():
    with pytest.raises(LowrankEdgeError, match="needs TF_CONFIG"):
        tf_config({})
    with pytest.raises(LowrankEdgeError, match="TF_CONFIG is not JSON"):
        tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(LowrankEdgeError, match="cluster.worker must be a list"):
        tf_config({"TF_CONFIG": json.dumps({"cluster": {}, "task": {}})})
    with pytest.raises(LowrankEdgeError, match="task.index must be 0 to 1"):
        tf_config({"TF_CONFIG": tf_config_for((1, 2), 2)})
    assert tf_config({"TF_CONFIG": tf_config_for((1, 2), 1)})["task"]["index"] == 1


MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from lowrank_edge.data import load_dataset
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet, config_for_data
from lowrank_edge.model.train import FitConfig, fit, accuracy
data = load_dataset("mnist", data_dir=sys.argv[1], seed=0)
out = {}
import keras
for kind in ("none", "mirrored"):
    for distill in (False, True):
        keras.utils.set_random_seed(0)
        config = config_for_data(ResNetConfig(widths=(4, 8), head_units=8), data)
        model, teacher = build_mini_resnet(config), build_mini_resnet(config)
        start = [w.copy() for w in model.get_weights()]
        result = fit(model, data, FitConfig(epochs=2, batch_size=16, distribute=kind, verbose=0,
                                            distill=distill), teacher=teacher)
        moved = max(float(abs(a - b).max()) for a, b in zip(model.get_weights(), start))
        out[kind + ("-distill" if distill else "")] = {
            "epochs": result.epochs_run, "loss": result.history["loss"], "moved": moved,
            "val_loss": result.history["val_loss"], "val": accuracy(model, data.x_val, data.y_val)}
print("RESULT " + json.dumps(out))
"""


def test_mirrored_on_two_logical_cpus_trains_like_one_process(mnist_dir):
    """The same fit, plain and distilled, with `mirrored` over 2 logical CPU devices: 2
    replicas share the global batch, the caller's model gets the trained weights, and the
    training and validation losses match one process within 5% (BatchNorm sees half a batch
    per replica, so they are not identical; an unscaled distillation loss was 2x)."""
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(mnist_dir)],
        capture_output=True, text=True, timeout=TIMEOUT, env=SUBPROCESS_ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[distribute] mirrored: 2 replica(s), global batch 16 (8 per replica)" in done.stdout
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    for case in ("", "-distill"):  # distillation: its hand-made loss is divided per replica too
        one, two = result["none" + case], result["mirrored" + case]
        assert one["epochs"] == two["epochs"] == 2
        assert two["moved"] > 0  # the weights trained in the replicas came back
        for key in ("loss", "val_loss"):
            for single, mirrored in zip(one[key], two[key], strict=True):
                assert mirrored == pytest.approx(single, rel=0.05), (case, key)


LOWRANK_EDGE = [str(Path(sys.executable).with_name("lowrank-edge"))]


def _run(argv: list[str]) -> None:
    """One process (oneDNN off, see ONEDNN_NOTE), which must succeed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=SUBPROCESS_ENV)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def patterns_dir(tmp_path_factory):
    return write_mnist_folder(
        tmp_path_factory.mktemp("patterns"), n_train=192, n_test=48, learnable=True
    )


@pytest.fixture(scope="module")
def base(patterns_dir, tmp_path_factory) -> Path:
    """A small mini-ResNet (8/16 channels) trained 8 epochs on `patterns_dir` in one process,
    to far above chance (measured: 48/48 test images). The 4/8-channel net is not used here:
    its data-aware factors at rank 1 give a training-mode (batch statistics) accuracy far from
    its inference accuracy, so fine-tuning it jumps around."""
    path = tmp_path_factory.mktemp("base") / "base.keras"
    _run([*LOWRANK_EDGE, "train", "--dataset", "mnist", "--data-dir", str(patterns_dir),
          "--epochs", "8", "--batch-size", "16", "--lr", "0.01", "--widths", "8,16",
          "--head-units", "16", "--out", str(path)])  # fmt: skip
    return path


def test_multi_worker_calibration_matches_one_process(patterns_dir, base, tmp_path):
    """`compress --distribute multi-worker` (no fine-tuning): each of 2 workers sums the
    calibration statistics of half the images and the sums are all-reduced, so the plan is
    the one-process plan and every weight (factors, refitted dense layers, BatchNorm
    statistics) is within 0.5% of its tensor's largest magnitude (float32 products summed in
    other chunks; measured 0.11% at most, on fc's refitted kernel)."""
    import keras
    import numpy as np

    args = ["compress", str(base), "--dataset", "mnist", "--data-dir", str(patterns_dir),
            "--target-macs", "0.5", "--finetune-epochs", "0"]  # fmt: skip
    _run([*LOWRANK_EDGE, *args, "--out", str(tmp_path / "one.keras")])
    runs = run_local_workers([*LOWRANK_EDGE, *args, "--out", str(tmp_path / "two.keras"),
                              "--distribute", "multi-worker"], free_ports(2), TIMEOUT,
                             SUBPROCESS_ENV)  # fmt: skip
    for run in runs:
        assert run.returncode == 0, f"worker {run.index}: {run.stderr[-3000:]}"
    plans = rank_plans(tmp_path)
    assert plans["two"] == plans["one"]
    one, two = (keras.saving.load_model(tmp_path / f"{n}.keras") for n in ("one", "two"))
    for weight, a, b in zip(one.weights, one.get_weights(), two.get_weights(), strict=True):
        scale = max(float(np.abs(a).max()), 1e-12)
        assert float(np.abs(a - b).max()) <= 5e-3 * scale, weight.path
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one.compression.json",
        "one.keras",
        "two.compression.json",
        "two.keras",
    ]  # worker 1 wrote nothing here


def test_multi_worker_pipeline_matches_one_process(patterns_dir, base, tmp_path):
    """`pipeline --distribute multi-worker` on 2 worker processes (127.0.0.1, ports picked
    here) completes the whole job: the same files as one process, the same per-layer plan
    (calibration sums all-reduced), test accuracy of the fine-tuned model within 2 of the 48
    test images (learnable ones: both measured 48/48), and worker 1 writes nothing the user
    sees."""
    args = ["pipeline", "--dataset", "mnist", "--data-dir", str(patterns_dir), "--base",
            str(base), "--finetune-epochs", "2", "--batch-size", "16", "--target-macs", "0.5",
            "--export", "tflite"]  # fmt: skip
    _run([*LOWRANK_EDGE, *args, "--out-dir", str(tmp_path / "one")])
    out = tmp_path / "two"
    runs = run_local_workers([*LOWRANK_EDGE, *args, "--out-dir", str(out), "--distribute",
                              "multi-worker"], free_ports(2), TIMEOUT, SUBPROCESS_ENV)  # fmt: skip
    for run in runs:
        assert run.returncode == 0, f"worker {run.index}: {run.stderr[-3000:]}"
    assert "[distribute] multi-worker: 2 replica(s), global batch 16 (8 per replica)" in (
        runs[0].stdout
    )
    assert str(out) not in runs[1].stdout  # worker 1 wrote to a scratch folder, since removed
    assert output_files(out) == output_files(tmp_path / "one")
    plans = rank_plans(tmp_path / "one")
    assert "m0.5" in plans and rank_plans(out) == plans
    single, multi = (
        {name: acc["test"] for name, acc in accuracies(folder).items()}
        for folder in (tmp_path / "one", out)
    )
    assert single.keys() == multi.keys()
    for name, accuracy in single.items():
        assert accuracy >= 0.9, (name, accuracy)  # far above chance (0.2), so comparable
        assert multi[name] == pytest.approx(accuracy, abs=2 / 48 + 1e-9), name


def test_a_worker_that_cannot_reach_its_peers_fails_naming_them(mnist_dir, tmp_path):
    """With its peer absent, worker 0 (the leader) and worker 1 each fail with an error naming
    the peer's TF_CONFIG address, --peer-timeout 5 s after TensorFlow starts, writing nothing."""
    leader_ports, follower_ports = free_ports(2), free_ports(2)
    for index, ports in ((0, leader_ports), (1, follower_ports)):
        out = tmp_path / f"alone-{index}.keras"
        args = ["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--epochs", "1",
                *TINY_MODEL, "--distribute", "multi-worker", "--peer-timeout", "5",
                "--out", str(out)]  # fmt: skip
        (run,) = run_local_workers([*LOWRANK_EDGE, *args], ports, TIMEOUT, SUBPROCESS_ENV, [index])
        peer = 1 - index
        assert run.returncode == 1, run.stderr[-3000:]
        assert (
            f"worker {index} (127.0.0.1:{ports[index]}) could not reach its peers within 5 s: "
            f"worker {peer} at 127.0.0.1:{ports[peer]}"
        ) in run.stderr
        assert run.seconds < 5 + 60  # the timeout plus TensorFlow's start-up, never a hang
        assert not out.exists()


RESUME = """
import math, os, signal, sys
from lowrank_edge.model.distribute import is_chief, make_strategy
backup, mode, kind = sys.argv[2:5]
make_strategy(kind, 10)  # first thing; a lost peer is declared dead after 10 s
import keras
from lowrank_edge.data import load_dataset
from lowrank_edge.model import train
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet, config_for_data

if mode == "kill" and (kind == "none" or not is_chief(kind)):  # multi-worker: worker 1 dies
    class Kill(keras.callbacks.Callback):  # mid-epoch 2: epoch 1's backup is on disk
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    train._epoch_logger = lambda epochs: Kill()
data = load_dataset("mnist", data_dir=sys.argv[1], seed=0)
keras.utils.set_random_seed(0)
model = build_mini_resnet(config_for_data(ResNetConfig(widths=(4, 8), head_units=8), data))
result = train.fit(model, data, train.FitConfig(epochs=3, batch_size=16, verbose=2,
                                                backup_dir=backup, distribute=kind,
                                                peer_timeout=10))
print("EPOCHS", result.epochs_run, "STEPS", result.steps,
      "PER_EPOCH", math.ceil(len(data.x_train) / 16))
"""


def _epoch_lines(stdout: str) -> list[str]:
    return [line.split(" - ")[0] for line in stdout.splitlines() if line.startswith("Epoch ")]


def _steps(stdout: str) -> tuple[int, int]:
    """(steps run in all, steps per epoch) from RESUME's last line."""
    words = stdout.rsplit("EPOCHS", 1)[1].split()
    return int(words[words.index("STEPS") + 1]), int(words[words.index("PER_EPOCH") + 1])


def test_a_killed_run_resumes_at_its_last_finished_epoch(mnist_dir, tmp_path):
    """--backup-dir: a fit killed (SIGKILL) mid-epoch 2, then started again with the same
    backup folder, runs epochs 2 and 3 only: the whole run does the same 3 epochs of steps."""
    backup = tmp_path / "backup"
    args = [sys.executable, "-c", RESUME, str(mnist_dir), str(backup)]
    killed = subprocess.run([*args, "kill", "none"], capture_output=True, text=True,
                            timeout=TIMEOUT, env=SUBPROCESS_ENV)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert backup.is_dir() and any(backup.iterdir())  # epoch 1's state was backed up
    resumed = subprocess.run([*args, "go", "none"], capture_output=True, text=True,
                             timeout=TIMEOUT, env=SUBPROCESS_ENV)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _epoch_lines(resumed.stdout) == ["Epoch 2/3", "Epoch 3/3"]
    assert "EPOCHS 2" in resumed.stdout  # this process ran the two epochs left
    steps, per_epoch = _steps(resumed.stdout)
    assert steps == 3 * per_epoch  # epoch 1's steps were kept, epoch 2's redone from its start
    assert not any(backup.iterdir()) if backup.exists() else True  # removed once finished


def test_a_killed_worker_fails_its_peer_and_both_resume(mnist_dir, tmp_path):
    """multi-worker: worker 1 killed mid-epoch 2 makes worker 0 fail within --peer-timeout
    (10 s here) naming worker 1's address; the same command started again on both workers
    resumes from each worker's backup at epoch 2 and completes the 3 epochs' steps."""
    backup = tmp_path / "backup"
    args = [sys.executable, "-c", RESUME, str(mnist_dir), str(backup)]
    ports = free_ports(2)
    killed = run_local_workers([*args, "kill", "multi-worker"], ports, TIMEOUT, SUBPROCESS_ENV)
    assert killed[1].returncode == -9, killed[1].stderr[-2000:]
    assert killed[0].returncode == 1, killed[0].stderr[-2000:]
    assert f"lost its peers mid-run: worker 1 at 127.0.0.1:{ports[1]}" in killed[0].stderr
    assert sorted(p.name for p in backup.iterdir()) == ["worker-0", "worker-1"]
    resumed = run_local_workers([*args, "go", "multi-worker"], free_ports(2), TIMEOUT,
                                SUBPROCESS_ENV)  # fmt: skip
    for run in resumed:
        assert run.returncode == 0, f"worker {run.index}: {run.stderr[-2000:]}"
        assert _epoch_lines(run.stdout) == ["Epoch 2/3", "Epoch 3/3"]
        steps, per_epoch = _steps(run.stdout)
        assert steps == 3 * per_epoch
