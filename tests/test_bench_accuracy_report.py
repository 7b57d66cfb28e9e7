"""The bench report's "Latency against accuracy" section and `latency_accuracy.png`.

Synthetic bench folders (`harness.bench_records`: real `build_records` and `JsonlWriter`,
hand-written manifests), so no TensorFlow and no timing run here.
"""

from __future__ import annotations

import json
import os

import pytest
from harness.bench_records import FakeArtifact, Group, write_bench, write_export

from lowrank_edge.benchmark.recommend import recommend
from lowrank_edge.benchmark.recommend_inputs import group_candidates, read_bench
from lowrank_edge.benchmark.reporting import charts
from lowrank_edge.benchmark.results import folder as results_folder
from lowrank_edge.benchmark.results.folder import finish_folder, merge_folders
from lowrank_edge.benchmark.results.storage import read_results

I8 = "int8-full"
LITERT_T1_B1 = "| litert, 1 thread, batch 1"

# drops vs base float32 (0.990): e50 0.2 pp, e75 0.4 pp, base-int8 0.5 pp, e50-int8 1.0 pp
ACCURACIES = {"base": (1_000_000, 0.990, 0.985), "e50": (500_000, 0.988, 0.980),
              "e75": (750_000, 0.986, 0.975)}  # fmt: skip
# e75 float32 is slower and less accurate than e50 float32 (dominated); base-int8 is faster
# than e50 float32 but less accurate (on the front)
GROUPS = [
    Group("litert", "float32", {"base": [1.0], "e50": [0.6], "e75": [0.8]}),
    Group("litert", I8, {"base": [0.5], "e50": [0.3]}),
]


