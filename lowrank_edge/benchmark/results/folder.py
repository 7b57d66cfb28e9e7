"""Write the derived outputs of a result folder (CSV, report, plots), or of several merged."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge.benchmark.recommend_inputs import read_bench
from lowrank_edge.benchmark.reporting.accuracy_view import (
    accuracy_section,
    accuracy_view,
    write_accuracy_plot,
)
from lowrank_edge.benchmark.reporting.charts import plots_unavailable, write_plots
from lowrank_edge.benchmark.reporting.markdown import render_report
from lowrank_edge.benchmark.results.storage import PROFILE_NAME, read_jsonl, write_csv
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.fileio import check_can_write, write_text_atomic

CSV_NAME = "results.csv"
REPORT_NAME = "report.md"


def _profile_rows(folder: Path) -> list[dict]:
    path = folder / PROFILE_NAME
    return read_jsonl(path) if path.is_file() else []


def write_outputs(
    pairs: Sequence[tuple[Path, dict]], profile_rows: Sequence[dict], out_dir: Path, title: str
) -> list[Path]:
    """results.csv, report.md and the plots in `out_dir` for the (bench folder, record) pairs;
    the paths written. The folder is where a record's relative `model_dir` resolves."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [record for _, record in pairs]
    written = [write_csv(records, out_dir / CSV_NAME)]
    view = accuracy_view(pairs)
    plotted = write_accuracy_plot(view, out_dir) if records else []
    plots = (write_plots(records, out_dir) if records else []) + plotted
    written += [out_dir / name for name in plots]
    section = accuracy_section(view, plotted=bool(plotted))
    report = render_report(records, profile_rows, plots, plots_unavailable(), title, section)
    written.append(write_text_atomic(out_dir / REPORT_NAME, report))
    return written


def finish_folder(folder: str | os.PathLike) -> list[Path]:
    """Derive CSV, report and plots of one `bench` result folder from its JSONL files."""
    folder = Path(folder)
    pairs = read_bench([folder])
    return write_outputs(pairs, _profile_rows(folder), folder, f"Benchmark report: {folder.name}")


def merge_folders(
    folders: Sequence[str | os.PathLike], out_dir: str | os.PathLike, overwrite: bool = False
) -> list[Path]:
    """One comparison report (and CSV, plots) over several result folders, e.g. several devices."""
    if not folders:
        raise LowrankEdgeError("give at least one result folder to report on")
    out_dir = Path(out_dir)
    check_can_write(out_dir / REPORT_NAME, overwrite)
    pairs = read_bench(folders)  # (folder, record): each record's manifests resolve from its folder
    profile_rows = []
    for folder in map(Path, folders):
        profile_rows += _profile_rows(folder if folder.is_dir() else folder.parent)
    names = ", ".join(dict.fromkeys(r.get("device", "?") for _, r in pairs))
    return write_outputs(pairs, profile_rows, out_dir, f"Benchmark comparison: {names}")
