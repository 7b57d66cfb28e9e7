"""The CLI end to end on a tiny MNIST-format folder: commands, exit codes, one-line errors."""

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from harness.cli import write_mnist_folder

from lowrank_edge.cli import main
from lowrank_edge.cli.options import comma_list_option, parse_comma_list
from lowrank_edge.compress import FACTORISED, KEPT_EXCLUDED
from lowrank_edge.data import SPEC_HELP, load_dataset
from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import sha256_file

TINY_MODEL = ["--widths", "4,8", "--head-units", "8"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """A real-format MNIST IDX folder with 80 train and 20 test images."""
    return write_mnist_folder(tmp_path_factory.mktemp("mnist"), n_train=80, n_test=20)


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
    result = run(
        "compress",
        trained,
        "--rank",
        "2",
        "--factoriser",
        "svd",
        "--finetune-epochs",
        "0",
        "--out",
        out,
    )
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
    result = run(
        "compress",
        trained,
        "--rank",
        "2",
        "--factoriser",
        "svd",
        "--finetune-epochs",
        "0",
        "--out",
        out,
    )
    assert result.exit_code == 1
    assert "already exists; pass --overwrite" in result.output
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "args, message",
    [
        (["compress", "missing.keras", "--energy", "0.5"], "missing.keras: model file not found"),
        (["compress", "{model}", "--energy", "0.5", "--rank", "3"], "exactly one of --energy"),
        (["compress", "{model}", "--energy", "0.5", "--finetune-epochs", "1"], "pass --data SPEC"),
        (["evaluate", "{bad}", "--dataset", "mnist"], "not a Keras v3 .keras archive"),
        (["pipeline", "--dataset", "mnist", "--energies", "0.5,2"], "outside (0, 1]"),
        (
            ["pipeline", "--dataset", "mnist", "--energies", "0.5", "--rank", "2"],
            "choose --rank or --rank-fraction alone, or any of --energies, --target-macs, "
            "--target-params and --target-speedup (got --rank and --energies)",
        ),
        (
            ["pipeline", "--dataset", "mnist", "--export", "tflite", "--onnx-variants", "int8-qdq"],
            "--onnx-variants applies to exported files: add --export onnx",
        ),
        (
            ["compress", "{model}", "--rank", "2", "--finetune-epochs", "0", "--distill"],
            "--distill applies to fine-tuning, which --finetune-epochs 0 turns off",
        ),
        (
            ["compress", "{model}", "--rank", "2", "--finetune-epochs", "0", "--freeze-bn"]
            + ["--finetune-optimizer", "sgd", "--finetune-warmup", "0.1"],
            "--finetune-warmup and --finetune-optimizer and --freeze-bn apply to fine-tuning",
        ),
        (
            ["pipeline", "--dataset", "mnist", "--no-distill", "--distill-alpha", "0.5"],
            "--distill-alpha applies with --distill",
        ),
        (
            ["compress", "{model}", "--factoriser", "svd", "--distill-temperature", "2"],
            "--distill-temperature applies with --distill",
        ),
        (
            ["compress", "{model}", "--factoriser", "svd", "--distill-features", "*_out"],
            "--distill-features applies with --distill",
        ),
        (
            ["pipeline", "--dataset", "mnist", "--base", "{model}", "--epochs", "3"]
            + ["--widths", "8,16"],
            "--epochs and --widths train or shape the base model, which --base",
        ),
        (
            ["compress", "{model}", "--target-macs", "0.5", "--no-break-even"],
            "--no-break-even applies to --energy, --rank and --rank-fraction; a budget (m0.5)",
        ),
        (
            ["ranks", "{model}", "--energy", "0.9", "--sensitivity", "eval"],
            "--sensitivity eval applies to a budget",
        ),
        (
            ["compress", "{model}", "--energy", "0.9", "--rank-schedule", "2"],
            "--rank-schedule steps a --target-macs or --target-params budget down while "
            "fine-tuning; it does not apply to e90",
        ),
        (
            ["pipeline", "--dataset", "mnist", "--rank-schedule", "2", "--finetune-epochs", "1"],
            "--rank-schedule fine-tunes one epoch per step, so it needs data and at least 2 "
            "fine-tuning epochs, got 1",
        ),
        (
            ["pipeline", "--dataset", "mnist", "--finetune-warmup", "2"],
            "--finetune-warmup 2 epochs takes the whole run of 2 epochs",
        ),
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


def test_every_registered_command_has_help():
    assert set(main.commands) == {
        "data",
        "train",
        "compress",
        "evaluate",
        "pipeline",
        "ranks",
        "export",
        "bench",
        "bench-report",
        "recommend",
        "latency-kit",
        "latency-table",
    }
    for name, command in main.commands.items():
        result = run(name, "--help")
        assert result.exit_code == 0, result.output
        assert f"Usage: main {name} [OPTIONS]" in result.output
        assert command.help.split("\n")[0].strip()[:30] in " ".join(result.output.split())


def test_pipeline_command_takes_the_compress_options_and_exports(mnist_dir, tmp_path):
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
        *("--rank-fraction", "0.5", "--exclude", "logits,fc", "--round-to", "2"),
        *("--batch-size", "16", "--finetune-lr", "5e-4", "--patience", "1", "--seed", "3"),
        *TINY_MODEL,
        "--export",
        "tflite,onnx",
        "--tflite-variants",
        "float32",
        *("--onnx-variants", "float32,int8-dynamic", "--max-accuracy-drop", "100"),
        "--out-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    for name in (
        "base.keras",
        "f0.5.keras",
        "results.json",
        "report.md",
        "base/manifest.json",
        "f0.5/manifest.json",
        "f0.5/f0.5.onnx",
        "f0.5/f0.5-int8-dynamic.onnx",
        "f0.5/f0.5-float32.tflite",
        "bench/results.jsonl",
        "bench/report.md",
        "bench/command.json",
        "bench/recommendation.json",
    ):
        assert (out / name).is_file(), name
    # The run ends with the recommendation for this machine, one per runtime, naming a file that
    # one of the run's manifests lists (a budget of 100 points admits every artifact).
    assert "which file to ship on this machine" in result.output
    recommendation = json.loads((out / "bench/recommendation.json").read_text())
    chosen = {c["backend"]: c["recommended"] for c in recommendation["conditions"]}
    assert set(chosen) == {"litert", "onnxruntime"}
    for backend, entry in chosen.items():
        manifest = json.loads(Path(entry["manifest"]).read_text())
        assert entry["file"] in [a["file"] for a in manifest["artifacts"]], backend
        assert (backend == "litert") == entry["file"].endswith(".tflite")
    summary = json.loads((out / "results.json").read_text())
    shipped = {c["backend"]: c for c in summary["recommendation"]["conditions"]}
    assert shipped["litert"]["file"].endswith(chosen["litert"]["file"])
    assert "## Which file to ship on this machine" in (out / "report.md").read_text()
    assert [m["name"] for m in summary["models"]] == ["base", "f0.5"]
    settings = summary["settings"]
    assert settings["seed"] == 3 and settings["energies"] == []
    assert settings["compress"]["fraction"] == 0.5 and settings["compress"]["round_to"] == 2
    assert settings["train"]["seed"] == settings["finetune"]["seed"] == 3
    assert settings["train"]["batch_size"] == settings["finetune"]["batch_size"] == 16
    assert (settings["finetune"]["learning_rate"], settings["finetune"]["patience"]) == (5e-4, 1)
    layers = {layer["name"]: layer for layer in summary["models"][1]["compression"]["layers"]}
    assert layers["logits"]["status"] == layers["fc"]["status"] == KEPT_EXCLUDED
    assert all(layer["rank_kept"] % 2 == 0 or layer["rank_kept"] == layer["full_rank"]
               for layer in layers.values() if layer["status"] == FACTORISED)  # fmt: skip
    again = run("pipeline", "--dataset", "mnist", "--data-dir", mnist_dir, "--out-dir", out)
    assert again.exit_code == 1 and "--overwrite" in again.output


# --- --seed reaches the train/validation split -----------------------------------------------


def _captured_split(monkeypatch, args: list) -> Dataset:
    """The dataset a command loads, captured from the real loader; the command stops there."""
    import lowrank_edge.data as data_module

    seen = []

    def capture(*a, **kw):
        seen.append(load_dataset(*a, **kw))
        raise LowrankEdgeError("dataset captured")

    monkeypatch.setattr(data_module, "load_dataset", capture)
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "error: dataset captured" in result.output, result.output
    return seen[0]


@pytest.mark.parametrize(
    "command",
    [
        ["data", "mnist"],
        ["train", "--dataset", "mnist", "--out", "{tmp}/t.keras"],
        ["compress", "{model}", "--rank", "2", "--dataset", "mnist", "--out", "{tmp}/c.keras"],
        ["evaluate", "{model}", "--dataset", "mnist"],
        ["export", "{model}", "--dataset", "mnist", "--out-dir", "{tmp}/x"],
        ["pipeline", "--dataset", "mnist", "--out-dir", "{tmp}/p"],
    ],
    ids=lambda command: command[0],
)
def test_seed_reaches_the_train_val_split(command, monkeypatch, trained, mnist_dir, tmp_path):
    args = [a.format(tmp=tmp_path, model=trained) for a in command] + ["--data-dir", mnist_dir]
    first, again, other = (
        _captured_split(monkeypatch, [*args, "--seed", seed]) for seed in ("1", "1", "2")
    )
    np.testing.assert_array_equal(first.x_val, again.x_val)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_val, other.x_val)
    assert len(first.x_val) == len(other.x_val) == 16  # 20% of the 80 training images
    # the images of the split are those of the two seeds, not of the default seed 0
    default = _captured_split(monkeypatch, args)
    assert not np.array_equal(default.x_val, first.x_val)
    assert not np.array_equal(default.x_val, other.x_val)


