"""--custom-objects MODULE: the user's registered Keras layers load (safe_mode stays on), from a
module name importable from the working directory or a .py path; one clear error otherwise."""

from __future__ import annotations

import sys
import textwrap

import keras
import pytest
from harness.cli import run_cli, write_mnist_folder

from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.model.custom_objects import import_custom_objects
from lowrank_edge.model.saving import load_model

LAYER_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="{package}")
class ChannelScale(keras.layers.Layer):
    """Multiplies each channel by a learned scale (a layer Keras does not ship)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def build(num_classes=10):
    inputs = keras.Input((28, 28, 1))
    x = ChannelScale(name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
'''


def _write_module(folder, name: str):
    """A module `name` in `folder` registering ChannelScale under its own package `name`
    (a fresh registration per test: Keras keeps registrations for the whole process)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(LAYER_MODULE.format(package=name)))
    return path


def _forget(name: str) -> None:
    """Undo the import of module `name`: as if this were a fresh process."""
    keras.saving.get_custom_objects().pop(f"{name}>ChannelScale")
    sys.modules.pop(name)


@pytest.fixture
def model_file(tmp_path, request):
    """A .keras file using ChannelScale, saved by a module that is then forgotten."""
    name = f"user_layers_{request.node.name.split('[')[0][5:]}"
    path = _write_module(tmp_path, name)
    model_path = tmp_path / "model.keras"
    import_custom_objects(str(path)).build().save(model_path)
    _forget(name)
    return model_path, path, name


def test_a_registered_layer_loads_after_importing_its_py_file(model_file):
    model_path, path, name = model_file
    with pytest.raises(LowrankEdgeError, match="could not load the model"):
        load_model(model_path)
    import_custom_objects(str(path))
    model = load_model(model_path)  # safe_mode=True
    assert type(model.get_layer("scale")).__name__ == "ChannelScale"
    _forget(name)


def test_cli_imports_the_module_by_name_from_the_working_directory(
    model_file, tmp_path, monkeypatch
):
    model_path, _, name = model_file
    write_mnist_folder(tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    result = run_cli("ranks", model_path, "--rank", "2", "--factoriser", "svd")
    assert result.exit_code == 1 and "could not load the model" in result.output
    data = ["--dataset", "mnist", "--data-dir", tmp_path / "mnist"]
    result = run_cli("evaluate", model_path, "--custom-objects", name, *data)
    assert result.exit_code == 0, result.output
    assert "test acc" in result.output
    out = tmp_path / "r2.keras"
    result = run_cli("compress", model_path, "--custom-objects", name, "--rank", "2",
                     "--factoriser", "svd", "--finetune-epochs", "0", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| conv |" in result.output  # factorised around the custom layer
    assert type(load_model(out).get_layer("scale")).__name__ == "ChannelScale"
    _forget(name)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "no_such_module_xyz",
            "--custom-objects no_such_module_xyz: could not import it: ModuleNotFoundError",
        ),  # fmt: skip
        ("missing/layers.py", "--custom-objects missing/layers.py: file not found"),
    ],
)
def test_a_module_that_cannot_be_imported_is_one_clear_error(spec, message, tmp_path):
    result = run_cli("evaluate", tmp_path / "model.keras", "--custom-objects", spec,
                     "--dataset", "mnist")  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"error: {message}")


def test_a_module_that_raises_names_itself(tmp_path):
    broken = tmp_path / "broken_layers.py"
    broken.write_text("raise RuntimeError('missing dependency foo')\n")
    with pytest.raises(LowrankEdgeError, match=r"broken_layers\.py: could not import it: "
                       r"RuntimeError: missing dependency foo"):  # fmt: skip
        import_custom_objects(str(broken))
