"""CPU features read from /proc/cpuinfo-style text (x86 and ARM), the advice in words, and
where they show: system facts, the bench report's devices and `recommend`'s lines."""

from __future__ import annotations

import pytest

from lowrank_edge.benchmark.cpu_features import cpu_features, feature_list, precision_advice
from lowrank_edge.benchmark.recommend import Condition, ConditionResult, render_condition
from lowrank_edge.benchmark.reporting.markdown import device_section
from lowrank_edge.benchmark.system import system_facts

XEON = "model name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx2 f16c avx512f avx512_vnni avx512_fp16 amx_int8 avx_vnni\n"  # noqa: E501
EPYC = "model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 f16c fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp i8mm\nCPU part\t: 0xd0c\n"
OLD_ARM = "processor\t: 0\nFeatures\t: fp asimd\n"


@pytest.mark.parametrize(
    "text, present, int8_words, fp16_words",
    [
        (XEON, "avx2 avx512 vnni amx_int8 avx512_fp16 f16c", "AMX and VNNI", "has float16"),
        (EPYC, "avx2 f16c", "no VNNI: int8 runs on AVX2", "no float16 arithmetic"),
        (ARM, "neon_dot neon_i8mm neon_fp16", "NEON dot-product", "has float16"),
        (OLD_ARM, "", "", ""),
    ],
)
def test_features_and_advice_per_cpu(tmp_path, text, present, int8_words, fp16_words):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    features = cpu_features(cpuinfo)
    assert feature_list(features) == (present or "-")
    advice = precision_advice(features)
    if not present:
        assert advice == []  # nothing known: no words rather than wrong ones
        return
    assert int8_words in advice[0] and fp16_words in advice[1]


def test_unreadable_cpuinfo_gives_no_features(tmp_path):
    features = cpu_features(tmp_path / "missing")
    assert not any(features.values()) and precision_advice(features) == []


def test_features_show_in_facts_report_and_recommend():
    assert set(system_facts()["cpu_features"]) >= {"avx2", "vnni", "amx_int8", "neon_dot"}
    features = {"avx2": True, "vnni": False}
    record = {"device": "dev", "system": {"cpu_model": "AMD EPYC", "cpu_features": features}}
    report = "\n".join(device_section([record]))
    assert "| avx2 |" in report and "* dev: no VNNI: int8 runs on AVX2" in report
    condition = Condition(
        "dev", "litert", 1, 32, cpu_features="avx2", cpu_advice=tuple(precision_advice(features))
    )
    lines = render_condition(ConditionResult(condition=condition, max_drop_pp=0.5))
    assert lines[1].startswith("  cpu: avx2: no VNNI: int8 runs on AVX2")