def test_compress_passes_its_finetuning_options_and_the_old_lr_spelling(
    monkeypatch, trained, mnist_dir, tmp_path
):
    import lowrank_edge.pipeline.run as run_module

    seen = {}

    def capture(model, options, data, finetune, log):
        seen.update(options=options, finetune=finetune, split=data)
        raise LowrankEdgeError("options captured")

    monkeypatch.setattr(run_module, "compress_and_finetune", capture)
    base = ["compress", str(trained), "--dataset", "mnist", "--data-dir", str(mnist_dir)]
    base += ["--out", str(tmp_path / "c.keras")]
    result = CliRunner().invoke(
        main,
        [*base, "--energy", "0.8", "--energy-measure", "abs", "--include", "s1*,s2*"]
        + ["--finetune-epochs", "2", "--finetune-lr", "0.02", "--patience", "2"]
        + ["--batch-size", "8", "--seed", "5", "--no-augment"],
    )
    assert "error: options captured" in result.output, result.output
    options, finetune = seen["options"], seen["finetune"]
    assert (options.energy, options.measure, options.include) == (0.8, "abs", ("s1*", "s2*"))
    assert (finetune.epochs, finetune.learning_rate, finetune.patience) == (2, 0.02, 2)
    assert (finetune.batch_size, finetune.seed, finetune.augment) == (8, 5, False)

    result = CliRunner().invoke(main, [*base, "--rank", "2", "--lr", "0.05"])
    assert "error: options captured" in result.output
    assert seen["finetune"].learning_rate == 0.05
    assert result.stderr.splitlines()[0] == (
        "warning: compress --lr is deprecated; use --finetune-lr"
    )


