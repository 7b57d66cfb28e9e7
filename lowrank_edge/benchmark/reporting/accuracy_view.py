"""The bench report's "Latency against accuracy" section and its plot, `latency_accuracy.png`.

Reuses what `lowrank-edge recommend` does, with no budget: `group_candidates` reads each record's
manifest for its accuracy, `judge_condition` computes drops, speedups and the Pareto front, and
`pareto_plot` draws them, so the report and `recommend` always agree on the front. TF-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lowrank_edge.benchmark.recommend import (
    FRONT_RULE,
    REFERENCE_VARIANT,
    SOURCE_TEXT,
    SPEEDUP_RULE,
    ConditionResult,
    Entry,
    format_bytes,
    judge_condition,
    several_runs,
    speedup_text,
)
from lowrank_edge.benchmark.recommend_inputs import group_candidates
from lowrank_edge.benchmark.reporting import charts
from lowrank_edge.benchmark.reporting.markdown import format_number, table_lines
from lowrank_edge.benchmark.reporting.pareto import pareto_plot
from lowrank_edge.errors import LowrankEdgeError

LATENCY_ACCURACY_PNG = "latency_accuracy.png"

INTRO = (
    f"Every measured artifact against the original (the bench baseline's {REFERENCE_VARIANT}"
    " artifact in the same condition), as `lowrank-edge recommend` judges them, with no budget."
    f" {SPEEDUP_RULE} Records from before every variant shared the original's rounds give a"
    " ratio of p50s instead, marked as not paired. **Drop** = the original's accuracy minus the"
    " artifact's, in percentage points, both from the first source they share (full test set"
    " before parity samples), so a drop never compares a full-test figure with a parity-sample"
    f" one. {FRONT_RULE}"
)


@dataclass(frozen=True)
class AccuracyView:
    """Each condition with measured artifacts, judged; or why none could be (`problem`)."""

    results: tuple[ConditionResult, ...] = ()
    problem: str | None = None  # e.g. a damaged manifest: the section says so, the report stands

    def drawable(self) -> bool:
        """True when some artifact has a known drop (something to plot)."""
        return any(e.drop_pp is not None for r in self.results for e in r.entries)


def accuracy_view(pairs: Sequence[tuple[Path, dict]]) -> AccuracyView:
    """Judge the (bench folder, record) pairs; the folder is where relative model dirs resolve."""
    if not pairs:
        return AccuracyView()
    try:
        groups = group_candidates(pairs)
    except LowrankEdgeError as error:  # a damaged manifest, an accuracy out of range
        return AccuracyView(problem=str(error))
    results = []
    for condition, candidates, _ in groups:
        if not candidates:  # every record of it failed (the Failures section lists them)
            continue
        result = judge_condition(condition, candidates)
        if not result.entries:  # no reference: list the artifacts all the same
            fastest = sorted(candidates, key=lambda c: c.p50_ms)
            result = replace(result, entries=tuple(Entry(c) for c in fastest))
        results.append(result)
    return AccuracyView(tuple(results))


def _row(entry: Entry, backend: str) -> tuple[str, ...]:
    candidate = entry.candidate
    artifact = "keras" if backend == "keras" else candidate.artifact or candidate.variant
    if candidate.is_reference:
        artifact += " (original)"
    speedup = "-" if entry.speedup is None else speedup_text(entry, compact=True)
    figure = entry.accuracy or candidate.best_accuracy()
    source = "-"
    if figure is not None:
        source = SOURCE_TEXT.get(figure.source, figure.source)
        source += f", {figure.samples} images" if figure.samples else ""
    return (
        candidate.model,
        artifact,
        format_number(candidate.p50_ms),
        speedup,
        "-" if candidate.bytes is None else format_bytes(candidate.bytes),
        "-" if figure is None else f"{figure.value * 100:.2f}%",
        source,
        format_number(entry.drop_pp, 2),
        "yes" if entry.on_front else "",
    )


def _missing_line(results: Sequence[ConditionResult]) -> list[str]:
    """One line naming the models whose artifacts have no accuracy, and why."""
    why: dict[str, str] = {}
    for result in results:
        for entry in result.entries:
            candidate = entry.candidate
            if candidate.best_accuracy() is None:
                why.setdefault(candidate.model, candidate.note or "no accuracy figure")
    if not why:
        return []
    models = "; ".join(f"`{model}` ({reason})" for model, reason in why.items())
    return [f"No accuracy known for: {models}. Their rows have no drop and are off the front.", ""]


def accuracy_section(view: AccuracyView, plotted: bool = False) -> list[str]:
    """The report's section: one table per condition, front marked (`plotted`: the plot exists)."""
    if view.problem is None and not view.results:
        return []
    lines = ["## Latency against accuracy", "", INTRO, ""]
    if view.problem is not None:
        return lines + [f"No accuracy view: {view.problem}", ""]
    with_run = several_runs(view.results)
    header = (
        "model", "artifact", "p50 ms", "speedup vs original [IQR]", "file size", "accuracy",
        "accuracy source", "drop pp", "Pareto front",
    )  # fmt: skip
    for result in view.results:
        backend = result.condition.backend
        lines += [f"### {result.condition.label(with_run)}", ""]
        lines += [*table_lines(header, [_row(e, backend) for e in result.entries]), ""]
        if result.reference is None:
            lines += [
                f"No speedups or drops here: the original ({REFERENCE_VARIANT} of the bench"
                " baseline) has no successful measurement in this condition.",
                "",
            ]
        elif result.problem is not None:
            lines += [f"No drops here: {result.problem}.", ""]
    lines += _missing_line(view.results)
    if plotted:
        lines += [f"Plot: `{LATENCY_ACCURACY_PNG}` (marker area = file size).", ""]
    elif charts.plots_unavailable() is None and not view.drawable():
        lines += [f"`{LATENCY_ACCURACY_PNG}` not drawn: no artifact has a known drop.", ""]
    return lines


def write_accuracy_plot(view: AccuracyView, out_dir: Path) -> list[str]:
    """Draw `latency_accuracy.png` into `out_dir`; its name, or none (no matplotlib, no drop)."""
    if charts.plots_unavailable() is not None or not view.drawable():
        return []
    pareto_plot(view.results, out_dir / LATENCY_ACCURACY_PNG)
    return [LATENCY_ACCURACY_PNG]
