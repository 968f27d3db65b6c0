"""Elementwise activations and their slope bounds.

An activation phi is *slope-restricted* on [alpha, beta] when, for all x != y,

    alpha <= (phi(x) - phi(y)) / (x - y) <= beta.

For a differentiable (or piecewise differentiable, continuous) phi the tightest
such interval is [inf phi', sup phi'] (mean value theorem; chords approach the
derivative). These intervals are what the slope-restricted quadratic constraint
of LipSDP uses, so they must be *sound*: every interval stored here is rounded
outward onto a dyadic grid (see :func:`slope_interval`), which also makes the
QC coefficients ``2*alpha*beta`` and ``alpha + beta`` exact in float64 - a fact
the rigorous certification relies on.

Smooth activations with non-monotone derivative (SiLU, GELU) have alpha < 0 and
beta > 1; their extrema are computed to machine precision from the roots of
phi'' and then rounded outward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf, expit

__all__ = [
    "ActivationSpec",
    "slope_interval",
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "elu",
    "softplus",
    "silu",
    "gelu",
    "gelu_tanh",
    "identity",
    "hardtanh",
    "relu6",
]

_GRID_BITS = 20


def slope_interval(alpha: float, beta: float, exact: bool = False) -> tuple[float, float]:
    """Round a slope interval outward onto a dyadic grid.

    The grid spacing is ``2**(e - 20)`` where ``2**e >= max(|alpha|, |beta|)``, so
    alpha = A*s and beta = B*s with |A|, |B| <= 2**20 and both ``alpha*beta`` and
    ``alpha + beta`` (and twice them) are exactly representable in float64.
    Unless ``exact`` is set, the values are first widened by a relative 1e-12
    to absorb the rounding error of however they were computed. The widening
    loosens the interval by at most ~1e-6 relative, far below solver accuracy.
    """
    alpha = float(alpha)
    beta = float(beta)
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        raise ValueError(f"slope interval must be finite, got [{alpha}, {beta}]")
    if alpha > beta:
        raise ValueError(f"slope interval is empty: alpha={alpha} > beta={beta}")
    mag = max(abs(alpha), abs(beta))
    if mag == 0.0:
        return 0.0, 0.0
    if not exact:
        guard = 1e-12 * mag
        alpha -= guard
        beta += guard
        mag = max(abs(alpha), abs(beta))
    e = math.frexp(mag)[1]  # mag < 2**e
    s = math.ldexp(1.0, e - _GRID_BITS)
    a = math.floor(alpha / s) * s
    b = math.ceil(beta / s) * s
    return float(a), float(b)


@dataclass(frozen=True)
class ActivationSpec:
    """An elementwise activation: its function, derivatives and sound slope interval.

    Attributes:
        name: human-readable name including parameters, e.g. ``"leaky_relu(0.01)"``.
        slope: (alpha, beta), outward-rounded (see :func:`slope_interval`).
        fn: numpy implementation, elementwise.
        deriv: phi' (at kinks any one-sided value).
        deriv2: phi'' used by gradient ascent for lower bounds; for piecewise-linear
            activations this is a smooth surrogate (the true phi'' is zero a.e.).
        params: constructor parameters, for display and serialisation.
        local_slope: ``(l, u) -> (alpha, beta, exact)``, per-neuron arrays containing the
            range of phi' over each pre-activation interval [l_j, u_j] (hence every chord
            slope of phi restricted to it); ``exact`` says the values are exact (piecewise-linear
            activations), otherwise callers widen them for rounding (see
            :func:`lipsdp.bounds.local.local_slopes`). None: only the global interval is known.
    """

    name: str
    slope: tuple[float, float]
    fn: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)
    deriv: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)
    deriv2: Callable[[np.ndarray], np.ndarray] = field(compare=False, repr=False)
    params: tuple = ()
    local_slope: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def alpha(self) -> float:
        return self.slope[0]

    @property
    def beta(self) -> float:
        return self.slope[1]

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant of phi: max(|alpha|, |beta|)."""
        return max(abs(self.slope[0]), abs(self.slope[1]))

    @property
    def is_linear(self) -> bool:
        return self.slope[0] == self.slope[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)


