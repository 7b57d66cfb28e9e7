"""`lowrank-edge export`: a `.keras` model to parity-checked TFLite/ONNX artifacts and a manifest.

TensorFlow is imported inside the command only (the CLI must start on a TF-free device).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from lowrank_edge.cli.options import (
    SPLIT_SEED_HELP,
    DataSource,
    comma_list_option,
    custom_objects_option,
    data_options,
    max_quant_drop_option,
    overwrite_option,
    seed_option,
)
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.exporter import REPRESENTATIVE_COUNT
from lowrank_edge.export.variants import FORMATS, INT8_IO_TYPES, ONNX_VARIANTS, TFLITE_VARIANTS


@click.command("export")
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@custom_objects_option
@comma_list_option(
    "--format",
    "formats",
    choices=FORMATS,
    default=",".join(FORMATS),
    repeatable=True,
    help="Artifact formats.",
)
@comma_list_option(
    "--variant",
    "variants",
    choices=TFLITE_VARIANTS,
    repeatable=True,
    show_default="float32",
    help="TFLite variants.",
)
@comma_list_option(
    "--onnx-variants",
    "onnx_variants",
    choices=ONNX_VARIANTS,
    show_default="float32",
    help="ONNX variants (int8 ones by onnxruntime.quantization).",
)
@click.option("--all-variants", is_flag=True, help="Export every variant of each chosen format.")
@click.option(
    "--int8-io",
    type=click.Choice(INT8_IO_TYPES),
    is_flag=False,
    flag_value="uint8",
    default=None,
    help="Integer input/output for int8-full: uint8 (the bare flag) or int8.",
)
@click.option(
    "--calibration-images",
    type=click.IntRange(1),
    default=None,
    show_default=f"{REPRESENTATIVE_COUNT}, or the whole training split if smaller",
    help="Training images that set the int8 ranges of int8-full (TFLite) and int8-qdq (ONNX).",
)
@click.option(
    "--strip-names",
    is_flag=True,
    help="Write the TFLite artifacts without tensor names, subgraph name, description and "
    "signature defs (a few kB smaller; checked like every artifact; LiteRT's signature runner "
    "and readable tensor names in model viewers are lost).",
)
@click.option(
    "--per-tensor-weights",
    is_flag=True,
    help="TFLite int8 variants with one weight scale per tensor instead of per output channel "
    "(smaller files; check the recorded accuracy).",
)
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@click.option(
    "--samples",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Test images for each artifact's parity check.",
)
@data_options("for parity checks, test accuracy, samples.npz and int8 calibration")
@seed_option(SPLIT_SEED_HELP[:-1] + "; int8 calibration images come from its train part.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="beside the model, named after it: models/x/e75/",
    help="Export folder.",
)
@max_quant_drop_option
@click.option(
    "--strict",
    is_flag=True,
    help='Leave out a variant that fails its gate (default: write it, marked "passed": false '
    "in the manifest, which bench and recommend skip); the others are written, then exit 1.",
)
@click.option("--no-verify", is_flag=True, help="Skip the parity checks and gates.")
@overwrite_option("Replace an existing export.")
@click.option("--verbose", is_flag=True, help="Show the converters' own output.")
def export(
    model_path: Path,
    formats: tuple[str, ...],
    variants: tuple[str, ...] | None,
    onnx_variants: tuple[str, ...] | None,
    all_variants: bool,
    int8_io: str | None,
    calibration_images: int | None,
    strip_names: bool,
    per_tensor_weights: bool,
    opset: int,
    samples: int,
    source: DataSource,
    seed: int,
    out_dir: Path | None,
    max_quant_drop: float,
    strict: bool,
    no_verify: bool,
    overwrite: bool,
    verbose: bool,
) -> None:
    """Export MODEL_PATH (.keras) to TFLite/ONNX, check each file's gate, write manifest.json.

    Float variants must match Keras (parity); quantized ones may lose at most --max-quant-drop
    points of test accuracy (without --data: agree with the float model on 99% of the inputs).
    Exit 0 when the export is written, with a warning line per variant marked failed; with
    --strict, exit 1 after writing the variants that passed, naming the ones left out.
    """
    if variants and "tflite" not in formats:
        raise LowrankEdgeError("--variant applies to TFLite: add --format tflite")
    if onnx_variants and "onnx" not in formats:
        raise LowrankEdgeError("--onnx-variants applies to ONNX: add --format onnx")
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from lowrank_edge.export import export_model

    manifest = export_model(
        model_path,
        out_dir if out_dir is not None else model_path.with_suffix(""),
        formats=formats,
        tflite_variants=TFLITE_VARIANTS if all_variants else (variants or ("float32",)),
        onnx_variants=ONNX_VARIANTS if all_variants else (onnx_variants or ("float32",)),
        dataset=source.loader(seed),
        parity_samples=samples,
        opset=opset,
        int8_io=int8_io or False,
        calibration_images=calibration_images,
        strip_names=strip_names,
        per_tensor_weights=per_tensor_weights,
        max_quant_drop=max_quant_drop,
        strict=strict,
        overwrite=overwrite,
        verify=not no_verify,
        verbose=verbose,
        log=click.echo,
    )
    click.echo(f"manifest: {manifest.path}")


COMMANDS = [export]
