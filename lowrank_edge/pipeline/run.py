"""The end-to-end job: train (or load) a base model, then compress, fine-tune and measure
it at each energy threshold (or once at a fixed rank or rank fraction), and write
results.json, report.md and plots.

Each step is a plain function over plain data; `run_pipeline` only sequences them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lowrank_edge.data.dataset import Dataset
from lowrank_edge.errors import LowrankEdgeError
from lowrank_edge.export.variants import DEFAULT_MAX_QUANT_DROP
from lowrank_edge.fileio import check_can_write, write_json_atomic
from lowrank_edge.latency.target import LATENCY_TABLE_NEEDED, LatencyTarget
from lowrank_edge.logs import Log
from lowrank_edge.model.agreement import check_model_fits_data
from lowrank_edge.model.recipe import DATA_AWARE_RECIPE
from lowrank_edge.model.resnet import ResNetConfig
from lowrank_edge.model.saving import load_model, save_model, sidecar_path
from lowrank_edge.model.train import FitConfig, FitResult, fit
from lowrank_edge.pipeline.measure import accuracy_record, cost_record, file_bytes, relative_figures
from lowrank_edge.pipeline.ship import BENCH_FOLDER, ShipStep

DATA_NEEDED = (
    "the whitened factoriser, --bn-recalibrate and --sensitivity eval need data: pass "
    "--data SPEC (or use --factoriser svd without them)"
)

SENSITIVITY_IMAGES = 1000  # the default of --sensitivity-images


@dataclass(frozen=True)
class CompressOptions:
    """How ranks are chosen, how factors are fitted and which layers are touched.

    Exactly one of energy / rank / fraction (per-layer policies) and target_macs /
    target_params / target_latency (a budget over all layers) is set; target_latency needs
    `latency`, whose table is read when the budget is allocated.
    """

    energy: float | None = None
    rank: int | None = None
    fraction: float | None = None
    target_macs: float | None = None  # keep at most this fraction of the model's MACs
    target_params: float | None = None  # ... or of its parameters
    target_latency: float | None = None  # ... or of its latency predicted by `latency`'s table
    latency: LatencyTarget | None = None  # the table and condition a latency budget uses
    speed_check: bool = True  # after a latency budget: measure end to end, back off if slower
    max_checks: int = 4  # end-to-end measurements the back-off may make
    measure: str = "squared"  # energy as sum of sigma^2 ("squared") or of sigma ("abs")
    round_to: int | None = None  # round ranks up to a multiple (never above full rank)
    break_even: bool = True  # keep a layer dense when factorising saves nothing
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    factoriser: str = "whitened"  # "whitened" (data-aware, needs data) or "svd" (plain)
    calibration_images: int = 512  # drawn (seeded) from the training split only
    sequential: bool = True  # fit each layer to the original outputs, in graph order
    refit_dense: bool = True  # ... the layers kept dense too (whitened and sequential)
    bn_recalibrate: bool = False  # re-estimate BatchNorm statistics on the calibration images
    sensitivity: str = "spectrum"  # budget errors: "spectrum" or "eval" (accuracy drops)
    sensitivity_images: int = SENSITIVITY_IMAGES  # validation images for "eval"
    rank_schedule: float | None = None  # start at this multiple of the budget, step down to it
    seed: int = 0

    def policy(self):
        """The rank policy or budget these options describe."""
        from lowrank_edge.compress import Budget, EnergyPolicy, FixedRankPolicy, FractionPolicy

        values = (
            self.energy,
            self.rank,
            self.fraction,
            self.target_macs,
            self.target_params,
            self.target_latency,
        )
        if sum(v is not None for v in values) != 1:
            raise LowrankEdgeError(
                "choose exactly one of --energy, --rank, --rank-fraction, --target-macs, "
                "--target-params and --target-speedup/--target-latency"
            )
        self._check_applies()
        if self.energy is not None:
            return EnergyPolicy(self.energy, measure=self.measure)
        if self.rank is not None:
            return FixedRankPolicy(self.rank)
        if self.fraction is not None:
            return FractionPolicy(self.fraction)
        if self.target_macs is not None:
            return Budget("macs", self.target_macs)
        if self.target_params is not None:
            return Budget("params", self.target_params)
        if self.latency is None:
            raise LowrankEdgeError(LATENCY_TABLE_NEEDED)
        return self.latency.budget(self.target_latency)

    def _check_applies(self) -> None:
        """Refuse a setting that the chosen policy would silently ignore: break-even and the
        sensitivity measure each belong to one kind of policy."""
        budget = any(
            v is not None for v in (self.target_macs, self.target_params, self.target_latency)
        )
        if budget and not self.break_even:
            raise LowrankEdgeError(
                f"--no-break-even applies to --energy, --rank and --rank-fraction; a budget "
                f"({self.label()}) never factorises a layer where that saves nothing"
            )
        if not budget and self.sensitivity != "spectrum":
            raise LowrankEdgeError(
                f"--sensitivity {self.sensitivity} applies to a budget (--target-macs, "
                f"--target-params, --target-speedup); {self.label()} sets each layer's rank "
                "from its own spectrum"
            )
        if self.sensitivity != "eval" and self.sensitivity_images != SENSITIVITY_IMAGES:
            raise LowrankEdgeError("--sensitivity-images applies with --sensitivity eval")

    def check_schedule(self, finetune_epochs: int) -> None:
        """One clear error when `rank_schedule` is set where it cannot apply: it steps a MAC or
        parameter budget down over the fine-tuning epochs, one stage an epoch."""
        if self.rank_schedule is None:
            return
        if not self.rank_schedule > 1:
            raise LowrankEdgeError(
                f"--rank-schedule must be > 1 (the starting budget as a multiple of the "
                f"target), got {self.rank_schedule:g}"
            )
        if self.target_macs is None and self.target_params is None:
            raise LowrankEdgeError(
                "--rank-schedule steps a --target-macs or --target-params budget down while "
                f"fine-tuning; it does not apply to {self.label()} (choose one of those budgets)"
            )
        if finetune_epochs < 2:
            raise LowrankEdgeError(
                "--rank-schedule fine-tunes one epoch per step, so it needs data and at least "
                f"2 fine-tuning epochs, got {finetune_epochs}"
            )

    def plan_kwargs(self) -> dict:
        """The keyword arguments of `plan_compression` / `compress_model` set here."""
        return {
            "rounding": self.round_to,
            "break_even": self.break_even,
            "include": self.include,
            "exclude": self.exclude,
            "factoriser": self.factoriser,
        }

    @property
    def needs_data(self) -> bool:
        """True when these options need a dataset (calibration or validation images)."""
        return self.factoriser == "whitened" or self.bn_recalibrate or self.sensitivity == "eval"

    def planning_data(self, data: Dataset | None):
        """(calibration images, (x, y) for eval sensitivity) these options need from `data`:
        calibration from the training split only, evaluation from the validation split."""
        from lowrank_edge.compress.calibration import calibration_images

        if self.needs_data and data is None:
            raise LowrankEdgeError(DATA_NEEDED)
        calibration = evaluation = None
        if self.factoriser == "whitened" or self.bn_recalibrate:
            calibration = calibration_images(data.x_train, self.calibration_images, self.seed)
        if self.sensitivity == "eval":
            count = self.sensitivity_images
            evaluation = (data.x_val[:count], data.y_val[:count])
        return calibration, evaluation

    def label(self) -> str:
        """Short model name for these options: e75, r16, f0.25, m0.33, p0.2, l0.5 (latency)."""
        if self.energy is not None:
            return f"e{self.energy * 100:g}"
        if self.rank is not None:
            return f"r{self.rank}"
        if self.fraction is not None:
            return f"f{self.fraction:g}"
        if self.target_macs is not None:
            return f"m{self.target_macs:g}"
        if self.target_params is not None:
            return f"p{self.target_params:g}"
        return f"l{self.target_latency:.3g}"


@dataclass
class CompressedModel:
    """The output of compress (+ optional fine-tune): the model and what was done to it."""

    model: object
    compression: dict
    accuracy_before_finetune: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)  # final: after fine-tuning, if any
    finetune: FitResult | None = None


def compress_and_finetune(
    model,
    options: CompressOptions,
    data: Dataset | None = None,
    finetune: FitConfig | None = None,
    log: Log = print,
) -> CompressedModel:
    """Factorise `model` (left untouched) and, given data and epochs, fine-tune the result.

    The whitened factoriser and BatchNorm re-estimation draw their calibration images from
    the training split only. With `finetune.distill`, the original model is the teacher.
    With `options.rank_schedule`, ranks shrink stage by stage while fine-tuning
    (`pipeline.rank_schedule`).
    """
    epochs = finetune.epochs if finetune is not None and data is not None else 0
    options.check_schedule(epochs)
    if options.rank_schedule is not None:
        return scheduled_compress_and_finetune(model, options, data, finetune, log)
    result, compression = compress_once(model, options, data, log)
    out = CompressedModel(model=result.model, compression=compression)
    if data is not None:
        out.accuracy_before_finetune = accuracy_record(result.model, data)
        log(
            f"accuracy before fine-tuning: val {out.accuracy_before_finetune['val']:.4f} "
            f"test {out.accuracy_before_finetune['test']:.4f}"
        )
        if epochs > 0:
            log(f"fine-tuning for up to {finetune.epochs} epochs")
            teacher = model if finetune.distill else None  # the original, left untouched
            out.finetune = fit(result.model, data, finetune, teacher=teacher)
            compression["finetune"] = finetune_record(out.finetune)
            out.accuracy = accuracy_record(result.model, data)
            log(
                f"accuracy after fine-tuning: val {out.accuracy['val']:.4f} "
                f"test {out.accuracy['test']:.4f}"
            )
        else:
            out.accuracy = out.accuracy_before_finetune
    return out


def scheduled_compress_and_finetune(
    model,
    options: CompressOptions,
    data: Dataset,
    finetune: FitConfig,
    log: Log = print,
) -> CompressedModel:
    """`compress_and_finetune` with a rank schedule (see module); `model` is left untouched.

    `accuracy_before_finetune` is the model at the target budget before its last epoch; the
    sidecar's "rank_schedule" lists every stage's budget, totals and accuracies.
    """
    from lowrank_edge.compress.merge import merged_model
    from lowrank_edge.pipeline.rank_schedule import joined, schedule_budgets, with_budget

    budgets = schedule_budgets(
        options.target_macs or options.target_params, options.rank_schedule, finetune.epochs
    )
    stage_fit = replace(finetune, epochs=1, patience=None)
    kind = "MACs" if options.target_macs is not None else "parameters"
    teacher = model if finetune.distill else None  # the original, at every stage
    stages, fits, current = [], [], None
    for index, budget in enumerate(budgets):
        source = model if current is None else merged_model(model, current)
        log(f"rank schedule: stage {index + 1}/{len(budgets)} keeps {budget:.4g} of the {kind}")
        result, compression = compress_once(source, with_budget(options, budget), data, log)
        current = result.model
        before = accuracy_record(current, data)
        fits.append(fit(current, data, replace(stage_fit, seed=finetune.seed + index), teacher))
        after = accuracy_record(current, data)
        log(
            f"stage {index + 1}: accuracy val {before['val']:.4f} -> {after['val']:.4f}, "
            f"test {before['test']:.4f} -> {after['test']:.4f}"
        )
        stages.append(
            {
                "budget": budget,
                "totals": compression["totals"],
                "ranks": {layer["name"]: layer.get("rank_kept") for layer in compression["layers"]},
                "accuracy_before": before,
                "accuracy_after": after,
            }
        )
    joined_fit = joined(fits)
    compression["options"]["rank_schedule"] = options.rank_schedule
    compression["rank_schedule"] = stages
    compression["finetune"] = finetune_record(joined_fit)
    return CompressedModel(
        model=current,
        compression=compression,
        accuracy_before_finetune=stages[-1]["accuracy_before"],
        accuracy=stages[-1]["accuracy_after"],
        finetune=joined_fit,
    )


def compress_once(model, options: CompressOptions, data: Dataset | None, log: Log = print):
    """Factorise `model` (left untouched) as `options` say, without fine-tuning.

    Returns (the `CompressionResult`, its record for the sidecar: options and latency
    check included).
    """
    from lowrank_edge.benchmark.reporting.progress import Progress
    from lowrank_edge.compress import compress_model
    from lowrank_edge.latency.check import LatencyCheck

    calibration, evaluation = options.planning_data(data)
    check = None
    if options.target_latency is not None:
        check = LatencyCheck(options.latency, options.target_latency, options.speed_check,
                             options.max_checks, log)  # fmt: skip
    result = compress_model(
        model,
        check.budget() if check else options.policy(),
        calibration=calibration,
        evaluation=evaluation,
        sequential=options.sequential,
        refit_dense=options.refit_dense,
        bn_recalibrate=options.bn_recalibrate,
        review=check.review if check else None,
        progress=Progress(1),  # the layer-by-layer fit: a bar on a terminal, else a line a layer
        **options.plan_kwargs(),
    )
    compression = result.to_dict()
    compression["options"] = _options_record(options)
    if check is not None:
        compression["latency"] = check.record()
    log(_compression_summary(compression))
    return result, compression


def finetune_record(result: FitResult) -> dict:
    """How a model was fine-tuned, for its sidecar (the per-epoch history left out)."""
    return {k: v for k, v in result.to_dict().items() if k != "history"}


def _options_record(options: CompressOptions) -> dict:
    record = asdict(options)
    if options.latency is not None:
        record["latency"] = {**record["latency"], "table": str(options.latency.table)}
    return record


def _compression_summary(compression: dict) -> str:
    layers = compression.get("layers", [])
    done = sum(1 for layer in layers if layer.get("status") == "factorised")
    return f"factorised {done} of {len(layers)} candidate layers"


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `run_pipeline` needs; defaults are the reference MNIST run.

    One compressed model is made per energy in `energies` (with `compress`'s other settings),
    or a single one when `compress` sets a rank or a rank fraction (then `energies` must be
    empty). `seed` is the run's seed: it splits train/validation and seeds training and
    fine-tuning (it replaces the seeds of `train` and `finetune`).
    """

    dataset: str = "mnist"  # a data spec (`lowrank_edge.data.load_data`)
    out_dir: Path = Path("models/mnist")
    data_dir: Path | None = None
    energies: tuple[float, ...] = ()  # uniform energy thresholds (the seed's 0.5,0.75,0.9)
    target_macs: tuple[float, ...] = (0.5, 0.33, 0.2)  # budgets: fractions of MACs kept
    target_params: tuple[float, ...] = ()  # budgets: fractions of parameters kept
    target_latency: tuple[float, ...] = ()  # budgets: fractions of predicted latency kept
    base: Path | None = None
    model: ResNetConfig = ResNetConfig()
    train: FitConfig = FitConfig(epochs=6, learning_rate=2e-3, augment=True, balance_classes=True)
    finetune: FitConfig = FitConfig(
        epochs=2,
        learning_rate=1e-3,
        patience=3,
        augment=True,
        balance_classes=True,
        track_test=True,
        keep_start=True,
        **DATA_AWARE_RECIPE,  # distillation and warm-up (the default factoriser is whitened)
    )
    compress: CompressOptions = CompressOptions(target_macs=0.5)
    export_formats: tuple[str, ...] = ()
    tflite_variants: tuple[str, ...] = ("float32",)
    onnx_variants: tuple[str, ...] = ("float32",)
    max_quant_drop: float = DEFAULT_MAX_QUANT_DROP  # the int8 variants' export gate (points)
    ship: ShipStep | None = None  # after the exports: bench them here and recommend one
    seed: int = 0
    overwrite: bool = False

    def compress_settings(self) -> list[CompressOptions]:
        """The compression settings of the run, one per compressed model (validated).

        Either one fixed-rank setting (`compress.rank` or `compress.fraction`), or one per
        energy, then one per MAC, parameter and latency budget.
        """
        lists = dict(energy=None, target_macs=None, target_params=None, target_latency=None)
        if self.compress.rank is not None or self.compress.fraction is not None:
            if self.energies or self.target_macs or self.target_params or self.target_latency:
                raise LowrankEdgeError(
                    "choose --rank or --rank-fraction alone, or any of --energies, "
                    "--target-macs, --target-params and --target-speedup"
                )
            settings = [replace(self.compress, **lists)]
        else:
            base = replace(self.compress, rank=None, fraction=None, **lists)
            settings = [replace(base, energy=e) for e in self.energies]
            settings += [replace(base, target_macs=f) for f in self.target_macs]
            settings += [replace(base, target_params=f) for f in self.target_params]
            settings += [replace(base, target_latency=f) for f in self.target_latency]
        if not settings:
            raise LowrankEdgeError(
                "nothing to compress: give --energies, --target-macs, --target-params or "
                "--target-speedup"
            )
        for options in settings:
            options.policy()
            options.check_schedule(self.finetune.epochs)
        return settings


