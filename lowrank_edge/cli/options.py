"""Click options shared by several commands, declared once so their names, help and defaults agree.

Conventions every command follows:
- An option that takes several values takes ONE comma-separated list (`--threads 1,2`), parsed
  by `CommaList` / `CommaInts`. Options that used to be repeated instead (`export --format`,
  `--include`) still accept the repeated form, with a one-line deprecation warning on stderr.
- Defaults are shown as click's `[default: ...]`; one that is not a plain value is stated as a
  string (`none`, `the first model`, `models/<dataset>`), never inside the help sentence.
- A group of options is a list of decorators applied in order with `apply_options`, so a new
  option (e.g. a future `--target-macs`) is one more entry in the list and one more field in
  the builder beside it (`compress_options_from`).

TensorFlow-free: nothing here imports Keras, so every command module can import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lowrank_edge.data import SPEC_HELP
from lowrank_edge.data.raw import MAX_DECODED_BYTES
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import DEFAULT_MAX_QUANT_DROP
from lowrank_edge.model.recipe import DATA_AWARE_RECIPE
from lowrank_edge.runtime.preprocess import PREPROCESSINGS

Decorator = Callable[[Callable], Callable]


def apply_options(*options: Decorator) -> Decorator:
    """One decorator applying `options` so they appear in `--help` in the given order."""

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def warn_deprecated(message: str) -> None:
    """Print one `warning: ... is deprecated` line on stderr."""
    click.echo(f"warning: {message}", err=True)


# --- comma-separated lists ----------------------------------------------------------------


def parse_comma_list(text: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
    """'a, b,a' -> ('a', 'b'): stripped, empty items and repeats dropped, order kept.

    Raises ValueError with a one-line message when the list is empty or, given `choices`,
    names something not among them.
    """
    items = tuple(dict.fromkeys(item.strip() for item in str(text).split(",") if item.strip()))
    if not items:
        raise ValueError("expected at least one value")
    if choices is not None:
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise ValueError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
    return items


class CommaList(click.ParamType):
    """A comma-separated list of names, optionally restricted to `choices`."""

    name = "LIST"

    def __init__(self, choices: Sequence[str] | None = None) -> None:
        self.choices = tuple(choices) if choices is not None else None

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + ",".join(self.choices) + "]" if self.choices else "A,B,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        try:
            return parse_comma_list(value, self.choices)
        except ValueError as error:
            self.fail(str(error), param, ctx)


class CommaInts(click.ParamType):
    """A comma-separated list of integers, e.g. `1,2,4` (ranges are checked by the command)."""

    name = "INTS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        try:
            items = parse_comma_list(value)
            return tuple(int(item) for item in items)
        except ValueError:
            self.fail(f"expected comma-separated integers like 1,2,4, got {value!r}", param, ctx)


INTS = CommaInts()


def comma_list_option(
    *param_decls: str,
    choices: Sequence[str] | None = None,
    default: str | None = None,
    repeatable: bool = False,
    **kwargs: Any,
) -> Decorator:
    """A comma-list option; its value is a tuple of strings (None when absent and no default).

    `repeatable=True` is for options that used to be given once per value: the repeated form
    is still accepted (the values are joined) with a deprecation warning on stderr.
    """
    kind = CommaList(choices)
    if not repeatable:
        return click.option(*param_decls, type=kind, default=default, **kwargs)

    def join_repeats(ctx: click.Context, param: click.Parameter, value: tuple) -> tuple | None:
        if not value:
            return kind.convert(default, param, ctx) if default is not None else None
        joined = tuple(dict.fromkeys(item for group in value for item in group))
        if len(value) > 1:
            flag = param.opts[0]
            warn_deprecated(
                f"repeating {flag} is deprecated; give one comma-separated list: "
                f"{flag} {','.join(joined)}"
            )
        return joined

    if default is not None:
        kwargs.setdefault("show_default", default)
    return click.option(*param_decls, type=kind, multiple=True, callback=join_repeats, **kwargs)


# --- data ---------------------------------------------------------------------------------


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with the data files of mnist (IDX or Kaggle train.csv instead of the "
    "download) or emnist (IDX/CSV, required); for tfds:NAME, the TFDS data dir.",
)


@dataclass(frozen=True)
class DataSource:
    """What the data options of a command say: the spec and how to read and prepare it."""

    spec: str | None = None
    data_dir: Path | None = None
    preprocessing: str | None = None
    image_size: tuple[int, int] | None = None
    max_images: int | None = None
    stream: bool = False  # keep a folder on disk, decoding batches as they are used

    @property
    def name(self) -> str:
        """The data's short name, for default output folders (`models/<name>`)."""
        from lowrank_edge.data import spec_name

        return spec_name(self.spec)

    def load(
        self,
        seed: int,
        model=None,
        needed_for: str | None = None,
        model_path: Path | None = None,
    ):
        """The Dataset fitted to `model`'s input (if given), split with `seed`; None when no
        --data was given and `needed_for` is None, else one clear error saying what needs it.
        With `model_path`, the data must also agree with the model (shape and class count)."""
        import lowrank_edge.data
        from lowrank_edge.model.agreement import check_model_fits_data

        if self.spec is None:
            given = [flag for flag, value in self._details() if value is not None]
            if given:
                raise LowrankEdgeError(f"{given[0]} applies to data: pass --data SPEC too")
            if needed_for is None:
                return None
            raise LowrankEdgeError(f"{needed_for} needs data: pass --data SPEC ({SPEC_HELP})")
        click.echo(f"[data] loading {self.spec} (split seed {seed})")
        data = lowrank_edge.data.load_data(
            self.spec,
            image_shape=self.wanted_shape(model),
            preprocessing=self.preprocessing,
            seed=seed,
            data_dir=self.data_dir,
            max_images=self.max_images,
            stream=self.stream,
        )
        if model is not None and model_path is not None:
            check_model_fits_data(model, data, model_path)
        return data

    def loader(self, seed: int) -> Callable[..., Any] | None:
        """A function of a model loading the data for its input (see `load`); None without
        --data (data options given without it are refused here)."""
        if self.spec is None:
            return self.load(seed)
        return lambda model=None: self.load(seed, model)

    def wanted_shape(self, model=None) -> tuple[int | None, int | None, int | None] | None:
        """(height, width, channels) images are fitted to: the model's image input, its free
        size set by --image-size; without a model, --image-size alone (channels free)."""
        shape = tuple(getattr(model, "input_shape", None) or ())
        if len(shape) != 4:  # no model, or not a single image input: the data decides
            return None if self.image_size is None else (*self.image_size, None)
        height, width, channels = shape[1:]
        if self.image_size is not None:
            if height is not None and (height, width) != self.image_size:
                raise LowrankEdgeError(
                    f"--image-size {self.image_size[0]}x{self.image_size[1]} does not match the "
                    f"model's input {height}x{width}; leave it out (images are resized to the "
                    "model) or use a model of that size"
                )
            height, width = self.image_size
        return height, width, channels

    def _details(self) -> list[tuple[str, object]]:
        return [
            ("--data-dir", self.data_dir),
            ("--preprocess", self.preprocessing),
            ("--image-size", self.image_size),
            ("--max-images", self.max_images),
            ("--stream", self.stream or None),
        ]


