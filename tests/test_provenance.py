"""Provenance: command.json (command, git commit, UTC date, machine) for every results folder,
the timing script and the pipelines script's refusal to replace an earlier run."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lowrank_edge.benchmark.results.provenance import (
    command_record,
    git_state,
    source_checkout,
    write_command_json,
)
from lowrank_edge.errors import LowrankEdgeError

REPO = Path(__file__).resolve().parents[1]
KEYS = {"schema", "command", "argv", "cwd", "commit", "dirty", "commit_reason", "date", "machine"}
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "a.txt").write_text("one\n")
    git(folder, "add", "a.txt")
    git(folder, "commit", "-q", "-m", "first")
    return folder


@needs_git
def test_commit_matches_git_and_a_changed_tracked_file_is_dirty(checkout):
    state = git_state(checkout)
    assert state == {"commit": git(checkout, "rev-parse", "HEAD"), "dirty": False, "reason": None}
    (checkout / "untracked.txt").write_text("results being written\n")
    assert git_state(checkout)["dirty"] is False
    (checkout / "a.txt").write_text("two\n")
    assert git_state(checkout)["dirty"] is True


def test_a_folder_outside_git_gives_no_commit_and_says_why(tmp_path):
    state = git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None
    assert "not in a git checkout" in state["reason"] or "git is not installed" in state["reason"]


@needs_git
def test_a_subfolder_of_a_checkout_is_not_taken_for_it(checkout):
    (checkout / "sub").mkdir()
    state = git_state(checkout / "sub")
    assert state["commit"] is None and "not the top of a git checkout" in state["reason"]


def test_command_json_has_every_key_and_is_never_replaced_silently(tmp_path, checkout):
    record = command_record(["bench/x.py", "--out", "d"], checkout=checkout, extra={"k": 1})
    assert KEYS | {"k"} <= set(record)
    assert record["argv"] == [sys.executable, "bench/x.py", "--out", "d"]
    assert record["date"].endswith("+00:00")
    assert record["machine"]["cpu_count"] and "packages" in record["machine"]
    path = write_command_json(tmp_path / "out", record)
    assert json.loads(path.read_text()) == record
    with pytest.raises(LowrankEdgeError, match="command.json already exists; pass --overwrite"):
        write_command_json(tmp_path / "out", record)
    write_command_json(tmp_path / "out", record | {"k": 2}, overwrite=True)
    assert json.loads(path.read_text())["k"] == 2


@needs_git
def test_the_running_source_tree_commit_when_it_is_a_checkout():
    top = subprocess.run(
        ["git", "-C", str(source_checkout()), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
    )
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != source_checkout():
        pytest.skip("lowrank_edge is not running from a git checkout")
    assert git_state()["commit"] == git(source_checkout(), "rev-parse", "HEAD")


def test_time_command_records_wall_time_exit_code_and_provenance(tmp_path, capsys):
    script = load_script("time_command")
    out = tmp_path / "timed"
    assert script.main(["--out", str(out), "--", sys.executable, "-c", "pass"]) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["command"] == [sys.executable, "-c", "pass"]
    assert timing["exit_code"] == 0 and 0 < timing["wall_seconds"] < 60
    command = json.loads((out / "command.json").read_text())
    assert KEYS <= set(command) and command["timed_command"] == timing["command"]
    assert command["argv"][1].endswith("time_command.py")
    if (REPO / ".venv" / "bin" / "python").exists():  # the versions of the project's venv
        packages = command["machine"]["packages"]
        assert command["machine"]["packages_from"] == ".venv/bin/python"
        assert packages["numpy"] and packages["onnxruntime"] and packages["keras"]

    again = ["--out", str(out), "--", sys.executable, "-c", "raise SystemExit(3)"]
    assert script.main(again) == 1  # refused: nothing ran, nothing replaced
    assert "timing.json already exists; pass --overwrite" in capsys.readouterr().err
    assert json.loads((out / "timing.json").read_text())["exit_code"] == 0
    assert script.main(["--overwrite", *again]) == 3
    assert json.loads((out / "timing.json").read_text())["exit_code"] == 3


def test_run_pipelines_refuses_to_replace_an_earlier_run(tmp_path, capsys):
    script = load_script("run_pipelines")
    models = tmp_path / "models"
    (models / "mnist" / "e50").mkdir(parents=True)
    results = {"models": [{"name": "base"}, {"name": "e50"}]}
    (models / "mnist" / "results.json").write_text(json.dumps(results))
    (models / "mnist" / "e50" / "manifest.json").write_text("{}")
    argv = ["--datasets", "mnist", "--models-dir", str(models), "--out", str(tmp_path / "out")]

    with pytest.raises(SystemExit, match=r"error: .*results.json already exists; pass --overwrite"):
        script.main(argv)  # refused before any training
    export_only = script.parse_args([*argv, "--export-only", "--export", "tflite"])
    assert script.outputs_replaced(export_only) == [models / "mnist" / "e50" / "manifest.json"]
    with pytest.raises(LowrankEdgeError, match="manifest.json already exists"):
        script.check_outputs(export_only)
    script.check_outputs(script.parse_args([*argv, "--overwrite"]))
    assert script.pipeline_config(script.parse_args([*argv, "--overwrite"]), "mnist").overwrite
    assert not script.pipeline_config(script.parse_args(argv), "mnist").overwrite


def test_scale_compression_records_phases_and_refuses_an_earlier_run(tmp_path, capsys):
    script = load_script("scale_compression")
    out = tmp_path / "scale"
    argv = ["--model", "MobileNetV2", "--alpha", "0.35", "--classes", "10", "--size", "32"]
    argv += ["--images", "4", "--out", str(out)]
    assert script.main(argv) == 0
    record = json.loads((out / "results.json").read_text())
    seconds = record["seconds"]
    assert {"calibration", "allocation", "fit", "total"} <= set(seconds)
    assert seconds["calibration_allocation_fit"] <= seconds["total"]
    assert record["peak_rss_bytes"]["process_at_end"] > 0
    totals = record["totals"]
    assert totals["macs_after"] <= 0.6 * totals["macs_before"] * 1.001
    assert record["layers"]["factorable"] == 36  # MobileNetV2's Conv2D/Dense layers
    command = json.loads((out / "command.json").read_text())
    assert command["argv"][1].endswith("scale_compression.py")
    capsys.readouterr()
    assert script.main(argv) == 1  # refused: an earlier run is there
    assert "already holds results; pass --overwrite" in capsys.readouterr().err


def test_time_command_records_the_variables_a_script_reads(tmp_path):
    """A wrapped shell script's `$MODEL`/`${RUNTIMES:-...}` and the project's own variables are
    recorded when set; unset ones and unrelated variables are not."""
    script = load_script("time_command")
    wrapped = tmp_path / "run.sh"
    wrapped.write_text("MODEL=${MODEL:-a.keras}\nfor r in ${RUNTIMES:-litert ort}; do :; done\n")
    environ = {"MODEL": "m.keras", "LOWRANK_EDGE_OFFLINE": "1", "SECRET_TOKEN": "x", "HOME": "/"}
    found = script.read_variables(["bash", str(wrapped)], environ)
    assert found == {"LOWRANK_EDGE_OFFLINE": "1", "MODEL": "m.keras"}
