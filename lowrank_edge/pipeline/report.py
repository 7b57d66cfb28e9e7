"""Markdown reports of a pipeline run (results.json -> report.md).

The main table follows the seed notebook's layout: metric rows x model columns.
"""

from __future__ import annotations

from pathlib import Path

from lowrank_edge.fileio import write_text_atomic


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def summary_table(summary: dict) -> str:
    """Metric rows x compressed-model columns, as in the seed's report."""
    models = summary["models"]
    base = models[0]
    compressed = [m for m in models if m["kind"] == "compressed"]
    header = ["Metric"] + [m["name"] for m in compressed]
    rows = [
        ["Parameter reduction"] + [_pct(m["param_reduction"]) for m in compressed],
        ["Model size reduction"] + [_pct(m["size_reduction"]) for m in compressed],
        ["MAC reduction"] + [_pct(m["mac_reduction"]) for m in compressed],
        ["Accuracy, original (test)"] + [_pct(base["accuracy"]["test"]) for _ in compressed],
        ["Accuracy, compressed before fine-tuning (test)"]
        + [_pct(m["accuracy"].get("before_finetune_test")) for m in compressed],
        ["Accuracy, compressed after 1 fine-tuning epoch (test)"]
        + [_pct(m["accuracy"].get("after_1_epoch_test")) for m in compressed],
        ["Accuracy, compressed after fine-tuning (test)"]
        + [_pct(m["accuracy"]["test"]) for m in compressed],
        ["Factoriser"]
        + [m["compression"]["settings"].get("factoriser", "svd") for m in compressed],
        ["Theoretical speedup (MACs)"] + [f"{m['theoretical_speedup']:.2f}x" for m in compressed],
    ]
    return markdown_table(header, rows)


def models_table(summary: dict) -> str:
    """One row per model: absolute params, MACs, file size, accuracies."""
    header = ["Model", "Params", "MACs", "File bytes", "Val acc", "Test acc", "Fine-tune epochs"]
    rows = []
    for m in summary["models"]:
        finetune = m.get("finetune") or {}
        rows.append(
            [
                m["name"],
                f"{m['params']:,}",
                f"{m['macs']:,}",
                f"{m['file_bytes']:,}",
                _pct(m["accuracy"]["val"]),
                _pct(m["accuracy"]["test"]),
                str(finetune.get("epochs_run", "–")),
            ]
        )
    return markdown_table(header, rows)


def rank_table(summary: dict) -> str:
    """Kept rank / full rank of every candidate layer, one column per compressed model."""
    compressed = [m for m in summary["models"] if m["kind"] == "compressed"]
    if not compressed:
        return ""
    names = [layer["name"] for layer in compressed[0]["compression"]["layers"]]
    header = ["Layer", "Matrix (m x n)"] + [m["name"] for m in compressed]
    rows = []
    for index, name in enumerate(names):
        first = compressed[0]["compression"]["layers"][index]
        row = [name, "x".join(str(d) for d in first.get("matrix_shape") or [])]
        for m in compressed:
            layer = m["compression"]["layers"][index]
            row.append(layer_rank_cell(layer))
        rows.append(row)
    return markdown_table(header, rows)


def layer_rank_cell(layer: dict) -> str:
    """'12/64' for a factorised layer, 'dense (r=38/64)' for one kept at break-even, else '–'."""
    full = layer.get("full_rank")
    if layer.get("status") == "factorised":
        return f"{layer['rank_kept']}/{full}"
    if layer.get("chosen_rank") is not None and full is not None:
        return f"dense (r={layer['chosen_rank']}/{full})"
    return "–"