def _exports(root, test_accuracy=False, shift=0.0):
    """Export folders of base / e50 / e75 (float32 and int8 TFLite); `shift` lowers every
    accuracy, `test_accuracy` records them as full-test-set figures too."""

    def fake(variant, nbytes, accuracy):
        accuracy -= shift
        return FakeArtifact(
            "tflite", variant, nbytes, accuracy, accuracy if test_accuracy else None
        )

    return {
        name: write_export(
            root / name, name, [fake("float32", size, f32), fake(I8, size // 4, int8)]
        )
        for name, (size, f32, int8) in ACCURACIES.items()
    }


def _section_rows(report: str, heading: str) -> dict[str, dict[str, str]]:
    """The table under the `###` heading containing `heading`, keyed by `model artifact`."""
    part = report.split("## Latency against accuracy", 1)[1]
    block = next(b for b in part.split("\n### ")[1:] if heading in b.splitlines()[0])
    lines = [line for line in block.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        rows[f"{row['model']} {row['artifact']}"] = row
    return rows


@pytest.fixture
def bench(tmp_path):
    folder = tmp_path / "device-a"
    write_bench(folder, "device-a", _exports(tmp_path / "exports"), GROUPS)
    return folder


def test_the_report_lists_every_artifact_with_its_front_mark(bench):
    finish_folder(bench)
    report = (bench / "report.md").read_text()
    rows = _section_rows(report, LITERT_T1_B1)
    assert list(rows) == [  # fastest first
        "e50 tflite-int8-full",
        "base tflite-int8-full",
        "e50 tflite-float32",
        "e75 tflite-float32",
        "base tflite-float32 (original)",
    ]
    front = {label: row["Pareto front"] for label, row in rows.items()}
    assert front == {
        "e50 tflite-int8-full": "yes",
        "base tflite-int8-full": "yes",  # faster than e50 float32, less accurate
        "e50 tflite-float32": "yes",
        "e75 tflite-float32": "",  # e50 float32 is faster and more accurate
        "base tflite-float32 (original)": "yes",
    }
    e75 = rows["e75 tflite-float32"]
    assert (e75["p50 ms"], e75["drop pp"], e75["accuracy"]) == ("0.800", "0.40", "98.60%")
    # timed in the original's rounds: the paired median and its IQR
    assert e75["speedup vs original [IQR]"] == "1.25x [1.25-1.25]"
    assert e75["file size"] == "750.0 kB"
    assert e75["accuracy source"] == "parity samples, this artifact, 512 images"
    assert rows["base tflite-int8-full"]["speedup vs original [IQR]"] == "2.00x [2.00-2.00]"
    assert rows["base tflite-int8-full"]["drop pp"] == "0.50"
    assert rows["base tflite-float32 (original)"]["drop pp"] == "0.00"
    assert "No accuracy known" not in report

    # the same front as `lowrank-edge recommend` (any budget: the front does not depend on it)
    result = recommend(group_candidates(read_bench([bench])), 0.3).conditions[0]
    marked = {label.removesuffix(" (original)") for label, mark in front.items() if mark}
    assert marked == {e.label for e in result.front}


def test_the_plot_is_written_and_listed(bench):
    written = finish_folder(bench)
    plot = bench / "latency_accuracy.png"
    assert plot in written
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (bench / "report.md").read_text()
    plots = report.split("## Plots", 1)[1]
    assert "![latency_accuracy.png](latency_accuracy.png)" in plots
    assert not (bench / "pareto.png").exists()  # recommend's file is left to recommend


def test_without_matplotlib_the_plot_is_skipped_and_noted(bench, monkeypatch):
    note = "Plots skipped: no matplotlib here."
    monkeypatch.setattr(charts, "plots_unavailable", lambda: note)
    monkeypatch.setattr(results_folder, "plots_unavailable", lambda: note)
    written = finish_folder(bench)
    assert not (bench / "latency_accuracy.png").exists()
    assert all(path.suffix != ".png" for path in written)
    report = (bench / "report.md").read_text()
    assert note in report.split("## Plots", 1)[1]
    assert _section_rows(report, LITERT_T1_B1)["e50 tflite-float32"]["Pareto front"] == "yes"


def test_a_missing_manifest_gives_a_note_instead_of_a_crash(bench, tmp_path):
    (tmp_path / "exports" / "e75" / "manifest.json").unlink()
    finish_folder(bench)
    report = (bench / "report.md").read_text()
    assert "No accuracy known for: `e75` (manifest not found (looked at" in report
    rows = _section_rows(report, LITERT_T1_B1)
    e75 = rows["e75 tflite-float32"]
    assert (e75["accuracy"], e75["drop pp"], e75["Pareto front"]) == ("-", "-", "")
    assert e75["speedup vs original [IQR]"] == "1.25x [1.25-1.25]"  # still timed with it
    assert rows["e50 tflite-float32"]["Pareto front"] == "yes"
    assert (bench / "latency_accuracy.png").is_file()

    (tmp_path / "exports" / "base" / "manifest.json").unlink()  # the original's too
    finish_folder(bench)
    report = (bench / "report.md").read_text()
    assert "No accuracy known for: `base` (manifest not found" in report
    assert "`e75` (manifest not found" in report
    assert "No drops here: the original base tflite-float32 has no accuracy figure" in report
    rows = _section_rows(report, LITERT_T1_B1)
    assert len(rows) == 5 and not any(row["Pareto front"] for row in rows.values())
    assert rows["e50 tflite-float32"]["accuracy"] == "98.80%"  # its own figure, no drop
    assert rows["e50 tflite-float32"]["drop pp"] == "-"
    assert "`latency_accuracy.png` not drawn: no artifact has a known drop." in report


def test_a_damaged_manifest_leaves_the_rest_of_the_report(bench, tmp_path):
    (tmp_path / "exports" / "e50" / "manifest.json").write_text("{not json")
    finish_folder(bench)
    report = (bench / "report.md").read_text()
    section = report.split("## Latency against accuracy", 1)[1]
    assert "No accuracy view:" in section and "manifest" in section
    assert "## litert" in report and "e50" in report.split("## litert", 1)[1]


def test_bench_report_resolves_manifests_from_both_folders(tmp_path, monkeypatch):
    """Two devices, each bench run from its own folder with the same relative model dirs: each
    record's manifests must come from its own folder (command.json's cwd)."""
    from harness.export import block_imports_code, run_python  # imports Keras here only

    folders = []
    for device, full_test, shift in (("device-a", False, 0.0), ("device-b", True, 0.01)):
        home = tmp_path / device
        exports = _exports(home / "exports", test_accuracy=full_test, shift=shift)
        relative = {name: path.relative_to(home) for name, path in exports.items()}
        monkeypatch.chdir(home)  # bench records model dirs as given: relative here
        write_bench(home / "results", device, relative, GROUPS)
        (home / "results" / "command.json").write_text(json.dumps({"cwd": str(home)}))
        folders.append(home / "results")
    monkeypatch.chdir(tmp_path)  # where neither relative model dir resolves
    assert read_results(folders[0])[0]["model_dir"] == os.path.join("exports", "base")

    args = ["bench-report", *map(str, folders), "--out", str(tmp_path / "merged")]
    code = block_imports_code() + (
        "from lowrank_edge.cli import main\n"
        f"main({args!r}, standalone_mode=False)\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not leaked, leaked\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "merged" / "report.md").read_text()
    assert "No accuracy known" not in report
    a = _section_rows(report, "device-a (")
    b = _section_rows(report, "device-b (")
    assert a["e75 tflite-float32"]["accuracy source"] == "parity samples, this artifact, 512 images"
    assert b["e75 tflite-float32"]["accuracy source"] == (
        "full test set, this artifact, 10000 images"
    )
    assert (a["e50 tflite-float32"]["accuracy"], b["e50 tflite-float32"]["accuracy"]) == (
        "98.80%",
        "97.80%",
    )
    assert a["e75 tflite-float32"]["Pareto front"] == b["e75 tflite-float32"]["Pareto front"] == ""
    assert (tmp_path / "merged" / "latency_accuracy.png").is_file()

    (folders[0] / "command.json").unlink()  # device-a's relative dirs can no longer resolve
    merge_folders(folders, tmp_path / "merged", overwrite=True)
    report = (tmp_path / "merged" / "report.md").read_text()
    missing = next(line for line in report.splitlines() if line.startswith("No accuracy known"))
    assert "`base` (manifest not found" in missing and "`e50` (manifest not found" in missing
    assert "device-b" not in missing
    assert _section_rows(report, "device-a (")["e50 tflite-float32"]["accuracy"] == "-"
    assert _section_rows(report, "device-b (")["e50 tflite-float32"]["accuracy"] == "97.80%"
