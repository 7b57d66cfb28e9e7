"""Rank policies, rounding and break-even: properties (hypothesis) and argument checks."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_edge.compress import (
    CompressionError,
    EnergyPolicy,
    FixedRankPolicy,
    FractionPolicy,
    LayerSpectrum,
    describe_policy,
    energy_fraction,
)
from lowrank_edge.compress.rank_steps import cap_rank, round_rank, worth_factorising

FAST = settings(max_examples=60, deadline=None)

spectra = st.lists(
    st.floats(min_value=0.0, max_value=1e3, allow_nan=False), min_size=1, max_size=24
).map(lambda values: np.array(sorted(values, reverse=True)))
energies = st.floats(min_value=1e-6, max_value=1.0)
measures = st.sampled_from(["squared", "abs"])


def _spectrum(values, extra_columns: int = 3) -> LayerSpectrum:
    """A LayerSpectrum for a (len, len + extra) matrix with these singular values."""
    m = len(values)
    return LayerSpectrum(
        name="layer",
        class_name="Dense",
        kernel_shape=(m, m + extra_columns),
        matrix_shape=(m, m + extra_columns),
        singular_values=np.asarray(values, dtype=np.float64),
        positions=1,
    )


@FAST
@given(spectra, energies, energies, measures)
def test_energy_rank_is_monotone_in_energy(values, e1, e2, measure):
    low, high = sorted((e1, e2))
    layer = _spectrum(values)
    assert EnergyPolicy(low, measure).choose_rank(layer) <= EnergyPolicy(high, measure).choose_rank(
        layer
    )


@FAST
@given(spectra, energies, measures)
def test_energy_rank_is_the_smallest_rank_keeping_at_least_e(values, energy, measure):
    layer = _spectrum(values)
    rank = EnergyPolicy(energy, measure).choose_rank(layer)
    assert 1 <= rank <= layer.full_rank
    assert energy_fraction(values, rank, measure) >= energy - 1e-12
    if rank > 1:
        assert energy_fraction(values, rank - 1, measure) < energy + 1e-12


def test_energy_definitions_on_a_known_spectrum():
    layer = _spectrum([3.0, 2.0, 1.0])  # squares 9, 4, 1 of 14; abs 3, 2, 1 of 6
    assert EnergyPolicy(9 / 14).choose_rank(layer) == 1
    assert EnergyPolicy(9 / 14 + 1e-6).choose_rank(layer) == 2
    assert EnergyPolicy(0.9).choose_rank(layer) == 2  # 13/14 = 0.93
    assert EnergyPolicy(0.9, measure="abs").choose_rank(layer) == 3  # 5/6 = 0.83 < 0.9
    assert EnergyPolicy(1.0).choose_rank(layer) == 3
    assert layer.energy_kept(2, "abs") == pytest.approx(5 / 6)


def test_zero_spectrum_keeps_rank_one():
    assert EnergyPolicy(1.0).choose_rank(_spectrum([0.0, 0.0])) == 1


@FAST
@given(st.integers(1, 200), st.floats(min_value=1e-3, max_value=1.0))
def test_fraction_rank_is_the_ceiling_of_the_fraction(full_rank, fraction):
    rank = FractionPolicy(fraction).choose_rank(_spectrum(np.ones(full_rank)))
    assert 1 <= rank <= full_rank
    assert rank >= fraction * full_rank - 1e-6
    assert rank - 1 < fraction * full_rank or rank == 1


def test_fraction_is_robust_to_float_noise():
    assert FractionPolicy(0.1).choose_rank(_spectrum(np.ones(30))) == 3


@FAST
@given(st.integers(1, 10_000), st.integers(1, 64), st.integers(1, 512))
def test_rounding_never_exceeds_full_rank_and_is_a_multiple_unless_capped(
    rank, multiple, full_rank
):
    rank = min(rank, full_rank)
    rounded = round_rank(rank, multiple, full_rank)
    assert rank <= rounded <= full_rank
    assert rounded % multiple == 0 or rounded == full_rank
    assert rounded - multiple < rank  # the smallest multiple at or above rank


def test_rounding_off_leaves_rank_alone():
    assert round_rank(5, None, 16) == round_rank(5, 1, 16) == 5
    assert round_rank(5, 8, 16) == 8
    assert round_rank(13, 8, 14) == 14


@FAST
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
def test_break_even_means_the_pair_is_strictly_smaller(m, n, rank):
    rank = min(rank, m, n)
    layer = dataclasses.replace(_spectrum(np.ones(min(m, n))), matrix_shape=(m, n))
    worth = worth_factorising(rank, (m, n))
    assert worth == (layer.params_at_rank(rank) < layer.params)
    assert worth == (layer.macs_at_rank(rank) < layer.macs)
    if worth and rank > 1:
        assert worth_factorising(rank - 1, (m, n))  # smaller ranks are smaller still
    assert not worth_factorising(min(m, n), (m, n))  # full rank never pays off


def test_cap_rank_caps_and_checks_policy_output():
    assert cap_rank(50, 8, "conv") == 8
    assert cap_rank(np.int64(3), 8, "conv") == 3
    for bad in (0, -1, 2.5, "3", None, True):
        with pytest.raises(CompressionError, match=r"layer 'conv'.*integer >= 1"):
            cap_rank(bad, 8, "conv")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: EnergyPolicy(0.0), r"energy must be a number in \(0, 1\], got 0.0"),
        (lambda: EnergyPolicy(1.5), "energy must be"),
        (lambda: EnergyPolicy(math.nan), "energy must be"),
        (lambda: EnergyPolicy("0.9"), "energy must be"),
        (lambda: EnergyPolicy(0.9, measure="sum"), "measure must be one of"),
        (lambda: FixedRankPolicy(0), "rank must be an integer >= 1, got 0"),
        (lambda: FixedRankPolicy(2.5), "rank must be an integer"),
        (lambda: FixedRankPolicy(True), "rank must be an integer"),
        (lambda: FractionPolicy(0), r"fraction must be a number in \(0, 1\]"),
        (lambda: FractionPolicy(1.01), "fraction must be"),
    ],
)
def test_bad_policy_arguments_are_clear_errors(make, match):
    with pytest.raises(CompressionError, match=match):
        make()


def test_fixed_rank_and_descriptions():
    assert FixedRankPolicy(4).choose_rank(_spectrum(np.ones(10))) == 4
    assert describe_policy(EnergyPolicy(0.95, "abs")) == {
        "type": "EnergyPolicy",
        "energy": 0.95,
        "measure": "abs",
    }
    assert describe_policy(FixedRankPolicy(4)) == {"type": "FixedRankPolicy", "rank": 4}
