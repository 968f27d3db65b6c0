"""The slope-restricted quadratic constraint (Fazlyab et al., NeurIPS 2019, Lemma 1).

If phi is slope-restricted on [alpha, beta] then for every neuron j and all
pairs of inputs

    -2 (dphi_j - alpha dv_j)(dphi_j - beta dv_j)
      = [dv_j; dphi_j]^T [[-2 alpha beta, alpha + beta], [alpha + beta, -2]] [dv_j; dphi_j] >= 0.

Any nonnegative combination is again valid:

* **LipSDP-Neuron**: one multiplier lambda_j >= 0 per neuron (T = diag(lambda));
* **LipSDP-Layer**: one lambda_k >= 0 per layer (T = lambda_k I).

The coupled "LipSDP-Network" multipliers (terms lambda_ij (e_i - e_j)(e_i - e_j)^T)
are **not** offered: they are unsound for ReLU (counterexample in the tests:
f(x) = ReLU(x) - ReLU(x - 1) has Lipschitz constant 1 but the coupled form
certifies ~0).

A neuron with alpha_j == beta_j (a provably linear neuron, e.g. a stably active
ReLU in a local bound) satisfies the QC with equality, so its multiplier is free
in sign.

Per-neuron slope intervals are rounded outward onto a dyadic grid so that the
coefficients 2 alpha beta and alpha + beta are exact in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..network.activations import slope_interval
from ..network.layers import Activation
from ..sdp.lmi import AtomBlock
from .base import QCAtoms, QuadraticConstraint

__all__ = ["SlopeRestrictedQC", "dyadic_slopes"]


def dyadic_slopes(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round each per-neuron interval outward onto its dyadic grid (idempotent on grid points)."""
    a = np.empty_like(alpha, dtype=np.float64)
    b = np.empty_like(beta, dtype=np.float64)
    cache: dict = {}
    for j, (aj, bj) in enumerate(zip(alpha.tolist(), beta.tolist())):
        key = (aj, bj)
        if key not in cache:
            cache[key] = slope_interval(aj, bj, exact=True)
        a[j], b[j] = cache[key]
    return a, b


class SlopeRestrictedQC(QuadraticConstraint):
    """QC for elementwise activations slope-restricted on per-neuron [alpha_j, beta_j]."""

    name = "slope-restricted"

    def atoms(self, layer: Activation, multipliers: str) -> QCAtoms:
        n = layer.size
        alpha, beta = dyadic_slopes(*layer.slope_arrays())
        j = np.arange(n)
        support = np.stack([j, n + j], axis=1)
        coeff = np.empty((n, 2, 2))
        coeff[:, 0, 0] = 2.0 * alpha * beta  # exact: dyadic slopes
        coeff[:, 0, 1] = coeff[:, 1, 0] = -(alpha + beta)
        coeff[:, 1, 1] = 2.0
        linear = alpha == beta
        if multipliers == "neuron":
            tying = sp.identity(n, format="csr")
            nonneg = ~linear
            interior = np.ones(n)
            names = ["lambda"] * n
        elif multipliers == "layer":
            tying = sp.csr_matrix(np.ones((n, 1)))
            nonneg = np.array([not bool(np.all(linear))])
            interior = np.ones(1)
            names = ["lambda"]
        else:
            raise ValueError(f"unknown multiplier structure {multipliers!r} (use 'neuron' or 'layer')")
        return QCAtoms([AtomBlock(support, coeff)], tying, nonneg, interior, names)