def run_pipeline(
    config: PipelineConfig,
    data: Dataset | Callable[[], Dataset] | None = None,
    log: Log = print,
) -> list[dict]:
    """Run the whole job and return one record per model (also written to results.json).

    `data` is the Dataset, or a function loading it (called once the outputs are known to be
    writable), or None to load `config.dataset` (a data spec) at its own image size.
    """
    from lowrank_edge.data import load_data

    settings = config.compress_settings()
    config = replace(
        config,
        train=replace(config.train, seed=config.seed),
        finetune=replace(config.finetune, seed=config.seed),
    )
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    check_can_write(results_path, config.overwrite)
    ship = _ship_step(config)
    if ship is not None:
        from lowrank_edge.benchmark.recommend_files import check_recommendation_outputs
        from lowrank_edge.benchmark.results.storage import RESULTS_NAME

        check_can_write(out_dir / BENCH_FOLDER / RESULTS_NAME, config.overwrite)
        check_recommendation_outputs(out_dir / BENCH_FOLDER, config.overwrite)
    if callable(data):
        data = data()
    elif data is None:
        log(f"[data] loading {config.dataset} (split seed {config.seed})")
        data = load_data(config.dataset, data_dir=config.data_dir, seed=config.seed)
    log(
        f"[data] {data.name}: {len(data.x_train)} train, {len(data.x_val)} val, "
        f"{len(data.x_test)} test, {data.num_classes} classes"
    )

    base_model, base_record = _base_model(config, data, out_dir, log)
    _ensure_latency_tables(settings, base_model, log)
    records = [base_record]
    for options in settings:
        records.append(
            _compressed_record(config, options, base_model, base_record, data, out_dir, log)
        )

    summary = {"settings": _settings(config), "dataset": _dataset_facts(data), "models": records}
    write_json_atomic(results_path, summary, overwrite=True)
    log(f"[report] wrote {results_path}")
    _write_reports(summary, out_dir, log)

    if config.export_formats:
        failures = export_records(config, data, out_dir, records, log)
        write_json_atomic(results_path, summary, overwrite=True)  # now with the manifests
        log(f"[report] updated {results_path} and {_write_markdown(summary, out_dir)} with the "
            "exports")  # fmt: skip
        if ship is not None:
            summary["recommendation"] = _bench_and_recommend(records, out_dir, ship, config, log)
            if ship.headroom and "conditions" in summary["recommendation"]:
                from lowrank_edge.pipeline.shipped_headroom import shipped_headroom

                summary["recommendation"]["shipped_headroom"] = shipped_headroom(
                    base_model, Path(base_record["path"]), out_dir / BENCH_FOLDER, ship.threads,
                    ship.batch, log,
                )  # fmt: skip
            write_json_atomic(results_path, summary, overwrite=True)
            log(f"[report] updated {results_path} and {_write_markdown(summary, out_dir)}")
        if failures:
            raise LowrankEdgeError("export failed for " + "; ".join(failures))
    return records


