"""Signal-form assembly shared by every LipSDP builder (feedforward, residual, implicit).

A network whose activation layers are a_1..a_m (in order) is lowered to

* the stacked state xi = (dx^0, dphi_1, ..., dphi_m): the input block and one block per
  activation layer (its outputs);
* for each activation layer a its *pre-activation* dv_a = sum_b M_{a,b} xi_b, a linear map
  of the blocks b <= a (b = a only for implicit layers, whose pre-activation reads their own
  output: v = U x + W z);
* the output dy = sum_b O_b xi_b.

The LMI is then the signal form of :mod:`lipsdp.sdp.lmi` with the rows

    [zeta (l-inf only)], dx^0, (dv_1, dphi_1), ..., (dv_m, dphi_m), dy

and the atoms

* **l2**: rho on each input coordinate; each layer's QC atoms (:func:`lipsdp.constraints.qc_for`)
  on (dv_a, dphi_a); the constant atoms -dy_i^2. Z >= 0 proves ||dy||_2 <= sqrt(rho) ||dx||_2.
* **l-infinity** (one output row w): rho as 2 rho zeta^2; input multipliers mu_j >= 0 as
  mu_j (dx_j^2 - zeta^2); the QC atoms; the constant cross atom -2 zeta dy. Z >= 0 proves
  |dy| <= rho ||dx||_inf.

A feedforward chain is the special case M_{k, k-1} = W_{k-1}, O_l = W_l.

**Scaling** (:func:`block_scales`). Any powers of two sigma_b > 0 (sigma_0 = 1) define an exact
change of variables xi~_b = xi_b / sigma_b, provided a pre-activation is scaled with the same
factor as its layer's outputs (the QCs are homogeneous of degree 2 in (dv_a, dphi_a)): the
maps become M~_{a,b} = M_{a,b} sigma_b / sigma_a and O~_b = O_b sigma_b / sigma_out, and the
LMI of the scaled maps certifies the original with bound sigma_out * (its bound) and the
multipliers of :func:`variable_scales`. Residual sums need no special care: every map is
expressed in the blocks of xi, so each term is rescaled by its own (exact) ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..constraints import qc_for
from .lmi import LMI, AtomBlock, MultiplierGroup

__all__ = ["ActivationSite", "assemble", "place", "pow2_scale", "operator_norm_estimate", "block_scales",
           "variable_scales", "scaled_maps"]


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


def place(w, col0: int, n_cols: int) -> sp.csr_matrix:
    """Rows of ``w`` placed at columns col0.. of an n_cols-wide sparse matrix."""
    m = sp.csr_matrix(w)
    return sp.hstack([sp.csr_matrix((m.shape[0], col0)), m,
                      sp.csr_matrix((m.shape[0], n_cols - col0 - m.shape[1]))], format="csr")


def _place_terms(terms: dict, n_rows: int, col0: dict, n_cols: int) -> sp.csr_matrix:
    """sum_b terms[b] placed at the columns of block b (col0[b]..)."""
    rows, cols, vals = [], [], []
    for b, m in terms.items():
        c = sp.coo_matrix(m)
        rows.append(c.row)
        cols.append(c.col + col0[b])
        vals.append(c.data)
    if not rows:
        return sp.csr_matrix((n_rows, n_cols))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_rows, n_cols))


@dataclass
class ActivationSite:
    """One activation layer of the lowered network.

    Attributes:
        layer: the activation layer (its QC comes from :func:`lipsdp.constraints.qc_for`).
        pre: xi block index -> matrix (``layer.size`` rows): dv = sum_b pre[b] @ xi_b.
            Block 0 is the input; block k >= 1 the outputs of site k - 1.
        name: label of the block of its outputs.
    """

    layer: object
    pre: dict
    name: str = ""


def scaled_maps(sites: list, out: dict, sigmas: list, sigma_out: float):
    """The maps of the scaled variables xi~_b = xi_b / sigma_b (exact: powers of two)."""
    new_sites = []
    for k, s in enumerate(sites, start=1):
        pre = {b: m * (sigmas[b] / sigmas[k]) for b, m in s.pre.items()}
        new_sites.append(ActivationSite(s.layer, pre, s.name))
    new_out = {b: m * (sigmas[b] / sigma_out) for b, m in out.items()}
    return new_sites, new_out


def block_scales(sites: list, out: dict, norm: str) -> tuple[list, float]:
    """Powers of two sigma_b (sigma_0 = 1) and sigma_out making every scaled map of norm about 1.

    sigma_a is the power of two nearest to the norm of the stacked map [M_{a,b} sigma_b]_{b < a}
    (estimated as the root of the sum of squares of the terms' norms for l2, the sum for
    l-infinity); a layer's map of its own block (implicit layers) is invariant under the
    scaling and does not enter.
    """

    def combine(terms):
        vals = [operator_norm_estimate(m, norm) * sig for m, sig in terms]
        if norm == "l2":
            return math.sqrt(sum(v * v for v in vals))
        return sum(vals)

    sigmas = [1.0]
    for k, s in enumerate(sites, start=1):
        sigmas.append(pow2_scale(combine([(m, sigmas[b]) for b, m in s.pre.items() if b != k])))
    sigma_out = pow2_scale(combine([(m, sigmas[b]) for b, m in out.items()]))
    return sigmas, sigma_out


def variable_scales(lmi: LMI, sigmas: list, sigma_out: float, norm: str) -> np.ndarray:
    """Map the scaled LMI's variables to the unscaled network's (exact powers of two).

    Multiplying the scaled inequality by K = sigma_out^2 (l2) or sigma_0 sigma_out (l-inf)
    gives the original one, so a variable owned by the xi block of scale sigma_b is
    multiplied by K / sigma_b^2 (rho and the l-inf input multipliers: sigma_b = sigma_0 = 1).
    """
    if sigmas[0] != 1.0:
        raise ValueError("the input block must not be scaled (sigma_0 = 1)")
    k_fac = sigma_out * sigma_out if norm == "l2" else sigma_out
    first = lmi.meta.get("first_xi_block", 0)  # LMI block index of xi block 0 (1 with a zeta block)
    out = np.empty(lmi.n_vars)
    for i, blk in enumerate(lmi.owner):
        b = blk - first
        sig = sigmas[b] if b > 0 else 1.0
        out[i] = k_fac / (sig * sig)
    return out


def assemble(n_input: int, sites: list, out: dict, norm: str, method: str,
             input_name: str = "x0 (input)") -> LMI:
    """The LMI of a lowered network (see the module docstring); no scaling is applied here.

    Args:
        n_input: size of the input block.
        sites: the activation layers with their pre-activation maps, in order.
        out: xi block -> matrix: the output map (one row for l-infinity).
        norm: "l2" or "linf".
        method: multiplier structure passed to each QC ("neuron" or "layer").
    """
    widths = [int(n_input)] + [int(s.layer.size) for s in sites]
    n_out = int(next(iter(out.values())).shape[0]) if out else 0
    linf = norm == "linf"
    offset = 1 if linf else 0
    blocks, names = [], []
    pos = 0
    if linf:
        blocks.append((0, 1))
        names.append("zeta")
        pos = 1
    for k, n in enumerate(widths):
        blocks.append((pos, pos + n))
        names.append(input_name if k == 0 else (sites[k - 1].name or f"x{k}"))
        pos += n
    n_xi = pos
    col0 = {k: blocks[k + offset][0] for k in range(len(widths))}

    rows = []
    sig = 0

    def add_signals(mat):
        nonlocal sig
        rows.append(mat)
        start = sig
        sig += mat.shape[0]
        return start

    zeta_sig = add_signals(place(sp.identity(1), 0, n_xi)) if linf else None
    in_sig = add_signals(place(sp.identity(widths[0]), col0[0], n_xi))
    v_sig, phi_sig = [], []
    for k, s in enumerate(sites, start=1):
        v_sig.append(add_signals(_place_terms(s.pre, widths[k], col0, n_xi)))
        phi_sig.append(add_signals(place(sp.identity(widths[k]), col0[k], n_xi)))
    out_sig = add_signals(_place_terms(out, n_out, col0, n_xi))
    g = sp.vstack(rows, format="csr")

    atoms, tying_parts, nonneg, owner, interior, groups = [], [], [], [], [], []
    n_var = 0

    def add_vars(block_list, tying, nn, own, direction, label):
        nonlocal n_var
        atoms.extend(block_list)
        tying_parts.append((sp.csr_matrix(tying), n_var))
        nonneg.extend(np.asarray(nn, dtype=bool).tolist())
        owner.extend([own] * tying.shape[1])
        interior.extend(np.asarray(direction, dtype=float).tolist())
        if label:
            groups.append(MultiplierGroup(label, n_var, n_var + tying.shape[1]))
        n_var += tying.shape[1]

    n0 = widths[0]
    if linf:  # rho: 2 rho zeta^2
        add_vars([AtomBlock([[zeta_sig]], [[[2.0]]])], sp.csr_matrix(np.ones((1, 1))), [True], 0, [0.0], None)
        # input multipliers mu_j: atom on (zeta, x0_j) with diag(-1, 1)
        sup = np.stack([np.full(n0, zeta_sig), in_sig + np.arange(n0)], axis=1)
        coeff = np.zeros((n0, 2, 2))
        coeff[:, 0, 0] = -1.0
        coeff[:, 1, 1] = 1.0
        add_vars([AtomBlock(sup, coeff)], sp.identity(n0, format="csr"), np.ones(n0, bool), offset,
                 np.ones(n0), "mu (input)")
    else:  # rho ||dx0||^2
        add_vars([AtomBlock(np.arange(in_sig, in_sig + n0)[:, None], np.ones((n0, 1, 1)))],
                 sp.csr_matrix(np.ones((n0, 1))), [True], 0, [0.0], None)
    for k, s in enumerate(sites, start=1):
        act = s.layer
        qa = qc_for(act).atoms(act, method)
        n = widths[k]
        local_to_global = np.concatenate([v_sig[k - 1] + np.arange(n), phi_sig[k - 1] + np.arange(n)])
        add_vars([b.shifted(local_to_global) for b in qa.blocks], qa.tying, qa.nonneg, k + offset,
                 qa.interior_dir, f"layer {k} ({act.describe()})")
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
        meta={"widths": widths + [n_out], "first_xi_block": offset},
    )