def test_compress_and_pipeline_pass_the_finetuning_recipe(monkeypatch, trained, mnist_dir):
    import lowrank_edge.pipeline.run as run_module

    seen = {}

    def capture_compress(model, options, data, finetune, log):
        seen["compress"] = finetune
        raise LowrankEdgeError("options captured")

    def capture_pipeline(config, data, log):
        seen["pipeline"] = config.finetune
        raise LowrankEdgeError("options captured")

    monkeypatch.setattr(run_module, "compress_and_finetune", capture_compress)
    monkeypatch.setattr(run_module, "run_pipeline", capture_pipeline)
    recipe = ["--distill", "--distill-temperature", "2", "--finetune-warmup", "0.25"]
    recipe += ["--finetune-optimizer", "sgd", "--freeze-bn"]
    data = ["--dataset", "mnist", "--data-dir", str(mnist_dir)]
    plain = ["--factoriser", "svd"]
    wanted = {  # data-aware default: distillation, 10% warm-up; svd: neither; given: as asked
        (): (True, 4.0, 0.9, 0.1, "adam", False),
        tuple(plain): (False, 4.0, 0.9, 0.0, "adam", False),
        tuple(recipe): (True, 2.0, 0.9, 0.25, "sgd", True),  # alpha keeps its default
        tuple(plain + recipe): (True, 2.0, 0.9, 0.25, "sgd", True),
    }
    for command in (["compress", str(trained), "--rank", "2"], ["pipeline"]):
        for args, want in wanted.items():
            result = CliRunner().invoke(main, [*command, *data, *args])
            assert "error: options captured" in result.output, result.output
            finetune = seen[command[0]]
            got = (finetune.distill, finetune.distill_temperature, finetune.distill_alpha)
            got += (finetune.warmup, finetune.optimizer, finetune.freeze_bn)
            assert got == want, (command, args)