def _ship_step(config: PipelineConfig) -> ShipStep | None:
    """The closing bench over the runtimes the exports feed, or None (no exports, or off)."""
    from lowrank_edge.benchmark.backends.runtimes import FORMAT_OF

    backends = tuple(b for f in config.export_formats for b, fmt in FORMAT_OF.items() if fmt == f)
    if config.ship is None or not backends:
        return None
    return replace(config.ship, backends=backends)


def _bench_and_recommend(records, out_dir: Path, ship: ShipStep, config, log: Log) -> dict:
    """Bench the models that exported (the original first: it is the baseline) and recommend."""
    from lowrank_edge.pipeline.ship import bench_and_recommend

    exported = [Path(r["export"]["dir"]) for r in records if "manifest" in r.get("export", {})]
    if not records or "manifest" not in records[0].get("export", {}):
        log("[bench] skipped: the original model did not export, so nothing to compare against")
        return {"problem": "the original model did not export"}
    return bench_and_recommend(exported, out_dir, ship, config.overwrite, log)


def _ensure_latency_tables(settings: Sequence[CompressOptions], model, log: Log) -> None:
    """Measure the latency table of every latency budget that has none yet (a cache)."""
    from lowrank_edge.latency.table_cache import ensure_latency_table

    for target in dict.fromkeys(o.latency for o in settings if o.target_latency is not None):
        ensure_latency_table(model, target, log)