def _parse_image_size(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    height, _, width = value.lower().partition("x")
    try:
        size = (int(height), int(width))
    except ValueError:
        raise click.BadParameter(f"expected HEIGHTxWIDTH like 224x224, got {value!r}") from None
    if min(size) < 1:
        raise click.BadParameter(f"height and width must be >= 1, got {value!r}")
    return size


_DATA_FIELDS = ("spec", "data_dir", "preprocess", "image_size", "max_images", "stream")


def data_read_options(spec_option: Decorator | None) -> Decorator:
    """The options saying how data is read (`spec_option` adds --data/--dataset); the command
    receives them as one `source: DataSource` argument."""
    options = [
        data_dir_option,
        click.option(
            "--preprocess",
            type=click.Choice(PREPROCESSINGS),
            default=None,
            show_default="unit for mnist/emnist, byte (0-255) for folders, uint8 .npz and tfds, "
            "none for float .npz",
            help="How pixels become model inputs: unit [0,1], symmetric [-1,1], byte [0,255], "
            "caffe or torch (keras.applications' ImageNet modes), none (values as stored). "
            "Recorded in the export manifest.",
        ),
        click.option(
            "--image-size",
            callback=_parse_image_size,
            default=None,
            metavar="HxW",
            show_default="the model's input size, else the images' own",
            help="Resize images to this height and width (bilinear).",
        ),
        click.option(
            "--max-images",
            type=click.IntRange(1),
            default=None,
            help="Keep at most this many images per class (a seeded draw; folders, .npz, tfds).",
        ),
        click.option(
            "--stream",
            is_flag=True,
            help="Keep a folder's images on disk and decode them batch by batch as they are "
            f"used (automatic when they would take over {MAX_DECODED_BYTES >> 30} GiB as "
            "float32).",
        ),
    ]
    if spec_option is not None:
        options.insert(0, spec_option)

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key, None) for key in _DATA_FIELDS}
            source = DataSource(
                spec=values["spec"],
                data_dir=values["data_dir"],
                preprocessing=values["preprocess"],
                image_size=values["image_size"],
                max_images=values["max_images"],
                stream=bool(values["stream"]),
            )
            return func(*args, source=source, **kwargs)

        return apply_options(*options)(command)

    return decorate