# --- one style for options that take several values ---------------------------------------


@click.command()
@comma_list_option("--fmt", choices=("a", "b", "c"), default="a,b", repeatable=True)
@comma_list_option("--pick", choices=("x", "y"))
def probe(fmt, pick):
    click.echo(f"fmt={fmt} pick={pick}")


@pytest.mark.parametrize(
    "args, shown",
    [
        ([], "fmt=('a', 'b') pick=None"),
        (["--fmt", " c, a,c", "--pick", "y,x"], "fmt=('c', 'a') pick=('y', 'x')"),
    ],
)
def test_comma_lists_parse_strip_and_drop_repeats(args, shown):
    result = CliRunner().invoke(probe, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == shown and result.stderr == ""


def test_the_repeated_form_still_works_with_one_deprecation_line():
    result = CliRunner().invoke(probe, ["--fmt", "c", "--fmt", "a,c"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "fmt=('c', 'a') pick=None"
    assert result.stderr.splitlines() == [
        "warning: repeating --fmt is deprecated; give one comma-separated list: --fmt c,a"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fmt", "a,zz,q"], "Invalid value for '--fmt': unknown zz, q; choose from a, b, c"),
        (["--pick", " , "], "Invalid value for '--pick': expected at least one value"),
    ],
)
def test_bad_comma_lists_are_one_clear_error(args, message):
    result = CliRunner().invoke(probe, args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: {message}"]


def test_parse_comma_list():
    assert parse_comma_list("onnx, tflite,onnx") == ("onnx", "tflite")
    assert parse_comma_list("s1*,b?", choices=None) == ("s1*", "b?")
    with pytest.raises(ValueError, match="unknown int4; choose from float32, float16"):
        parse_comma_list("float16,int4", choices=("float32", "float16"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "m.keras", "--format", "onnx,tflite2"], "'--format': unknown tflite2"),
        (["export", "m.keras", "--variant", "int4"], "'--variant': unknown int4"),
        (["pipeline", "--dataset", "mnist", "--export", "tflite,pt"], "'--export': unknown pt"),
        (["pipeline", "--dataset", "mnist", "--tflite-variants", "f8"], "unknown f8"),
        (["bench", "m", "--variants", "float32,int4"], "'--variants': unknown int4"),
        (["bench", "m", "--backends", "tensorrt"], "unknown tensorrt; choose from litert,"),
    ],
)
def test_every_list_option_validates_its_choices(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_export_still_takes_repeated_formats_with_a_warning(tmp_path):
    missing = tmp_path / "m.keras"
    result = CliRunner().invoke(
        main, ["export", str(missing), "--format", "onnx", "--format", "tflite", "--no-verify"]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "warning: repeating --format is deprecated; give one comma-separated list: "
        "--format onnx,tflite",
        f"error: {missing}: model file not found",
    ]


# --- options declared once and documented alike --------------------------------------------


def _params(command: str) -> dict[str, click.Parameter]:
    return {param.name: param for param in main.commands[command].params}


def _declaration(param: click.Parameter) -> tuple:
    return (param.opts, param.help, param.default, param.show_default, repr(param.type))


SHARED_WITH_PIPELINE = [
    "rank",
    "rank_fraction",
    "energy_measure",
    "round_to",
    "no_break_even",
    "include",
    "exclude",
    "finetune_epochs",
    "finetune_lr",
    "patience",
    "batch_size",
    "augment",
    "balance_classes",
]


def test_compress_and_pipeline_share_one_declaration_of_each_option():
    compress, pipeline = _params("compress"), _params("pipeline")
    for name in SHARED_WITH_PIPELINE:
        assert _declaration(compress[name]) == _declaration(pipeline[name]), name
    assert _declaration(_params("train")["batch_size"]) == _declaration(compress["batch_size"])
    assert pipeline["patience"].default == 3  # no longer hard-coded in the pipeline


def test_energy_help_covers_both_energy_measures():
    for command, name in (("compress", "energy"), ("pipeline", "energies")):
        text = _params(command)[name].help
        assert "sigma^2" in text and "of sigma with --energy-measure abs" in text, command


def test_data_is_stated_the_same_way_everywhere():
    stated = {}
    for name in main.commands:
        param = _params(name).get("spec")
        if param is None or name == "data":
            continue
        assert param.opts == ["--data", "--dataset"]  # --dataset: the earlier name, an alias
        assert param.help.startswith("Data ")
        assert param.help.endswith(f": {SPEC_HELP}.")
        for option in ("data_dir", "preprocess", "image_size", "max_images"):
            assert option in _params(name), (name, option)
        line = " ".join(run(name, "--help").output.split())
        stated[name] = "[required]" if param.required else "[default: (none)]"
        assert stated[name] in line[line.index("--data, --dataset SPEC") :], name
    assert stated == {
        "train": "[required]",
        "evaluate": "[required]",
        "pipeline": "[required]",
        "compress": "[default: (none)]",
        "ranks": "[default: (none)]",
        "export": "[default: (none)]",
    }


def test_bench_timing_defaults_are_the_readme_settings():
    # README's benchmark section measures with `--repeats 3 --min-time 2` and recommends
    # `--repeats 3`: the defaults are those settings.
    bench = _params("bench")
    assert (bench["min_time"].default, bench["repeats"].default) == (2.0, 3)
    line = " ".join(run("bench", "--help").output.split())
    assert "[default: 2.0]" in line[line.index("--min-time") :]
    assert "[default: 3;" in line[line.index("--repeats") :] or "[default: 3]" in line


def _listing(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_ranks_is_a_dry_run_that_writes_nothing_without_plot(trained, mnist_dir, tmp_path):
    folders = (trained.parent, mnist_dir)
    before = [_listing(f) for f in folders]
    result = run(
        "ranks", trained, "--target-macs", "0.6", "--dataset", "mnist", "--data-dir", mnist_dir
    )
    assert result.exit_code == 0, result.output
    assert [_listing(f) for f in folders] == before
    lines = result.output.splitlines()
    assert any("pred. error" in line for line in lines) and lines[-1].startswith("model: MACs")
    kept = float(lines[-1].split("(")[1].split(" kept")[0])
    assert kept <= 0.6
    plot = tmp_path / "curves.png"
    result = run("ranks", trained, "--target-macs", "0.6", "--factoriser", "svd", "--plot", plot)
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compress_to_a_mac_budget_meets_it(trained, mnist_dir, tmp_path):
    out = tmp_path / "m.keras"
    result = run(
        "compress",
        trained,
        *("--target-macs", "0.5", "--dataset", "mnist", "--data-dir", mnist_dir),
        *("--finetune-epochs", "0", "--bn-recalibrate", "--out", out),
    )
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_name("m.compression.json").read_text())
    assert sidecar["totals"]["macs_ratio"] <= 0.5
    assert sidecar["settings"]["factoriser"] == "whitened"
    assert sidecar["settings"]["bn_recalibrate"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target-macs", "0.5"], "pass --data SPEC"),
        (["--target-macs", "0.001", "--factoriser", "svd"], "smallest reachable fraction"),
        (["--target-macs", "0.5", "--energy", "0.5", "--factoriser", "svd"], "exactly one of"),
    ],
)
def test_bad_budgets_get_one_error_line(args, message, trained):
    result = run("ranks", trained, *args)
    assert result.exit_code == 1
    assert message in result.output and result.output.startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1
