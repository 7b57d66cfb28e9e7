"""PNG plots of a benchmark: actual vs theoretical speedup, and latency vs threads.

matplotlib is optional (only in the full install): without it the plots are
skipped and the report says so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge.fileio import atomic_path

SPEEDUP_PNG = "speedup.png"
THREADS_PNG = "latency_threads.png"


def plots_unavailable() -> str | None:
    """Why plots cannot be drawn here (matplotlib missing), else None."""
    if importlib.util.find_spec("matplotlib") is None:
        return "Plots skipped: matplotlib is not installed (it comes with the full install)."
    return None


def save_figure(figure, path: Path) -> Path:
    """Write `figure` as a PNG at `path` atomically (120 dpi, tight bounding box)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, bbox_inches="tight")
    return path


def speedup_plot(records: Sequence[dict], path: Path) -> Path:
    """Actual vs theoretical speedup, one point per model/backend/config, with the y=x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [
        r
        for r in records
        if r["status"] == "ok"
        and not r.get("is_baseline")
        and r.get("actual_speedup") is not None
        and r.get("theoretical_speedup") is not None
    ]
    figure, axes = plt.subplots(figsize=(6, 5))
    devices = list(dict.fromkeys(r.get("device", "?") for r in points))
    markers = "osD^v<>P*X"
    for backend in dict.fromkeys(r["backend"] for r in points):
        for d, device in enumerate(devices):
            chosen = [
                r for r in points if r["backend"] == backend and r.get("device", "?") == device
            ]
            if chosen:
                label = backend if len(devices) == 1 else f"{backend} ({device})"
                axes.scatter(
                    [r["theoretical_speedup"] for r in chosen],
                    [r["actual_speedup"] for r in chosen],
                    marker=markers[d % len(markers)],
                    label=label,
                    alpha=0.8,
                )
    values = [v for r in points for v in (r["theoretical_speedup"], r["actual_speedup"])]
    high = max(values + [1.0]) * 1.1
    low = min(values + [1.0]) * 0.9
    axes.plot([low, high], [low, high], "k--", linewidth=1, label="y = x (ideal)")
    axes.set_xlabel("theoretical speedup (MACs ratio)")
    axes.set_ylabel("actual speedup (p50 ratio)")
    axes.set_title("Actual vs theoretical speedup")
    axes.legend(fontsize=8)
    axes.grid(True, alpha=0.3)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def threads_plot(records: Sequence[dict], path: Path) -> Path:
    """p50 latency vs thread count, one panel per backend, one line per model/batch/variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r["status"] == "ok"]
    backends = list(dict.fromkeys(r["backend"] for r in ok)) or ["(none)"]
    figure, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    multi_device = len({r.get("device", "?") for r in ok}) > 1
    for axis, backend in zip(axes[0], backends, strict=True):
        lines: dict[tuple, list[dict]] = {}
        for r in ok:
            if r["backend"] == backend:
                key = (r.get("device", "?"), r["model"], r["variant"], r["batch"])
                lines.setdefault(key, []).append(r)
        for (device, model, variant, batch), rows in lines.items():
            rows.sort(key=lambda r: r["threads"])
            label = f"{model} b{batch}" + (f" {variant}" if variant != "float32" else "")
            label += f" ({device})" if multi_device else ""
            axis.plot(
                [r["threads"] for r in rows],
                [r["latency"]["p50_ms"] for r in rows],
                marker="o",
                label=label,
            )
        axis.set_title(backend)
        axis.set_xlabel("threads")
        axis.set_ylabel("p50 latency (ms)")
        axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        if lines:
            axis.legend(fontsize=7)
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def write_plots(records: Sequence[dict], out_dir: Path) -> list[str]:
    """Draw both plots into `out_dir`; the file names written (none without matplotlib)."""
    if plots_unavailable() is not None:
        return []
    speedup_plot(records, out_dir / SPEEDUP_PNG)
    threads_plot(records, out_dir / THREADS_PNG)
    return [SPEEDUP_PNG, THREADS_PNG]