def _base_model(config: PipelineConfig, data: Dataset, out_dir: Path, log: Log):
    """Load `config.base`, or train a fresh mini-ResNet and save it as base.keras."""
    from lowrank_edge.model.resnet import build_mini_resnet, config_for_data

    record: dict = {"name": "base", "kind": "original"}
    if config.base is not None:
        log(f"[base] loading {config.base}")
        model, path = load_model(config.base), Path(config.base)
        check_model_fits_data(model, data, path)
    else:
        path = out_dir / "base.keras"
        check_can_write(path, config.overwrite)
        model_config = config_for_data(config.model, data)
        model = build_mini_resnet(model_config)
        log(f"[base] training a mini-ResNet {model_config} for {config.train.epochs} epochs")
        record["train"] = fit(model, data, config.train).to_dict()
        save_model(model, path, overwrite=config.overwrite)
        log(f"[base] saved {path}")
    record.update(path=str(path), file_bytes=file_bytes(path), **cost_record(model))
    record["accuracy"] = accuracy_record(model, data)
    log(
        f"[base] params {record['params']:,}  MACs {record['macs']:,}  "
        f"test accuracy {record['accuracy']['test']:.4f}"
    )
    return model, record


def _compressed_record(config, options, base_model, base_record, data, out_dir, log) -> dict:
    """Compress at one setting, fine-tune, save `<label>.keras` (+ sidecar) and measure it."""
    label = options.label()
    path = out_dir / f"{label}.keras"
    check_can_write(path, config.overwrite)
    log(f"[{label}] compressing with {options.policy()}")
    start = time.perf_counter()
    compressed = compress_and_finetune(base_model, options, data, config.finetune, log)
    seconds = time.perf_counter() - start
    save_compressed(compressed, path, overwrite=config.overwrite)
    record = {
        "name": label,
        "kind": "compressed",
        "path": str(path),
        "file_bytes": file_bytes(path),
    }
    record.update(cost_record(compressed.model))
    record["accuracy"] = {
        **{f"before_finetune_{k}": v for k, v in compressed.accuracy_before_finetune.items()},
        **compressed.accuracy,
    }
    tracked = compressed.finetune.history.get("test_accuracy") if compressed.finetune else None
    if tracked:
        record["accuracy"]["after_1_epoch_test"] = tracked[0]
    record.update(relative_figures(record, base_record))
    record["finetune"] = compressed.finetune.to_dict() if compressed.finetune else None
    record["compression"] = compressed.compression
    record["seconds"] = round(seconds, 2)
    log(
        f"[{label}] params {record['params']:,} ({record['param_reduction']:.1%} fewer)  "
        f"theoretical speedup {record['theoretical_speedup']:.2f}x  "
        f"test accuracy {record['accuracy']['before_finetune_test']:.4f} -> "
        f"{record['accuracy']['test']:.4f}"
    )
    return record


