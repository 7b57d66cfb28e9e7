"""One process versus N localhost workers (`--distribute multi-worker`): the cost of the
collectives, measured on this machine, and where multi-worker would pay off.

Usage (from the repo root, with the project's environment; run it alone on the machine):

    .venv/bin/python bench/distribute_overhead.py --out bench/results/distribute-mnist \
        --dataset mnist --max-images 2000 --epochs 2 --repeats 3

Each repeat trains the reference mini-ResNet from scratch (`lowrank-edge train`, the same
global batch) once in one process and once as `--workers` processes on 127.0.0.1, side by
side, alternating which goes first. OUT gets command.json, runs.json (every run's wall time,
epoch times and steps) and summary.md: median steps per second and wall time of each, their
paired ratios, and the payoff estimate below.

On one machine the workers share its cores, so this shows the overhead, not a speed-up. The
estimate: one process takes t1 s a step; N workers here take tN s a step on the same cores,
so tN - t1 bounds the per-step cost c of the collectives (gradient all-reduce over loopback,
plus the workers' contention for the cores). On N machines like this one a step would take
t1 / N + c. Training costs s = t1 / (B * M) seconds per image-MAC (global batch B, model MACs
per image M), so multi-worker pays when M > N c / ((N - 1) B s), and over a whole run when
images x epochs x (M s (N - 1) / N - c / B) exceeds the extra start-up time measured here.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a bare checkout, before any install
    sys.path.insert(0, str(REPO))

from lowrank_edge.benchmark.reporting.markdown import table_lines  # noqa: E402
from lowrank_edge.benchmark.results.provenance import start_results_folder  # noqa: E402
from lowrank_edge.fileio import write_json_atomic, write_text_atomic  # noqa: E402
from lowrank_edge.model.local_workers import free_ports, run_local_workers  # noqa: E402

EPOCH = re.compile(r"^Epoch (\d+)/\d+ - ([0-9.]+)s - ", re.MULTILINE)
TRAINED = re.compile(r"^\[train\] \d+ s, (\d+) steps;", re.MULTILINE)
MODEL = re.compile(r"^\[train\] .*: ([0-9,]+) params", re.MULTILINE)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="result folder")
    parser.add_argument("--dataset", default="mnist", help="--dataset of `lowrank-edge train`")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-images", type=int, default=None, help="per class")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def train_args(args: argparse.Namespace, out: Path) -> list[str]:
    argv = [str(Path(sys.executable).with_name("lowrank-edge")), "train", "--dataset",
            args.dataset, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--out", str(out)]  # fmt: skip
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.max_images:
        argv += ["--max-images", str(args.max_images)]
    return argv


def parsed(stdout: str, stderr: str, returncode: int, wall: float, kind: str) -> dict:
    """One run's record from the chief's output: wall, epoch seconds, steps."""
    if returncode != 0:
        raise SystemExit(f"{kind} run failed ({returncode}):\n{stderr[-3000:]}")
    epochs = [float(s) for _, s in EPOCH.findall(stdout)]
    steps = int(TRAINED.search(stdout).group(1))
    return {"kind": kind, "wall_s": round(wall, 2), "epoch_s": epochs, "steps": steps,
            "params": int(MODEL.search(stdout).group(1).replace(",", ""))}  # fmt: skip


def one_process(args: argparse.Namespace, folder: Path) -> dict:
    argv = [*train_args(args, folder / "one.keras"), "--overwrite"]
    start = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout,
                         env=plain_env())  # fmt: skip
    wall = time.perf_counter() - start
    return parsed(run.stdout, run.stderr, run.returncode, wall, "one process")


def plain_env() -> dict:
    """This environment without a TF_CONFIG of its own (the workers get theirs)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}


def workers(args: argparse.Namespace, folder: Path) -> dict:
    argv = [*train_args(args, folder / "workers.keras"), "--overwrite", "--distribute",
            "multi-worker"]  # fmt: skip
    runs = run_local_workers(argv, free_ports(args.workers), args.timeout, env=plain_env())
    for run in runs[1:]:
        if run.returncode != 0:
            raise SystemExit(f"worker {run.index} failed:\n{run.stderr[-3000:]}")
    chief = runs[0]
    record = parsed(chief.stdout, chief.stderr, chief.returncode, max(r.seconds for r in runs),
                    f"{args.workers} workers")  # fmt: skip
    return record


def model_macs(path: Path) -> int:
    from lowrank_edge.compress.cost import model_cost
    from lowrank_edge.model.saving import load_model

    return int(model_cost(load_model(path)).macs)


def steady_step_s(record: dict) -> float:
    """Seconds a step after the first epoch (which also traces the graphs)."""
    per_epoch = record["steps"] / len(record["epoch_s"])
    later = record["epoch_s"][1:] or record["epoch_s"]
    return statistics.median(later) / per_epoch