def _speedup(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def paired_speedup_text(chosen: dict) -> str:
    """`1.62x [1.55–1.70, 15 rounds]`; an unpaired figure from an old bench says so."""
    text = _speedup(chosen.get("speedup"))
    iqr = chosen.get("speedup_iqr")
    if iqr:
        return f"{text} [{iqr['q1']:.2f}–{iqr['q3']:.2f}, {iqr['rounds']} rounds]"
    kind = chosen.get("speedup_kind")
    return f"{text} ({kind})" if kind and kind != "paired" else text


def latency_section(summary: dict) -> str:
    """Latency budgets: target, headroom, predicted vs measured speedup and the back-off."""
    rows, checks = [], []
    for m in summary["models"]:
        latency = (m.get("compression") or {}).get("latency")
        if not latency:
            continue
        c = latency["condition"]
        back_off = latency.get("back_off") or {}
        rows.append(
            [
                m["name"],
                f"{c['backend']}, {c['threads']} thread(s), batch {c['batch']}",
                _speedup(latency.get("target_speedup")),
                _speedup(latency.get("headroom_speedup")),
                _speedup(latency.get("predicted_speedup")),
                _speedup(latency.get("measured_speedup")),
                back_off.get("verdict", "not measured (--no-speed-check)"),
            ]
        )
        for index, check in enumerate(back_off.get("checks", [])):
            checks.append(
                [
                    m["name"],
                    str(index + 1) + (" (chosen)" if index == back_off.get("chosen") else ""),
                    str(len(check["ranks"])),
                    check["dropped"] or check.get("note") or "–",
                    _speedup(check["predicted_speedup"]),
                    f"{check['measured_speedup']:.2f}x "
                    f"({check['measured_q1']:.2f}–{check['measured_q3']:.2f})",
                ]
            )
    if not rows:
        return ""
    header = ["Model", "Target runtime", "Target", "Headroom", "Predicted", "Measured", "Verdict"]
    parts = [
        "## Latency on the target runtime",
        markdown_table(header, rows),
        "Headroom: the predicted speedup if every factorable layer ran at its cheapest measured "
        "option, the most low-rank can give on that runtime. Predicted: from the latency table. "
        "Measured: the chosen plan's model against the original, end to end, median of "
        "interleaved per-round ratios (q1–q3), with plain-SVD weights (latency depends on the "
        "shapes only).",
    ]
    if checks:
        check_header = ["Model", "Check", "Layers factorised", "Change", "Predicted", "Measured"]
        parts += ["### Back-off checks", markdown_table(check_header, checks)]
    return "\n\n".join(parts)


def gates_section(summary: dict) -> str:
    """The exported artifacts that failed their gate: written, marked `"passed": false`, and
    left out of the bench and the recommendation."""
    rows = [
        [m["name"], failed["artifact"], failed.get("gate") or "–", failed.get("failure") or "–"]
        for m in summary["models"]
        for failed in (m.get("export") or {}).get("failed_gates", [])
    ]
    if not rows:
        return ""
    return "\n\n".join(
        [
            "## Exported files that failed their gate",
            'Written and marked `"passed": false` in their manifest; not benchmarked or '
            "recommended.",
            markdown_table(["Model", "Artifact", "Gate", "Why"], rows),
        ]
    )


def ship_section(summary: dict) -> str:
    """The closing bench's answer: per runtime, the file to ship within the accuracy budget."""
    shipped = summary.get("recommendation")
    if not shipped:
        return ""
    if "conditions" not in shipped:
        return f"## Which file to ship on this machine\n\nNot measured: {shipped.get('problem')}."
    rows = []
    for c in shipped["conditions"]:
        where = f"{c['backend']}, {c['threads']} thread(s), batch {c['batch']}"
        if c.get("artifact") is None:
            rows.append([where, "none", "–", "–", "–", c.get("problem") or "–"])
            continue
        notes = []
        if c.get("tie_within_spread"):
            tied = c.get("tied_with") or [c.get("runner_up")]
            notes.append(f"tie within spread with {', '.join(map(str, tied))}")
        smallest = c.get("smallest")
        if smallest and smallest["file"] != c["file"]:
            notes.append(
                f"smallest within budget: `{smallest['file']}`, {smallest['bytes'] / 1000:.1f} kB, "
                f"{paired_speedup_text(smallest)}, {-smallest['drop_pp']:+.2f} pp"
            )
        tie = "; ".join(notes) or "–"
        rows.append(
            [
                where,
                f"`{c['file']}`",
                paired_speedup_text(c),
                "–" if c.get("bytes") is None else f"{c['bytes'] / 1000:.1f} kB",
                f"{-c['drop_pp']:+.2f} pp",
                tie,
            ]
        )
    header = [
        "Runtime", "Ship", "Speedup vs original float32 [IQR]", "Size", "Accuracy vs original",
        "Note",
    ]  # fmt: skip
    machine = next(
        (c["machine"] for c in shipped["conditions"] if c.get("machine")), "this machine"
    )
    return "\n\n".join(
        [
            "## Which file to ship on this machine",
            f"Every exported artifact timed on {machine} (`{shipped['bench_dir']}/report.md`); "
            f"per runtime the fastest whose full-test accuracy is within "
            f"{shipped['max_accuracy_drop_pp']:g} points of the original float32 model "
            f"(`lowrank-edge recommend`, `{shipped['bench_dir']}/recommendation.json`). "
            "Each speedup is paired: the file and the original float32 were timed in the same "
            "interleaved rounds; the figure is the median of the per-round ratios, with their "
            "interquartile range and the number of rounds. Files whose ranges overlap the "
            "named file's are tied with it: a re-run may order them differently.",
            markdown_table(header, rows),
        ]
    )


def same_precision_section(summary: dict) -> str:
    """Each compressed model's file against the original's in the same precision and runtime
    (paired, same rounds), the slower cells flagged with the reason."""
    cells = (summary.get("recommendation") or {}).get("same_precision") or []
    if not cells:
        return ""
    models = list(dict.fromkeys(c["model"] for c in cells))
    rows = []
    for backend, variant in dict.fromkeys((c["backend"], c["variant"]) for c in cells):
        row = [backend, variant]
        for model in models:
            cell = next(
                (c for c in cells if (c["backend"], c["variant"], c["model"]) ==
                 (backend, variant, model)), None,
            )  # fmt: skip
            if cell is None:
                row.append("–")
                continue
            text = f"{cell['speedup']:.2f}x"
            if cell.get("q1") is not None and (cell.get("rounds") or 0) > 1:
                text += f" [{cell['q1']:.2f}–{cell['q3']:.2f}]"
            row.append(f"**{text} slower**" if cell["slower"] else text)
        rows.append(row)
    slower = [c for c in cells if c["slower"]]
    reasons = [
        f"* {c['model']}, {c['backend']} {c['variant']} ({c['speedup']:.2f}x): {c['reason']}."
        for c in slower
    ]
    return "\n\n".join(
        [
            "## Low-rank against the original, in the same precision",
            "Each compressed model's file against the original's file of the same precision and "
            "runtime, timed in the same interleaved rounds (median of per-round ratios, IQR in "
            f"brackets). {len(slower)} of {len(cells)} files are slower than the original in "
            "their own precision"
            + (": flagged in bold, with the reason below." if slower else "."),  # fmt: skip
            markdown_table(["Runtime", "Precision", *models], rows),
            *(["\n".join(reasons)] if reasons else []),
        ]
    )


def shipped_headroom_section(summary: dict) -> str:
    """Per runtime: the original's fastest precision and low-rank's headroom there."""
    rows = (summary.get("recommendation") or {}).get("shipped_headroom") or []
    if not rows:
        return ""
    table = markdown_table(
        ["Runtime", "Original's fastest precision", "vs its float32", "Low-rank headroom there"],
        [[r["backend"], r["precision"], f"{r['original_speedup_over_float32']:.2f}x",
          f"{r['headroom']:.2f}x"] for r in rows],
    )  # fmt: skip
    return "\n\n".join(
        [
            "## Low-rank in the precision that ships",
            "The headroom is the most a latency budget can give in that precision: every "
            "factorable layer at its cheapest option, from a latency table of the original "
            f"measured here (`{rows[0]['table']}`).",
            table,
            "\n".join(f"* {r['backend']}: {r['advice']}." for r in rows),
        ]
    )


def write_markdown_report(summary: dict, path: Path) -> Path:
    """Write the pipeline report (summary, models, ranks) to `path` atomically."""
    data = summary["dataset"]
    parts = [
        f"# lowrank-edge report: {data['name']}",
        f"Data: {data['train']} train / {data['val']} validation / {data['test']} test images, "
        f"{data['num_classes']} classes ({data['source']}).",
        "## Summary",
        summary_table(summary),
        "## Models",
        models_table(summary),
        latency_section(summary),
        gates_section(summary),
        same_precision_section(summary),
        shipped_headroom_section(summary),
        ship_section(summary),
        "## Rank kept per layer",
        rank_table(summary),
        *[
            f"### Per-layer report: {m['name']}\n\n"
            + layer_report_table(m["compression"]["layers"])
            for m in summary["models"]
            if m["kind"] == "compressed"
        ],
        "MACs count the multiply-accumulates of Conv2D/Dense kernels (see `lowrank_edge/cost.py`);"
        " theoretical speedup = MACs(original) / MACs(compressed).",
    ]
    return write_text_atomic(path, "\n\n".join(p for p in parts if p) + "\n")


def layer_report_table(layers: list[dict]) -> str:
    """Per-layer compression report: shape, rank kept / full, energy, params, MACs, status."""
    header = [
        "Layer",
        "Kernel",
        "Rank",
        "Energy kept (Σσ²)",
        "Params before→after",
        "MACs before→after",
        "Status",
    ]
    rows = []
    for layer in layers:
        energy = layer.get("energy_squared")
        rows.append(
            [
                layer["name"],
                "x".join(str(d) for d in layer.get("kernel_shape") or []),
                layer_rank_cell(layer),
                "–" if energy is None else f"{energy:.3f}",
                f"{layer.get('params_before', 0):,}→{layer.get('params_after', 0):,}",
                f"{layer.get('macs_before', 0):,}→{layer.get('macs_after', 0):,}",
                layer.get("status", "?"),
            ]
        )
    return markdown_table(header, rows)
