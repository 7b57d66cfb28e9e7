"""Benchmark: the MNIST and EMNIST-47 pipelines end to end, with wall times.

Runs `lowrank_edge.pipeline.run.run_pipeline` for each dataset, then prints and saves
(bench/results/pipelines/) the seed-style summary table, the per-model table and
the wall time of each step. Usage (from the repo root, after scripts/setup.sh):

    .venv/bin/python bench/run_pipelines.py                 # both datasets
    .venv/bin/python bench/run_pipelines.py --datasets mnist --export tflite,onnx
    .venv/bin/python bench/run_pipelines.py --datasets mnist --export tflite,onnx --export-only

`--export-only` exports the models of an earlier run (models/<dataset>/results.json) without
retraining, and adds the artifact size/parity table. An earlier run's models and the files in
--out are never replaced without `--overwrite`. `--out` also gets `command.json` (command, git
commit, UTC date, machine facts) from `lowrank_edge.benchmark.results.provenance`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge.benchmark.results.provenance import (
    COMMAND_NAME,
    command_record,
    write_command_json,
)
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import check_can_write, write_json_atomic, write_text_atomic
from lowrank_edge.model.train import FitConfig
from lowrank_edge.pipeline.report import markdown_table, models_table, summary_table
from lowrank_edge.pipeline.run import (
    PipelineConfig,
    export_records,
    run_pipeline,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EMNIST = REPO.parent / "shared" / "data" / "emnist47"
VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The script's options (`argv` defaults to the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,emnist")
    parser.add_argument("--emnist-dir", type=Path, default=DEFAULT_EMNIST)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--target-macs", default="0.5,0.33,0.2", help="MAC budgets, one compressed model each"
    )
    parser.add_argument("--export", default="", help="formats to export for MNIST: tflite,onnx")
    parser.add_argument(
        "--export-only", action="store_true", help="export the models of an earlier run only"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipelines")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=REPO / "models",
        help="where each dataset's models go (<models-dir>/<dataset>/)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the models of an earlier run and the files in --out instead of refusing",
    )
    return parser.parse_args(argv)


def datasets(args: argparse.Namespace) -> list[str]:
    """The datasets to run, in order."""
    return [d for d in args.datasets.split(",") if d]


def pipeline_config(args: argparse.Namespace, dataset: str) -> PipelineConfig:
    """The pipeline settings of one dataset (the README's reproduce settings)."""
    return PipelineConfig(
        dataset=dataset,
        data_dir=args.emnist_dir if dataset == "emnist" else None,
        out_dir=args.models_dir / dataset,
        target_macs=tuple(float(v) for v in args.target_macs.split(",") if v.strip()),
        train=FitConfig(epochs=args.epochs, augment=True, balance_classes=True, verbose=2),
        finetune=FitConfig(
            epochs=args.finetune_epochs,
            learning_rate=1e-3,
            patience=3,
            augment=True,
            balance_classes=True,
            verbose=2,
            track_test=True,
            keep_start=True,
        ),
        export_formats=tuple(f for f in args.export.split(",") if f) if dataset == "mnist" else (),
        tflite_variants=VARIANTS,
        overwrite=args.overwrite,
    )


def outputs_replaced(args: argparse.Namespace) -> list[Path]:
    """The existing files this run would replace: its --out files and each dataset's run."""
    candidates = [args.out / "pipelines.md", args.out / COMMAND_NAME]
    for dataset in datasets(args):
        config = pipeline_config(args, dataset)
        results = config.out_dir / "results.json"
        if not args.export_only:
            labels = [options.label() for options in config.compress_settings()]
            candidates += [results] + [config.out_dir / f"{n}.keras" for n in ["base", *labels]]
        elif results.is_file():
            names = [m["name"] for m in json.loads(results.read_text()).get("models", [])]
            candidates += [config.out_dir / name / "manifest.json" for name in names]
    return [path for path in candidates if path.exists()]


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, with one error naming the path, to replace an earlier run without --overwrite."""
    for path in outputs_replaced(args):
        check_can_write(path, args.overwrite)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        check_outputs(args)
    except LowrankEdgeError as error:
        raise SystemExit(f"error: {error}") from None
    provenance = command_record(
        None if argv is None else [__file__, *argv],
        checkout=REPO,
        extra={"options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}},
    )

    tables = []
    for dataset in datasets(args):
        config = pipeline_config(args, dataset)
        start = time.perf_counter()
        if args.export_only:
            summary = _export_earlier_run(config)
        else:
            run_pipeline(config)
            summary = json.loads((config.out_dir / "results.json").read_text())
        wall = time.perf_counter() - start
        tables.append(_dataset_section(dataset, summary, wall, args.export_only))

    text = "\n\n".join(tables) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "pipelines.md", text, overwrite=args.overwrite)
    write_command_json(args.out, provenance, overwrite=args.overwrite)


def _export_earlier_run(config: PipelineConfig) -> dict:
    """Export every model listed in `<out_dir>/results.json` and record the manifests there."""
    from lowrank_edge.data import load_dataset

    results_path = config.out_dir / "results.json"
    summary = json.loads(results_path.read_text())
    data = load_dataset(config.dataset, config.data_dir, seed=config.seed)
    failures = export_records(config, data, config.out_dir, summary["models"])
    write_json_atomic(results_path, summary)
    if failures:
        print("export failures:\n" + "\n".join(failures))
    return summary


def export_table(summary: dict) -> str:
    """Size and parity of every artifact of every model (issue: export benchmark table)."""
    reference = _artifact_bytes(summary["models"][0], "tflite-float32")
    header = [
        "Model",
        "Artifact",
        "Bytes",
        "% of original float32 TFLite",
        "max |Δ|",
        "Argmax agree",
        "Accuracy",
        "Keras accuracy",
        "Parity",
    ]
    rows = []
    for record in summary["models"]:
        manifest = (record.get("export") or {}).get("manifest")
        if not manifest:
            continue
        for artifact in manifest["artifacts"]:
            parity = artifact.get("parity") or {}
            rows.append(
                [
                    record["name"],
                    artifact["id"],
                    f"{artifact['bytes']:,}",
                    f"{100 * artifact['bytes'] / reference:.1f}%" if reference else "–",
                    f"{parity['max_abs_diff']:.2e}" if parity else "–",
                    f"{100 * parity['argmax_agreement']:.2f}%" if parity else "–",
                    f"{100 * parity['accuracy']:.2f}%"
                    if parity.get("accuracy") is not None
                    else "–",
                    f"{100 * parity['keras_accuracy']:.2f}%"
                    if parity.get("keras_accuracy") is not None
                    else "–",
                    ("pass" if parity["passed"] else "FAIL") if parity else "not checked",
                ]
            )
    return markdown_table(header, rows) if rows else ""


def _artifact_bytes(record: dict, artifact_id: str) -> int | None:
    manifest = (record.get("export") or {}).get("manifest") or {}
    for artifact in manifest.get("artifacts", []):
        if artifact["id"] == artifact_id:
            return artifact["bytes"]
    return None


def _dataset_section(dataset: str, summary: dict, wall: float, export_only: bool) -> str:
    models = summary["models"]
    times = [["export only" if export_only else "whole pipeline", f"{wall:.0f}"]]
    base_train = models[0].get("train")
    if base_train:
        times.append(["train base", f"{base_train['seconds']:.0f}"])
    for m in models[1:]:
        times.append([f"compress + fine-tune {m['name']}", f"{m['seconds']:.0f}"])
    title = "EMNIST-47 stand-in" if dataset == "emnist" else "MNIST"
    return "\n\n".join(
        [
            f"## {title}",
            summary_table(summary),
            models_table(summary),
            export_table(summary),
            markdown_table(["Step", "Wall seconds"], times),
        ]
    )


if __name__ == "__main__":
    main()
