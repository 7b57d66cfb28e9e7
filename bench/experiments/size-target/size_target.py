"""Issue 10's size target: is a low-rank + int8 artifact <= 10% of the original float32 TFLite
file with <= 0.5 points of full-test accuracy lost? Used by
bench/experiments/size-target/size_target.sh.

    python bench/experiments/size-target/size_target.py --original DIR --export DIR \
        [--export DIR ...] --out DIR

`--original`: the export folder holding the original model's float32 TFLite (its size and its
full-test accuracy are the reference). `--export`: export folders whose TFLite artifacts are
tabled (every artifact's bytes and full-test accuracy come from its manifest).
Writes DIR/size_target.json and DIR/size_target.md and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


from lowrank_edge.runtime import load_manifest  # noqa: E402

SIZE_FRACTION = 0.10  # of the original float32 TFLite file
MAX_DROP_POINTS = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, required=True)
    parser.add_argument("--export", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    original = load_manifest(args.original)
    reference = original.artifact("tflite-float32")
    if reference.test_accuracy is None:
        raise SystemExit(f"{original.path}: export with --dataset to record test accuracy")
    ref_bytes, ref_acc = reference.bytes, reference.test_accuracy.accuracy
    rows = [_row(original, reference, "original")]
    for folder in args.export:
        manifest = load_manifest(folder)
        for artifact in manifest.artifacts:
            if artifact.format == "tflite":
                rows.append(_row(manifest, artifact, "export"))
    for row in rows:
        row["percent_of_original"] = 100.0 * row["bytes"] / ref_bytes
        row["drop_points"] = 100.0 * (ref_acc - row["test_accuracy"])
        row["meets_target"] = bool(
            row["bytes"] <= SIZE_FRACTION * ref_bytes and row["drop_points"] <= MAX_DROP_POINTS
        )
    result = {
        "original_bytes": ref_bytes,
        "original_test_accuracy": ref_acc,
        "size_limit_bytes": int(SIZE_FRACTION * ref_bytes),
        "max_drop_points": MAX_DROP_POINTS,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "size_target.json").write_text(json.dumps(result, indent=2) + "\n")
    table = _table(result)
    (args.out / "size_target.md").write_text(table)
    print(table, end="")
    return 0


def _row(manifest, artifact, source: str) -> dict:
    return {
        "artifact": f"{manifest.model.name} {artifact.id}",
        "source": source,
        "model_params": manifest.model.params,
        "file": str(manifest.artifact_path(artifact)),
        "bytes": artifact.bytes,
        "names_stripped": artifact.names_stripped,
        "weights": {"float32": "float32", "float16": "float16"}.get(
            artifact.variant,
            "int8 per-tensor" if artifact.per_tensor_weights else "int8 per-channel",
        ),
        "test_accuracy": artifact.test_accuracy.accuracy,
        "parity_passed": artifact.parity.passed if artifact.parity is not None else None,
    }


def _table(result: dict) -> str:
    lines = [
        f"Original float32 TFLite: {result['original_bytes']:,} bytes, test accuracy "
        f"{result['original_test_accuracy']:.2%}; target: <= {result['size_limit_bytes']:,} "
        f"bytes (10%) and <= {result['max_drop_points']} points lost.",
        "",
        "| artifact | params | weights | names | bytes | % of original | test acc. | drop "
        "(points) | parity | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['artifact']} | {row['model_params']:,} | {row['weights']} | "
            f"{'stripped' if row['names_stripped'] else 'kept'} | {row['bytes']:,} | "
            f"{row['percent_of_original']:.1f}% | {row['test_accuracy']:.2%} | "
            f"{row['drop_points']:.2f} | {_yes_no(row['parity_passed'])} | "
            f"{'met' if row['meets_target'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("ok" if value else "FAILED")


if __name__ == "__main__":
    sys.exit(main())
