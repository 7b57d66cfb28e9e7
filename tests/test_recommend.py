"""`lowrank-edge recommend` on synthetic bench folders: budget, refusal, filters, ties, files.

Records are made by the real `build_records` from chosen per-repeat p50s and written with the
real `JsonlWriter` (`harness.bench_records`); manifests are hand-written, so no TensorFlow and no
timing run here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from click.testing import CliRunner
from harness.bench_records import FakeArtifact, Group, write_bench, write_export

from lowrank_edge.benchmark.recommend import (
    ARTIFACT_PARITY,
    ARTIFACT_TEST,
    KERAS_PARITY,
    MODEL_TEST,
    PAIRED,
    UNPAIRED,
    Accuracy,
    Candidate,
    Condition,
    Entry,
    Recommendation,
    dominates,
    recommend,
    recommend_condition,
    tie_within_spread,
)
from lowrank_edge.benchmark.recommend_inputs import (
    Filters,
    accuracy_figures,
    find_export,
    group_candidates,
    read_bench,
)
from lowrank_edge.benchmark.timing.ratios import RatioSummary
from lowrank_edge.cli import main

T, I8 = "tflite", "int8-full"


def _exports(root, test_accuracy=False):
    """base / e50 / e75: float32 TFLite + ONNX, int8 TFLite; accuracies give drops of
    e50 0.2, e75 0.1, base-int8 0.5, e50-int8 1.0, e75-int8 0.9 pp."""

    def fake(fmt, variant, nbytes, accuracy):
        return FakeArtifact(fmt, variant, nbytes, accuracy, accuracy if test_accuracy else None)

    specs = {
        "base": (1_000_000, 0.990, 0.985),
        "e50": (500_000, 0.988, 0.980),
        "e75": (750_000, 0.989, 0.981),
    }
    return {
        name: write_export(
            root / name,
            name,
            [
                fake(T, "float32", size, f32),
                fake("onnx", "float32", size, f32),
                fake(T, I8, size // 4, int8),
            ],
        )
        for name, (size, f32, int8) in specs.items()
    }


GROUPS = [
    Group("litert", "float32", {"base": [1.0, 1.01, 0.99], "e50": [0.6, 0.61, 0.62],
                                "e75": [0.8, 0.81, 0.79]}),
    Group("litert", I8, {"base": [0.5, 0.5, 0.51], "e50": [0.3, 0.31, 0.3],
                         "e75": [0.55, 0.56, 0.55]}),
    # threads 2: e50 and e75 overlap (tie); batch 32: e75 is the fastest
    Group("litert", "float32", {"base": [0.7, 0.7, 0.7], "e50": [0.45, 0.47, 0.50],
                                "e75": [0.48, 0.49, 0.52]}, threads=2),
    Group("litert", "float32", {"base": [20.0, 20.0, 20.0], "e50": [15.0, 15.1, 15.2],
                                "e75": [12.0, 12.1, 12.2]}, batch=32),
    Group("onnxruntime", "float32", {"base": [1.1, 1.1, 1.1], "e50": [0.9, 0.9, 0.9],
                                     "e75": None}),
]  # fmt: skip


@pytest.fixture
def bench(tmp_path):
    exports = _exports(tmp_path / "exports")
    folder = tmp_path / "device-a"
    write_bench(folder, "device-a", exports, GROUPS)
    return folder


def _run(*args):
    return CliRunner().invoke(main, ["recommend", *[str(a) for a in args]])


def _result(folder, budget, **filters):
    return recommend(
        group_candidates(read_bench([folder]), Filters(**filters)), budget, [str(folder)]
    )


def _only(recommendation):
    assert len(recommendation.conditions) == 1
    return recommendation.conditions[0]


def test_picks_the_fastest_artifact_within_the_budget(bench):
    result = _only(_result(bench, 0.3, backend="litert", threads=1, batch=1))
    assert result.winner.label == "e50 tflite-float32"  # e50-int8 (1.0 pp), base-int8 (0.5) out
    assert result.winner.drop_pp == pytest.approx(0.2)
    assert result.winner.speedup == pytest.approx(1.656, abs=0.001)  # median per-round ratio
    assert result.winner.speedup_kind == PAIRED
    assert result.winner.candidate.paired.rounds == 6  # 3 repeats x 2 rounds, all paired
    assert result.winner.candidate.bytes == 500_000
    assert result.winner.accuracy.source == ARTIFACT_PARITY
    assert result.runner_up.label == "e75 tflite-float32"
    assert result.tie is False
    assert result.reference.label == "base tflite-float32"

    wider = _only(_result(bench, 0.5, backend="litert", threads=1, batch=1))
    assert wider.winner.label == "base tflite-int8-full"  # paired with the float32 original
    assert wider.winner.speedup == pytest.approx(1.0 / 0.5)  # median of 2.0, 2.02, 1.94
    assert wider.winner.speedup_kind == PAIRED
    assert _only(_result(bench, 1.0, backend="litert", threads=1, batch=1)).winner.label == (
        "e50 tflite-int8-full"
    )

    # the front: e75-int8 (0.55 ms, 0.9 pp) is beaten by base-int8 (0.5 ms, 0.5 pp)
    front = [e.label for e in result.front]
    assert front == [
        "e50 tflite-int8-full",
        "base tflite-int8-full",
        "e50 tflite-float32",
        "e75 tflite-float32",
        "base tflite-float32",
    ]


def test_names_the_smallest_file_within_the_budget(bench, tmp_path):
    """Besides the fastest, the smallest qualifying file (for size-bound devices): at 0.95 pp
    the fastest is base int8 (250 kB) and the smallest e75 int8 (187.5 kB, 0.9 pp)."""
    result = _only(_result(bench, 0.95, backend="litert", threads=1, batch=1))
    assert result.winner.label == "base tflite-int8-full"
    assert result.smallest.label == "e75 tflite-int8-full"
    assert result.smallest.candidate.bytes == 750_000 // 4
    tighter = _only(_result(bench, 0.85, backend="litert", threads=1, batch=1))
    assert tighter.smallest is tighter.winner  # e75 int8 is over budget; base int8 is smallest
    printed = _run(bench, "--max-accuracy-drop", "0.95", "--backend", "litert", "--threads", "1",
                   "--batch", "1", "--out", tmp_path)  # fmt: skip
    assert printed.exit_code == 0, printed.output
    assert "smallest    e75 tflite-int8-full" in printed.output
    saved = json.loads((tmp_path / "recommendation.json").read_text())
    assert saved["conditions"][0]["smallest"]["label"] == "e75 tflite-int8-full"
    again = Recommendation.from_dict(saved)
    assert again.conditions[0].smallest.label == "e75 tflite-int8-full"


def test_cli_prints_and_writes_the_recommendation(bench, tmp_path):
    result = _run(bench, "--max-accuracy-drop", "0.3", "--backend", "litert", "--threads", "1",
                  "--batch", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "recommended e50 tflite-float32: p50 0.61 ms" in out
    # median of per-round ratios, with their IQR (3 repeats x 2 rounds)
    assert "1.66x (paired, IQR 1.61-1.66 over 6 rounds) vs the original" in out
    assert "Speedup: the median over rounds of p50(original float32) / p50(file)" in out
    assert "500.0 kB" in out and "drop 0.20 pp" in out
    assert "Accuracy source(s) used: parity samples, this artifact" in out
    assert "98.80% (parity samples, this artifact, 512 images)" in out
    assert "reliability: clear" in out
    assert "Pareto front (5 of 6)" in out
    assert "Size is not an objective" in out
    assert (bench / "recommendation.json").is_file()

    again = _run(bench, "--max-accuracy-drop", "0.3")
    assert again.exit_code == 1 and "pass --overwrite" in again.output
    elsewhere = _run(bench, "--max-accuracy-drop", "0.3", "--out", tmp_path / "rec")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert (tmp_path / "rec" / "recommendation.json").is_file()
    replaced = _run(bench, "--max-accuracy-drop", "0.5", "--overwrite")
    assert replaced.exit_code == 0, replaced.output


def test_refuses_when_nothing_qualifies_and_names_the_closest(bench):
    result = _run(bench, "--max-accuracy-drop", "0.05", "--backend", "litert", "--threads", "1",
                  "--batch", "1")  # fmt: skip
    assert result.exit_code == 1
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("error: no recommendation: device-a")
    assert "closest: e75 tflite-float32 (p50 0.8 ms, 1.25x, 98.90%, drop 0.10 pp" in error
    assert "0.05 pp beyond the budget" in error
    assert "raise --max-accuracy-drop" in error
    assert "one image of the 512 compared is 0.20 pp, more than the 0.05 pp budget" in (
        result.output
    )
    assert not (bench / "recommendation.json").exists()

    bad = _run(bench, "--max-accuracy-drop", "-1")
    assert bad.exit_code == 1 and "must be a number of percentage points >= 0" in bad.output


def test_refuses_when_only_the_original_was_measured(tmp_path):
    exports = _exports(tmp_path / "exports")
    write_bench(tmp_path / "b", "b", {"base": exports["base"]},
                [Group("litert", "float32", {"base": [1.0, 1.0]})])  # fmt: skip
    result = _run(tmp_path / "b", "--max-accuracy-drop", "1")
    assert result.exit_code == 1
    assert "no other artifact was measured besides the original base tflite-float32" in (
        result.output
    )


def test_ignores_records_of_other_conditions(bench, tmp_path):
    everything = _result(bench, 0.3)
    conditions = [(r.condition.backend, r.condition.threads, r.condition.batch)
                  for r in everything.conditions]  # fmt: skip
    assert conditions == [("litert", 1, 1), ("litert", 2, 1), ("litert", 1, 32),
                          ("onnxruntime", 1, 1)]  # fmt: skip
    batch32 = _only(_result(bench, 0.3, batch=32))
    assert batch32.winner.label == "e75 tflite-float32"
    assert {e.label for e in batch32.entries} == {
        "base tflite-float32",
        "e50 tflite-float32",
        "e75 tflite-float32",
    }  # the int8 artifacts were timed at batch 1 only
    onnx = _only(_result(bench, 0.3, backend="onnxruntime"))
    assert onnx.winner.label == "e50 onnx-float32"
    assert any("e75 onnx-float32: failed in the bench" in note for note in onnx.notes)

    result = _run(bench, "--max-accuracy-drop", "0.3", "--batch", "32", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "recommendation.json").read_text())
    assert [c["batch"] for c in saved["conditions"]] == [32]
    assert saved["filters"] == {"batch": 32}

    missing = _run(bench, "--max-accuracy-drop", "0.3", "--batch", "8")
    assert missing.exit_code == 1
    assert "no bench record matches --batch 8; the folders hold: device-a: litert t1 b1" in (
        missing.output
    )


def test_tie_within_measured_spread(bench):
    """Threads 2: e50 (1.49x, IQR 1.42-1.54) is the fastest by median and recommended; e75
    (1.43x, IQR 1.37-1.45) overlaps it, so the two are flagged as tied."""
    result = _only(_result(bench, 0.3, threads=2))
    assert result.winner.label == "e50 tflite-float32"
    assert [e.label for e in result.tied] == ["e75 tflite-float32"]
    assert result.runner_up.label == "e75 tflite-float32"
    assert result.tie is True
    cli = _run(bench, "--max-accuracy-drop", "0.3", "--threads", "2")
    assert cli.exit_code == 0, cli.output
    out = " ".join(cli.output.split())
    assert (
        "reliability: tie within measured spread (e50 tflite-float32 1.42-1.54x; "
        "e75 tflite-float32 1.37-1.45x): a re-run may order them differently"
    ) in out
    saved = Recommendation.from_dict(json.loads((bench / "recommendation.json").read_text()))
    assert [e.label for e in saved.conditions[0].tied] == ["e75 tflite-float32"]


def _paired_candidate(label, median, q1, q3, size=100):
    summary = RatioSummary(median, q1, q3, q1 - 0.1, q3 + 0.1, rounds=15)
    return Candidate(label, label, label, label, "int8", None, None, None, size, 1.0 / median,
                     paired=summary)  # fmt: skip


def _judged(*candidates, drops):
    reference = replace(_paired_candidate("ref", 1.0, 1.0, 1.0), is_reference=True)
    reference = replace(reference, accuracies=(Accuracy(0.99, ARTIFACT_TEST),))
    others = [
        replace(c, accuracies=(Accuracy(0.99 - d / 100, ARTIFACT_TEST),))
        for c, d in zip(candidates, drops, strict=True)
    ]
    return recommend_condition(Condition("dev", "litert", 1, 32), [reference, *others], 0.5)


def test_ties_are_flagged_against_every_overlapping_candidate():
    """Not only the runner-up: every qualifying file whose IQR meets the winner's is tied."""
    result = _judged(
        _paired_candidate("fast", 2.0, 1.90, 2.10),
        _paired_candidate("second", 1.95, 1.85, 1.95),  # overlaps
        _paired_candidate("third", 1.80, 1.70, 1.90),  # touches the winner's q1: overlaps
        _paired_candidate("slow", 1.50, 1.40, 1.60),  # clear
        drops=[0.3, 0.2, 0.1, 0.0],
    )
    assert result.winner.label == "fast"  # the fastest by median, whatever the drops
    assert [e.label for e in result.tied] == ["second", "third"]
    assert result.runner_up.label == "second"
    assert result.tie is True
    clear = _judged(
        _paired_candidate("fast", 2.0, 1.90, 2.10),
        _paired_candidate("slow", 1.50, 1.40, 1.60),
        drops=[0.3, 0.0],
    )
    assert clear.winner.label == "fast" and clear.tie is False and clear.tied == ()
    one_round = _judged(
        replace(_paired_candidate("fast", 2.0, 2.0, 2.0), paired=RatioSummary(2, 2, 2, 2, 2, 1)),
        _paired_candidate("slow", 1.50, 1.40, 1.60),
        drops=[0.3, 0.0],
    )
    assert one_round.tie is None  # one round: no spread, so no claim either way


