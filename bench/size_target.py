"""Issue 10's size target: is a low-rank + int8 artifact <= 10% of the original float32 TFLite
file with <= 0.5 points of full-test accuracy lost? Used by bench/size_target.sh.

    python bench/size_target.py --original DIR --export DIR [--export DIR ...]
        [--per-tensor MODEL.keras --per-tensor-out DIR] --dataset mnist --out DIR

`--original`: the export folder holding the original model's float32 TFLite (its size and its
full-test accuracy are the reference). `--export`: export folders whose TFLite artifacts are
tabled (every artifact's bytes and full-test accuracy come from its manifest).
`--per-tensor MODEL.keras`: also convert MODEL to int8-full with per-tensor (not per-channel)
weight scales (`TFLiteConverter._experimental_disable_per_channel`, a private flag that no
export variant uses), strip its names (`lowrank_edge.export.strip_tflite_names`), check its
parity with Keras with the int8-full tolerance and measure its accuracy on the whole test split
in LiteRT, as the exporter would. Writes DIR/size_target.json and DIR/size_target.md and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from lowrank_edge.runtime import load_manifest  # noqa: E402

SIZE_FRACTION = 0.10  # of the original float32 TFLite file
MAX_DROP_POINTS = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, required=True)
    parser.add_argument("--export", type=Path, action="append", default=[])
    parser.add_argument("--per-tensor", type=Path, default=None)
    parser.add_argument("--per-tensor-out", type=Path, default=None)
    parser.add_argument("--dataset", default="mnist")
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
    if args.per_tensor is not None:
        rows.append(_per_tensor_row(args.per_tensor, args.per_tensor_out, args.dataset))
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
            artifact.variant, "int8 per-channel"
        ),
        "test_accuracy": artifact.test_accuracy.accuracy,
        "parity_passed": artifact.parity.passed if artifact.parity is not None else None,
    }


def _per_tensor_row(model_path: Path, out_dir: Path | None, dataset_name: str) -> dict:
    """int8-full with per-tensor weight scales, names stripped; parity and full-test accuracy."""
    from lowrank_edge.compress.cost import model_cost
    from lowrank_edge.data import load_dataset
    from lowrank_edge.export import TOLERANCES, compare_logits, strip_tflite_names
    from lowrank_edge.export.exporter import REPRESENTATIVE_COUNT
    from lowrank_edge.export.facts import pick_representative, pick_test_samples
    from lowrank_edge.export.parity import (
        keras_logits,
        measure_accuracy,
        predicted_classes,
        runner_logits,
    )
    from lowrank_edge.export.to_tflite import SIGNATURE, _one_by_one, write_saved_model
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.runtime.quiet import captured_output
    from lowrank_edge.runtime.runner import open_litert

    dataset = load_dataset(dataset_name)
    with captured_output():
        import tensorflow as tf

        model = load_model(model_path)
        with tempfile.TemporaryDirectory() as tmp:
            saved = write_saved_model(model, tuple(model.inputs[0].shape), Path(tmp) / "sm")
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), [SIGNATURE])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            representative = pick_representative(dataset, REPRESENTATIVE_COUNT)
            converter.representative_dataset = lambda: _one_by_one(representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter._experimental_disable_per_channel = True
            data = strip_tflite_names(converter.convert())
    out_dir = out_dir or model_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model_path.stem}-int8-full-per-tensor.tflite"
    path.write_bytes(data)
    x_parity, y_parity = pick_test_samples(dataset, 512)
    x_test = dataset.x_test.astype(np.float32, copy=False)
    with open_litert(path) as runner:
        parity = compare_logits(
            keras_logits(model, x_parity.astype(np.float32)),
            runner_logits(runner, x_parity.astype(np.float32)),
            y_parity,
            TOLERANCES["int8-full"],
        )
        accuracy = measure_accuracy(
            runner_logits(runner, x_test),
            np.asarray(dataset.y_test),
            predicted_classes(keras_logits(model, x_test)),
        )
    return {
        "artifact": f"{model_path.stem} tflite-int8-full per-tensor",
        "source": "bench/size_target.py",
        "model_params": int(model_cost(model).params),
        "file": str(path),
        "bytes": len(data),
        "names_stripped": True,
        "weights": "int8 per-tensor",
        "test_accuracy": accuracy.accuracy,
        "keras_test_accuracy": accuracy.keras_accuracy,
        "parity_passed": parity.passed,
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
