"""`train`, `compress`, `evaluate` and `pipeline`: the TensorFlow side of the CLI.

Heavy imports (TensorFlow, Keras) happen inside each command, never at import time.
"""

from __future__ import annotations

from pathlib import Path

import click

from lowrank_edge.cli.options import data_dir_option, dataset_option, overwrite_option
from lowrank_edge.errors import LowrankEdgeError


def _parse_widths(ctx, param, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError as error:
        message = f"expected comma-separated integers like 16,32,64, got {value!r}"
        raise click.BadParameter(message) from error
    if not widths or min(widths) < 1:
        raise click.BadParameter("every width must be >= 1")
    return widths


_augment_option = click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Random shifts of up to 2 pixels of the training images (training and fine-tuning).",
)


_balance_option = click.option(
    "--balance-classes/--no-balance-classes",
    default=True,
    show_default=True,
    help="Weight classes by inverse frequency (EMNIST-47's training split is skewed).",
)


def _model_options(func):
    for option in reversed(
        [
            click.option(
                "--widths",
                default="16,32,64",
                show_default=True,
                callback=_parse_widths,
                help="Channels of each residual stage.",
            ),
            click.option(
                "--blocks",
                default=1,
                show_default=True,
                type=click.IntRange(1),
                help="Residual blocks per stage.",
            ),
            click.option(
                "--head-units",
                default=128,
                show_default=True,
                type=click.IntRange(0),
                help="Hidden Dense units before the classifier (0: none).",
            ),
        ]
    ):
        func = option(func)
    return func


# Shared by `compress` and `pipeline`.
_energy_measure_option = click.option(
    "--energy-measure",
    type=click.Choice(["squared", "abs"]),
    default="squared",
    show_default=True,
    help="Energy as sum of sigma^2 (squared) or of sigma (abs).",
)
_round_to_option = click.option(
    "--round-to",
    type=click.IntRange(1),
    default=None,
    help="Round each rank up to a multiple of this (e.g. 8 for SIMD).",
)


def _compress_options(func):
    for option in reversed(
        [
            click.option(
                "--energy",
                type=click.FloatRange(0, 1, min_open=True),
                default=None,
                help="Keep the smallest rank whose sum of sigma^2 reaches this fraction.",
            ),
            click.option(
                "--rank",
                type=click.IntRange(1),
                default=None,
                help="Keep this fixed rank in every layer (capped at full rank).",
            ),
            click.option(
                "--rank-fraction",
                type=click.FloatRange(0, 1, min_open=True),
                default=None,
                help="Keep this fraction of each layer's full rank.",
            ),
            _energy_measure_option,
            _round_to_option,
            click.option(
                "--no-break-even", is_flag=True, help="Factorise even where it saves no parameters."
            ),
            click.option(
                "--include",
                multiple=True,
                help="Only layers whose name matches this glob (repeatable).",
            ),
            click.option(
                "--exclude",
                multiple=True,
                help="Skip layers whose name matches this glob (repeatable).",
            ),
        ]
    ):
        func = option(func)
    return func


def _compress_options_from(kwargs) -> object:
    from lowrank_edge.pipeline.run import CompressOptions

    return CompressOptions(
        energy=kwargs["energy"],
        rank=kwargs["rank"],
        fraction=kwargs["rank_fraction"],
        measure=kwargs["energy_measure"],
        round_to=kwargs["round_to"],
        break_even=not kwargs["no_break_even"],
        include=tuple(kwargs["include"]),
        exclude=tuple(kwargs["exclude"]),
    )


def _load_data(dataset: str | None, data_dir: Path | None, needed_for: str):
    from lowrank_edge.data import load_dataset

    if dataset is None:
        raise LowrankEdgeError(f"{needed_for} needs data: pass --dataset mnist|emnist")
    click.echo(f"[data] loading {dataset}")
    return load_dataset(dataset, data_dir)


