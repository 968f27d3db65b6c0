"""Slope bounds: sound (no chord slope outside), tight (derivative extremes reached), exact QC coefficients."""

from fractions import Fraction

import numpy as np
import pytest

from lipsdp.network import activations as A
from lipsdp.network.activations import slope_interval

SPECS = [A.relu(), A.leaky_relu(0.1), A.leaky_relu(2.0), A.tanh(), A.sigmoid(), A.elu(1.0), A.elu(0.5),
         A.softplus(1.0), A.softplus(3.0), A.silu(), A.gelu(), A.gelu_tanh(), A.relu6(), A.hardtanh()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_chord_slopes_inside_interval(spec):
    x = np.linspace(-12, 12, 4001)
    f = spec.fn(x)
    rng = np.random.default_rng(0)
    i = rng.integers(0, x.size, 200_000)
    j = rng.integers(0, x.size, 200_000)
    keep = i != j
    s = (f[i[keep]] - f[j[keep]]) / (x[i[keep]] - x[j[keep]])
    a, b = spec.slope
    assert s.min() >= a - 1e-12
    assert s.max() <= b + 1e-12


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_interval_is_tight(spec):
    # dense sampling of the derivative (limits of chord slopes) reaches both ends to 1e-5
    x = np.linspace(-40, 40, 2_000_001)
    d = spec.deriv(x)
    a, b = spec.slope
    assert abs(d.min() - a) < 1e-5
    assert abs(d.max() - b) < 1e-5


def test_known_closed_forms():
    assert A.relu().slope == (0.0, 1.0)
    assert A.sigmoid().slope == (0.0, 0.25)
    assert A.tanh().slope == (0.0, 1.0)
    assert A.leaky_relu(0.01).slope[1] == 1.0 and 0.01 - 4e-6 < A.leaky_relu(0.01).slope[0] <= 0.01
    # GELU: extrema of phi' at +-sqrt(2): Phi(sqrt2) + sqrt2 pdf(sqrt2) = 1.1289...
    a, b = A.gelu().slope
    assert a < -0.1289 < a + 1e-5 and b - 1e-5 < 1.1289041 < b
    # SiLU: alpha = 1 - beta, beta = 1.0998393...
    a, b = A.silu().slope
    assert b - 1e-5 < 1.0998393 < b and a < -0.0998393 < a + 1e-5


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_qc_coefficients_exact(spec):
    a, b = spec.slope
    fa, fb = Fraction(a), Fraction(b)
    assert Fraction(2.0 * a * b) == 2 * fa * fb
    assert Fraction(a + b) == fa + fb


def test_slope_interval_rounds_outward():
    a, b = slope_interval(-0.0998393201288668, 1.0998393201288668)
    assert a <= -0.0998393201288668 and b >= 1.0998393201288668
    assert b - 1.0998393201288668 < 1e-5
    with pytest.raises(ValueError):
        slope_interval(1.0, 0.0)
    with pytest.raises(ValueError):
        slope_interval(float("nan"), 1.0)
