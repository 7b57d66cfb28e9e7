"""Time data-aware compression on a full-size keras.applications model (random weights).

Builds MobileNetV2 (alpha 1.0 unless --alpha), ResNet50 or MobileNetV3Small with
`weights=None` (seeded random weights, 1000 classes unless --classes) at --size x --size x 3
and makes N calibration images: pixels drawn uniformly (seeded) in [0, 255], then mapped as
the model's `preprocess_input` would map them (MobileNetV2: to [-1, 1]; ResNet50, "caffe":
BGR means subtracted; MobileNetV3Small: left in [0, 255], it rescales inside the model).
Then it runs
`compress_model(..., factoriser="whitened", calibration=images)` at a MAC budget and records
the wall time of each phase (analyse, calibration = the whitened analysis, allocation, fit =
the layer-by-layer fit, apply), their total, the peak resident memory of this process
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`: the whole Python process, TensorFlow included),
the layer counts and the MACs before and after.

Usage (run alone on the machine when the figures are meant to be quoted):
    python bench/scale_compression.py --model MobileNetV2 --images 256 --target 0.6 \\
        --out bench/results/scale-mobilenetv2

Writes results.json, table.md and command.json into --out; an existing, non-empty --out is
refused without --overwrite.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.results.provenance import (  # noqa: E402
    command_record,
    write_command_json,
)
from lowrank_edge.errors import LowrankEdgeError  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402

# model name -> (keras.applications constructor keywords, how pixels in [0, 255] are mapped)
MODELS = {
    "MobileNetV2": ({"alpha": 1.0}, "symmetric: x / 127.5 - 1"),
    "ResNet50": ({}, "caffe: x - (103.939, 116.779, 123.68) per channel (BGR order)"),
    "MobileNetV3Small": ({}, "none: [0, 255], the model rescales"),
}
CAFFE_MEANS = (103.939, 116.779, 123.68)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--images", type=int, default=256, help="calibration images")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--target", type=float, default=0.6, help="fraction of MACs kept")
    parser.add_argument("--classes", type=int, default=1000, help="classifier outputs")
    parser.add_argument("--alpha", type=float, default=1.0, help="width (MobileNetV2 only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser.parse_args(argv)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing, non-empty results folder unless told to overwrite it."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise LowrankEdgeError(f"{out} already holds results; pass --overwrite to replace them")


def build(name: str, size: int, seed: int, classes: int = 1000, alpha: float = 1.0):
    """The keras.applications model with seeded random weights (weights=None)."""
    import keras

    keras.utils.set_random_seed(seed)
    keywords = dict(MODELS[name][0])
    if "alpha" in keywords:
        keywords["alpha"] = alpha
    elif alpha != 1.0:
        raise LowrankEdgeError(f"--alpha applies to MobileNetV2 only, not {name}")
    constructor = getattr(keras.applications, name)
    return constructor(input_shape=(size, size, 3), weights=None, classes=classes, **keywords)


def calibration_images(name: str, count: int, size: int, seed: int):
    """`count` float32 images: uniform (seeded) pixels in [0, 255], preprocessed as `name`
    expects (see MODELS)."""
    import numpy as np

    pixels = np.random.default_rng(seed).uniform(0.0, 255.0, (count, size, size, 3))
    mode = MODELS[name][1].split(":")[0]
    if mode == "symmetric":
        pixels = pixels / 127.5 - 1.0
    elif mode == "caffe":
        pixels = pixels - np.asarray(CAFFE_MEANS)
    return pixels.astype(np.float32)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if platform.system() == "Darwin" else peak * 1024)


def run(args: argparse.Namespace) -> dict:
    """Build, compress, and return the record of what it took."""
    from lowrank_edge.benchmark.reporting.progress import Progress
    from lowrank_edge.compress import compress_model
    from lowrank_edge.compress.steps import Budget

    start = time.perf_counter()
    model = build(args.model, args.size, args.seed, args.classes, args.alpha)
    images = calibration_images(args.model, args.images, args.size, args.seed)
    setup = time.perf_counter() - start
    rss_before = peak_rss_bytes()
    result = compress_model(
        model,
        Budget("macs", args.target),
        factoriser="whitened",
        calibration=images,
        progress=Progress(1),
    )
    seconds = result.settings["seconds"]
    totals = result.totals.to_dict()
    layers = result.layers
    return {
        "model": args.model,
        "alpha": args.alpha if "alpha" in MODELS[args.model][0] else None,
        "classes": args.classes,
        "input_shape": [args.size, args.size, 3],
        "weights": f"random (weights=None, keras.utils.set_random_seed({args.seed}))",
        "calibration_images": args.images,
        "calibration_images_made": "uniform pixels in [0, 255], seeded; then "
        + MODELS[args.model][1],
        "target_macs": args.target,
        "seconds": {
            "build_model_and_images": round(setup, 2),
            **seconds,
            "calibration_allocation_fit": round(
                sum(seconds.get(k, 0.0) for k in ("calibration", "allocation", "fit")), 2
            ),
        },
        "peak_rss_bytes": {
            "process_after_build": rss_before,
            "process_at_end": peak_rss_bytes(),
            "what": "resource.getrusage(RUSAGE_SELF).ru_maxrss of the whole process",
        },
        "layers": {
            "reported": len(layers),
            "factorable": sum(1 for layer in layers if layer.full_rank is not None),
            "factorised": sum(1 for layer in layers if layer.factorised),
        },
        "totals": totals,
    }


def table(record: dict) -> str:
    """A short markdown summary of one run."""
    s, t = record["seconds"], record["totals"]
    gib = record["peak_rss_bytes"]["process_at_end"] / 2**30
    return "\n".join(
        [
            f"# {record['model']} {record['input_shape']}, {record['calibration_images']} "
            f"calibration images, MAC target {record['target_macs']:g}",
            "",
            "| phase | seconds |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in s.items()),
            "",
            f"- peak RSS of the process: {gib:.2f} GiB",
            f"- MACs: {t['macs_before']:,} -> {t['macs_after']:,} ({t['macs_ratio']:.3f})",
            f"- params: {t['params_before']:,} -> {t['params_after']:,} ({t['params_ratio']:.3f})",
            f"- layers: {record['layers']['reported']} reported, "
            f"{record['layers']['factorable']} factorable (all fitted layer by layer), "
            f"{record['layers']['factorised']} factorised",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_out(args.out, args.overwrite)
        provenance = command_record(None if argv is None else [__file__, *argv], checkout=REPO)
        record = run(args)
    except LowrankEdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_command_json(args.out, provenance, overwrite=True)
    write_json_atomic(args.out / "results.json", record, overwrite=True)
    write_text_atomic(args.out / "table.md", table(record), overwrite=True)
    print(table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
