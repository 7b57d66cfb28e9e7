"""p50 latency against accuracy, one panel per condition, marker size = bytes: `pareto.png` of
`recommend` (with its budget and winner) and `latency_accuracy.png` of the bench report (none).

matplotlib is optional (check `charts.plots_unavailable()` first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge.benchmark.recommend import ConditionResult, several_runs
from lowrank_edge.benchmark.reporting.charts import save_figure

PARETO_PNG = "pareto.png"
_MIN_AREA, _MAX_AREA = 30.0, 600.0


def _areas(sizes: Sequence[int | None]) -> list[float]:
    """Marker areas proportional to file size, between the two bounds (unknown: the smallest)."""
    known = [s for s in sizes if s]
    top = max(known, default=1)
    return [_MIN_AREA + (_MAX_AREA - _MIN_AREA) * (s or 0) / top for s in sizes]


def pareto_plot(results: Sequence[ConditionResult], path: Path) -> Path:
    """Draw every condition with a known drop; the front joined and ringed; the winner starred and
    the budget line drawn when there is one (`max_drop_pp` of `math.inf`: no budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [r for r in results if any(e.drop_pp is not None for e in r.entries)]
    columns = 1 if len(drawn) <= 1 else 2
    rows = max(1, math.ceil(len(drawn) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.8 * rows), squeeze=False)
    with_run = several_runs(results)
    for axis in axes.flat[len(drawn) :]:
        axis.set_visible(False)
    for axis, result in zip(axes.flat, drawn, strict=False):
        entries = [e for e in result.entries if e.drop_pp is not None]
        xs = [e.candidate.p50_ms for e in entries]
        ys = [-e.drop_pp for e in entries]
        colours = [
            "tab:grey" if e.candidate.is_reference else "tab:blue" if e.within_budget else "tab:red"
            for e in entries
        ]
        axis.scatter(xs, ys, s=_areas([e.candidate.bytes for e in entries]), c=colours, alpha=0.6)
        front = sorted(result.front, key=lambda e: e.candidate.p50_ms)
        axis.plot(
            [e.candidate.p50_ms for e in front], [-e.drop_pp for e in front], "k--", linewidth=1,
            label="Pareto front",
        )  # fmt: skip
        axis.scatter(
            [e.candidate.p50_ms for e in front], [-e.drop_pp for e in front], s=_areas(
                [e.candidate.bytes for e in front]), facecolors="none", edgecolors="black",
            linewidths=1.5,
        )  # fmt: skip
        if result.winner is not None:
            axis.scatter(
                [result.winner.candidate.p50_ms], [-result.winner.drop_pp], marker="*", s=220,
                c="gold", edgecolors="black", zorder=3, label="recommended",
            )  # fmt: skip
        if math.isfinite(result.max_drop_pp):
            axis.axhline(-result.max_drop_pp, color="tab:red", linestyle=":", linewidth=1,
                         label=f"budget (-{result.max_drop_pp:g} pp)")  # fmt: skip
        for entry, x, y in zip(entries, xs, ys, strict=True):
            axis.annotate(entry.label, (x, y), fontsize=7, xytext=(4, 4),
                          textcoords="offset points")  # fmt: skip
        axis.set_xlabel("p50 latency (ms)")
        axis.set_ylabel("accuracy vs the original (pp)")
        axis.set_title(result.condition.label(with_run), fontsize=9)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    budget = any(math.isfinite(r.max_drop_pp) for r in drawn)
    colours = "grey = original" + (", blue = within budget, red = over it" if budget else "")
    figure.suptitle(
        f"Latency against accuracy (marker area = file size; ringed = Pareto front; {colours})"
    )
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