@click.command()
@dataset_option()
@data_dir_option
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1))
@_augment_option
@_balance_option
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option(
    "--lr",
    default=2e-3,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Peak learning rate (Adam, cosine decay).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@_model_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to save the model [default: models/<dataset>/base.keras].",
)
@overwrite_option()
def train(
    dataset,
    data_dir,
    epochs,
    augment,
    balance_classes,
    batch_size,
    lr,
    seed,
    widths,
    blocks,
    head_units,
    out,
    overwrite,
):
    """Train the mini-ResNet on a dataset and save it as .keras."""
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.resnet import ResNetConfig, build_mini_resnet
    from lowrank_edge.model.saving import save_model
    from lowrank_edge.model.train import FitConfig, fit
    from lowrank_edge.pipeline.measure import accuracy_record

    out = out or Path("models") / (dataset or "model") / "base.keras"
    check_can_write(out, overwrite)
    data = _load_data(dataset, data_dir, "train")
    config = ResNetConfig(
        num_classes=data.num_classes, widths=widths, blocks_per_stage=blocks, head_units=head_units
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
        ),
    )
    save_model(model, out, overwrite=overwrite)
    acc = accuracy_record(model, data)
    click.echo(
        f"[train] {result.seconds:.0f} s; val accuracy {acc['val']:.4f}, "
        f"test accuracy {acc['test']:.4f}; saved {out}"
    )


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@_compress_options
@dataset_option()
@data_dir_option
@click.option(
    "--finetune-epochs",
    default=8,
    show_default=True,
    type=click.IntRange(0),
    help="Fine-tuning epochs after compression (0: compress only, no data needed).",
)
@click.option(
    "--lr",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Fine-tuning peak learning rate (Adam, cosine decay).",
)
@_augment_option
@_balance_option
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option(
    "--patience",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Early-stopping patience on validation accuracy.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .keras [default: <model folder>/<e75|r16|f0.25>.keras].",
)
@overwrite_option()
def compress(
    model_path,
    dataset,
    data_dir,
    finetune_epochs,
    lr,
    augment,
    balance_classes,
    batch_size,
    patience,
    seed,
    out,
    overwrite,
    **kwargs,
):
    """SVD-compress MODEL_PATH (.keras), optionally fine-tune, and save it with a report."""
    from lowrank_edge.fileio import check_can_write
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.model.train import FitConfig
    from lowrank_edge.pipeline.report import layer_report_table
    from lowrank_edge.pipeline.run import compress_and_finetune, save_compressed

    options = _compress_options_from(kwargs)
    options.policy()  # validate the choice before any slow work
    out = out or model_path.with_name(f"{options.label()}.keras")
    if out.resolve() == model_path.resolve():
        raise LowrankEdgeError(f"--out {out} would overwrite the input model")
    check_can_write(out, overwrite)
    model = load_model(model_path)
    data = None
    if finetune_epochs > 0 or dataset is not None:
        data = _load_data(dataset, data_dir, f"--finetune-epochs {finetune_epochs}")
    finetune = (
        FitConfig(
            epochs=finetune_epochs,
            batch_size=batch_size,
            learning_rate=lr,
            patience=patience,
            seed=seed,
            augment=augment,
            balance_classes=balance_classes,
        )
        if finetune_epochs
        else None
    )
    result = compress_and_finetune(model, options, data, finetune, log=click.echo)
    click.echo(layer_report_table(result.compression["layers"]))
    sidecar = save_compressed(result, out, overwrite=overwrite)
    click.echo(f"[compress] saved {out} and {sidecar}")


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False, path_type=Path))
@dataset_option()
@data_dir_option
def evaluate(model_path, dataset, data_dir):
    """Print params, MACs, file size and validation/test accuracy of MODEL_PATH."""
    from lowrank_edge.model.saving import load_model
    from lowrank_edge.pipeline.measure import accuracy_record, cost_record, file_bytes

    model = load_model(model_path)
    data = _load_data(dataset, data_dir, "evaluate")
    if model.output_shape[-1] != data.num_classes:
        raise LowrankEdgeError(
            f"{model_path}: model has {model.output_shape[-1]} outputs but {data.name} has "
            f"{data.num_classes} classes"
        )
    cost = cost_record(model)
    acc = accuracy_record(model, data)
    click.echo(f"model        {model_path}")
    click.echo(f"params       {cost['params']:,} ({cost['trainable_params']:,} trainable)")
    click.echo(f"MACs         {cost['macs']:,} (FLOPs {cost['flops']:,})")
    click.echo(f"file bytes   {file_bytes(model_path):,}")
    click.echo(f"val acc      {acc['val']:.4f}")
    click.echo(f"test acc     {acc['test']:.4f}")


