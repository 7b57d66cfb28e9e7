"""Tabulate int8 accuracy against each export's own float32, from the manifests' full-test figures.

Usage: python bench/experiments/int8-remedies/int8_remedies_table.py EXPORT_DIR... --out table.md
(see int8_remedies.sh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lowrank_edge.fileio import write_text_atomic
from lowrank_edge.runtime import load_manifest

PAIRS = (("tflite-float32", "tflite-int8-full"), ("onnx-float32", "onnx-int8-qdq"))


def rows(folder: Path) -> list[list[str]]:
    """One row per int8 artifact: its float32 and int8 full-test accuracy and the drop."""
    manifest = load_manifest(folder)
    out = []
    for float_id, int8_id in PAIRS:
        reference, int8 = manifest.artifact(float_id), manifest.artifact(int8_id)
        drop = (reference.test_accuracy.accuracy - int8.test_accuracy.accuracy) * 100
        out.append(
            [
                manifest.model.name,
                f"{manifest.model.params:,}",
                int8_id,
                str(int8.calibration_images),
                f"{reference.test_accuracy.accuracy:.2%}",
                f"{int8.test_accuracy.accuracy:.2%}",
                f"{drop:+.2f}",
                f"{int8.bytes:,}",
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    header = ["Model", "Params", "Artifact", "Calibration images", "float32", "int8",
              "Drop (pp)", "Bytes"]  # fmt: skip
    table = [header, ["---"] * len(header)]
    for folder in args.folders:
        table += rows(folder)
    text = "\n".join("| " + " | ".join(row) + " |" for row in table) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
