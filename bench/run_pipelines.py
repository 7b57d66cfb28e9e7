"""Benchmark: the MNIST and EMNIST-47 pipelines end to end, with wall times.

Runs `lowrank_edge.pipeline.run_pipeline` for each dataset, then prints and saves
(bench/results/pipelines/) the seed-style summary table, the per-model table and
the wall time of each step. Usage (from the repo root, after scripts/setup.sh):

    .venv/bin/python bench/run_pipelines.py                 # both datasets
    .venv/bin/python bench/run_pipelines.py --datasets mnist --export tflite,onnx
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lowrank_edge.fileio import write_json_atomic, write_text_atomic
from lowrank_edge.pipeline import PipelineConfig, run_pipeline
from lowrank_edge.report import markdown_table, models_table, summary_table
from lowrank_edge.train import FitConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EMNIST = REPO.parent / "shared" / "data" / "emnist47"
VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,emnist")
    parser.add_argument("--emnist-dir", type=Path, default=DEFAULT_EMNIST)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--export", default="", help="formats to export for MNIST: tflite,onnx")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipelines")
    args = parser.parse_args()

    tables = []
    for dataset in [d for d in args.datasets.split(",") if d]:
        config = PipelineConfig(
            dataset=dataset,
            data_dir=args.emnist_dir if dataset == "emnist" else None,
            out_dir=REPO / "models" / dataset,
            train=FitConfig(epochs=args.epochs, augment=True, verbose=2),
            finetune=FitConfig(
                epochs=args.finetune_epochs, learning_rate=5e-4, patience=2, verbose=2
            ),
            export_formats=tuple(f for f in args.export.split(",") if f)
            if dataset == "mnist"
            else (),
            tflite_variants=VARIANTS,
            overwrite=True,
        )
        start = time.perf_counter()
        run_pipeline(config)
        wall = time.perf_counter() - start
        summary = json.loads((config.out_dir / "results.json").read_text())
        tables.append(_dataset_section(dataset, summary, wall))

    text = "\n\n".join(tables) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "pipelines.md", text)
    write_json_atomic(
        args.out / "command.json",
        {"argv": vars(args) | {"emnist_dir": str(args.emnist_dir), "out": str(args.out)}},
    )


def _dataset_section(dataset: str, summary: dict, wall: float) -> str:
    models = summary["models"]
    times = [["whole pipeline", f"{wall:.0f}"]]
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
            markdown_table(["Step", "Wall seconds"], times),
        ]
    )


if __name__ == "__main__":
    main()
