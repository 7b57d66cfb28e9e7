"""Training on tf.distribute, on this machine only: TF_CONFIG checks, `mirrored` over 2 logical
CPU devices, and `multi-worker` refused with its reason (Keras 3.15's fit fails under it).

TensorFlow fixes its devices and collectives at start-up, so every distributed run is its own
Python process. The data are a real-format MNIST IDX folder of 96 train and 24 test images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from harness.cli import write_mnist_folder

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.distribute import tf_config

TINY_MODEL = ["--widths", "4,8", "--head-units", "8"]
# ONEDNN_NOTE: in a fresh process, TensorFlow 2.21's oneDNN kernels sometimes corrupt the heap
# ("free(): invalid size", "double free or corruption") while fitting this 4/8-channel net; with
# TF_ENABLE_ONEDNN_OPTS=0 the same runs pass every time. The subprocess tests turn oneDNN off.
TIMEOUT = 300


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("mnist"), n_train=96, n_test=24)


def _config(index: int, ports=(1, 2)) -> str:
    workers = [f"127.0.0.1:{p}" for p in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def test_tf_config_is_checked_and_names_what_is_wrong():
    with pytest.raises(LowrankEdgeError, match="needs TF_CONFIG"):
        tf_config({})
    with pytest.raises(LowrankEdgeError, match="TF_CONFIG is not JSON"):
        tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(LowrankEdgeError, match="cluster.worker must be a list"):
        tf_config({"TF_CONFIG": json.dumps({"cluster": {}, "task": {}})})
    with pytest.raises(LowrankEdgeError, match="task.index must be 0 to 1"):
        tf_config({"TF_CONFIG": _config(2)})
    assert tf_config({"TF_CONFIG": _config(1)})["task"]["index"] == 1


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
for kind in ("none", "mirrored"):
    import keras
    keras.utils.set_random_seed(0)
    model = build_mini_resnet(config_for_data(ResNetConfig(widths=(4, 8), head_units=8), data))
    start = [w.copy() for w in model.get_weights()]
    result = fit(model, data, FitConfig(epochs=2, batch_size=16, distribute=kind, verbose=0))
    moved = max(float(abs(a - b).max()) for a, b in zip(model.get_weights(), start))
    out[kind] = {"epochs": result.epochs_run, "loss": result.history["loss"], "moved": moved,
                 "val": accuracy(model, data.x_val, data.y_val)}
print("RESULT " + json.dumps(out))
"""


def test_mirrored_on_two_logical_cpus_trains_like_one_process(mnist_dir):
    """The same fit with `mirrored` over 2 logical CPU devices: 2 replicas share the global
    batch, the caller's model gets the trained weights, and the losses match one process
    within 5% (BatchNorm sees half a batch per replica, so they are not identical)."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # see ONEDNN_NOTE
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(mnist_dir)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[distribute] mirrored: 2 replica(s), global batch 16 (8 per replica)" in done.stdout
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    one, two = result["none"], result["mirrored"]
    assert one["epochs"] == two["epochs"] == 2
    assert two["moved"] > 0  # the weights trained in the replicas came back
    for single, mirrored in zip(one["loss"], two["loss"], strict=True):
        assert mirrored == pytest.approx(single, rel=0.05)


def test_multi_worker_is_refused_with_the_reason_before_any_work(mnist_dir, tmp_path):
    """`train --distribute multi-worker` checks TF_CONFIG, then refuses with the Keras fault
    that blocks it (see `MULTI_WORKER_BLOCKED`), writing nothing."""
    from click.testing import CliRunner

    from lowrank_edge.cli import main

    out = tmp_path / "b.keras"
    args = ["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--epochs", "1",
            *TINY_MODEL, "--distribute", "multi-worker", "--out", str(out)]  # fmt: skip
    missing = CliRunner().invoke(main, args, env={"TF_CONFIG": ""})
    assert missing.exit_code == 1 and "needs TF_CONFIG" in missing.output
    given = CliRunner().invoke(main, args, env={"TF_CONFIG": _config(0)})
    assert given.exit_code == 1
    assert "--distribute multi-worker is not available yet" in given.output
    assert "use --distribute mirrored" in given.output
    assert not out.exists()


RESUME = """
import os, signal, sys
import keras
from lowrank_edge.data import load_dataset
from lowrank_edge.model import train
from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet, config_for_data

if sys.argv[3] == "kill":  # the process dies as epoch 2 begins: epoch 1's backup is on disk
    logger = train._epoch_logger

    def killing_logger(epochs):
        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
        return Kill()

    train._epoch_logger = killing_logger
data = load_dataset("mnist", data_dir=sys.argv[1], seed=0)
keras.utils.set_random_seed(0)
model = build_mini_resnet(config_for_data(ResNetConfig(widths=(4, 8), head_units=8), data))
result = train.fit(model, data, train.FitConfig(epochs=3, batch_size=16, verbose=2,
                                                backup_dir=sys.argv[2]))
print("EPOCHS", result.epochs_run)
"""


def test_a_killed_run_resumes_at_its_last_finished_epoch(mnist_dir, tmp_path):
    """--backup-dir: a fit killed (SIGKILL) as epoch 2 begins, then started again with the same
    backup folder, runs epochs 2 and 3 only, so the whole run does the same 3 epochs."""
    backup = tmp_path / "backup"
    args = [sys.executable, "-c", RESUME, str(mnist_dir), str(backup)]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # see ONEDNN_NOTE
    killed = subprocess.run([*args, "kill"], capture_output=True, text=True, timeout=TIMEOUT,
                            env=env)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert backup.is_dir() and any(backup.iterdir())  # epoch 1's state was backed up
    resumed = subprocess.run([*args, "go"], capture_output=True, text=True, timeout=TIMEOUT,
                             env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs = [line.split(" - ")[0] for line in resumed.stdout.splitlines()
              if line.startswith("Epoch ")]  # fmt: skip
    assert epochs == ["Epoch 2/3", "Epoch 3/3"]
    assert "EPOCHS 2" in resumed.stdout  # this process ran the two epochs left
    assert not any(backup.iterdir()) if backup.exists() else True  # removed once finished