# ---- slope ranges over an interval [l, u] (local bounds) -------------------------------------

def _pieces_range(l, u, breaks, slopes):
    """Slope range of a continuous piecewise-linear phi with kinks ``breaks`` (sorted) and the
    slopes of its ``len(breaks) + 1`` pieces, over each [l_j, u_j]; exact."""
    l = np.asarray(l, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    edges = [-np.inf] + list(breaks) + [np.inf]
    lo = np.full(l.shape, np.inf)
    hi = np.full(l.shape, -np.inf)
    for k, s in enumerate(slopes):
        present = (l < edges[k + 1]) & (u > edges[k])
        lo = np.where(present, np.minimum(lo, s), lo)
        hi = np.where(present, np.maximum(hi, s), hi)
    # l == u on a kink: the pre-activation is constant, any slope is valid; use the left piece's
    none = lo > hi
    if np.any(none):
        k = np.searchsorted(np.asarray(breaks, dtype=np.float64), l, side="left")
        val = np.asarray(slopes, dtype=np.float64)[k]
        lo = np.where(none, val, lo)
        hi = np.where(none, val, hi)
    return lo, hi, True


def _piecewise(breaks, slopes):
    return lambda l, u: _pieces_range(l, u, breaks, slopes)


def _smooth_range(d1, critical):
    """Range of a continuous phi' over [l, u]: extrema at the endpoints or at critical points
    (zeros of phi'') inside the interval. Not exact: callers widen for rounding."""

    def rng(l, u):
        l = np.asarray(l, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        dl, du = d1(l), d1(u)
        lo, hi = np.minimum(dl, du), np.maximum(dl, du)
        for c in critical:
            inside = (l <= c) & (c <= u)
            if np.any(inside):
                dc = float(d1(np.float64(c)))
                lo = np.where(inside, np.minimum(lo, dc), lo)
                hi = np.where(inside, np.maximum(hi, dc), hi)
        return lo, hi, False

    return rng


def _elu_range(a: float):
    """phi' = a e^x on x < 0 (monotone in x), 1 on x > 0."""

    def rng(l, u):
        l = np.asarray(l, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        e1 = a * np.exp(np.minimum(l, 0.0))
        e2 = a * np.exp(np.minimum(u, 0.0))
        neg = l < 0
        pos = u > 0
        lo = np.where(neg, np.minimum(e1, e2), np.inf)
        hi = np.where(neg, np.maximum(e1, e2), -np.inf)
        lo = np.where(pos, np.minimum(lo, 1.0), lo)
        hi = np.where(pos, np.maximum(hi, 1.0), hi)
        none = lo > hi  # l == u == 0
        lo = np.where(none, 1.0, lo)
        hi = np.where(none, 1.0, hi)
        return lo, hi, False

    return rng


def _kink_surrogate(x: np.ndarray, jump: float, width: float = 0.05) -> np.ndarray:
    """A smooth stand-in for phi'' of a piecewise-linear phi with a slope jump at 0."""
    s = expit(x / width)
    return jump * s * (1.0 - s) / width


def identity() -> ActivationSpec:
    return ActivationSpec(
        "identity", (1.0, 1.0), lambda x: np.asarray(x, dtype=float), np.ones_like, np.zeros_like,
        local_slope=_piecewise([], [1.0]),
    )


def relu() -> ActivationSpec:
    return ActivationSpec(
        "relu",
        (0.0, 1.0),
        lambda x: np.maximum(x, 0.0),
        lambda x: (np.asarray(x) > 0).astype(float),
        lambda x: _kink_surrogate(x, 1.0),
        local_slope=_piecewise([0.0], [0.0, 1.0]),
    )


def leaky_relu(negative_slope: float = 0.01) -> ActivationSpec:
    a = float(negative_slope)
    lo, hi = slope_interval(min(a, 1.0), max(a, 1.0), exact=True)
    return ActivationSpec(
        f"leaky_relu({a:g})",
        (lo, hi),
        lambda x: np.where(x > 0, x, a * x),
        lambda x: np.where(np.asarray(x) > 0, 1.0, a),
        lambda x: _kink_surrogate(x, 1.0 - a),
        (a,),
        local_slope=_piecewise([0.0], [a, 1.0]),
    )


def tanh() -> ActivationSpec:
    return ActivationSpec(
        "tanh",
        (0.0, 1.0),
        np.tanh,
        lambda x: 1.0 - np.tanh(x) ** 2,
        lambda x: -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2),
        local_slope=_smooth_range(lambda x: 1.0 - np.tanh(x) ** 2, [0.0]),
    )


def sigmoid() -> ActivationSpec:
    def d1(x):
        s = expit(x)
        return s * (1.0 - s)

    def d2(x):
        s = expit(x)
        return s * (1.0 - s) * (1.0 - 2.0 * s)

    return ActivationSpec("sigmoid", (0.0, 0.25), expit, d1, d2, local_slope=_smooth_range(d1, [0.0]))


def elu(alpha: float = 1.0) -> ActivationSpec:
    a = float(alpha)
    lo, hi = slope_interval(min(0.0, a), max(1.0, a), exact=True)
    return ActivationSpec(
        f"elu({a:g})",
        (lo, hi),
        lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(np.asarray(x) > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
        lambda x: np.where(np.asarray(x) > 0, 0.0, a * np.exp(np.minimum(x, 0.0)))
        + _kink_surrogate(x, 1.0 - a),
        (a,),
        local_slope=_elu_range(a),
    )


def softplus(beta: float = 1.0) -> ActivationSpec:
    """softplus(x) = log(1 + exp(beta x)) / beta; phi' = sigmoid(beta x) in (0, 1)."""
    b = float(beta)
    if not b > 0:
        raise ValueError(f"softplus beta must be positive, got {b}")

    def d1(x):
        return expit(b * np.asarray(x))

    def d2(x):
        s = expit(b * np.asarray(x))
        return b * s * (1.0 - s)

    return ActivationSpec(
        f"softplus({b:g})", (0.0, 1.0), lambda x: np.logaddexp(0.0, b * np.asarray(x)) / b, d1, d2, (b,),
        local_slope=_smooth_range(d1, []),
    )


def hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> ActivationSpec:
    lo_v, hi_v = float(min_val), float(max_val)
    return ActivationSpec(
        f"hardtanh({lo_v:g},{hi_v:g})",
        (0.0, 1.0),
        lambda x: np.clip(x, lo_v, hi_v),
        lambda x: ((np.asarray(x) > lo_v) & (np.asarray(x) < hi_v)).astype(float),
        lambda x: _kink_surrogate(x - lo_v, 1.0) - _kink_surrogate(x - hi_v, 1.0),
        (lo_v, hi_v),
        local_slope=_piecewise([lo_v, hi_v], [0.0, 1.0, 0.0]),
    )


def relu6() -> ActivationSpec:
    spec = hardtanh(0.0, 6.0)
    return ActivationSpec("relu6", spec.slope, spec.fn, spec.deriv, spec.deriv2, local_slope=spec.local_slope)


# ---- SiLU: phi(x) = x sigmoid(x) -------------------------------------------------------------

def _silu_d1(x):
    s = expit(x)
    return s * (1.0 + x * (1.0 - s))


def _silu_d2(x):
    s = expit(x)
    return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


def _silu_slope() -> tuple[float, float]:
    # phi'' = 0  <=>  x tanh(x/2) = 2; phi'(x) + phi'(-x) = 1, so alpha = 1 - beta.
    xstar = brentq(lambda x: x * math.tanh(x / 2.0) - 2.0, 1.0, 4.0, xtol=1e-15, rtol=1e-15)
    beta = float(_silu_d1(np.float64(xstar)))
    alpha = float(_silu_d1(np.float64(-xstar)))
    return slope_interval(alpha, beta)


def _silu_xstar() -> float:
    return brentq(lambda x: x * math.tanh(x / 2.0) - 2.0, 1.0, 4.0, xtol=1e-15, rtol=1e-15)


def silu() -> ActivationSpec:
    return ActivationSpec("silu", _SILU_SLOPE, lambda x: x * expit(x), _silu_d1, _silu_d2,
                          local_slope=_smooth_range(_silu_d1, [-_SILU_XSTAR, _SILU_XSTAR]))


# ---- GELU: phi(x) = x Phi(x) (exact) and its tanh approximation --------------------------------

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_fn(x):
    return x * 0.5 * (1.0 + erf(x / _SQRT2))


def _gelu_d1(x):
    return 0.5 * (1.0 + erf(x / _SQRT2)) + x * _INV_SQRT_2PI * np.exp(-0.5 * np.square(x))


def _gelu_d2(x):
    return _INV_SQRT_2PI * np.exp(-0.5 * np.square(x)) * (2.0 - np.square(x))


def _gelu_slope() -> tuple[float, float]:
    # phi'' = pdf(x) (2 - x^2): extrema of phi' at x = +-sqrt(2).
    beta = float(_gelu_d1(np.float64(_SQRT2)))
    alpha = float(_gelu_d1(np.float64(-_SQRT2)))
    return slope_interval(alpha, beta)


def gelu() -> ActivationSpec:
    return ActivationSpec("gelu", _GELU_SLOPE, _gelu_fn, _gelu_d1, _gelu_d2,
                          local_slope=_smooth_range(_gelu_d1, [-_SQRT2, _SQRT2]))


_C_TANH = math.sqrt(2.0 / math.pi)


def _gelu_tanh_fn(x):
    return 0.5 * x * (1.0 + np.tanh(_C_TANH * (x + 0.044715 * x**3)))


def _gelu_tanh_d1(x):
    u = _C_TANH * (x + 0.044715 * x**3)
    t = np.tanh(u)
    du = _C_TANH * (1.0 + 3 * 0.044715 * x**2)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * du


def _gelu_tanh_d2(x, h: float = 1e-5):
    return (_gelu_tanh_d1(x + h) - _gelu_tanh_d1(x - h)) / (2 * h)


def _gelu_tanh_slope() -> tuple[float, float]:
    # Extrema of phi' where phi'' = 0: bracket the roots on a dense grid, then refine with brentq
    # on a centred difference of the closed-form phi' (phi'' changes sign exactly once per bracket).
    grid = np.linspace(-6.0, 6.0, 120001)
    d2 = _gelu_tanh_d2(grid)
    idx = np.nonzero(np.sign(d2[:-1]) != np.sign(d2[1:]))[0]
    vals = [float(_gelu_tanh_d1(np.float64(v))) for v in (-6.0, 6.0)]
    roots: list = []
    for i in idx:
        r = brentq(lambda t: float(_gelu_tanh_d2(np.float64(t))), grid[i], grid[i + 1], xtol=1e-14)
        roots.append(float(r))
        vals.append(float(_gelu_tanh_d1(np.float64(r))))
    # Tails: phi' -> 0 (x -> -inf) and -> 1 (x -> +inf), both inside [min, max] above.
    vals += [0.0, 1.0]
    return slope_interval(min(vals), max(vals)), roots


def gelu_tanh() -> ActivationSpec:
    return ActivationSpec("gelu_tanh", _GELU_TANH_SLOPE[0], _gelu_tanh_fn, _gelu_tanh_d1, _gelu_tanh_d2,
                          local_slope=_smooth_range(_gelu_tanh_d1, _GELU_TANH_SLOPE[1]))


_SILU_SLOPE = _silu_slope()
_SILU_XSTAR = _silu_xstar()
_GELU_SLOPE = _gelu_slope()
_GELU_TANH_SLOPE = _gelu_tanh_slope()
