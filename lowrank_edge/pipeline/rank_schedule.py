"""Ranks that shrink while fine-tuning: compress at a larger budget, then step down to the target.

With `--rank-schedule F` and E fine-tuning epochs, stage i (0 .. E-1) keeps
target * F ** (1 - i / (E - 1)) of the MACs (or parameters), capped at 1: the first stage
starts at F times the target, the last is the target itself, so the final model meets the
budget exactly as a one-shot compression would. Each stage after the first merges the current
factor pairs back into dense kernels (`compress.merge`) and compresses that model again, so
the factors are re-truncated data-aware on the current weights and the current model's layer
outputs; then it fine-tunes one epoch. The teacher of distillation stays the original model.
"""

from __future__ import annotations

from dataclasses import replace

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.logs import Log
from lowrank_edge.model.train import FitConfig, FitResult, fit
from lowrank_edge.pipeline.measure import accuracy_record
from lowrank_edge.pipeline.run import (
    CompressedModel,
    CompressOptions,
    compress_once,
    finetune_record,
)


def schedule_budgets(target: float, factor: float, stages: int) -> list[float]:
    """The budget of each stage: geometric from min(factor * target, 1) down to `target`."""
    if stages < 2:
        return [target]
    start = min(factor * target, 1.0)
    ratio = start / target
    budgets = [target * ratio ** (1 - i / (stages - 1)) for i in range(stages)]
    budgets[-1] = target  # exactly, whatever the rounding
    return budgets


def with_budget(options: CompressOptions, fraction: float) -> CompressOptions:
    """`options` with its MAC or parameter budget replaced by `fraction` (no schedule)."""
    key = "target_macs" if options.target_macs is not None else "target_params"
    return replace(options, rank_schedule=None, **{key: fraction})


def joined(results: list[FitResult]) -> FitResult:
    """One fit record for the stages: histories concatenated, epochs and seconds summed; the
    best epoch is the last one's unless it kept its start (0)."""
    history: dict[str, list[float]] = {}
    for result in results:
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
    last = results[-1]
    return FitResult(
        epochs_run=sum(r.epochs_run for r in results),
        best_epoch=0 if last.best_epoch == 0 else sum(r.epochs_run for r in results),
        history=history,
        seconds=sum(r.seconds for r in results),
        from_logits=last.from_logits,
        recipe=last.recipe,
    )


def scheduled_compress_and_finetune(
    model,
    options: CompressOptions,
    data: Dataset,
    finetune: FitConfig,
    log: Log = print,
) -> CompressedModel:
    """`compress_and_finetune` with a rank schedule (see module); `model` is left untouched.

    `accuracy_before_finetune` is the model at the target budget before its last epoch; the
    sidecar's "rank_schedule" lists every stage's budget, totals and accuracies.
    """
    from lowrank_edge.compress.merge import merged_model

    budgets = schedule_budgets(
        options.target_macs or options.target_params, options.rank_schedule, finetune.epochs
    )
    stage_fit = replace(finetune, epochs=1, patience=None)
    stages, fits, current = [], [], None
    for index, budget in enumerate(budgets):
        source = model if current is None else merged_model(model, current)
        kind = "MACs" if options.target_macs is not None else "parameters"
        log(f"rank schedule: stage {index + 1}/{len(budgets)} keeps {budget:.4g} of the {kind}")
        result, compression = compress_once(source, with_budget(options, budget), data, log)
        current = result.model
        before = accuracy_record(current, data)
        teacher = model if finetune.distill else None  # the original, always
        fits.append(fit(current, data, replace(stage_fit, seed=finetune.seed + index), teacher))
        after = accuracy_record(current, data)
        log(
            f"stage {index + 1}: accuracy val {before['val']:.4f} -> {after['val']:.4f}, "
            f"test {before['test']:.4f} -> {after['test']:.4f}"
        )
        stages.append(
            {
                "budget": budget,
                "totals": compression["totals"],
                "ranks": {layer["name"]: layer.get("rank_kept") for layer in compression["layers"]},
                "accuracy_before": before,
                "accuracy_after": after,
            }
        )
    joined_fit = joined(fits)
    compression["options"]["rank_schedule"] = options.rank_schedule
    compression["rank_schedule"] = stages
    compression["finetune"] = finetune_record(joined_fit)
    return CompressedModel(
        model=current,
        compression=compression,
        accuracy_before_finetune=stages[-1]["accuracy_before"],
        accuracy=stages[-1]["accuracy_after"],
        finetune=joined_fit,
    )
