"""Fine-tuning recipes compared on one base model: several seeds per compression and recipe.

Usage (from the repo root, with the project's environment; run it alone on the machine):

    .venv/bin/python bench/finetune_recipes.py --base models/ft-study/base.keras --data mnist \
        --cases m0.5:2,m0.33:2,m0.2:2 --recipes plain,distill --seeds 0,1,2 \
        --out bench/results/finetune-recipes-mnist

A case is `m<fraction>` (MACs kept) or `p<fraction>` (parameters kept), optionally `s<factor>`
for a rank schedule (`--rank-schedule`), then `:<epochs>`. A one-shot case is compressed once
(data-aware, the product's defaults) and each (recipe, seed) fine-tunes its own copy; a
scheduled case runs the product's `compress_and_finetune` per (recipe, seed). Every run
follows the pipeline's fine-tuning settings (batch 128, peak rate 1e-3, cosine, shifts, class
weights, keep-start) plus the recipe. OUT gets command.json, results.json (every run's
per-epoch validation and test accuracy; rewritten after each run, so a cut run keeps what it
did) and table.md (mean and range over seeds). Seconds here are not timing figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import start_results_folder  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402

RECIPES = {  # FitConfig fields on top of the pipeline's fine-tuning settings
    "plain": {"distill": False, "warmup": 0.0},  # before distillation: Adam 1e-3, cosine
    "distill": {"distill": True, "warmup": 0.1},
    "distill-freeze-bn": {"distill": True, "warmup": 0.1, "freeze_bn": True},
    "distill-sgd": {"distill": True, "warmup": 0.1, "optimizer": "sgd", "learning_rate": 1e-2},
}
CASE = re.compile(r"^(?P<kind>[mp])(?P<fraction>[0-9.]+)(s(?P<schedule>[0-9.]+))?:(?P<epochs>\d+)$")


@dataclass(frozen=True)
class Case:
    """One compression to fine-tune: a MAC or parameter budget, a schedule, epochs."""

    name: str
    kind: str
    fraction: float
    schedule: float | None
    epochs: int

    def options(self):
        from lowrank_edge.pipeline.run import CompressOptions

        key = "target_macs" if self.kind == "m" else "target_params"
        return CompressOptions(**{key: self.fraction}, rank_schedule=self.schedule)


def parse_case(text: str) -> Case:
    match = CASE.match(text)
    if match is None:
        raise SystemExit(f"bad case {text!r}: expected e.g. m0.5:2, p0.1s2:4 (schedule 2x)")
    schedule = match["schedule"]
    return Case(
        name=text.split(":")[0],
        kind=match["kind"],
        fraction=float(match["fraction"]),
        schedule=None if schedule is None else float(schedule),
        epochs=int(match["epochs"]),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the trained .keras model")
    parser.add_argument("--data", required=True, help="data spec (mnist, emnist, a folder, ...)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cases", required=True, help="comma list, e.g. m0.5:2,m0.1s2:4")
    parser.add_argument("--recipes", default="plain,distill", help=f"of {', '.join(RECIPES)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.cases = [parse_case(c) for c in args.cases.split(",")]
    args.recipes = args.recipes.split(",")
    for name in args.recipes:
        if name not in RECIPES:
            raise SystemExit(f"unknown recipe {name!r}: choose from {', '.join(RECIPES)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def finetune_config(case: Case, recipe: str, seed: int):
    """The pipeline's fine-tuning settings with `recipe` on top."""
    from lowrank_edge.pipeline.run import PipelineConfig

    base = replace(PipelineConfig().finetune, epochs=case.epochs, seed=seed, verbose=2)
    return replace(base, **RECIPES[recipe])


