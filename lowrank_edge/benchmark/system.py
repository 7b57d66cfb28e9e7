"""Facts about the machine a benchmark ran on, and CPU pinning.

Recorded with every result so runs from different devices can be compared
and a surprising number can be traced to its machine, load or runtime version.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from lowrank_edge import __version__
from lowrank_edge.benchmark.cpu_features import cpu_features
from lowrank_edge.errors import LowrankEdgeError

RUNTIME_PACKAGES = (
    "numpy",
    "onnxruntime",
    "ai-edge-litert",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model from /proc/cpuinfo (x86 'model name', ARM 'Hardware'/'Model')."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin_cpus(cpus: Sequence[int]) -> list[int]:
    """Restrict this process (and the subprocesses it starts) to `cpus`; return the new affinity."""
    if not hasattr(os, "sched_setaffinity"):
        raise LowrankEdgeError(
            "--cpus needs os.sched_setaffinity, which this OS lacks (Linux only)"
        )
    wanted = sorted(set(cpus))
    existing = os.cpu_count() or 0
    bad = [cpu for cpu in wanted if cpu < 0 or cpu >= existing]
    if not wanted or bad:
        raise LowrankEdgeError(
            f"--cpus: CPU ids must be in 0..{existing - 1} on this machine, got {list(cpus)}"
        )
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as error:
        raise LowrankEdgeError(f"--cpus {wanted}: cannot pin to these CPUs ({error})") from error
    return available_cpus()


def package_versions(names: Sequence[str] = RUNTIME_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the runtimes (None when absent), read without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def system_facts() -> dict:
    """CPU (model and the features that decide int8/fp16 speed), cores, affinity, load, OS,
    Python, runtime and lowrank-edge versions."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "affinity": available_cpus(),
        "load_average": list(load) if load else None,
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "lowrank_edge": __version__,
        "packages": package_versions(),
    }
