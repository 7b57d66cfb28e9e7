"""Where a recommendation is written: `recommendation.json` (with provenance) and `pareto.png`.

One place for `lowrank-edge recommend` and the pipeline's closing step. TF-free; matplotlib is
optional (the plot is skipped, with a note).
"""

from __future__ import annotations

from pathlib import Path

from lowrank_edge.benchmark.recommend import Recommendation
from lowrank_edge.benchmark.reporting import charts
from lowrank_edge.benchmark.reporting.pareto import PARETO_PNG
from lowrank_edge.fileio import check_can_write

RECOMMENDATION_JSON = "recommendation.json"


def check_recommendation_outputs(out: Path, overwrite: bool) -> None:
    """Refuse (before any work) when the files are there and `overwrite` is off."""
    check_can_write(out / RECOMMENDATION_JSON, overwrite)
    if charts.plots_unavailable() is None:
        check_can_write(out / PARETO_PNG, overwrite)


def write_recommendation(result: Recommendation, out: Path) -> list[str]:
    """Write recommendation.json and pareto.png into `out`; one line per file (or why skipped)."""
    from lowrank_edge.benchmark.reporting.pareto import pareto_plot
    from lowrank_edge.benchmark.results.provenance import command_record
    from lowrank_edge.fileio import write_json_atomic

    data = result.to_dict() | {"provenance": command_record()}
    lines = [f"wrote {write_json_atomic(out / RECOMMENDATION_JSON, data, overwrite=True)}"]
    no_plot = charts.plots_unavailable()  # looked up at call time (tests replace it)
    if no_plot is not None:
        stale = (
            " (the pareto.png there is from an earlier run)" if (out / PARETO_PNG).exists() else ""
        )
        lines.append(f"{PARETO_PNG} skipped: matplotlib is not installed{stale}")
    else:
        lines.append(f"wrote {pareto_plot(result.conditions, out / PARETO_PNG)}")
    return lines
