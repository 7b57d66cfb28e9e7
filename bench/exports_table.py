"""The exports of a pipeline run as one Markdown table, from its results.json (stdlib only).

Usage: python3 bench/exports_table.py models/mnist/results.json --out DIR/exports.md
Per artifact: bytes, % of the original's float32 TFLite, parity on the export's samples, and
the accuracy on the whole test split in its own runtime next to the Keras model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(summary: dict) -> list[list[str]]:
    """One row per exported artifact of every model, in the run's order."""
    models = [m for m in summary["models"] if (m.get("export") or {}).get("manifest")]
    original = next(
        a["bytes"]
        for a in models[0]["export"]["manifest"]["artifacts"]
        if a["id"] == "tflite-float32"
    )
    out = []
    for model in models:
        for artifact in model["export"]["manifest"]["artifacts"]:
            parity, test = artifact.get("parity") or {}, artifact.get("test_accuracy") or {}
            out.append(
                [
                    model["name"],
                    artifact["id"],
                    f"{artifact['bytes']:,}",
                    f"{100 * artifact['bytes'] / original:.1f}%",
                    f"{parity.get('max_abs_diff', float('nan')):.2e}",
                    f"{100 * parity.get('argmax_agreement', float('nan')):.2f}%",
                    f"{100 * test.get('accuracy', float('nan')):.2f}%",
                    f"{100 * test.get('keras_accuracy', float('nan')):.2f}%",
                    "pass" if parity.get("passed") else "FAIL",
                ]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = json.loads(args.results.read_text())
    header = [
        *("Model", "Artifact", "Bytes", "% of original float32 TFLite", "max \\|Δ\\| (parity)"),
        *("Argmax agree (parity)", "Test accuracy (10,000)", "Keras test accuracy", "Parity"),
    ]
    lines = [
        f"Exports of the pipeline run in {args.results.parent} (from its results.json; parity on "
        "each export's real test samples, accuracy on the whole test split in each artifact's own "
        "runtime).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(summary)]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
