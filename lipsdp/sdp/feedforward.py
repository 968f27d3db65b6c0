"""LipSDP for feedforward networks, in l2 and l-infinity.

Network (see :class:`lipsdp.network.Chain`): x^{k+1} = phi_{k+1}(W_k x^k + b_k),
k = 0..l-1, y = W_l x^l + b_l. Biases never enter (they cancel in differences).
QCs of the activation layers: Q(lam) as in :mod:`lipsdp.constraints`.

**l2** (Fazlyab et al. 2019, Thm 2; Pauli et al. 2024 for non-slope QCs). With
xi = (dx^0, dx^1, ..., dx^l), v = A xi the pre-activations and phi = B xi the
post-activations, if

    Z = rho * [I 0; 0 0] - [A; B]^T Q(lam) [A; B] - blkdiag(0, ..., 0, W_l^T W_l)  >= 0

then ||f(x) - f(y)||_2 <= sqrt(rho) ||x - y||_2. Minimise rho.

**l-infinity** (scalar output c^T f, w = c^T W_l; Pauli et al. 2024). With an
auxiliary coordinate zeta and input multipliers mu >= 0, xi = (zeta, dx^0, ..., dx^l):

    Z = [[2 rho - 1^T mu, -w E_l], [-E_l^T w^T, blkdiag(diag(mu), 0)]] - [0 A; 0 B]^T Q [0 A; 0 B] >= 0

implies |c^T (f(x) - f(y))| <= rho ||x - y||_inf (take zeta = 1 and |dx^0_j| <= 1:
then 2 rho - 2 w dx^l >= sum_j mu_j (1 - dx0_j^2) >= 0). The bound is rho itself.

**Conditioning.** Each W_k is divided by a power of two s_k close to its norm;
the slope-restricted and NSR QCs are invariant under jointly scaling (dv, dphi)
of a layer, so the LMI of the scaled network certifies its Lipschitz bound, and
the original's is exactly prod(s_k) times it (power-of-two products are exact).

**l2 input reduction.** The l2 LMI sees dx^0 only through rho ||dx^0||^2 and W_0 dx^0,
so when n_1 < n_0 the solver gets W_0 V (thin SVD W_0 = U S V^T) instead of W_0
(same optimal value). Certification always uses the full W_0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import UnsupportedNormError
from ..network.network import Chain
from .assembly import ActivationSite, assemble, operator_norm_estimate, pow2_scale, variable_scales
from .builders import LMIPair, register_builder
from .lmi import LMI

__all__ = ["build_feedforward", "pow2_scale", "operator_norm_estimate"]

NORMS = ("l2", "linf")


def _dense(w):
    return w.toarray() if sp.issparse(w) else np.asarray(w)


def build_feedforward(chain: Chain, norm: str = "l2", method: str = "neuron", scale: bool = True,
                      reduce_input: bool = True) -> LMIPair:
    """Build the LipSDP LMIs for a feedforward chain (output selection already applied).

    Args:
        chain: canonical feedforward form.
        norm: "l2" or "linf" (linf needs a single output row).
        method: multiplier structure, "neuron" or "layer".
        scale: power-of-two per-layer scaling for conditioning (undone exactly).
        reduce_input: l2 only, use W_0 V for the solver when n_1 < n_0.
    """
    if norm not in NORMS:
        raise UnsupportedNormError(f"norm {norm!r} is not supported; use one of {NORMS}")
    weights = list(chain.weights)
    if norm == "linf" and weights[-1].shape[0] != 1:
        raise UnsupportedNormError("the l-infinity LMI bounds one output row at a time; select a row with output=")
    factors = [pow2_scale(operator_norm_estimate(w, norm)) if scale else 1.0 for w in weights]
    weights = [w * (1.0 / s) for w, s in zip(weights, factors)]  # exact: powers of two
    total = 1.0
    for s in factors:
        total *= s
    acts = list(chain.activations)
    var_scale = _variable_scales(factors, norm)
    full = _assemble(weights, acts, norm, method)
    full.scale = total
    full.var_scale = var_scale(full)
    full.meta.update(norm=norm, method=method, layer_scales=factors, reduced_input=False)
    solve = full
    n0, n1 = weights[0].shape[1], weights[0].shape[0]
    if norm == "l2" and reduce_input and n1 < n0:
        u, s, _ = np.linalg.svd(_dense(weights[0]), full_matrices=False)
        reduced = [u * s] + weights[1:]
        solve = _assemble(reduced, acts, norm, method)
        solve.scale = total
        solve.var_scale = var_scale(solve)
        solve.meta.update(norm=norm, method=method, layer_scales=factors, reduced_input=True)
    return LMIPair(solve, full)


def _variable_scales(factors: list, norm: str):
    """Map scaled-LMI variables to the unscaled network's (exact powers of two).

    Block x^k is scaled by P_k = s_0 ... s_{k-1} and the output by P = prod(s_k); see
    :func:`lipsdp.sdp.assembly.variable_scales` (rho by P^2 for l2, P for l-inf; layer k's
    multipliers by that factor / P_k^2).
    """
    sigmas = [1.0]
    for s in factors[:-1]:
        sigmas.append(sigmas[-1] * s)
    total = sigmas[-1] * factors[-1]

    def for_lmi(lmi: LMI) -> np.ndarray:
        return variable_scales(lmi, sigmas, total, norm)

    return for_lmi


def _assemble(weights: list, acts: list, norm: str, method: str) -> LMI:
    """The LMI of the chain: block k's pre-activation is W_{k-1} x^{k-1}, the output W_l x^l."""
    sites = [ActivationSite(act, {k - 1: weights[k - 1]}) for k, act in enumerate(acts, start=1)]
    return assemble(int(weights[0].shape[1]), sites, {len(acts): weights[-1]}, norm, method)


register_builder(
    "feedforward",
    lambda network: network.is_feedforward,
    lambda network, c, norm, method: build_feedforward(network.chain().with_output(c), norm=norm, method=method),
)