def data_options(use: str, required: bool = False) -> Decorator:
    """`--data SPEC` (alias `--dataset`) and the options reading it, stated one way:
    `[required]`, or else `[default: none]`."""
    help_text = f"Data {use}: {SPEC_HELP}."
    extra: dict[str, Any] = {"required": True} if required else {"show_default": "none"}
    spec = click.option(
        "--data", "--dataset", "spec", metavar="SPEC", default=None, help=help_text, **extra
    )
    return data_read_options(spec)


def seed_option(help: str) -> Decorator:
    """`--seed` (default 0): always the seed of the 80/20 train/validation split."""
    return click.option("--seed", default=0, show_default=True, type=int, help=help)


SPLIT_SEED_HELP = "Seed of the train/validation split (use the training run's seed)."
RUN_SEED_HELP = "Seed of the train/validation split, weight init, shuffling and augmentation."


def overwrite_option(help: str = "Replace existing output files instead of refusing.") -> Decorator:
    """`--overwrite`: outputs are never replaced without it."""
    return click.option("--overwrite", is_flag=True, help=help)


max_quant_drop_option = click.option(
    "--max-quant-drop",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_MAX_QUANT_DROP,
    show_default=True,
    help="Gate of the int8 variants: most points of full-test accuracy they may lose against "
    "the float32 Keras model (working int8 files measured <= 0.57 here, broken ones 2.2-2.9).",
)


# --- model and training -------------------------------------------------------------------