def save_compressed(compressed: CompressedModel, path: Path, overwrite: bool = False) -> Path:
    """Save the model as `path` and its compression facts beside it; return the sidecar path."""
    save_model(compressed.model, path, overwrite=overwrite)
    return write_json_atomic(sidecar_path(path), compressed.compression, overwrite=True)


def export_records(
    config: PipelineConfig, data: Dataset, out_dir: Path, records: list[dict], log: Log = print
) -> list[str]:
    """Export every model of a run into `<out_dir>/<name>/`, recording each manifest in its
    record (`record["export"]`); return the failures.

    A model whose export fails (e.g. a conversion error) is recorded and the others go on. An
    artifact that fails its gate is written, marked `"passed": false` (the bench skips it) and
    listed in `record["export"]["failed_gates"]`; it does not stop the run.
    """
    from lowrank_edge.export import export_model

    failures = []
    for record in records:
        target = out_dir / record["name"]
        log(f"[export] {record['name']} -> {target}/ ({', '.join(config.export_formats)})")
        start = time.perf_counter()
        try:
            manifest = export_model(
                record["path"],
                target,
                formats=config.export_formats,
                tflite_variants=config.tflite_variants,
                onnx_variants=config.onnx_variants,
                dataset=data,
                max_quant_drop=config.max_quant_drop,
                overwrite=config.overwrite,
                log=log,
            )
        except LowrankEdgeError as error:
            log(f"[export] {record['name']} FAILED: {error}")
            record["export"] = {"dir": str(target), "error": str(error)}
            failures.append(f"{record['name']}: {error}")
            continue
        seconds = round(time.perf_counter() - start, 1)
        record["export"] = {
            "dir": str(target),
            "manifest": manifest.to_dict(),
            "seconds": seconds,
            "failed_gates": [
                {"artifact": a.id, "gate": a.gate, "failure": a.gate_failure}
                for a in manifest.failed
            ],
        }
    return failures


