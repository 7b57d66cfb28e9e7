"""PNG plots of a pipeline run: accuracy vs parameter reduction, and rank kept per layer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lowrank_edge.fileio import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def accuracy_vs_reduction(summary: dict, path: Path) -> Path:
    """Test accuracy against parameter reduction, one point per threshold, original marked."""
    models = summary["models"]
    base = models[0]
    compressed = [m for m in models if m["kind"] == "compressed"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(base["accuracy"]["test"] * 100, color="grey", ls="--", label="original")
    for key, marker, label in (
        ("before_finetune_test", "x", "before fine-tuning"),
        ("test", "o", "after fine-tuning"),
    ):
        xs = [m["param_reduction"] * 100 for m in compressed]
        ys = [m["accuracy"].get(key, float("nan")) * 100 for m in compressed]
        ax.plot(xs, ys, marker=marker, ls="-", label=label)
    for m in compressed:
        ax.annotate(
            m["name"],
            (m["param_reduction"] * 100, m["accuracy"]["test"] * 100),
            textcoords="offset points",
            xytext=(4, 4),
        )
    ax.set_xlabel("parameter reduction (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{summary['dataset']['name']}: accuracy vs compression")
    ax.legend()
    return _save(fig, path)


def ranks_per_layer(summary: dict, path: Path) -> Path:
    """Kept rank per candidate layer for each threshold (full rank as the outline)."""
    compressed = [m for m in summary["models"] if m["kind"] == "compressed"]
    layers = compressed[0]["compression"]["layers"] if compressed else []
    names = [layer["name"] for layer in layers]
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.5), 4))
    width = 0.8 / max(1, len(compressed))
    full = [layer.get("full_rank") or 0 for layer in layers]
    ax.bar(range(len(names)), full, width=0.9, fill=False, edgecolor="grey", label="full rank")
    for i, m in enumerate(compressed):
        ranks = [
            (layer.get("rank_kept") or 0) if layer.get("status") == "factorised" else 0
            for layer in m["compression"]["layers"]
        ]
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(names))]
        ax.bar(xs, ranks, width=width, label=m["name"])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("rank kept (0 = left dense)")
    ax.set_title(f"{summary['dataset']['name']}: rank kept per layer")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_pipeline_plots(summary: dict, out_dir: Path) -> list[Path]:
    """Write both plots into `out_dir` and return their paths."""
    out_dir = Path(out_dir)
    return [
        accuracy_vs_reduction(summary, out_dir / "accuracy_vs_reduction.png"),
        ranks_per_layer(summary, out_dir / "ranks_per_layer.png"),
    ]


def rank_curves(analysis, plan, path: Path) -> Path:
    """Predicted relative error against rank, one curve per factorable layer, with the
    planned rank of each layer marked (a cross at full rank: the layer stays dense)."""
    from lowrank_edge.compress.allocate import relative_error

    layers = analysis.factorable
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for candidate in layers:
        spectrum = candidate.spectrum
        ranks = range(1, spectrum.full_rank + 1)
        (line,) = ax.plot(
            [r / spectrum.full_rank for r in ranks],
            [max(relative_error(spectrum, r), 1e-12) for r in ranks],
            lw=1,
            label=candidate.path,
        )
        decision = plan.decision(candidate.path)
        rank = decision.rank_kept if decision.factorised else spectrum.full_rank
        ax.plot(
            rank / spectrum.full_rank,
            max(relative_error(spectrum, rank if decision.factorised else None), 1e-12),
            marker="o" if decision.factorised else "x",
            color=line.get_color(),
        )
    ax.set_yscale("log")
    ax.set_xlabel("rank / full rank")
    ax.set_ylabel("predicted relative error (dropped energy)")
    ax.set_title("Error against rank per layer; markers: the plan (x: stays dense)")
    ax.legend(fontsize=6, ncol=2, loc="lower left")
    ax.grid(alpha=0.3)
    return _save(fig, path)
