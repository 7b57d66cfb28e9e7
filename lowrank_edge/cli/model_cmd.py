"""`train`, `compress`, `evaluate` and `pipeline`: the TensorFlow side of the CLI.

Heavy imports (TensorFlow, Keras) happen inside each command, never at import time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
from click.core import ParameterSource

from lowrank_edge.cli.options import (
    DEFAULT_TARGET_MACS,
    RUN_SEED_HELP,
    SPLIT_SEED_HELP,
    DataSource,
    augment_option,
    balance_option,
    batch_size_option,
    check_one_latency_target,
    comma_list_option,
    compress_options_from,
    compression_options,
    custom_objects_option,
    data_options,
    distribute_options,
    energies_option,
    energy_option,
    factoriser_options,
    finetune_options,
    finetune_recipe_from,
    latency_options,
    latency_target_option,
    latency_targets_option,
    max_quant_drop_option,
    model_options,
    overwrite_option,
    seed_option,
    target_option,
    targets_option,
    warn_deprecated,
    worker_outputs,
)
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import (
    DEFAULT_MAX_QUANT_DROP,
    FORMATS,
    ONNX_VARIANTS,
    TFLITE_VARIANTS,
)


@click.command()
@data_options("to train on", required=True)
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1))
@augment_option
@balance_option
@batch_size_option
@click.option(
    "--lr",
    default=2e-3,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Peak learning rate (Adam, cosine decay).",
)
@seed_option(RUN_SEED_HELP)
@model_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="models/<dataset>/base.keras",
    help="Where to save the model.",
)
@distribute_options
@overwrite_option()
def train(
    source: DataSource,
    epochs: int,
    augment: bool,
    balance_classes: bool,
    batch_size: int,
    lr: float,
    seed: int,
    widths: tuple[int, ...],
    blocks: int,
    head_units: int,
    out: Path | None,
    distribute: str,
    backup_dir: Path | None,
    peer_timeout: float,
    overwrite: bool,
) -> None:
    """Train the mini-ResNet on a dataset and save it as .keras."""
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet, config_for_data
    from lowrank_edge.model.saving import save_model
    from lowrank_edge.model.train import FitConfig, fit
    from lowrank_edge.pipeline.measure import accuracy_record

    stack = contextlib.ExitStack()
    out = out or Path("models") / source.name / "base.keras"
    out = worker_outputs(distribute, peer_timeout, out, stack)
    check_can_write(out, overwrite)
    data = source.load(seed, needed_for="train")
    config = config_for_data(
        ResNetConfig(widths=widths, blocks_per_stage=blocks, head_units=head_units), data
    )
    model = build_mini_resnet(config)
    click.echo(f"[train] {config}: {model.count_params():,} params, {epochs} epochs")
    result = fit(
        model,
        data,
        FitConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            seed=seed,
            augment=augment,
            balance_classes=balance_classes,
            distribute=distribute,
            backup_dir=str(backup_dir) if backup_dir else None,
            peer_timeout=peer_timeout,
        ),
    )
    with stack:
        save_model(model, out, overwrite=overwrite)
    acc = accuracy_record(model, data)
    click.echo(
        f"[train] {result.seconds:.0f} s, {result.steps} steps; val accuracy {acc['val']:.4f}, "
        f"test accuracy {acc['test']:.4f}; saved {out}"
    )


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@custom_objects_option
@energy_option
@target_option
@latency_target_option
@latency_options
@compression_options
@factoriser_options
@data_options(
    "for calibration, fine-tuning and measuring; needed unless --factoriser svd and "
    "--finetune-epochs 0"
)
@finetune_options
@click.option(
    "--lr",
    "old_lr",
    type=click.FloatRange(0, min_open=True),
    default=None,
    hidden=True,
    help="Deprecated spelling of --finetune-lr.",
)
@augment_option
@balance_option
@batch_size_option
@seed_option("Seed of the train/validation split and of fine-tuning.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="<model folder>/<e75|r16|f0.25|m0.33|p0.2|l0.5>.keras",
    help="Output .keras.",
)
@distribute_options
@overwrite_option()
def compress(
    model_path: Path,
    energy: float | None,
    target_macs: float | None,
    target_params: float | None,
    source: DataSource,
    finetune_epochs: int,
    finetune_lr: float,
    patience: int,
    from_logits: bool | None,
    old_lr: float | None,
    augment: bool,
    balance_classes: bool,
    batch_size: int,
    seed: int,
    out: Path | None,
    distribute: str,
    backup_dir: Path | None,
    peer_timeout: float,
    overwrite: bool,
    **compression: object,
) -> None:
    """SVD-compress MODEL_PATH (.keras), optionally fine-tune, and save it with a report."""
    if (distribute == "mirrored" or backup_dir is not None) and not finetune_epochs:
        raise LowrankEdgeError("--distribute mirrored and --backup-dir apply to fine-tuning: "
                               "add --finetune-epochs")  # fmt: skip
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.model.train import FitConfig
    from lowrank_edge.pipeline.report import layer_report_table
    from lowrank_edge.pipeline.run import DATA_NEEDED, compress_and_finetune, save_compressed

    if old_lr is not None:
        warn_deprecated("compress --lr is deprecated; use --finetune-lr")
        finetune_lr = old_lr
    recipe = finetune_recipe_from(compression, finetune_epochs)
    options = compress_options_from(
        compression, energy=energy, target_macs=target_macs, target_params=target_params, seed=seed
    )
    options.policy()  # validate the choice before any slow work
    options.check_schedule(finetune_epochs)
    if options.target_latency is not None:
        options.latency.load()  # the table and its condition, before any slow work
    out = out or model_path.with_name(f"{options.label()}.keras")
    if out.resolve() == model_path.resolve():
        raise LowrankEdgeError(f"--out {out} would overwrite the input model")
    stack = contextlib.ExitStack()
    out = worker_outputs(distribute, peer_timeout, out, stack)
    stack.enter_context(_sharded_calibration(distribute, peer_timeout))
    check_can_write(out, overwrite)
    model = load_model(model_path)
    if options.needs_data and source.spec is None:
        raise LowrankEdgeError(DATA_NEEDED)
    data = source.load(
        seed,
        model,
        needed_for=f"--finetune-epochs {finetune_epochs}" if finetune_epochs else None,
        model_path=model_path,
    )
    finetune = (
        FitConfig(
            epochs=finetune_epochs,
            batch_size=batch_size,
            learning_rate=finetune_lr,
            patience=patience,
            seed=seed,
            augment=augment,
            balance_classes=balance_classes,
            keep_start=True,
            from_logits=from_logits,
            distribute=distribute,
            backup_dir=str(backup_dir) if backup_dir else None,
            peer_timeout=peer_timeout,
            **recipe,
        )
        if finetune_epochs
        else None
    )
    with stack:
        result = compress_and_finetune(model, options, data, finetune, log=click.echo)
        click.echo(layer_report_table(result.compression["layers"]))
        sidecar = save_compressed(result, out, overwrite=overwrite)
        click.echo(f"[compress] saved {out} and {sidecar}")


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@custom_objects_option
@data_options("to evaluate on", required=True)
@seed_option(SPLIT_SEED_HELP)
def evaluate(model_path: Path, source: DataSource, seed: int) -> None:
    """Print params, MACs, file size and validation/test accuracy of MODEL_PATH."""
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.pipeline.measure import accuracy_record, cost_record, file_bytes

    model = load_model(model_path)
    data = source.load(seed, model, needed_for="evaluate", model_path=model_path)
    cost = cost_record(model)
    acc = accuracy_record(model, data)
    click.echo(f"model        {model_path}")
    click.echo(f"params       {cost['params']:,} ({cost['trainable_params']:,} trainable)")
    click.echo(f"MACs         {cost['macs']:,} (FLOPs {cost['flops']:,})")
    click.echo(f"file bytes   {file_bytes(model_path):,}")
    click.echo(f"val acc      {acc['val']:.4f}")
    click.echo(f"test acc     {acc['test']:.4f}")


@click.command()
@data_options("to train, fine-tune and measure on", required=True)
@targets_option
@latency_targets_option
@latency_options
@energies_option
@compression_options
@factoriser_options
@click.option(
    "--base",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Start from this trained .keras instead of training one.",
)
@custom_objects_option
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="models/<dataset>",
    help="Output folder.",
)
@click.option(
    "--epochs",
    default=6,
    show_default=True,
    type=click.IntRange(1),
    help="Training epochs for the base model.",
)
@augment_option
@balance_option
@batch_size_option
@finetune_options
@model_options
@comma_list_option("--export", "export_formats", choices=FORMATS, help="Also export every model.")
@comma_list_option(
    "--tflite-variants",
    choices=TFLITE_VARIANTS,
    default="float32",
    show_default=True,
    help="TFLite variants to export.",
)
@comma_list_option(
    "--onnx-variants",
    "onnx_variants",
    choices=ONNX_VARIANTS,
    default="float32",
    show_default=True,
    help="ONNX variants to export (int8 ones by onnxruntime.quantization).",
)
@click.option(
    "--bench/--no-bench",
    "bench",
    default=True,
    show_default=True,
    help="After --export: time every exported artifact on this machine (LiteRT / ONNX Runtime, "
    "1 thread, batch 32) into <out-dir>/bench/ and end by printing which file to ship.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="The recommendation's accuracy budget: points below the original float32 model.",
)
@max_quant_drop_option
@seed_option(RUN_SEED_HELP)
@distribute_options
@overwrite_option()
def pipeline(
    source: DataSource,
    target_macs: str | None,
    target_params: str | None,
    energies: str | None,
    base: Path | None,
    out_dir: Path | None,
    epochs: int,
    augment: bool,
    balance_classes: bool,
    batch_size: int,
    finetune_epochs: int,
    finetune_lr: float,
    patience: int,
    from_logits: bool | None,
    widths: tuple[int, ...],
    blocks: int,
    head_units: int,
    export_formats: tuple[str, ...] | None,
    tflite_variants: tuple[str, ...],
    onnx_variants: tuple[str, ...],
    bench: bool,
    max_accuracy_drop: float,
    max_quant_drop: float,
    seed: int,
    distribute: str,
    backup_dir: Path | None,
    peer_timeout: float,
    overwrite: bool,
    **compression: object,
) -> None:
    """Train (or load --base), then compress, fine-tune and measure at each MAC, parameter or
    latency budget and each energy (or once at --rank / --rank-fraction)."""
    from lowrank_edge.model.distribute import is_chief

    stack = contextlib.ExitStack()  # the strategy first, before any other TensorFlow work
    out_dir = worker_outputs(distribute, peer_timeout, out_dir or Path("models") / source.name,
                             stack)  # fmt: skip
    chief = is_chief(distribute)
    from lowrank_edge.model.resnet import ResNetConfig
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.model.train import FitConfig
    from lowrank_edge.pipeline.run import (
        PipelineConfig,
        parse_fractions,
        parse_speedups,
        run_pipeline,
    )
    from lowrank_edge.pipeline.ship import ShipStep

    target_speedup = compression.pop("target_speedup")
    target_latency = compression.pop("target_latency")
    check_one_latency_target(target_speedup, target_latency)
    latency_fractions = ()
    if target_speedup is not None:
        latency_fractions = parse_speedups(target_speedup)
    elif target_latency is not None:
        latency_fractions = parse_fractions(target_latency, "--target-latency")
    fixed = [
        flag
        for flag, value in (
            ("--rank", compression["rank"]),
            ("--rank-fraction", compression["rank_fraction"]),
        )
        if value is not None
    ]
    lists = [
        flag
        for flag, value in (
            ("--energies", energies),
            ("--target-macs", target_macs),
            ("--target-params", target_params),
            ("--target-speedup/--target-latency", latency_fractions or None),
        )
        if value is not None
    ]
    if len(fixed) > 1 or (fixed and lists):
        raise LowrankEdgeError(
            "choose --rank or --rank-fraction alone, or any of --energies, --target-macs, "
            f"--target-params and --target-speedup (got {' and '.join(fixed + lists)})"
        )
    if not fixed and not lists:
        target_macs = DEFAULT_TARGET_MACS
    if base is not None:
        context = click.get_current_context()
        shaping = [
            f"--{name.replace('_', '-')}"
            for name in ("epochs", "widths", "blocks", "head_units")
            if context.get_parameter_source(name) is ParameterSource.COMMANDLINE
        ]
        if shaping:
            verb = "trains or shapes" if len(shaping) == 1 else "train or shape"
            raise LowrankEdgeError(
                f"{' and '.join(shaping)} {verb} the base model, which --base {base} already gives"
            )
    for flag, variants, fmt in (
        ("--tflite-variants", tflite_variants, "tflite"),
        ("--onnx-variants", onnx_variants, "onnx"),
    ):
        if variants != ("float32",) and fmt not in (export_formats or ()):
            raise LowrankEdgeError(f"{flag} applies to exported files: add --export {fmt}")
    recipe = finetune_recipe_from(compression, finetune_epochs)
    if max_quant_drop != DEFAULT_MAX_QUANT_DROP and not export_formats:
        raise LowrankEdgeError("--max-quant-drop applies to exported files: add --export")
    common = {
        "batch_size": batch_size, "augment": augment, "balance_classes": balance_classes,
        "distribute": distribute, "backup_dir": str(backup_dir) if backup_dir else None,
        "peer_timeout": peer_timeout,
    }  # fmt: skip
    stack.enter_context(_sharded_calibration(distribute, peer_timeout))
    config = PipelineConfig(
        dataset=source.spec,
        data_dir=source.data_dir,
        out_dir=out_dir,
        energies=parse_fractions(energies) if energies else (),
        target_macs=parse_fractions(target_macs, "--target-macs") if target_macs else (),
        target_params=parse_fractions(target_params, "--target-params") if target_params else (),
        target_latency=latency_fractions,
        base=base,
        model=ResNetConfig(widths=widths, blocks_per_stage=blocks, head_units=head_units),
        train=FitConfig(epochs=epochs, **common),
        finetune=FitConfig(
            epochs=finetune_epochs,
            learning_rate=finetune_lr,
            patience=patience,
            track_test=True,
            keep_start=True,
            from_logits=from_logits,
            **recipe,
            **common,
        ),
        compress=compress_options_from(compression, seed=seed),
        # another worker trains and fine-tunes with the chief, then stops: no export, no bench
        export_formats=(export_formats or ()) if chief else (),
        tflite_variants=tflite_variants,
        onnx_variants=onnx_variants,
        max_quant_drop=max_quant_drop,
        ship=ShipStep(max_accuracy_drop=max_accuracy_drop) if bench and chief else None,
        seed=seed,
        overwrite=overwrite,
    )
    config.compress_settings()  # validate before any slow work
    load = source.loader(seed)
    with stack:
        run_pipeline(config, lambda: load(base and load_model(base)), log=click.echo)


def _sharded_calibration(distribute: str, peer_timeout: float):
    """The scope in which calibration sums this worker's share, all-reduced (multi-worker)."""
    from lowrank_edge.compress.shards import sharded_calibration
    from lowrank_edge.model.distribute import calibration_shards

    return sharded_calibration(calibration_shards(distribute, peer_timeout))


COMMANDS = [train, compress, evaluate, pipeline]