def run_case(case: Case, base_model, data, recipes, seeds, record_run) -> None:
    """Fine-tune `case` with every recipe and seed, handing each run's record to `record_run`."""
    from lowrank_edge.compress.rebuild import rebuild_model
    from lowrank_edge.model.train import fit
    from lowrank_edge.pipeline.measure import accuracy_record
    from lowrank_edge.pipeline.run import compress_and_finetune, compress_once

    compressed = start = None
    if case.schedule is None:
        result, compression = compress_once(base_model, case.options(), data)
        compressed, totals = result.model, compression["totals"]
        start = accuracy_record(compressed, data)
        print(f"[{case.name}] before fine-tuning: {start}", flush=True)
    for recipe in recipes:
        for seed in seeds:
            config = finetune_config(case, recipe, seed)
            print(f"[{case.name}] recipe {recipe} seed {seed}", flush=True)
            if compressed is not None:
                model = rebuild_model(compressed, {})  # a copy, weights included
                teacher = base_model if config.distill else None
                fitted = fit(model, data, config, teacher=teacher)
                run = {"start": start, "final": accuracy_record(model, data), "totals": totals}
            else:
                out = compress_and_finetune(base_model, case.options(), data, config)
                fitted = out.finetune
                run = {
                    "start": out.accuracy_before_finetune,
                    "final": out.accuracy,
                    "totals": out.compression["totals"],
                    "stages": out.compression["rank_schedule"],
                }
            run.update(
                case=case.name,
                recipe=recipe,
                seed=seed,
                epochs=case.epochs,
                val=fitted.history.get("val_accuracy", []),
                test=fitted.history.get("test_accuracy", []),
                best_epoch=fitted.best_epoch,
                seconds=round(fitted.seconds, 1),
            )
            print(f"[{case.name}] {recipe} seed {seed}: {run['final']}", flush=True)
            record_run(run)


def summary_rows(runs: list[dict], base: dict) -> list[dict]:
    """Mean and range over seeds per (case, recipe), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["case"], run["recipe"]), []).append(run)
    rows = []
    for (case, recipe), group in groups.items():
        finals = [r["final"]["test"] for r in group]
        dips = sum(any(v < r["start"]["val"] for v in r["val"]) for r in group)
        totals = group[0]["totals"]
        rows.append(
            {
                "case": case,
                "recipe": recipe,
                "epochs": group[0]["epochs"],
                "seeds": len(group),
                "macs_kept": totals["macs_after"] / totals["macs_before"],
                "params_kept": totals["params_after"] / totals["params_before"],
                "start_test": statistics.mean(r["start"]["test"] for r in group),
                "final_test_mean": statistics.mean(finals),
                "final_test_min": min(finals),
                "final_test_max": max(finals),
                "minus_base": statistics.mean(finals) - base["test"],
                "runs_with_an_epoch_below_start": dips,
            }
        )
    return rows


def table(rows: list[dict], base: dict) -> str:
    header = (
        "case", "recipe", "epochs", "MACs kept", "params kept", "start (test)",
        "after (test, mean [min, max])", "vs base", "dips",
    )  # fmt: skip
    cells = [
        (
            r["case"],
            r["recipe"],
            r["epochs"],
            f"{r['macs_kept']:.3f}",
            f"{r['params_kept']:.3f}",
            f"{r['start_test']:.2%}",
            f"{r['final_test_mean']:.2%} [{r['final_test_min']:.2%}, {r['final_test_max']:.2%}]",
            f"{r['minus_base'] * 100:+.2f} pt",
            f"{r['runs_with_an_epoch_below_start']}/{r['seeds']}",
        )
        for r in rows
    ]
    intro = (
        f"Base test accuracy {base['test']:.2%} (val {base['val']:.2%}). Test accuracy after "
        "fine-tuning: mean over seeds, [min, max]; 'dips' counts runs with an epoch whose "
        "validation accuracy ended below the start."
    )
    return "\n".join([intro, "", *table_lines(header, cells)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from lowrank_edge.data import load_data
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.pipeline.measure import accuracy_record

    start_results_folder(args.out, ("results.json", "table.md"), overwrite=args.overwrite)
    base_model = load_model(args.base)
    data = load_data(args.data, data_dir=args.data_dir, image_shape=base_model.input_shape[1:])
    base = accuracy_record(base_model, data)
    print(f"[base] {base}", flush=True)
    runs: list[dict] = []

    def record_run(run: dict) -> None:
        runs.append(run)
        rows = summary_rows(runs, base)
        record = {"base": base, "base_path": str(args.base), "data": args.data}
        record |= {"recipes": {r: RECIPES[r] for r in args.recipes}, "rows": rows, "runs": runs}
        write_json_atomic(args.out / "results.json", record, overwrite=True)
        write_text_atomic(args.out / "table.md", table(rows, base), overwrite=True)

    for case in args.cases:
        run_case(case, base_model, data, args.recipes, args.seeds, record_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