def _settings(config: PipelineConfig) -> dict:
    settings = asdict(config)
    settings["compress"] = _options_record(config.compress)
    settings["out_dir"] = str(config.out_dir)
    settings["data_dir"] = str(config.data_dir) if config.data_dir else None
    settings["base"] = str(config.base) if config.base else None
    return settings


def _dataset_facts(data: Dataset) -> dict:
    return {
        "name": data.name,
        "source": data.source,
        "num_classes": data.num_classes,
        "image_shape": list(data.x_train.shape[1:]),
        "preprocessing": data.preprocessing,
        "input_range": list(data.input_range),
        "train": len(data.x_train),
        "val": len(data.x_val),
        "test": len(data.x_test),
    }


def _write_markdown(summary: dict, out_dir: Path) -> Path:
    from lowrank_edge.pipeline.report import write_markdown_report

    return write_markdown_report(summary, out_dir / "report.md")


def _write_reports(summary: dict, out_dir: Path, log: Log) -> None:
    log(f"[report] wrote {_write_markdown(summary, out_dir)}")
    try:
        from lowrank_edge.pipeline.plots import write_pipeline_plots
    except ImportError:  # matplotlib is optional
        log("[report] matplotlib not installed: plots skipped")
        return
    for plot in write_pipeline_plots(summary, out_dir):
        log(f"[report] wrote {plot}")


