"""Well-posedness of implicit layers z = phi(W z + U x + b), proved before any bound is computed.

The condition (see :mod:`lipsdp.network.implicit` for why it implies a unique equilibrium):
some admissible multipliers lam of the activation's QC Q(lam) make

    Z_zz(lam) = [W; I]^T (-Q(lam)) [W; I]  positive definite.                      (WP)

Z_zz is the equilibrium block's self-term in the LipSDP LMI of the layer (signals dv = W dz,
dphi = dz), so a proof of (WP) is also the direction in which :meth:`LMI.interior_point`
makes that block definite. For phi slope-restricted in [alpha, beta] with diagonal
Lam = diag(lam) it reads

    2 alpha beta W^T Lam W - (alpha + beta)(Lam W + W^T Lam) + 2 Lam > 0,

i.e. 2 Lam - Lam W - W^T Lam > 0 for [0, 1] (Revay, Wang & Manchester 2020); for the
LipSDP-NSR group QCs with S = P = 0 it is the contraction condition T - W^T T W > 0.

How it is proved: first with the QC's uniform direction d (all lambda = 1); if that fails,
with the multipliers of the phase-one SDP  min d^T lam  s.t.  Z_zz(lam) >= I, lam admissible.
Either way Z_zz(lam) >= s I (s > 0) is then proved in float64 with the verified Cholesky
test (:func:`lipsdp.certify.psd.verify_psd`, formation error included). A failure raises
:class:`~lipsdp.errors.NotWellPosedError` saying by how much (WP) fails: t* = max
lambda_min(Z_zz(lam)) over admissible lam normalised like d (d^T lam = sum_i d_i,
|lam_i| <= sum_i d_i), next to its value without feedback (W = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..certify.psd import gamma, norm_bound_inf, verify_psd
from ..constraints import qc_for
from ..errors import NotWellPosedError
from .lmi import LMI

__all__ = ["WellPosedness", "well_posedness", "self_term_lmi"]


@dataclass
class WellPosedness:
    """A proof of (WP).

    Attributes:
        multipliers: the layer's QC variables (in the order of ``qc.atoms(activation, method)``).
        margin: proved lower bound on lambda_min(Z_zz(multipliers)) (> 0).
        method: the QC's multiplier structure.
        how: "uniform" (all lambda = 1) or "phase-one SDP".
        condition: the condition in words.
    """

    multipliers: np.ndarray
    margin: float
    method: str
    how: str
    condition: str


def self_term_lmi(w: np.ndarray, activation, method: str) -> LMI:
    """Z_zz(lam) as a one-block LMI (variable 0 is an unused placeholder for rho).

    Signals: rows 0..n-1 are dv = W dz, rows n..2n-1 are dphi = dz, which is exactly the
    QC's local numbering, so its atoms are used as they are.
    """
    n = activation.size
    qa = qc_for(activation).atoms(activation, method)
    g = sp.vstack([sp.csr_matrix(w), sp.identity(n, format="csr")], format="csr")
    tying = sp.hstack([sp.csr_matrix((qa.tying.shape[0], 1)), sp.csr_matrix(qa.tying)], format="csr")
    return LMI(G=g, blocks=[(0, n)], block_names=["z"], atoms=list(qa.blocks), constant_atoms=[], tying=tying,
               nonneg=np.concatenate([[False], qa.nonneg]), owner=np.zeros(tying.shape[1], dtype=int),
               interior_dir=np.concatenate([[0.0], qa.interior_dir]), rho_coeff=1.0, bound_kind="sqrt",
               meta={"purpose": "well-posedness"})


def _prove(lmi: LMI, lam: np.ndarray) -> float | None:
    """s > 0 with Z_zz(lam) >= s I proved, or None."""
    y = np.concatenate([[0.0], lam])
    z = lmi.matrix(y)
    lmin = float(np.linalg.eigvalsh(0.5 * (z + z.T))[0])
    if not lmin > 0:
        return None
    e = gamma(lmi.rounding_depth()) * norm_bound_inf(lmi.abs_matrix(y))
    s = 0.5 * lmin
    return s if verify_psd(z, formation_error=e, extra_shift=s).ok else None


def _solve(prob, solver):
    from ..solvers import cvxpy_solver_name
    from ..solvers.cvxpy_backend import CVXPY_BACKENDS

    name = cvxpy_solver_name(solver)
    for cand in (CVXPY_BACKENDS[name], "CLARABEL"):
        try:
            prob.solve(solver=cand)
            return prob.status
        except Exception:  # a backend failure: try the always-installed one
            continue
    return "error"


def _phase_one(lmi: LMI, solver: str | None, normalised: bool = False):
    """Multipliers making Z_zz definite.

    ``normalised=False``: min d^T lam s.t. Z_zz(lam) >= I, lam admissible (d the uniform
    direction); returns (lam, None) or (None, None) if infeasible.
    ``normalised=True``: max t s.t. Z_zz(lam) >= t I, lam admissible, d^T lam = sum(d),
    |lam_i| <= sum(d) (t* > 0 iff (WP)); returns (lam, t*) - used to say by how much (WP) fails.
    """
    import cvxpy as cp

    n = lmi.size
    f, _ = lmi.basis()
    y = cp.Variable(lmi.n_vars)
    zmat = cp.reshape(f @ y, (n, n), order="C")
    zsym = 0.5 * (zmat + zmat.T)
    d = lmi.interior_dir
    cons = [y[0] == 0]
    nn = np.nonzero(lmi.nonneg)[0]
    if nn.size:
        cons.append(y[nn] >= 0)
    if normalised:
        t = cp.Variable()
        total = float(d.sum())
        cons += [zsym - t * np.eye(n) >> 0, d @ y == total, y <= total, y >= -total]
        prob = cp.Problem(cp.Maximize(t), cons)
    else:
        t = None
        cons.append(zsym - np.eye(n) >> 0)
        prob = cp.Problem(cp.Minimize(d @ y), cons)
    status = _solve(prob, solver)
    if y.value is None or status not in ("optimal", "optimal_inaccurate"):
        return None, None
    return np.asarray(y.value[1:], dtype=np.float64), (None if t is None else float(t.value))


def _condition(activation, method: str) -> str:
    qc = qc_for(activation)
    slope = getattr(activation, "slope_arrays", None)
    text = (f"some admissible multipliers lam of the {qc.name} QC ({method}) make "
            "Z_zz(lam) = [W; I]^T (-Q(lam)) [W; I] positive definite")
    if slope is not None and qc.name == "slope-restricted":
        a, b = slope()
        if np.all(a == 0) and np.all(b == 1) and method == "neuron":
            text += " (here: 2 Lam - Lam W - W^T Lam > 0 for a diagonal Lam >= 0)"
    return text


def well_posedness(w, activation, method: str = "neuron", solver: str | None = None) -> WellPosedness:
    """Prove (WP) for z = phi(W z + ...) with ``activation`` = phi, or raise NotWellPosedError."""
    w = np.asarray(w.toarray() if sp.issparse(w) else w, dtype=np.float64)
    lmi = self_term_lmi(w, activation, method)
    cond = _condition(activation, method)
    d = lmi.interior_dir[1:]
    s = _prove(lmi, d)
    if s is not None:
        return WellPosedness(d.copy(), s, method, "uniform", cond)
    lam, _ = _phase_one(lmi, solver)
    if lam is not None:
        lam = np.where(lmi.nonneg[1:], np.maximum(lam, 0.0), lam)
        s = _prove(lmi, lam)
        if s is not None:
            return WellPosedness(lam, s, method, "phase-one SDP", cond)
    _, t = _phase_one(lmi, solver, normalised=True)
    base = self_term_lmi(np.zeros_like(w), activation, method)
    z0 = base.matrix(np.concatenate([[0.0], d]))
    t0 = float(np.linalg.eigvalsh(z0)[0])
    if t is None:
        how_much = "the phase-one SDP could not be solved"
    elif t > 0:
        how_much = (f"the phase-one SDP found a margin t* = {t:.4g} too small to be proved in float64 "
                    f"({t0:.4g} without feedback, W = 0)")
    else:
        how_much = (f"the best margin found is t* = max lambda_min(Z_zz(lam)) = {t:.4g} over admissible lam "
                    f"normalised like the uniform lam = 1 "
                    f"(needs > 0; {t0:.4g} without feedback, W = 0)")
    if t is not None and abs(t) <= 1e-6 * max(1.0, abs(t0)):
        how_much += " (t* is zero to solver accuracy: at best the condition holds with a vanishing margin)"
    if "2 Lam - Lam W" in cond:
        re_max = float(np.max(np.linalg.eigvals(w).real))
        if re_max >= 1.0:
            how_much += f"; necessary for it: every eigenvalue of W has real part < 1, but the largest is {re_max:.4g}"
    err = NotWellPosedError(f"implicit layer with {activation.describe()} is not well-posed: the condition "
                            f"'{cond}' fails: {how_much}")
    err.condition, err.margin, err.detail = cond, t, how_much
    raise err