def summary(args: argparse.Namespace, runs: list[dict], macs: int) -> tuple[dict, list[str]]:
    ones = [r for r in runs if r["kind"] == "one process"]
    many = [r for r in runs if r["kind"] != "one process"]
    pairs = list(zip(ones, many, strict=True))
    t1 = statistics.median(steady_step_s(r) for r in ones)
    tn = statistics.median(steady_step_s(r) for r in many)
    wall_ratio = statistics.median(b["wall_s"] / a["wall_s"] for a, b in pairs)
    step_ratio = statistics.median(steady_step_s(b) / steady_step_s(a) for a, b in pairs)
    startup = statistics.median(
        (b["wall_s"] - sum(b["epoch_s"])) - (a["wall_s"] - sum(a["epoch_s"])) for a, b in pairs
    )
    n, batch = args.workers, args.batch_size
    collective_s = max(tn - t1, 0.0)
    per_image_mac_s = t1 / (batch * macs)
    break_even_macs = (n * collective_s / ((n - 1) * batch * per_image_mac_s)
                       if collective_s else 0.0)  # fmt: skip
    figures = {
        "one_process_step_s": t1, "workers_step_s": tn, "steps_per_s_one": 1 / t1,
        "steps_per_s_workers": 1 / tn, "paired_step_ratio": step_ratio,
        "paired_wall_ratio": wall_ratio, "extra_startup_s": startup,
        "collective_s_per_step_bound": collective_s, "model_macs": macs,
        "train_s_per_image_mac": per_image_mac_s, "break_even_macs_per_image": break_even_macs,
    }  # fmt: skip
    walls = [f"{statistics.median(r['wall_s'] for r in group):.1f}" for group in (ones, many)]
    rows = [["", "one process", f"{n} workers (127.0.0.1)", "paired ratio (workers / one)"],
            ["steps per second (after epoch 1, median)", f"{1 / t1:.2f}", f"{1 / tn:.2f}",
             f"{1 / step_ratio:.2f}x"],
            ["wall seconds (median)", *walls, f"{wall_ratio:.2f}x"]]  # fmt: skip
    lines = [
        f"# One process vs {n} localhost workers: `lowrank-edge train --dataset {args.dataset}`",
        "",
        f"{args.repeats} paired repeats, {args.epochs} epochs each, global batch {batch}, "
        f"{runs[0]['steps']} steps in all, model {runs[0]['params']:,} params, "
        f"{macs:,} MACs per image. The workers share this machine's cores: this is the "
        "overhead of multi-worker, not a speed-up.",
        "",
        *table_lines(rows[0], rows[1:]),
        "",
        "## Where multi-worker pays off (an estimate from these figures)",
        "",
        f"- c, the per-step cost of the collectives (bounded by tN - t1 here): "
        f"{collective_s * 1000:.1f} ms; extra start-up per run: {startup:.1f} s.",
        f"- s, training seconds per image-MAC in one process: {per_image_mac_s:.3g}.",
        f"- On {n} machines like this one a step takes about t1/{n} + c, so multi-worker pays "
        f"when the model has more than N c / ((N - 1) B s) = {break_even_macs / 1e6:.1f} M "
        "MACs per image (this model: "
        f"{macs / 1e6:.2f} M), and over a run when images x epochs x (M s (N-1)/N - c/B) "
        f"exceeds {startup:.0f} s.",
        "- c grows with the parameters all-reduced each step and with a real network's "
        "latency (loopback here), so treat this as a lower bound for machines on a LAN.",
    ]
    return figures, lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start_results_folder(args.out, ("runs.json", "summary.md"), overwrite=args.overwrite)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="distribute-bench-") as tmp:
        folder = Path(tmp)
        for repeat in range(args.repeats):
            order = (one_process, workers) if repeat % 2 == 0 else (workers, one_process)
            for measure in order:
                started = time.strftime("%H:%M:%S")
                record = {**measure(args, folder), "repeat": repeat}
                print(f"[{started}] repeat {repeat}: {record['kind']}: wall "
                      f"{record['wall_s']:.1f} s, epochs {record['epoch_s']}",
                      flush=True)  # fmt: skip
                runs.append(record)
                write_json_atomic(args.out / "runs.json", {"runs": runs}, overwrite=True)
        runs.sort(key=lambda r: (r["repeat"], r["kind"] != "one process"))
        macs = model_macs(folder / "one.keras")
    figures, lines = summary(args, runs, macs)
    write_json_atomic(args.out / "runs.json", {"runs": runs, "summary": figures}, overwrite=True)
    write_text_atomic(args.out / "summary.md", "\n".join(lines) + "\n", overwrite=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
