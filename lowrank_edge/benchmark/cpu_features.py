"""The CPU features that decide int8 and float16 speed, and what they mean in words.

Read from /proc/cpuinfo ('flags' on x86, 'Features' on ARM), recorded with every benchmark
record (`system_facts`), and turned into the advice that `bench` and `recommend` print, e.g.
"int8 runs on AMX and VNNI here". The words describe the instructions, not a measurement: the
timed ratios decide what ships.
"""

from __future__ import annotations

from pathlib import Path

# our name -> the /proc/cpuinfo flags that give it (any one of them)
FEATURE_FLAGS = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "vnni": ("avx512_vnni", "avx_vnni"),  # int8 dot products, 512- or 256-bit
    "amx_int8": ("amx_int8",),  # int8 tile matrix multiply (Sapphire Rapids and later)
    "avx512_fp16": ("avx512_fp16",),  # float16 arithmetic
    "f16c": ("f16c",),  # float16 <-> float32 conversion only
    "neon_dot": ("asimddp",),  # ARM int8 dot product (SDOT/UDOT)
    "neon_i8mm": ("i8mm",),  # ARM int8 matrix multiply
    "neon_fp16": ("asimdhp", "fphp"),  # ARM float16 arithmetic
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's flags (x86 'flags', ARM 'Features'); empty when unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """Which of `FEATURE_FLAGS` this CPU has."""
    flags = cpu_flags(cpuinfo)
    return {name: any(f in flags for f in wanted) for name, wanted in FEATURE_FLAGS.items()}


def precision_advice(features: dict[str, bool] | None) -> list[str]:
    """Plain sentences on int8 and float16 for a CPU with `features` (none when unknown)."""
    if not features or not any(features.values()):
        return []
    has = {name for name, present in features.items() if present}
    if "amx_int8" in has:
        int8 = "int8 runs on AMX and VNNI here: int8 files can be several times faster than float32"
    elif "vnni" in has:
        int8 = "int8 runs on VNNI here: int8 files are usually faster than float32"
    elif "neon_dot" in has:
        int8 = "int8 runs on the NEON dot-product instructions here"
    elif "avx2" in has:
        int8 = (
            "no VNNI: int8 runs on AVX2 in 16-bit steps, often little faster than float32 on "
            "this CPU"
        )
    else:
        int8 = "no int8 dot-product instructions: int8 is not expected to be faster here"
    if "avx512_fp16" in has or "neon_fp16" in has:
        fp16 = (
            "the CPU has float16 arithmetic; a float16 file is faster only where the runtime "
            "uses it (XNNPACK computes float16 files in float32 unless told otherwise)"
        )
    else:
        fp16 = "no float16 arithmetic: float16 files halve the size and compute in float32"
    return [int8, fp16]


def feature_list(features: dict[str, bool] | None) -> str:
    """`avx2 avx512 vnni amx_int8` (the features present), or '-'."""
    present = [name for name, value in (features or {}).items() if value]
    return " ".join(present) or "-"
