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

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..constraints import qc_for
from ..errors import UnsupportedNormError
from ..network.network import Chain
from .builders import LMIPair, register_builder
from .lmi import LMI, AtomBlock, MultiplierGroup

__all__ = ["build_feedforward", "pow2_scale", "operator_norm_estimate"]

NORMS = ("l2", "linf")


def operator_norm_estimate(w, norm: str = "l2") -> float:
    """||W|| in the induced l2 (spectral) or l-infinity (max row l1) norm; l2 estimated for big matrices."""
    if norm == "linf":
        a = abs(w) if sp.issparse(w) else np.abs(w)
        return float(np.asarray(a.sum(axis=1)).max())
    if sp.issparse(w) or min(w.shape) > 1500:
        if min(w.shape) == 1:
            d = w.toarray() if sp.issparse(w) else w
            return float(np.linalg.norm(d))
        return float(spla.svds(sp.csr_matrix(w), k=1, return_singular_vectors=False, tol=1e-3)[0])
    return float(np.linalg.norm(w, 2))


def pow2_scale(value: float) -> float:
    """The power of two nearest (in log scale) to ``value`` (1 for zero/non-finite)."""
    if not (value > 0 and math.isfinite(value)):
        return 1.0
    return math.ldexp(1.0, int(round(math.log2(value))))


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

    With P = prod(s_k) and P_k = s_0 ... s_{k-1}: rho scales by P^2 (l2) or P (l-inf), the
    l-infinity input multipliers by P, and layer k's QC multipliers by (rho factor) / P_k^2
    (the QC is quadratic in (dv^k, dx^k), which the scaling divides by P_k).
    """
    total = 1.0
    for s in factors:
        total *= s
    rho_factor = total * total if norm == "l2" else total
    cumulative = [1.0]
    for s in factors[:-1]:
        cumulative.append(cumulative[-1] * s)  # cumulative[k] = P_k
    first_layer_block = 1 if norm == "l2" else 2

    def for_lmi(lmi: LMI) -> np.ndarray:
        out = np.empty(lmi.n_vars)
        for i, blk in enumerate(lmi.owner):
            k = blk - first_layer_block + 1  # activation layer index (1-based) for QC blocks
            out[i] = rho_factor if k <= 0 else rho_factor / (cumulative[k] ** 2)
        return out

    return for_lmi


def _place(w, col0: int, n_cols: int) -> sp.csr_matrix:
    """Rows of ``w`` placed at columns col0.. of an n_cols-wide sparse matrix."""
    m = sp.csr_matrix(w)
    return sp.hstack([sp.csr_matrix((m.shape[0], col0)), m,
                      sp.csr_matrix((m.shape[0], n_cols - col0 - m.shape[1]))], format="csr")


def _assemble(weights: list, acts: list, norm: str, method: str) -> LMI:
    widths = [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights[:-1]]  # n0, n1..nl
    n_out = int(weights[-1].shape[0])
    linf = norm == "linf"
    offset = 1 if linf else 0
    # xi blocks
    blocks, names = [], []
    pos = 0
    if linf:
        blocks.append((0, 1))
        names.append("zeta")
        pos = 1
    for k, n in enumerate(widths):
        blocks.append((pos, pos + n))
        names.append("x0 (input)" if k == 0 else f"x{k}")
        pos += n
    n_xi = pos

    def block_of_x(k):  # xi block index of x^k
        return k + offset

    rows = []
    sig = 0

    def add_signals(mat):
        nonlocal sig
        rows.append(mat)
        start = sig
        sig += mat.shape[0]
        return start

    zeta_sig = add_signals(_place(sp.identity(1), 0, n_xi)) if linf else None
    in_sig = add_signals(_place(sp.identity(widths[0]), blocks[block_of_x(0)][0], n_xi))
    v_sig, phi_sig = [], []
    for k in range(1, len(widths)):
        v_sig.append(add_signals(_place(weights[k - 1], blocks[block_of_x(k - 1)][0], n_xi)))
        phi_sig.append(add_signals(_place(sp.identity(widths[k]), blocks[block_of_x(k)][0], n_xi)))
    out_sig = add_signals(_place(weights[-1], blocks[block_of_x(len(widths) - 1)][0], n_xi))
    g = sp.vstack(rows, format="csr")

    atoms, tying_parts, nonneg, owner, interior, groups = [], [], [], [], [], []
    n_var = 0

    def add_vars(block_list, tying, nn, own, direction, label):
        nonlocal n_var
        atoms.extend(block_list)
        tying_parts.append((tying, n_var))
        nonneg.extend(np.asarray(nn, dtype=bool).tolist())
        owner.extend([own] * tying.shape[1])
        interior.extend(np.asarray(direction, dtype=float).tolist())
        if label:
            groups.append(MultiplierGroup(label, n_var, n_var + tying.shape[1]))
        n_var += tying.shape[1]

    # rho
    if linf:
        add_vars([AtomBlock([[zeta_sig]], [[[2.0]]])], sp.csr_matrix(np.ones((1, 1))), [True], 0, [0.0], None)
    else:
        n0 = widths[0]
        add_vars([AtomBlock(np.arange(in_sig, in_sig + n0)[:, None], np.ones((n0, 1, 1)))],
                 sp.csr_matrix(np.ones((n0, 1))), [True], 0, [0.0], None)
    # l-infinity input multipliers mu_j: atom on (zeta, x0_j) with diag(-1, 1)
    if linf:
        n0 = widths[0]
        sup = np.stack([np.full(n0, zeta_sig), in_sig + np.arange(n0)], axis=1)
        coeff = np.zeros((n0, 2, 2))
        coeff[:, 0, 0] = -1.0
        coeff[:, 1, 1] = 1.0
        add_vars([AtomBlock(sup, coeff)], sp.identity(n0, format="csr"), np.ones(n0, bool),
                 block_of_x(0), np.ones(n0), "mu (input)")
    # activation QCs
    for k, act in enumerate(acts, start=1):
        qa = qc_for(act).atoms(act, method)
        n = act.size
        local_to_global = np.concatenate([v_sig[k - 1] + np.arange(n), phi_sig[k - 1] + np.arange(n)])
        add_vars([b.shifted(local_to_global) for b in qa.blocks], qa.tying, qa.nonneg, block_of_x(k),
                 qa.interior_dir, f"layer {k} ({act.describe()})")
    # constant atoms: output term
    if linf:
        const = [AtomBlock([[zeta_sig, out_sig]], [[[0.0, -1.0], [-1.0, 0.0]]])]
    else:
        const = [AtomBlock(np.arange(out_sig, out_sig + n_out)[:, None], -np.ones((n_out, 1, 1)))]

    n_atoms = sum(b.count for b in atoms)
    a0 = 0
    t_blocks = []
    for tmat, v0 in tying_parts:
        t_blocks.append((tmat.tocoo(), a0, v0))
        a0 += tmat.shape[0]
    r = np.concatenate([t.row + ra for t, ra, _ in t_blocks])
    c = np.concatenate([t.col + cv for t, _, cv in t_blocks])
    d = np.concatenate([t.data for t, _, _ in t_blocks])
    tying = sp.csr_matrix((d, (r, c)), shape=(n_atoms, n_var))
    return LMI(
        G=g,
        blocks=blocks,
        block_names=names,
        atoms=atoms,
        constant_atoms=const,
        tying=tying,
        nonneg=np.array(nonneg),
        owner=np.array(owner),
        interior_dir=np.array(interior),
        rho_coeff=2.0 if linf else 1.0,
        bound_kind="linear" if linf else "sqrt",
        groups=groups,
        meta={"widths": widths + [n_out]},
    )


register_builder(
    "feedforward",
    lambda network: network.is_feedforward,
    lambda network, c, norm, method: build_feedforward(network.chain().with_output(c), norm=norm, method=method),
)