def _parse_widths(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError as error:
        message = f"expected comma-separated integers like 16,32,64, got {value!r}"
        raise click.BadParameter(message) from error
    if not widths or min(widths) < 1:
        raise click.BadParameter("every width must be >= 1")
    return widths


model_options = apply_options(
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
)


def _import_custom_objects(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    from lowrank_edge.model.custom_objects import import_custom_objects

    for spec in value:
        import_custom_objects(spec)
    return value


custom_objects_option = click.option(
    "--custom-objects",
    metavar="MODULE",
    multiple=True,
    expose_value=False,
    callback=_import_custom_objects,
    help="Import this module first (a name importable from the working directory, or a .py "
    "file; repeatable) so the Keras layers it registers with "
    "@keras.saving.register_keras_serializable load; safe_mode stays on.",
)


augment_option = click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Random shifts of up to 2 pixels of the training images (training and fine-tuning).",
)

balance_option = click.option(
    "--balance-classes/--no-balance-classes",
    default=True,
    show_default=True,
    help="Weight classes by inverse frequency (EMNIST-47's training split is skewed).",
)

batch_size_option = click.option(
    "--batch-size",
    default=128,
    show_default=True,
    type=click.IntRange(1),
    help="Batch size of every training run (training and fine-tuning).",
)

# Fine-tuning after compression (`compress` and `pipeline`).
finetune_options = apply_options(
    click.option(
        "--finetune-epochs",
        default=2,
        show_default=True,
        type=click.IntRange(0),
        help="Fine-tuning epochs after compression (0: none).",
    ),
    click.option(
        "--finetune-lr",
        default=1e-3,
        show_default=True,
        type=click.FloatRange(0, min_open=True),
        help="Fine-tuning peak learning rate (cosine decay, after any --finetune-warmup).",
    ),
    click.option(
        "--patience",
        default=3,
        show_default=True,
        type=click.IntRange(1),
        help="Fine-tuning stops after this many epochs without a better validation accuracy "
        "(the best weights are kept).",
    ),
    click.option(
        "--from-logits/--no-from-logits",
        "from_logits",
        default=None,
        show_default="auto: probabilities when the model's output layer is a softmax, else logits",
        help="Whether the fine-tuning loss reads the model's outputs as logits.",
    ),
    click.option(
        "--distill/--no-distill",
        "distill",
        default=None,
        show_default="on with --factoriser whitened (data-aware), off with svd",
        help="Fine-tune on the original model's soft targets (knowledge distillation, the "
        "original frozen on the same augmented batch) as well as on the labels.",
    ),
    click.option(
        "--distill-temperature",
        type=click.FloatRange(0, min_open=True),
        default=None,
        show_default="4",
        help="With --distill: the softmax temperature T of the soft targets.",
    ),
    click.option(
        "--distill-alpha",
        type=click.FloatRange(0, 1),
        default=None,
        show_default="0.9",
        help="With --distill: loss = alpha * T^2 * KL(teacher || student) + (1 - alpha) * "
        "cross-entropy on the labels.",
    ),
    comma_list_option(
        "--distill-features",
        help="With --distill: also match these layers' outputs (globs of top-level layer names "
        "whose output has the same shape in both models, e.g. '*_out' for the reference net's "
        "block outputs) by their relative squared error.",
    ),
    click.option(
        "--finetune-warmup",
        type=click.FloatRange(0),
        default=None,
        show_default=f"{DATA_AWARE_RECIPE['warmup']:g} with --factoriser whitened, 0 with svd",
        metavar="FRACTION_OR_EPOCHS",
        help="Linear warm-up of the fine-tuning rate from 0, then cosine decay: below 1 a "
        "fraction of the run, else a number of epochs (0: none).",
    ),
    click.option(
        "--finetune-optimizer",
        type=click.Choice(["adam", "sgd"]),
        default="adam",
        show_default=True,
        help="Fine-tuning optimizer (sgd: Nesterov momentum 0.9).",
    ),
    click.option(
        "--freeze-bn/--no-freeze-bn",
        "freeze_bn",
        default=False,
        show_default=True,
        help="Fine-tune with every BatchNormalization layer frozen (inference mode, its "
        "statistics and scale fixed).",
    ),
    click.option(
        "--rank-schedule",
        type=click.FloatRange(1, min_open=True),
        default=None,
        metavar="FACTOR",
        help="Ranks that shrink while fine-tuning: compress to FACTOR times the "
        "--target-macs/--target-params budget (at most all of it), then step the budget down "
        "to the target, one stage an epoch; each stage re-truncates the factors data-aware on "
        "the current weights and fine-tunes one epoch. Needs >= 2 fine-tuning epochs.",
    ),
)


distribute_options = apply_options(
    click.option(
        "--distribute",
        type=click.Choice(["none", "mirrored", "multi-worker"]),
        default="none",
        show_default=True,
        help="Train and fine-tune with tf.distribute: `mirrored` over this machine's devices, "
        "`multi-worker` over the workers in TF_CONFIG (run the same command on each; worker 0 "
        "writes the outputs, the others write nothing the user sees).",
    ),
    click.option(
        "--backup-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Back up training state every epoch (keras BackupAndRestore): a run killed and "
        "started again with the same command resumes at its last finished epoch (multi-worker: "
        "each worker keeps its own worker-<i> folder in it).",
    ),
    click.option(
        "--peer-timeout",
        type=click.FloatRange(min=1.0),
        default=60.0,
        show_default=True,
        help="multi-worker: seconds a worker waits for every TF_CONFIG peer to join, and for a "
        "silent peer before it is declared dead; then the run fails naming the addresses.",
    ),
)


def worker_outputs(kind: str, peer_timeout_s: float, path: Path, stack: Any) -> Path:
    """`path` on the process that writes the outputs; on another multi-worker process a
    scratch path of the same name in a temporary folder that `stack` (an ExitStack) removes."""
    import tempfile

    from lowrank_edge.model.distribute import is_chief, make_strategy

    make_strategy(kind, peer_timeout_s)  # before any other TensorFlow work (`make_strategy`)
    if is_chief(kind):
        return path
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lowrank-edge-worker-"))
    return Path(folder) / path.name


def finetune_recipe_from(params: dict[str, Any], finetune_epochs: int) -> dict[str, Any]:
    """Take the fine-tuning recipe options out of `params` as FitConfig fields, refusing one
    that does not apply (any without fine-tuning; a distillation setting without --distill).

    --distill and --finetune-warmup left out follow the factoriser (`recipe_defaults`)."""
    from lowrank_edge.model.recipe import (
        DEFAULT_ALPHA,
        DEFAULT_TEMPERATURE,
        check_warmup,
        recipe_defaults,
    )

    recipe = {
        "distill": params.pop("distill"),
        "distill_temperature": params.pop("distill_temperature"),
        "distill_alpha": params.pop("distill_alpha"),
        "distill_features": tuple(params.pop("distill_features") or ()),
        "warmup": params.pop("finetune_warmup"),
        "optimizer": params.pop("finetune_optimizer"),
        "freeze_bn": params.pop("freeze_bn"),
    }
    given = [
        flag
        for flag, value in (
            ("--distill", recipe["distill"] or None),
            ("--distill-temperature", recipe["distill_temperature"]),
            ("--distill-alpha", recipe["distill_alpha"]),
            ("--distill-features", recipe["distill_features"] or None),
            ("--finetune-warmup", recipe["warmup"] or None),
            ("--finetune-optimizer", None if recipe["optimizer"] == "adam" else "sgd"),
            ("--freeze-bn", recipe["freeze_bn"] or None),
        )
        if value is not None
    ]
    if given and finetune_epochs == 0:
        raise LowrankEdgeError(
            f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
            "fine-tuning, which --finetune-epochs 0 turns off"
        )
    # without fine-tuning, neither applies: the plain recipe's (off) values are recorded
    factoriser = params.get("factoriser", "whitened") if finetune_epochs else "svd"
    defaults = recipe_defaults(factoriser)
    for key in ("distill", "warmup"):
        if recipe[key] is None:
            recipe[key] = defaults[key]
    for flag in ("--distill-temperature", "--distill-alpha", "--distill-features"):
        if flag in given and not recipe["distill"]:
            raise LowrankEdgeError(f"{flag} applies with --distill")
    if finetune_epochs:
        check_warmup(recipe["warmup"], finetune_epochs)
    if recipe["distill_temperature"] is None:
        recipe["distill_temperature"] = DEFAULT_TEMPERATURE
    if recipe["distill_alpha"] is None:
        recipe["distill_alpha"] = DEFAULT_ALPHA
    return recipe


# --- compression --------------------------------------------------------------------------

_ENERGY = (
    "the layer's output energy on the calibration images with --factoriser whitened, its "
    "kernel's with svd; sum of sigma^2, or of sigma with --energy-measure abs"
)

energy_option = click.option(
    "--energy",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help=f"Keep the smallest rank whose energy reaches this fraction of the layer's total "
    f"({_ENERGY}).",
)

_BUDGET = "allocated over all layers at once, smallest summed relative output error"

target_option = apply_options(
    click.option(
        "--target-macs",
        type=click.FloatRange(0, 1, min_open=True),
        default=None,
        help=f"Keep at most this fraction of the model's MACs, ranks {_BUDGET}.",
    ),
    click.option(
        "--target-params",
        type=click.FloatRange(0, 1, min_open=True),
        default=None,
        help=f"Keep at most this fraction of the model's parameters, ranks {_BUDGET}.",
    ),
)

DEFAULT_TARGET_MACS = "0.5,0.33,0.2"

targets_option = apply_options(
    click.option(
        "--target-macs",
        default=None,
        show_default=f"{DEFAULT_TARGET_MACS} unless another policy is given",
        help=f"Comma-separated fractions of MACs kept, one compressed model each ({_BUDGET}).",
    ),
    click.option(
        "--target-params",
        default=None,
        help="Comma-separated fractions of parameters kept, one compressed model each.",
    ),
)

_LATENCY = "on the --latency-table condition (--backend, --threads, --batch, --precision)"

latency_target_option = apply_options(
    click.option(
        "--target-speedup",
        type=click.FloatRange(1),
        default=None,
        help=f"Ranks allocated from measured latency so the model is predicted this many times "
        f"faster {_LATENCY}; then measured end to end and backed off if slower.",
    ),
    click.option(
        "--target-latency",
        type=click.FloatRange(0, 1, min_open=True),
        default=None,
        help=f"The same as a fraction of the original's predicted latency kept {_LATENCY}.",
    ),
)

latency_targets_option = apply_options(
    click.option(
        "--target-speedup",
        default=None,
        help=f"Comma-separated speedups (>= 1), one compressed model each, ranks allocated "
        f"from measured latency {_LATENCY}.",
    ),
    click.option(
        "--target-latency",
        default=None,
        help="Comma-separated fractions of the predicted latency kept, one model each.",
    ),
)

latency_options = apply_options(
    click.option(
        "--latency-table",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The latency table (from `lowrank-edge latency-table`) that prices each layer "
        "and rank; also shows the headroom in `ranks`.",
    ),
    click.option(
        "--backend",
        type=click.Choice(["litert", "onnxruntime"]),
        default="litert",
        show_default=True,
        help="The runtime of the table condition to allocate for.",
    ),
    click.option(
        "--threads",
        type=click.IntRange(1),
        default=1,
        show_default=True,
        help="Threads of the table condition.",
    ),  # fmt: skip
    click.option(
        "--batch",
        type=click.IntRange(1),
        default=32,
        show_default=True,
        help="Batch size of the table condition.",
    ),  # fmt: skip
    click.option(
        "--precision",
        type=click.Choice(["float32", "float16", "int8-dynamic", "int8-full", "int8-qdq"]),
        default="float32",
        show_default=True,
        help="Precision of the table condition: ranks are priced, the headroom reported and the "
        "speed check run in the file that ships (LiteRT: float32, float16, int8-dynamic, "
        "int8-full; ONNX Runtime: float32, int8-qdq, int8-dynamic).",
    ),
    click.option(
        "--speed-check/--no-speed-check",
        default=True,
        show_default=True,
        help="After a latency budget, time the model end to end against the original on "
        "that runtime and drop the factorisations with the smallest gain while it is slower "
        "or short of its target.",
    ),
    click.option(
        "--max-checks",
        type=click.IntRange(1),
        default=4,
        show_default=True,
        help="End-to-end measurements the back-off may make.",
    ),
)


def check_one_latency_target(speedup: object, latency: object) -> None:
    """--target-speedup and --target-latency say the same thing: refuse both at once."""
    if speedup is not None and latency is not None:
        raise LowrankEdgeError("choose --target-speedup or --target-latency, not both")


def latency_fraction(speedup: float | None, latency: float | None) -> float | None:
    """The latency fraction kept from --target-speedup S (1/S) or --target-latency F."""
    check_one_latency_target(speedup, latency)
    return 1.0 / speedup if speedup is not None else latency


def latency_target_from(params: Mapping[str, Any]):
    """The LatencyTarget that `latency_options` describe (None without --latency-table)."""
    from lowrank_edge.latency.target import LatencyTarget
    from lowrank_edge.runtime.kit_manifest import backend_precisions

    precision = params.get("precision") or "float32"
    if params.get("latency_table") is None:
        if precision != "float32":
            raise LowrankEdgeError(
                f"--precision {precision} prices ranks from a latency table: give --latency-table "
                "(measured with `lowrank-edge latency-table --precision ...`)"
            )
        return None
    if precision not in backend_precisions(params["backend"]):
        raise LowrankEdgeError(
            f"--precision {precision} is not a precision of --backend {params['backend']}; "
            f"choose from {', '.join(backend_precisions(params['backend']))}"
        )
    return LatencyTarget(
        Path(params["latency_table"]), params["backend"], params["threads"], params["batch"],
        precision,
    )  # fmt: skip


energies_option = click.option(
    "--energies",
    default=None,
    show_default="none",
    help=f"Comma-separated energy thresholds, one compressed model each, e.g. the seed's "
    f"0.5,0.75,0.9 ({_ENERGY}).",
)

# Rank policies other than energy, and which layers are touched and how.
compression_options = apply_options(
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
    click.option(
        "--energy-measure",
        type=click.Choice(["squared", "abs"]),
        default="squared",
        show_default=True,
        help="Energy as the sum of sigma^2 (squared) or of sigma (abs).",
    ),
    click.option(
        "--round-to",
        type=click.IntRange(1),
        default=None,
        help="Round each rank up to a multiple of this (e.g. 8 for SIMD).",
    ),
    click.option(
        "--no-break-even", is_flag=True, help="Factorise even where it saves no parameters."
    ),
    comma_list_option(
        "--include",
        repeatable=True,
        help="Only layers whose name matches one of these globs, e.g. 's2*,fc'.",
    ),
    comma_list_option(
        "--exclude",
        repeatable=True,
        help="Skip layers whose name matches one of these globs, e.g. 'logits'.",
    ),
)


FACTORISERS = ("whitened", "svd")

# How factors are fitted (`compress`, `pipeline` and `ranks`).
factoriser_options = apply_options(
    click.option(
        "--factoriser",
        type=click.Choice(FACTORISERS),
        default="whitened",
        show_default=True,
        help="whitened: data-aware SVD that minimises each layer's output error on calibration "
        "images from the training split (needs --data); svd: plain SVD of the kernel.",
    ),
    click.option(
        "--calibration-images",
        default=512,
        show_default=True,
        type=click.IntRange(1),
        help="Training images (seeded draw) for the whitened factoriser and --bn-recalibrate.",
    ),
    click.option(
        "--sequential/--no-sequential",
        default=True,
        show_default=True,
        help="Whitened: fit each layer, in graph order, to the original model's outputs from "
        "the inputs the already-compressed layers produce.",
    ),
    click.option(
        "--refit-dense/--no-refit-dense",
        default=True,
        show_default=True,
        help="Whitened and sequential: also refit the layers kept dense to the original "
        "model's outputs (same shapes, no extra cost).",
    ),
    click.option(
        "--sensitivity",
        type=click.Choice(["spectrum", "eval"]),
        default="spectrum",
        show_default=True,
        help="What a budget minimises: the layers' predicted relative output errors "
        "(spectrum), or their measured accuracy drops per candidate rank on --sensitivity-images "
        "validation images (eval, AIMET-style, slower).",
    ),
    click.option(
        "--sensitivity-images",
        default=1000,
        show_default=True,
        type=click.IntRange(1),
        help="Validation images for --sensitivity eval.",
    ),
    click.option(
        "--bn-recalibrate/--no-bn-recalibrate",
        default=False,
        show_default=True,
        help="Re-estimate BatchNorm statistics on the calibration images, in graph order, "
        "before accuracy is measured and before fine-tuning.",
    ),
)


def compress_options_from(
    params: Mapping[str, Any],
    energy: float | None = None,
    target_macs: float | None = None,
    target_params: float | None = None,
    seed: int = 0,
):
    """The CompressOptions that `compression_options` and `factoriser_options` (plus a
    policy value) describe."""
    from lowrank_edge.pipeline.run import CompressOptions

    return CompressOptions(
        energy=energy,
        target_macs=target_macs,
        target_params=target_params,
        factoriser=params["factoriser"],
        calibration_images=params["calibration_images"],
        sequential=params["sequential"],
        refit_dense=params["refit_dense"],
        sensitivity=params["sensitivity"],
        sensitivity_images=params["sensitivity_images"],
        bn_recalibrate=params["bn_recalibrate"],
        seed=seed,
        rank=params["rank"],
        fraction=params["rank_fraction"],
        measure=params["energy_measure"],
        round_to=params["round_to"],
        break_even=not params["no_break_even"],
        include=tuple(params["include"] or ()),
        exclude=tuple(params["exclude"] or ()),
        target_latency=latency_fraction(params.get("target_speedup"), params.get("target_latency")),
        latency=latency_target_from(params),
        speed_check=params.get("speed_check", True),
        max_checks=params.get("max_checks", 4),
        rank_schedule=params.get("rank_schedule"),
    )


# --- timing -------------------------------------------------------------------------------


def timing_options(
    min_runs: int = 50,
    min_time: float = 2.0,
    max_time: float = 20.0,
    rounds: int = 5,
    repeats: int = 3,
) -> Decorator:
    """Warm-up and timing budget options (`bench`'s names); the defaults are per command."""
    return apply_options(
        click.option(
            "--warmup-runs",
            type=int,
            default=5,
            show_default=True,
            help="Warm-up calls each time a model is opened (per round).",
        ),
        click.option(
            "--warmup-time",
            type=float,
            default=0.05,
            show_default=True,
            help="Minimum warm-up seconds per open.",
        ),
        click.option(
            "--min-runs",
            type=int,
            default=min_runs,
            show_default=True,
            help="Minimum timed calls per configuration (split over rounds).",
        ),
        click.option(
            "--min-time",
            type=float,
            default=min_time,
            show_default=True,
            help="Minimum timed seconds per configuration (split over rounds).",
        ),
        click.option(
            "--max-time",
            type=float,
            default=max_time,
            show_default=True,
            help="Maximum timed seconds per configuration (split over rounds).",
        ),
        click.option(
            "--rounds",
            type=int,
            default=rounds,
            show_default=True,
            help="Interleaved rounds (A B C A B C ...) per configuration.",
        ),
        click.option(
            "--repeats",
            type=int,
            default=repeats,
            show_default=True,
            help="Repeat the rounds (the p50 pools every repeat).",
        ),
    )


def timing_policy_from(params: Mapping[str, Any]):
    """The TimingPolicy that `timing_options` describe (invalid values: one clear error)."""
    from lowrank_edge.benchmark.timing.calls import TimingPolicy

    return TimingPolicy(
        warmup_runs=params["warmup_runs"],
        warmup_s=params["warmup_time"],
        min_runs=params["min_runs"],
        min_time_s=params["min_time"],
        max_time_s=params["max_time"],
        rounds=params["rounds"],
        repeats=params["repeats"],
    )