def test_a_noisy_rerun_widens_the_ties_but_names_the_same_file(tmp_path):
    """The same files benched twice: a quiet run and a noisy one whose wide ranges tie e75 with
    e50. The median order holds, so both runs name e50; the noisy one flags the tie."""
    exports = _exports(tmp_path / "exports")
    quiet = {"base": [1.0, 1.0, 1.0], "e50": [0.60, 0.61, 0.62], "e75": [0.80, 0.81, 0.80]}
    noisy = {"base": [1.0, 1.4, 1.0], "e50": [0.62, 0.60, 0.95], "e75": [0.80, 0.70, 0.95]}
    results = []
    for name, times in (("quiet", quiet), ("noisy", noisy)):
        write_bench(tmp_path / name, name, exports, [Group("litert", "float32", times)])
        results.append(_only(_result(tmp_path / name, 0.3)))
    assert [r.winner.label for r in results] == ["e50 tflite-float32"] * 2
    assert [r.tie for r in results] == [False, True]


def test_records_from_before_pairing_say_their_speedup_is_unpaired(tmp_path):
    """An old bench (each variant timed in its own group): a float32 file keeps its own group's
    paired ratio; an int8 file's speedup is a p50 ratio, named as such and starred."""
    exports = _exports(tmp_path / "exports")
    write_bench(tmp_path / "old", "old", exports, GROUPS, paired=False)
    result = _only(_result(tmp_path / "old", 0.5, backend="litert", threads=1, batch=1))
    assert result.winner.label == "base tflite-int8-full"
    assert result.winner.speedup_kind == UNPAIRED
    assert result.winner.speedup == pytest.approx(1.0 / 0.5)
    float32 = next(e for e in result.entries if e.label == "e50 tflite-float32")
    assert float32.speedup_kind == PAIRED
    cli = _run(tmp_path / "old", "--max-accuracy-drop", "0.5", "--backend", "litert",
               "--threads", "1", "--batch", "1")  # fmt: skip
    assert "2.00x (p50 ratio, not paired) vs the original" in " ".join(cli.output.split())
    assert "* p50 ratio, not paired: timed in another group" in cli.output


