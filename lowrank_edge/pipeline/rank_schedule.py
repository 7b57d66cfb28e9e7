"""Ranks that shrink while fine-tuning: compress at a larger budget, then step down to the target.

With `--rank-schedule F` and E fine-tuning epochs, stage i (0 .. E-1) keeps
target * F ** (1 - i / (E - 1)) of the MACs (or parameters), capped at 1: the first stage
starts at F times the target, the last is the target itself, so the final model meets the
budget exactly as a one-shot compression would. Each stage after the first merges the current
factor pairs back into dense kernels (`compress.merge`) and compresses that model again, so
the factors are re-truncated data-aware on the current weights and the current model's layer
outputs; then it fine-tunes one epoch. The teacher of distillation stays the original model.
The stages themselves run in `pipeline.run.scheduled_compress_and_finetune`; this module holds
the schedule's arithmetic and bookkeeping.
"""

from __future__ import annotations

from dataclasses import replace

from lowrank_edge.model.train import FitResult


def schedule_budgets(target: float, factor: float, stages: int) -> list[float]:
    """The budget of each stage: geometric from min(factor * target, 1) down to `target`."""
    if stages < 2:
        return [target]
    start = min(factor * target, 1.0)
    ratio = start / target
    budgets = [target * ratio ** (1 - i / (stages - 1)) for i in range(stages)]
    budgets[-1] = target  # exactly, whatever the rounding
    return budgets


def with_budget(options, fraction: float):
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