@click.command()
@dataset_option()
@data_dir_option
@click.option(
    "--energies",
    default="0.5,0.75,0.9",
    show_default=True,
    help="Comma-separated energy thresholds, one compressed model each.",
)
@click.option(
    "--base",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Start from this trained .keras instead of training one.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: models/<dataset>].",
)
@click.option(
    "--epochs",
    default=6,
    show_default=True,
    type=click.IntRange(1),
    help="Training epochs for the base model.",
)
@_augment_option
@_balance_option
@click.option("--finetune-epochs", default=8, show_default=True, type=click.IntRange(0))
@click.option("--finetune-lr", default=1e-3, show_default=True, type=float)
@_energy_measure_option
@_round_to_option
@_model_options
@click.option("--export", "export_formats", default="", help="Also export every model: tflite,onnx")
@click.option(
    "--tflite-variants",
    default="float32",
    show_default=True,
    help="TFLite variants to export: float32,float16,int8-dynamic,int8-full",
)
@click.option("--seed", default=0, show_default=True, type=int)
@overwrite_option()
def pipeline(
    dataset,
    data_dir,
    energies,
    base,
    out_dir,
    epochs,
    augment,
    balance_classes,
    finetune_epochs,
    finetune_lr,
    energy_measure,
    round_to,
    widths,
    blocks,
    head_units,
    export_formats,
    tflite_variants,
    seed,
    overwrite,
):
    """Train (or load --base), then compress, fine-tune and measure at each energy."""
    from lowrank_edge.model.resnet import ResNetConfig
    from lowrank_edge.model.train import FitConfig
    from lowrank_edge.pipeline.run import (
        CompressOptions,
        PipelineConfig,
        parse_energies,
        run_pipeline,
    )

    if dataset is None:
        raise LowrankEdgeError("pipeline needs --dataset mnist|emnist")
    config = PipelineConfig(
        dataset=dataset,
        data_dir=data_dir,
        out_dir=out_dir or Path("models") / dataset,
        energies=parse_energies(energies),
        base=base,
        model=ResNetConfig(widths=widths, blocks_per_stage=blocks, head_units=head_units),
        train=FitConfig(epochs=epochs, seed=seed, augment=augment, balance_classes=balance_classes),
        finetune=FitConfig(
            epochs=finetune_epochs,
            learning_rate=finetune_lr,
            patience=3,
            seed=seed,
            augment=augment,
            balance_classes=balance_classes,
        ),
        compress=CompressOptions(energy=1.0, measure=energy_measure, round_to=round_to),
        export_formats=_split_list(export_formats, {"tflite", "onnx"}, "--export"),
        tflite_variants=_split_list(
            tflite_variants,
            {"float32", "float16", "int8-dynamic", "int8-full"},
            "--tflite-variants",
        ),
        overwrite=overwrite,
    )
    run_pipeline(config, log=click.echo)


def _split_list(text: str, allowed: set[str], option: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise LowrankEdgeError(
            f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(sorted(allowed))}"
        )
    return items


COMMANDS = [train, compress, evaluate, pipeline]