def test_tie_rule_and_size_tie_break():
    def candidate(label, repeats, size=100):
        return Candidate(label, label, label, label, "float32", None, None, None, size,
                         sorted(repeats)[len(repeats) // 2], tuple(repeats))  # fmt: skip

    fast = candidate("a", [1.0, 1.1, 1.2])
    assert tie_within_spread(fast, candidate("b", [1.2, 1.3, 1.4])) is True  # touching ranges
    assert tie_within_spread(fast, candidate("c", [1.21, 1.3, 1.4])) is False
    assert tie_within_spread(fast, candidate("d", [1.5])) is None  # one repeat: no spread
    small, big = (
        Entry(candidate("s", [1.0, 1.0], 10), drop_pp=0.1),
        Entry(candidate("l", [1.0, 1.0], 20), drop_pp=0.1),
    )
    assert dominates(small, big) and not dominates(big, small)  # size breaks exact ties only
    faster_bigger = Entry(candidate("f", [0.9, 0.9], 50), drop_pp=0.1)
    assert dominates(faster_bigger, small) and not dominates(small, faster_bigger)


def test_several_devices_and_the_json_round_trip(bench, tmp_path):
    exports = _exports(tmp_path / "exports-b")
    other = tmp_path / "device-b"
    write_bench(other, "device-b", exports,
                [Group("litert", "float32", {"base": [2.0, 2.0], "e50": [1.9, 1.95],
                                             "e75": [1.0, 1.1]})], run_id="run1")  # fmt: skip
    result = _run(bench, other, "--max-accuracy-drop", "0.3", "--threads", "1", "--batch", "1",
                  "--backend", "litert")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "== device-a (device-a-host, Test CPU, 4 CPUs) | litert, 1 thread, batch 1" in (
        result.output
    )
    assert "== device-b (device-b-host, Test CPU, 4 CPUs)" in result.output
    data = json.loads((bench / "recommendation.json").read_text())  # into the first folder
    assert data["provenance"]["command"] and data["provenance"]["machine"]
    by_device = {c["device"]: c for c in data["conditions"]}
    chosen = by_device["device-b"]["recommended"]
    assert chosen["label"] == "e75 tflite-float32"
    assert chosen["file"] == "e75-float32.tflite"
    assert chosen["manifest"] == str(exports["e75"] / "manifest.json")
    assert chosen["path"] == str(exports["e75"] / "e75-float32.tflite")
    assert by_device["device-a"]["recommended"]["file"] == "e50-float32.tflite"
    assert by_device["device-a"]["pareto_front"][0] == "e50 tflite-int8-full"

    loaded = Recommendation.from_dict(data)
    expected = recommend(
        group_candidates(read_bench([bench, other]), Filters("litert", 1, 1)),
        0.3,
        [str(bench), str(other)],
        Filters("litert", 1, 1).given(),
    )
    assert loaded == expected
    assert Recommendation.from_dict(json.loads(json.dumps(expected.to_dict()))) == expected


def test_full_test_accuracy_is_preferred_and_named(tmp_path):
    exports = _exports(tmp_path / "exports", test_accuracy=True)
    write_bench(tmp_path / "b", "b", exports, GROUPS[:1])
    result = _only(_result(tmp_path / "b", 0.3))
    assert result.winner.accuracy.source == ARTIFACT_TEST
    assert result.winner.accuracy.samples == 10000
    cli = _run(tmp_path / "b", "--max-accuracy-drop", "0.3")
    assert "Accuracy source(s) used: full test set, this artifact." in cli.output
    assert "(full test set, this artifact, 10000 images)" in cli.output

    # e75 without the full-test figure: judged on parity samples against the original's, noted
    path = exports["e75"] / "manifest.json"
    data = json.loads(path.read_text())
    for entry in data["artifacts"]:
        entry["test_accuracy"] = None
    path.write_text(json.dumps(data))
    mixed = _only(_result(tmp_path / "b", 0.3))
    e75 = next(e for e in mixed.entries if e.label == "e75 tflite-float32")
    assert (e75.accuracy.source, e75.reference_accuracy.source) == (ARTIFACT_PARITY,) * 2
    assert mixed.winner.accuracy.source == ARTIFACT_TEST
    assert any("drops use different accuracy sources" in note for note in mixed.notes)


def test_accuracy_accessor_order_and_fallbacks():
    data = {
        "model": {"accuracy": {"test": 0.97}},
        "artifacts": [
            {"id": "tflite-float32",
             "test_accuracy": {"images": 10000, "correct": 9800, "accuracy": 0.98,
                               "keras_correct": 9810, "keras_accuracy": 0.981},
             "parity": {"accuracy": 0.99, "keras_accuracy": 0.985, "samples": 512}},
            {"id": "tflite-int8-full", "parity": {"accuracy": 0.95, "keras_accuracy": 0.985,
                                                  "samples": 512}},
        ],
    }  # fmt: skip
    float32 = accuracy_figures(data, "tflite-float32", "float32")
    assert [a.source for a in float32] == [ARTIFACT_TEST, MODEL_TEST, ARTIFACT_PARITY,
                                           KERAS_PARITY]  # fmt: skip
    assert float32[0] == Accuracy(0.98, ARTIFACT_TEST, 10000)
    # a quantised artifact is never judged on the Keras model's figures
    assert accuracy_figures(data, "tflite-int8-full", "int8-full") == (
        Accuracy(0.95, ARTIFACT_PARITY, 512),
    )
    # the keras backend records the source path: only the Keras model's figures apply
    assert [a.source for a in accuracy_figures(data, "../base.keras", "float32")] == [
        MODEL_TEST, KERAS_PARITY
    ]  # fmt: skip
    data["artifacts"][0]["test_accuracy"]["accuracy"] = 98.0  # a percentage, not a fraction
    with pytest.raises(Exception, match=r"artifacts\[0\]\.test_accuracy\.accuracy must be an"):
        accuracy_figures(data, "tflite-float32", "float32", "m.json")


def test_relative_model_folders_resolve_from_the_bench_cwd(tmp_path):
    _exports(tmp_path / "exports")
    bench = tmp_path / "results" / "dev"
    bench.mkdir(parents=True)
    (bench / "command.json").write_text(json.dumps({"cwd": str(tmp_path)}))
    found = find_export("exports/base", bench)
    assert found.manifest == tmp_path / "exports" / "base" / "manifest.json"
    missing = find_export("nowhere/base", bench)
    assert missing.manifest is None and "manifest not found (looked at" in missing.problem


def test_recommend_never_imports_tensorflow(bench, tmp_path):
    from harness.bench import TF_BLOCKER  # imports Keras here, not in the subprocess

    code = TF_BLOCKER + (
        "from lowrank_edge.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    leaked = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "    assert not leaked, leaked\n"
    )
    args = ["recommend", str(bench), "--max-accuracy-drop", "0.3", "--out", str(tmp_path / "o")]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "recommended e50 tflite-float32" in result.stdout
    assert (tmp_path / "o" / "recommendation.json").is_file()


def test_the_plot_is_skipped_without_matplotlib(bench, tmp_path, monkeypatch):
    import lowrank_edge.benchmark.reporting.charts as charts

    monkeypatch.setattr(charts, "plots_unavailable", lambda: "no matplotlib")
    result = _run(bench, "--max-accuracy-drop", "0.3", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "pareto.png skipped: matplotlib is not installed" in result.output
    assert (tmp_path / "o" / "recommendation.json").is_file()
    assert not (tmp_path / "o" / "pareto.png").exists()
