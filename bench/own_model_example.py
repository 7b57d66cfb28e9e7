"""The README's worked example: a user's keras.applications model and image folder, end to end.

Usage (from the repo root, with the project's environment; run it alone, it times things):

    .venv/bin/python bench/own_model_example.py --emnist ../shared/data/emnist47 \
        --out bench/results/own-model-mnv3s

It plays a user who has real images as class folders and a trained keras.applications model,
and who then types the documented commands, each one a `lowrank-edge` subprocess:

1. `bench/write_image_folder.py`: real EMNIST-47 images as PNG class folders (`train/`, `test/`)
   under --work (never committed);
2. `bench/train_applications.py`: MobileNetV3Small (weights=None, its own Rescaling, softmax
   head) trained briefly on that folder: the user's model;
3. `evaluate`, `ranks`, `compress` (whitened, to --target-macs, once without and once with
   fine-tuning), `evaluate` of both, `export --all-variants` of the original and the fine-tuned
   file, `bench` of the two exports, `recommend`.

OUT gets command.json (this command, commit, date, machine), steps.json (each step's argv, exit
code and wall seconds), logs/<step>.txt (each step's output), the bench folder (results, report,
recommendation) and copies of the small facts: compression reports and manifests. Images,
models and exported files stay under --work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.results.provenance import (  # noqa: E402
    command_record,
    write_command_json,
)
from lowrank_edge.errors import LowrankEdgeError  # noqa: E402
from lowrank_edge.fileio import check_can_write, write_json_atomic  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emnist", type=Path, required=True, help="the EMNIST-47 IDX folder")
    parser.add_argument("--out", type=Path, required=True, help="results folder (committed)")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("models/own-model-example"),
        help="where images, models and exports go (not committed)",
    )
    parser.add_argument("--per-class-train", type=int, default=300)
    parser.add_argument("--per-class-test", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the user model")
    parser.add_argument("--target-macs", type=float, default=0.6)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="bench --threads")
    parser.add_argument("--batch", default="1,32", help="bench --batch")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0)
    parser.add_argument(
        "--from-step",
        help="rerun from this step on (e.g. bench, to time it again alone), keeping the earlier "
        "steps' records in steps.json; needs --overwrite",
    )
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(step name, argv) of every step, in order: what a user would type."""
    py, work = sys.executable, args.work
    cli = [str(Path(py).parent / "lowrank-edge")]  # the installed command, as a user runs it
    images, user = work / "images", work / "mnv3s.keras"
    plain, tuned = work / "mnv3s-m-nofinetune.keras", work / "mnv3s-m.keras"
    data = ["--data", str(images)]
    target = ["--target-macs", str(args.target_macs)]
    export = ["export", "--all-variants", *data, "--overwrite"]
    return [
        ("write-images", [py, "bench/write_image_folder.py", "--emnist", str(args.emnist),
                          "--out", str(images), "--per-class-train", str(args.per_class_train),
                          "--per-class-test", str(args.per_class_test)]),
        ("train-user-model", [py, "bench/train_applications.py", *data, "--arch",
                              "MobileNetV3Small", "--image-size", str(args.image_size),
                              "--epochs", str(args.epochs), "--out", str(user), "--overwrite"]),
        ("evaluate", [*cli, "evaluate", str(user), *data]),
        ("ranks", [*cli, "ranks", str(user), *target, *data]),
        ("compress", [*cli, "compress", str(user), *target, *data, "--finetune-epochs", "0",
                      "--out", str(plain), "--overwrite"]),
        ("evaluate-compressed", [*cli, "evaluate", str(plain), *data]),
        ("compress-finetune", [*cli, "compress", str(user), *target, *data, "--finetune-epochs",
                               str(args.finetune_epochs), "--out", str(tuned), "--overwrite"]),
        ("evaluate-finetuned", [*cli, "evaluate", str(tuned), *data]),
        ("export-original", [*cli, *export[:1], str(user), *export[1:], "--out-dir",
                             str(work / "export" / "original")]),
        ("export-compressed", [*cli, *export[:1], str(tuned), *export[1:], "--out-dir",
                               str(work / "export" / "compressed")]),
        ("bench", [*cli, "bench", str(work / "export" / "original"),
                   str(work / "export" / "compressed"), "--threads", args.threads,
                   "--batch", args.batch, "--out", str(args.out / "bench"), "--overwrite"]),
        ("recommend", [*cli, "recommend", str(args.out / "bench"), "--max-accuracy-drop",
                       str(args.max_accuracy_drop), "--overwrite"]),
    ]  # fmt: skip


def run_step(name: str, argv: list[str], logs: Path) -> dict:
    """Run one step with its output teed to logs/<name>.txt; its argv, exit code, seconds."""
    print(f"[example] {name}: {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    with open(logs / f"{name}.txt", "w") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = process.wait()
    seconds = round(time.perf_counter() - start, 1)
    return {"step": name, "argv": argv, "exit_code": code, "seconds": seconds}


def keep_facts(work: Path, out: Path) -> None:
    """Copy the small JSON facts (compression reports, manifests) into the results folder."""
    for report in work.glob("*.compression.json"):
        shutil.copyfile(report, out / report.name)
    for manifest in (work / "export").glob("*/manifest.json"):
        shutil.copyfile(manifest, out / f"manifest-{manifest.parent.name}.json")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_can_write(args.out / "steps.json", args.overwrite)
    except LowrankEdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    names = [name for name, _ in plan(args)]
    if args.from_step is not None and args.from_step not in names:
        print(
            f"error: --from-step {args.from_step}: choose from {', '.join(names)}", file=sys.stderr
        )
        return 1
    provenance = command_record(None if argv is None else [__file__, *argv], checkout=REPO)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    steps, todo = [], plan(args)
    if args.from_step is not None:  # keep the earlier records; this run's command.json beside
        first = names.index(args.from_step)
        steps = json.loads((args.out / "steps.json").read_text())[:first]
        todo = todo[first:]
        write_command_json(args.out / f"from-{args.from_step}", provenance, overwrite=True)
    else:
        write_command_json(args.out, provenance, overwrite=True)
    for name, step_argv in todo:
        steps.append(run_step(name, step_argv, logs))
        write_json_atomic(args.out / "steps.json", steps, overwrite=True)
        if steps[-1]["exit_code"] != 0:
            print(f"[example] {name} failed (exit {steps[-1]['exit_code']})", file=sys.stderr)
            return 1
    keep_facts(args.work, args.out)
    print(json.dumps([(s["step"], s["seconds"]) for s in steps]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