def parse_numbers(text: str | Sequence[float], option: str, example: str) -> tuple[float, ...]:
    """'0.5,0.75' (or a sequence) -> (0.5, 0.75); a non-number names `option` and `example`."""
    values = text if not isinstance(text, str) else [v for v in text.split(",") if v.strip()]
    try:
        return tuple(float(v) for v in values)
    except ValueError as error:
        raise LowrankEdgeError(f"{option}: expected {example}, got {text!r}") from error


def parse_fractions(text: str | Sequence[float], option: str = "--energies") -> tuple[float, ...]:
    """'0.5,0.75,0.9' -> (0.5, 0.75, 0.9), each checked to lie in (0, 1]."""
    fractions = parse_numbers(text, option, "numbers like 0.5,0.75,0.9")
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise LowrankEdgeError(f"{option}: {fraction} is outside (0, 1]")
    if not fractions:
        raise LowrankEdgeError(f"{option}: give at least one value")
    return fractions


def parse_energies(text: str | Sequence[float]) -> tuple[float, ...]:
    """`parse_fractions` for --energies."""
    return parse_fractions(text, "--energies")


def parse_speedups(text: str) -> tuple[float, ...]:
    """'1.6,2' -> the latency fractions kept (0.625, 0.5); every speedup must be >= 1."""
    speedups = parse_numbers(text, "--target-speedup", "comma-separated numbers like 1.6,2")
    bad = [s for s in speedups if not s >= 1.0 or s == float("inf")]
    if not speedups or bad:
        raise LowrankEdgeError(
            f"--target-speedup: every speedup must be a number >= 1, got {text!r}"
        )
    return tuple(1.0 / s for s in speedups)
