"""Recommend one artifact per device and condition: the fastest within an accuracy budget.

Pure functions over plain dataclasses (no files, no TensorFlow). `recommend_inputs` turns bench
records and their manifests into `Candidate`s grouped by `Condition` (device, run, backend,
threads, batch); `recommend_condition` ranks them:

* the reference is the bench baseline's float32 measurement in that condition ("the original");
* every other measured artifact is a candidate; its accuracy drop is the reference's accuracy
  minus its own, in percentage points, both taken from the same source (`SOURCE_ORDER`: the
  first source both have), so a drop never compares a full-test figure with a parity-sample one;
* every speedup is a paired ratio: the candidate and the reference were timed in the same
  interleaved rounds, and the figure is the median of the per-round ratios with its interquartile
  range (records from before every variant shared the rounds fall back to a p50 ratio, named so);
* the recommendation is the fastest candidate within the budget by that median (the best
  estimate even on a noisy run); every other qualifying candidate whose interquartile range
  overlaps the winner's is tied with it and listed, since a re-run may order them differently;
* the Pareto front is over speedup (higher is better) and accuracy relative to the reference
  (higher is better); file size is not an objective: it only breaks exact ties on both (the
  smaller file wins) and is drawn as the marker size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace

from lowrank_edge.benchmark.results.records import REFERENCE_VARIANT
from lowrank_edge.benchmark.timing.ratios import RatioSummary, relative_spread

SCHEMA = 1
TOLERANCE_PP = 1e-9  # drops computed from fractions: 0.3 must pass a 0.3 pp budget

ARTIFACT_TEST = "artifact-test"
MODEL_TEST = "model-test"
ARTIFACT_PARITY = "artifact-parity"
KERAS_PARITY = "keras-parity"
SOURCE_ORDER = (ARTIFACT_TEST, MODEL_TEST, ARTIFACT_PARITY, KERAS_PARITY)
SOURCE_TEXT = {
    ARTIFACT_TEST: "full test set, this artifact",
    MODEL_TEST: "full test set, the Keras model",
    ARTIFACT_PARITY: "parity samples, this artifact",
    KERAS_PARITY: "parity samples, the Keras model",
}
FRONT_RULE = (
    "Pareto front over paired speedup (higher is better) and accuracy relative to the original "
    "(higher is better): an artifact is on it unless another is at least as good on both and "
    "strictly better on one. Size is not an objective: it only breaks exact ties on both (the "
    "smaller file wins) and sets the marker size in the plots."
)
TIE_RULE = (
    "tie within measured spread: a qualifying file whose paired speedup's interquartile range "
    "(over every round it shared with the original) overlaps the recommended file's is tied with "
    "it, and a re-run may order them differently; the recommendation stays the fastest by median"
)
SPEEDUP_RULE = (
    "Speedup: the median over rounds of p50(original float32) / p50(file), both timed in the "
    "same interleaved rounds (a paired ratio), with the interquartile range of those per-round "
    "ratios."
)
PAIRED = "paired"
UNPAIRED = "p50 ratio, not paired"


@dataclass(frozen=True)
class Accuracy:
    """One top-1 accuracy figure (a fraction) and where it comes from (`SOURCE_TEXT`)."""

    value: float
    source: str
    samples: int | None = None

    def describe(self) -> str:
        """`98.44% (parity samples, this artifact, 512 images)`."""
        where = SOURCE_TEXT.get(self.source, self.source)
        if self.samples is not None:
            where += f", {self.samples} images"
        return f"{self.value * 100:.2f}% ({where})"


@dataclass(frozen=True)
class Condition:
    """Where and how artifacts were timed: device (one run of it), backend, threads, batch."""

    device: str
    backend: str
    threads: int
    batch: int
    run_id: str | None = None
    machine: str | None = None  # "host, CPU model, N CPUs" from the records' system facts
    cpu_features: str | None = None  # "avx2 avx512 vnni" (`cpu_features.feature_list`)
    cpu_advice: tuple[str, ...] = ()  # int8/fp16 in words (`cpu_features.precision_advice`)

    def label(self, with_run: bool = False) -> str:
        """`device-a | litert, 1 thread, batch 32`."""
        device = f"{self.device} [run {self.run_id}]" if with_run and self.run_id else self.device
        if self.machine:
            device += f" ({self.machine})"
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{device} | {self.backend}, {threads}, batch {self.batch}"


@dataclass(frozen=True)
class Candidate:
    """One measured artifact in one condition, with what its manifest says about it."""

    label: str  # "e50 tflite-int8"
    model: str  # the record's model label
    model_dir: str  # as recorded by the bench
    artifact: str | None  # artifact id (the keras backend: the source .keras path)
    variant: str
    file: str | None  # the artifact's file name in its export folder
    path: str | None  # where that file is
    manifest: str | None  # the manifest it comes from (None: not found)
    bytes: int | None
    p50_ms: float
    p50_repeats_ms: tuple[float, ...] = ()
    paired: RatioSummary | None = None  # speedup over the reference from the rounds they shared
    accuracies: tuple[Accuracy, ...] = ()
    is_reference: bool = False
    note: str | None = None  # why no accuracy is known, for instance

    def accuracy(self, source: str) -> Accuracy | None:
        """Its figure from `source`, if it has one."""
        return next((a for a in self.accuracies if a.source == source), None)

    def best_accuracy(self) -> Accuracy | None:
        """Its figure from the most trusted source it has."""
        for source in SOURCE_ORDER:
            if (found := self.accuracy(source)) is not None:
                return found
        return None

    def repeat_range(self) -> tuple[float, float] | None:
        """(fastest, slowest) per-repeat p50; None with fewer than two repeats."""
        if len(self.p50_repeats_ms) < 2:
            return None
        return min(self.p50_repeats_ms), max(self.p50_repeats_ms)

    def spread(self) -> float | None:
        """(max - min) / median of the per-repeat p50s (`relative_spread`)."""
        return relative_spread(list(self.p50_repeats_ms))


@dataclass(frozen=True)
class Entry:
    """A candidate judged against the reference: like-for-like accuracy, drop, speedup, front."""

    candidate: Candidate
    accuracy: Accuracy | None = None  # its figure from the source shared with the reference
    reference_accuracy: Accuracy | None = None  # the reference's figure from that source
    drop_pp: float | None = None  # reference - candidate, percentage points (None: unknown)
    speedup: float | None = None  # vs the reference
    speedup_kind: str | None = None  # PAIRED, UNPAIRED or "reference"
    within_budget: bool = False
    on_front: bool = False

    @property
    def label(self) -> str:
        return self.candidate.label

    def to_dict(self) -> dict:
        """Flat JSON: the candidate's fields, then the judgement's."""
        data = asdict(self.candidate)
        for spec in fields(self):
            if spec.name != "candidate":
                value = getattr(self, spec.name)
                data[spec.name] = asdict(value) if isinstance(value, Accuracy) else value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        """Inverse of `to_dict`."""
        names = {spec.name for spec in fields(Candidate)}
        values = {key: value for key, value in data.items() if key in names}
        values["p50_repeats_ms"] = tuple(values.get("p50_repeats_ms") or ())
        values["accuracies"] = tuple(Accuracy(**a) for a in values.get("accuracies") or ())
        paired = values.get("paired")
        values["paired"] = RatioSummary.from_dict(paired) if paired else None
        candidate = Candidate(**values)
        return cls(
            candidate=candidate,
            accuracy=_accuracy_from(data.get("accuracy")),
            reference_accuracy=_accuracy_from(data.get("reference_accuracy")),
            drop_pp=data.get("drop_pp"),
            speedup=data.get("speedup"),
            speedup_kind=data.get("speedup_kind"),
            within_budget=bool(data.get("within_budget")),
            on_front=bool(data.get("on_front")),
        )


def _accuracy_from(data: dict | None) -> Accuracy | None:
    return None if data is None else Accuracy(**data)


@dataclass(frozen=True)
class ConditionResult:
    """The recommendation for one condition, or why there is none (`problem`)."""

    condition: Condition
    max_drop_pp: float
    entries: tuple[Entry, ...] = ()  # every measured artifact, the reference too, fastest first
    reference: Entry | None = None
    winner: Entry | None = None
    runner_up: Entry | None = None  # the fastest qualifying file after the winner
    tie: bool | None = None  # None: no runner-up, or a spread that was not measured
    tied: tuple[Entry, ...] = ()  # every other qualifying file tied with the winner
    closest: Entry | None = None  # with no winner: the smallest drop beyond the budget
    smallest: Entry | None = None  # the smallest file within the budget (ties: the faster)
    problem: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def front(self) -> tuple[Entry, ...]:
        """The Pareto front, fastest first."""
        return tuple(e for e in self.entries if e.on_front)

    def to_dict(self) -> dict:
        """JSON: the condition's fields, the recommendation, runner-up, front and every entry."""

        def entry(value: Entry | None) -> dict | None:
            return None if value is None else value.to_dict()

        return {
            **asdict(self.condition),
            "max_accuracy_drop_pp": self.max_drop_pp,
            "recommended": entry(self.winner),
            "runner_up": entry(self.runner_up),
            "tie_within_spread": self.tie,
            "tied_with": [e.label for e in self.tied],
            "closest": entry(self.closest),
            "smallest": entry(self.smallest),
            "problem": self.problem,
            "reference": entry(self.reference),
            "pareto_front": [e.label for e in self.front],
            "candidates": [e.to_dict() for e in self.entries],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConditionResult:
        """Inverse of `to_dict`."""

        def entry(value: dict | None) -> Entry | None:
            return None if value is None else Entry.from_dict(value)

        names = {spec.name for spec in fields(Condition)}
        condition = {k: v for k, v in data.items() if k in names}
        condition["cpu_advice"] = tuple(condition.get("cpu_advice") or ())  # a JSON list
        entries = tuple(Entry.from_dict(e) for e in data.get("candidates") or ())
        return cls(
            condition=Condition(**condition),
            max_drop_pp=data["max_accuracy_drop_pp"],
            entries=entries,
            reference=entry(data.get("reference")),
            winner=entry(data.get("recommended")),
            runner_up=entry(data.get("runner_up")),
            tie=data.get("tie_within_spread"),
            tied=tuple(e for e in entries if e.label in set(data.get("tied_with") or ())),
            closest=entry(data.get("closest")),
            smallest=entry(data.get("smallest")),
            problem=data.get("problem"),
            notes=tuple(data.get("notes") or ()),
        )


@dataclass(frozen=True)
class Recommendation:
    """Everything `recommendation.json` holds (its `provenance` block aside)."""

    max_drop_pp: float
    conditions: tuple[ConditionResult, ...]
    bench_folders: tuple[str, ...] = ()
    filters: tuple[tuple[str, int | str], ...] = ()  # (name, value) of the filters given

    def refusal(self) -> str | None:
        """Why it cannot recommend (a condition with no qualifying artifact), else None."""
        failed = [r for r in self.conditions if r.winner is None]
        if not failed:
            return None
        several = several_runs(self.conditions)
        parts = []
        for result in failed:
            where = result.condition.label(with_run=several)
            if result.problem:
                parts.append(f"{where}: {result.problem}")
            else:
                parts.append(f"{where}: no artifact within {self.max_drop_pp:g} pp")
        hint = "raise --max-accuracy-drop, or pick conditions with --backend/--threads/--batch"
        return f"no recommendation: {'; '.join(parts)} ({hint})"

    def to_dict(self) -> dict:
        """JSON-ready form (add a provenance block beside it)."""
        return {
            "schema": SCHEMA,
            "max_accuracy_drop_pp": self.max_drop_pp,
            "filters": dict(self.filters),
            "bench_folders": list(self.bench_folders),
            "front_rule": FRONT_RULE,
            "speedup_rule": SPEEDUP_RULE,
            "tie_rule": TIE_RULE,
            "conditions": [r.to_dict() for r in self.conditions],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Recommendation:
        """Inverse of `to_dict` (extra keys such as `provenance` are ignored)."""
        return cls(
            max_drop_pp=data["max_accuracy_drop_pp"],
            conditions=tuple(ConditionResult.from_dict(c) for c in data["conditions"]),
            bench_folders=tuple(data.get("bench_folders") or ()),
            filters=tuple((data.get("filters") or {}).items()),
        )


def several_runs(results: Iterable[ConditionResult]) -> bool:
    """True when some device has results from more than one bench run (labels then name runs)."""
    results = list(results)
    runs = {(r.condition.device, r.condition.run_id) for r in results}
    return len(runs) > len({r.condition.device for r in results})


# --- judging ---------------------------------------------------------------------------------


def shared_accuracy(candidate: Candidate, reference: Candidate) -> tuple[Accuracy, Accuracy] | None:
    """(candidate's, reference's) figures from the first source in `SOURCE_ORDER` both have."""
    for source in SOURCE_ORDER:
        mine, theirs = candidate.accuracy(source), reference.accuracy(source)
        if mine is not None and theirs is not None:
            return mine, theirs
    return None


def speedup_against(candidate: Candidate, reference: Candidate) -> tuple[float | None, str | None]:
    """Speedup over the reference: the median paired ratio from the rounds both shared, else (an
    old record) the ratio of the pooled p50s, timed apart, so drift is not cancelled."""
    if candidate.is_reference:
        return 1.0, "reference"
    if candidate.paired is not None:
        return candidate.paired.median, PAIRED
    if candidate.p50_ms > 0:
        return reference.p50_ms / candidate.p50_ms, UNPAIRED
    return None, None


def judge(candidate: Candidate, reference: Candidate, max_drop_pp: float) -> Entry:
    """The candidate's like-for-like accuracy drop and speedup against the reference."""
    speedup, kind = speedup_against(candidate, reference)
    figures = shared_accuracy(candidate, reference)
    if figures is None:
        return Entry(candidate, speedup=speedup, speedup_kind=kind)
    mine, theirs = figures
    drop = (theirs.value - mine.value) * 100.0
    return Entry(
        candidate,
        accuracy=mine,
        reference_accuracy=theirs,
        drop_pp=drop,
        speedup=speedup,
        speedup_kind=kind,
        within_budget=drop <= max_drop_pp + TOLERANCE_PP,
    )


def _slowness(entry: Entry) -> float:
    """Lower is faster: minus the speedup over the reference (the p50 where none is known)."""
    return -entry.speedup if entry.speedup is not None else entry.candidate.p50_ms


def dominates(a: Entry, b: Entry) -> bool:
    """True when `a` is at least as fast and as accurate as `b` and strictly better on one;
    on an exact tie of both, the smaller file dominates."""
    if a.drop_pp is None or b.drop_pp is None:
        return False
    fast, accurate = _slowness(a), -a.drop_pp
    other_fast, other_accurate = _slowness(b), -b.drop_pp
    if fast > other_fast or accurate < other_accurate:
        return False
    if fast < other_fast or accurate > other_accurate:
        return True
    size, other_size = a.candidate.bytes, b.candidate.bytes
    return size is not None and other_size is not None and size < other_size


def pareto_front(entries: Sequence[Entry]) -> list[Entry]:
    """The entries with a known accuracy that no other entry dominates, in the given order."""
    known = [e for e in entries if e.drop_pp is not None]
    return [e for e in known if not any(dominates(o, e) for o in known if o is not e)]


def tie_within_spread(fastest: Candidate, other: Candidate) -> bool | None:
    """True when the interquartile ranges of their paired speedups overlap; for old records
    without paired ratios, when their per-repeat p50 ranges do. None: no spread on one side."""
    if fastest.paired is not None and other.paired is not None:
        if fastest.paired.rounds < 2 or other.paired.rounds < 2:
            return None
        return fastest.paired.overlaps(other.paired)
    mine, theirs = fastest.repeat_range(), other.repeat_range()
    if mine is None or theirs is None:
        return None
    return theirs[0] <= mine[1]


def _size(entry: Entry) -> float:
    return entry.candidate.bytes if entry.candidate.bytes is not None else math.inf


def _speed_key(entry: Entry) -> tuple:
    drop = entry.drop_pp if entry.drop_pp is not None else math.inf
    return (_slowness(entry), drop, _size(entry), entry.label)


def judge_condition(
    condition: Condition,
    candidates: Sequence[Candidate],
    max_drop_pp: float = math.inf,
    notes: Iterable[str] = (),
) -> ConditionResult:
    """Every candidate judged against the reference, fastest first, the front marked; no winner.

    Needs no budget (the bench report has none: every known drop is then `within_budget`).
    When the reference has no accuracy, the entries carry speedups only and `problem` says why.
    """
    notes = list(notes)
    references = [c for c in candidates if c.is_reference]
    base = ConditionResult(condition, max_drop_pp)
    if not references:
        problem = (
            f"the original ({REFERENCE_VARIANT} of the bench baseline) has no successful "
            "measurement here, so there is nothing to measure the budget against"
        )
        return replace(base, problem=problem, notes=tuple(notes))
    reference = references[0]
    if len(references) > 1:
        notes.append(f"several reference records; the first ({reference.label}) is used")
    judged = sorted((judge(c, reference, max_drop_pp) for c in candidates), key=_speed_key)
    front = {id(e) for e in pareto_front(judged)}
    entries = tuple(replace(e, on_front=id(e) in front) for e in judged)
    reference_entry = next(e for e in entries if e.candidate is reference)
    result = replace(base, entries=entries, reference=reference_entry)
    if reference.best_accuracy() is None:
        why = f": {reference.note}" if reference.note else ""
        problem = f"the original {reference.label} has no accuracy figure{why}"
        return replace(result, problem=problem, notes=tuple(notes))
    others = [e for e in entries if not e.candidate.is_reference]
    for entry in others:
        if entry.drop_pp is None:
            why = entry.candidate.note or "no accuracy figure shared with the original"
            notes.append(f"{entry.label}: left out ({why})")
    sources = dict.fromkeys(e.accuracy.source for e in others if e.accuracy is not None)
    if len(sources) > 1:
        by_source = {
            s: ", ".join(e.label for e in others if e.accuracy and e.accuracy.source == s)
            for s in sorted(sources, key=SOURCE_ORDER.index)
        }
        used = "; ".join(f"{SOURCE_TEXT[s]}: {labels}" for s, labels in by_source.items())
        notes.append(f"drops use different accuracy sources, each like for like ({used})")
    return replace(result, notes=tuple(notes))


def recommend_condition(
    condition: Condition,
    candidates: Sequence[Candidate],
    max_drop_pp: float,
    notes: Iterable[str] = (),
) -> ConditionResult:
    """Judge every candidate of one condition against its reference and pick the winner."""
    judged = judge_condition(condition, candidates, max_drop_pp, notes)
    if judged.problem is not None:  # nothing judged: no entries either
        return ConditionResult(condition, max_drop_pp, problem=judged.problem, notes=judged.notes)
    notes = list(judged.notes)
    others = [e for e in judged.entries if not e.candidate.is_reference]
    counts = {e.accuracy.samples for e in others if e.accuracy and e.accuracy.samples}
    if counts and 100.0 / min(counts) > max_drop_pp:
        notes.append(
            f"one image of the {min(counts)} compared is {100.0 / min(counts):.2f} pp, more than "
            f"the {max_drop_pp:g} pp budget: the drops are that coarse"
        )
    qualified = [e for e in others if e.within_budget]
    result = replace(judged, notes=())
    if not qualified:
        known = [e for e in others if e.drop_pp is not None]
        closest = min(known, key=lambda e: (e.drop_pp, e.candidate.p50_ms), default=None)
        if closest is None:
            what = "no other artifact" if not others else "no other artifact with an accuracy"
            problem = f"{what} was measured besides the original {judged.reference.label}"
        else:
            problem = (
                f"no artifact within {max_drop_pp:g} pp; closest: {_brief(closest)}, "
                f"{closest.drop_pp - max_drop_pp:.2f} pp beyond the budget"
            )
        return replace(result, closest=closest, problem=problem, notes=tuple(notes))
    winner, others_qualified = qualified[0], qualified[1:]
    ties = [tie_within_spread(winner.candidate, e.candidate) for e in others_qualified]
    tied = tuple(e for e, t in zip(others_qualified, ties, strict=True) if t)
    runner_up = others_qualified[0] if others_qualified else None
    tie = True if tied else (None if runner_up is None or None in ties else False)
    paired = winner.candidate.paired
    if winner.speedup is not None and winner.speedup < 1.0:
        notes.append(
            f"{winner.label} is slower than the original ({winner.speedup:.2f}x): within "
            "this budget the original itself is the fastest choice"
        )
    elif paired is not None and paired.rounds > 1 and paired.q1 <= 1.0:
        notes.append(
            f"{winner.label} is not faster than the original beyond the spread (its paired "
            f"IQR {paired.q1:.2f}-{paired.q3:.2f} reaches 1.00)"
        )
    sized = [e for e in qualified if e.candidate.bytes is not None]
    smallest = min(sized, key=lambda e: (e.candidate.bytes, _speed_key(e)), default=None)
    return replace(
        result, winner=winner, runner_up=runner_up, tie=tie, tied=tied, smallest=smallest,
        notes=tuple(notes),
    )  # fmt: skip


def recommend(
    groups: Sequence[tuple[Condition, Sequence[Candidate], Sequence[str]]],
    max_drop_pp: float,
    bench_folders: Sequence[str] = (),
    filters: Sequence[tuple[str, int | str]] = (),
) -> Recommendation:
    """One `ConditionResult` per (condition, candidates, notes) group."""
    if not math.isfinite(max_drop_pp) or max_drop_pp < 0:
        raise ValueError(f"the accuracy budget must be a finite number >= 0, got {max_drop_pp}")
    results = tuple(
        recommend_condition(condition, candidates, max_drop_pp, notes)
        for condition, candidates, notes in groups
    )
    return Recommendation(max_drop_pp, results, tuple(bench_folders), tuple(filters))


# --- text ------------------------------------------------------------------------------------


def format_bytes(size: int | None) -> str:
    """`1.23 MB`, `412.0 kB`, `980 B`; `size ?` when unknown."""
    if size is None:
        return "size ?"
    if size >= 1_000_000:
        return f"{size / 1e6:.2f} MB"
    if size >= 1_000:
        return f"{size / 1e3:.1f} kB"
    return f"{size} B"


def _p50(candidate: Candidate) -> str:
    spread = candidate.spread()
    text = f"p50 {candidate.p50_ms:.4g} ms"
    if spread is not None:
        text += f" (repeat spread {spread * 100:.1f}%)"
    return text


def _brief(entry: Entry) -> str:
    """`e90 tflite-int8 (p50 0.12 ms, 1.52x, 98.1%, drop 0.62 pp, 120.0 kB)`."""
    speedup = f", {entry.speedup:.2f}x" if entry.speedup is not None else ""
    accuracy = f", {entry.accuracy.value * 100:.2f}%" if entry.accuracy else ""
    drop = f", drop {entry.drop_pp:.2f} pp" if entry.drop_pp is not None else ""
    return (
        f"{entry.label} (p50 {entry.candidate.p50_ms:.4g} ms{speedup}{accuracy}{drop}, "
        f"{format_bytes(entry.candidate.bytes)})"
    )


def _entry_lines(role: str, entry: Entry) -> list[str]:
    candidate = entry.candidate
    parts = [_p50(candidate)]
    if not candidate.is_reference and entry.speedup is not None:
        parts.append(f"{speedup_text(entry)} vs the original")
    parts.append(format_bytes(candidate.bytes))
    figure = entry.accuracy if entry.accuracy is not None else candidate.best_accuracy()
    accuracy = f"accuracy {figure.describe()}" if figure else "accuracy unknown"
    if entry.drop_pp is not None and not candidate.is_reference:
        accuracy += f", drop {entry.drop_pp:.2f} pp"
    lines = [f"  {role:<12}{entry.label}: {', '.join(parts)}", f"  {'':<12}{accuracy}"]
    if candidate.path or candidate.manifest:
        lines.append(
            f"  {'':<12}file {candidate.path or '?'} (manifest {candidate.manifest or '?'})"
        )
    return lines


def speedup_text(entry: Entry, compact: bool = False) -> str:
    """`1.62x (paired, IQR 1.55-1.70 over 15 rounds)`, or the unpaired p50 ratio, named so;
    `compact` (a table cell): `1.62x [1.55-1.70]`."""
    if entry.speedup is None:
        return "?x"
    paired = entry.candidate.paired
    if entry.speedup_kind == PAIRED and paired is not None:
        if compact:
            return f"{entry.speedup:.2f}x [{paired.q1:.2f}-{paired.q3:.2f}]"
        return f"{entry.speedup:.2f}x ({paired.spread_text()})"
    if entry.speedup_kind == "reference":
        return f"{entry.speedup:.2f}x"
    return f"{entry.speedup:.2f}x ({entry.speedup_kind})"


def _range(entry: Entry) -> str:
    """The figure a tie is judged on: the paired IQR, or (old records) the repeat p50 range."""
    paired = entry.candidate.paired
    if paired is not None:
        return f"{entry.label} {paired.q1:.2f}-{paired.q3:.2f}x"
    low, high = entry.candidate.repeat_range() or (entry.candidate.p50_ms,) * 2
    return f"{entry.label} repeat p50s {low:.4g}-{high:.4g} ms"


def _tie_line(result: ConditionResult) -> str | None:
    winner, runner_up = result.winner, result.runner_up
    if winner is None or runner_up is None:
        return None
    if result.tie is None:
        return (
            "  reliability: spread not measured (one round and one repeat); "
            "cannot tell the winner from the runner-up beyond their medians"
        )
    if result.tie:
        ranges = "; ".join(_range(e) for e in (winner, *result.tied))
        return (
            f"  reliability: tie within measured spread ({ranges}): a re-run may order them "
            "differently"
        )
    ranges = f"{_range(winner)} against {_range(runner_up)}"
    return f"  reliability: clear ({ranges} do not overlap)"


def render_condition(result: ConditionResult, with_run: bool = False) -> list[str]:
    """The lines `lowrank-edge recommend` prints for one condition."""
    lines = [f"== {result.condition.label(with_run)}"]
    if result.condition.cpu_features:
        advice = "; ".join(result.condition.cpu_advice)
        lines.append(f"  cpu: {result.condition.cpu_features}{': ' + advice if advice else ''}")
    if result.reference is not None:
        lines += _entry_lines("original", result.reference)
    if result.winner is not None:
        lines += _entry_lines("recommended", result.winner)
        if result.runner_up is not None:
            lines += _entry_lines("runner-up", result.runner_up)
        lines.append(_tie_line(result) or "  reliability: no runner-up within the budget")
        if result.smallest is not None and result.smallest is not result.winner:
            lines += _entry_lines("smallest", result.smallest)
    else:
        lines.append(f"  no recommendation: {result.problem}")
    if result.entries:
        front = result.front
        lines.append(f"  Pareto front ({len(front)} of {len(result.entries)}):")
        for entry in front:
            mark = (
                "original"
                if entry.candidate.is_reference
                else "within budget"
                if entry.within_budget
                else "over budget"
            )
            speedup = f"{entry.speedup:.2f}x" if entry.speedup is not None else "?x"
            speedup += "" if entry.speedup_kind != UNPAIRED else "*"
            p50 = f"{entry.candidate.p50_ms:.4g} ms"
            lines.append(
                f"    {entry.label:<28} p50 {p50:<11} {speedup:>6}  "
                f"drop {entry.drop_pp:5.2f} pp  {format_bytes(entry.candidate.bytes):>10}  {mark}"
            )
        if any(e.speedup_kind == UNPAIRED for e in front):
            lines.append(f"    * {UNPAIRED}: timed in another group, drift not cancelled")
    lines += [f"  note: {note}" for note in result.notes]
    return lines


def render_text(recommendation: Recommendation) -> str:
    """The whole printout: the budget, the rules, then every condition."""
    several = several_runs(recommendation.conditions)
    sources = sorted(
        {
            e.accuracy.source
            for r in recommendation.conditions
            for e in r.entries
            if e.accuracy is not None
        },
        key=SOURCE_ORDER.index,
    )
    used = "; ".join(SOURCE_TEXT[s] for s in sources) or "none"
    lines = [
        f"Accuracy budget: {recommendation.max_drop_pp:g} pp below the original "
        f"({REFERENCE_VARIANT} of the bench baseline), each drop compared like for like.",
        f"Accuracy source(s) used: {used}.",
        SPEEDUP_RULE,
        FRONT_RULE,
        f"A {TIE_RULE}.",
        "",
    ]
    for result in recommendation.conditions:
        lines += render_condition(result, with_run=several) + [""]
    return "\n".join(lines).rstrip() + "\n"
