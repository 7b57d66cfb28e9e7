"""`report.md` from result records: per backend latency and actual vs theoretical speedup.

Works for one result folder or several merged (`bench-report`): with more than
one device, each backend's table is split by device and a cross-device
comparison table follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lowrank_edge.benchmark.cpu_features import feature_list, precision_advice
from lowrank_edge.benchmark.results.records import LOW_EFFICIENCY, SPREAD_LIMIT, spread_warning

PROFILE_TOP_LAYERS = 12

METHOD = (
    "Each configuration (model x backend x variant x threads x batch) is timed after a warm-up,"
    " until a minimum number of runs and a minimum time are reached (bounded by a maximum time),"
    " on fixed seeded inputs drawn from the real samples saved at export. Every model in every"
    " variant of one backend, thread count and batch size is timed in the same interleaved"
    " rounds (A B C A B C ...), each opened, timed and closed in its turn, so every speedup below"
    " is a paired ratio: the median over rounds of p50(other) / p50(this), with the"
    " interquartile range of the per-round ratios in brackets. **Same variant** compares with"
    " the baseline model exported in the same variant (what low-rank buys in that precision);"
    " **vs original float32** compares with the baseline's float32 file (what `recommend`"
    " quotes). **Theoretical** = MACs(baseline) / MACs(model) from the manifests;"
    " **efficiency** = same-variant speedup / theoretical. Flags: `slower` (same-variant speedup"
    f" < 1), `low-eff` (efficiency < {LOW_EFFICIENCY})."
)


def format_number(value: float | None, digits: int = 3) -> str:
    """`value` with `digits` decimals, or "-" when unknown."""
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _speedup(record: dict, median: str = "actual_speedup", spread: str = "speedup_spread") -> str:
    """`1.62x [1.55-1.70]`: a paired speedup with its interquartile range over rounds."""
    actual = record.get(median)
    if actual is None:
        return "-"
    iqr = record.get(spread) or {}
    if iqr.get("rounds", 0) > 1:
        return f"{actual:.2f}x [{iqr['q1']:.2f}-{iqr['q3']:.2f}]"
    return f"{actual:.2f}x"


def _flags(record: dict) -> str:
    short = {"slower_than_baseline": "slower", "efficiency_below_0.5": "low-eff"}
    return " ".join(short.get(flag, flag) for flag in record.get("flags") or [])


def table_lines(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: header, separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _order(records: Iterable[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["variant"], r["threads"], r["batch"]))


def _devices(records: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r.get("device", "?") for r in records))


def device_section(records: Sequence[dict]) -> list[str]:
    """One row of system facts per device (from the first record of each), then each device's
    int8/fp16 advice in words."""
    rows, advice = [], []
    for device in _devices(records):
        first = next(r for r in records if r.get("device", "?") == device)
        facts = first.get("system") or {}
        packages = facts.get("packages") or {}
        load = facts.get("load_average")
        tf_version = packages.get("tensorflow") or packages.get("tensorflow-cpu")
        rows.append(
            (
                device,
                facts.get("host", "-"),
                facts.get("cpu_model", "-"),
                feature_list(facts.get("cpu_features")),
                facts.get("cpu_count", "-"),
                ",".join(str(c) for c in first.get("cpus") or []) or "-",
                " ".join(f"{x:.2f}" for x in load) if load else "-",
                facts.get("os", "-"),
                facts.get("python", "-"),
                packages.get("onnxruntime") or "-",
                packages.get("ai-edge-litert") or "-",
                tf_version or "-",
                facts.get("lowrank_edge", "-"),
            )
        )
        advice += [f"* {device}: {s}." for s in precision_advice(facts.get("cpu_features"))]
    header = (
        "device", "host", "CPU", "CPU features", "cores", "affinity", "load avg", "OS", "Python",
        "onnxruntime", "ai-edge-litert", "tensorflow", "lowrank-edge",
    )  # fmt: skip
    return ["## Devices", "", *table_lines(header, rows), "", *advice, *([""] if advice else [])]


def backend_section(backend: str, records: Sequence[dict]) -> list[str]:
    """Latency and speedups of one backend, split by device when there are several."""
    lines = [f"## {backend}", ""]
    if not any(r["status"] == "ok" for r in records):
        return lines + ["No configuration ran (see Failures).", ""]
    devices = _devices(records)
    for device in devices:
        ok = [r for r in records if r.get("device", "?") == device and r["status"] == "ok"]
        if not ok:
            continue
        if len(devices) > 1:
            lines += [f"### {device}", ""]
        baseline = ok[0].get("baseline", "-")
        lines += [f"Baseline: `{baseline}`.", ""]
        rows = [
            (
                r["model"],
                r["variant"],
                r["threads"],
                r["batch"],
                format_number(r["latency"]["p50_ms"]),
                format_number(r["latency"]["p90_ms"]),
                format_number(r["latency"]["throughput"], 1),
                _speedup(r),
                _speedup(r, "reference_speedup", "reference_spread"),
                format_number(r.get("theoretical_speedup"), 2),
                format_number(r.get("efficiency"), 2),
                _flags(r),
            )  # fmt: skip
            for r in _order(ok)
        ]
        header = (
            "model", "variant", "threads", "batch", "p50 ms", "p90 ms", "samples/s",
            "same variant [IQR]", "vs original float32 [IQR]", "theoretical", "efficiency",
            "flags",
        )  # fmt: skip
        if any(r.get("repeat_spread") is not None for r in ok):
            spreads = [_percent(r.get("repeat_spread")) for r in _order(ok)]
            rows = [(*row, spread) for row, spread in zip(rows, spreads, strict=True)]
            header = (*header, "p50 spread over repeats")
        lines += [*table_lines(header, rows), ""]
        noisy = sum(spread_warning(r) is not None for r in ok)
        if noisy:
            lines += [
                f"**Warning:** the p50 spread over repeats exceeds {100 * SPREAD_LIMIT:g}% in"
                f" {noisy} of {len(ok)} configuration(s) above: their latencies and speedups are"
                " noisy (listed under Warnings).",
                "",
            ]
    return lines


def cross_device_section(records: Sequence[dict]) -> list[str]:
    """Actual speedup (and p50) of each configuration on each device, side by side."""
    devices = _devices(records)
    ok = [r for r in records if r["status"] == "ok"]
    keys = list(
        dict.fromkeys(
            (r["model"], r["backend"], r["variant"], r["threads"], r["batch"]) for r in ok
        )
    )
    index = {
        (r.get("device", "?"), r["model"], r["backend"], r["variant"], r["threads"], r["batch"]): r
        for r in ok
    }
    rows = []
    for key in keys:
        cells = []
        for device in devices:
            record = index.get((device, *key))
            cells.append(
                "-"
                if record is None
                else f"{_speedup(record)} ({format_number(record['latency']['p50_ms'])} ms)"
            )
        rows.append((*key, *cells))
    header = ("model", "backend", "variant", "threads", "batch", *devices)
    return ["## Across devices: actual speedup (p50)", "", *table_lines(header, rows), ""]


PROFILE_METHOD = (
    "Mean µs per run of each original layer in the baseline and in the model (the sum of its"
    " factors when factorised), from ONNX Runtime's profiler. Each kernel is attributed to the"
    " layer whose weights it uses, traced back through ORT's renaming to the exported graph;"
    " BatchNorm, activations and residual adds that ORT fuses into a convolution are counted"
    " with that convolution. No row holds two layers; kernels with no layer are listed as"
    " `(unattributed)`. **Raw** figures are the profiler's own; its per-kernel overhead"
    " penalises the model with more kernels, so raw sums need not agree with whole-model"
    " timings. **Calibrated** figures scale each model's kernel times by (timed p50 ÷ profiled"
    " kernel sum), so they add up to the whole-model p50 timed without the profiler; the"
    " difference is shared in proportion to each kernel's time, which a fixed per-kernel cost"
    " does not follow, so read small layers with care. A speedup is `n/a` when a layer has no"
    " kernel of its own on one side (see the note). Full data, with each row's kernels:"
    " `profile.jsonl`."
)


def _layer_speedup(row: dict, calibrated: bool) -> str:
    """`n/a` unless both sides of the row have their own kernel time (never `0.00`)."""
    keys = (
        ("baseline_calibrated_us", "model_calibrated_us", "calibrated_speedup")
        if calibrated
        else ("baseline_us", "model_us", "speedup")
    )
    base, model, speedup = (row.get(key) for key in keys)
    if not base or not model or speedup is None:
        return "n/a"
    return f"{speedup:.2f}"


def _layer_note(row: dict) -> str:
    if "note" in row:
        return row["note"]
    if not row["baseline_us"]:  # rows written before notes existed
        return "no kernel of its own in the baseline"
    return "no kernel of its own in the model" if not row["model_us"] else ""


def _calibration_line(row: dict) -> str:
    """What the profiled sums and the timed p50s were, and whether they can be compared."""
    cal = row.get("calibration")
    if not cal:
        return (
            "No timed p50 was recorded with this profile: the raw figures cannot be compared"
            " with the whole-model timings."
        )
    base, model = cal["baseline_profiled_us"], cal["model_profiled_us"]
    profiled = f"{base / model:.2f}x" if base and model else "n/a"
    line = (
        f"Profiled kernel sums per run: baseline {base:.1f} µs, model {model:.1f} µs ({profiled})."
    )
    if cal["baseline_scale"] is None or cal["model_scale"] is None:
        return line + " No timed p50 for one of the models: calibrated figures are n/a."
    timed_base, timed_model = cal["baseline_timed_p50_us"], cal["model_timed_p50_us"]
    return line + (
        f" Timed p50: baseline {timed_base:.1f} µs, model {timed_model:.1f} µs"
        f" ({timed_base / timed_model:.2f}x). Calibration scales: baseline"
        f" x{cal['baseline_scale']:.3f}, model x{cal['model_scale']:.3f}."
    )


def profile_section(rows: Sequence[dict]) -> list[str]:
    """Per-layer ONNX Runtime times: each original layer in the baseline vs its factors."""
    if not rows:
        return []
    lines = ["## Per-layer view (ONNX Runtime profiler)", "", PROFILE_METHOD, ""]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row.get("device", "?"), row["model"], row["variant"], row["threads"], row["batch"])
        groups.setdefault(key, []).append(row)
    header = (
        "layer", "baseline µs", "model µs", "speedup", "calibrated baseline µs",
        "calibrated model µs", "calibrated speedup", "factorised", "note",
    )  # fmt: skip
    for (device, model, variant, threads, batch), layer_rows in groups.items():
        top = sorted(layer_rows, key=lambda r: -max(r["baseline_us"], r["model_us"]))
        table = [
            (
                r["layer"],
                format_number(r["baseline_us"], 1),
                format_number(r["model_us"], 1),
                _layer_speedup(r, calibrated=False),
                format_number(r.get("baseline_calibrated_us"), 1),
                format_number(r.get("model_calibrated_us"), 1),
                _layer_speedup(r, calibrated=True),
                "yes" if r["factorised"] else "",
                _layer_note(r),
            )  # fmt: skip
            for r in top[:PROFILE_TOP_LAYERS]
        ]
        lines += [
            f"### {model} vs {layer_rows[0]['baseline']} ({device}, {variant}, threads {threads},"
            f" batch {batch})",
            "",
            _calibration_line(layer_rows[0]),
            "",
            *table_lines(header, table),
            "",
        ]
        if len(top) > PROFILE_TOP_LAYERS:
            lines += [f"{len(top) - PROFILE_TOP_LAYERS} smaller row(s) in `profile.jsonl`.", ""]
    return lines


def failure_section(records: Sequence[dict]) -> list[str]:
    """Every failed configuration with its error."""
    failed = [r for r in records if r["status"] != "ok"]
    if not failed:
        return []
    rows = [
        (
            r.get("device", "?"),
            r["model"],
            r["backend"],
            r["variant"],
            r["threads"],
            r["batch"],
            (r.get("error") or "").replace("|", "\\|"),
        )  # fmt: skip
        for r in failed
    ]
    header = ("device", "model", "backend", "variant", "threads", "batch", "error")
    return ["## Failures", "", *table_lines(header, rows), ""]


def warning_section(records: Sequence[dict]) -> list[str]:
    """Distinct warnings (e.g. more threads than CPUs, a p50 spread over repeats above 5%).

    Spread warnings are also derived here from `repeat_spread`, so results written before
    records carried them get them too.
    """
    derived = [spread_warning(r) for r in records]
    warnings = list(
        dict.fromkeys(
            [w for r in records for w in r.get("warnings") or []]
            + [w for w in derived if w is not None]
        )
    )
    if not warnings:
        return []
    return ["## Warnings", "", *[f"- {w}" for w in warnings], ""]


def render_report(
    records: Sequence[dict],
    profile_rows: Sequence[dict] = (),
    plots: Sequence[str] = (),
    plot_note: str | None = None,
    title: str = "Benchmark report",
    accuracy: Sequence[str] = (),
) -> str:
    """The whole Markdown report for `records` (one device or several); `accuracy`: the lines of
    the latency-against-accuracy section (`accuracy_view.accuracy_section`)."""
    lines = [f"# {title}", "", METHOD, ""]
    if not records:
        return "\n".join(lines + ["No results.", ""])
    lines += device_section(records)
    for backend in dict.fromkeys(r["backend"] for r in records):
        lines += backend_section(backend, [r for r in records if r["backend"] == backend])
    if len(_devices(records)) > 1:
        lines += cross_device_section(records)
    lines += accuracy
    lines += profile_section(profile_rows)
    if plots or plot_note:
        lines += ["## Plots", ""]
        lines += [f"![{name}]({name})" for name in plots]
        lines += [plot_note, ""] if plot_note else [""]
    lines += warning_section(records)
    lines += failure_section(records)
    return "\n".join(lines)
