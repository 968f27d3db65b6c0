"""Turn a solver's multipliers into a certified bound, or say that it could not be done.

For an :class:`~lipsdp.sdp.lmi.LMI` Z(y) = rho * e * I_(rho block) + Z_0(lam) and a
multiplier vector lam from a solver:

1. **Project** lam onto its sign constraints (nonnegative multipliers clipped at 0).
2. **Exact rho.** Split Z_0 = [[P, R], [R^T, S]] (rho block first). Z >= c I holds
   iff S - c I > 0 and rho >= (c + lambda_max(R (S - c I)^{-1} R^T - P)) / e; the
   smallest such rho is computed by a Cholesky factorisation of S - c I and a
   symmetric eigenvalue problem of the size of the rho block (n0 for l2, 1 for
   l-infinity). c is a small positive margin that covers the rounding errors of
   step 4 (2x the estimate): a scalar (uniform trace bound) or a diagonal (the weighted
   bound of :mod:`lipsdp.certify.psd`, far smaller on badly scaled LMIs); every variant in
   :data:`POWERS` is tried and the smallest certified rho kept.
3. **Repair.** At the optimum S is often singular and a solver's lam may leave it
   slightly indefinite. Then lam is replaced by (1 - t) lam + t lam0 for the
   strictly feasible lam0 (a solver's near-optimal interior iterate when it has one, else
   :meth:`LMI.interior_point`), with t increased from
   1e-12 by factors of 10 until S - c I > 0 (then bisected geometrically between the last
   failing and the first working t); because the optimal rho is a convex
   function of lam, the cost is at most t * (rho(lam0) - rho(lam)). A few larger t
   are tried too and the smallest rho kept.
4. **Proof.** Z(rho_cert, lam) with rho_cert slightly above the exact rho is proved
   PSD by :func:`~lipsdp.certify.psd.verify_psd`, with the formation error bounded
   by gamma_k * ||  |G|^T |Psi| |G|  ||_inf. The bound is then sqrt(rho_cert) (l2)
   or rho_cert (l-infinity), rounded up, times the LMI's exact power-of-two scale.

What is proved: the exact (real-arithmetic) LMI with the float64 weights of the
(scaled) network and the returned float64 multipliers holds. The slope
intervals are dyadic, so the QC coefficients are exact (see
:func:`lipsdp.network.activations.slope_interval`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..sdp.lmi import LMI, exact_rho
from .psd import gamma, norm_bound_inf, rounding_shift, verify_psd

__all__ = ["Certificate", "certify", "exact_rho"]


@dataclass
class Certificate:
    """The outcome of certification.

    Attributes:
        certified: True if ``bound`` is proved.
        bound: the certified Lipschitz bound of the original network (None if not certified).
        rho: the certified rho of the scaled LMI.
        y: the multipliers (scaled problem) that prove it, rho included.
        repair: t of the convex combination with the interior point (0 = solver's own lam).
        margin: the diagonal shift that the rigorous PSD test subtracted.
        message: what happened, in words.
        time: seconds spent.
    """

    certified: bool
    bound: float | None
    rho: float | None
    y: np.ndarray | None
    repair: float = 0.0
    margin: float = 0.0
    message: str = ""
    time: float = 0.0
    details: dict = field(default_factory=dict)


def _formation_error(lmi: LMI, y: np.ndarray, k: int) -> float:
    return gamma(k) * norm_bound_inf(lmi.abs_matrix(y))


def _project(lmi: LMI, y: np.ndarray) -> np.ndarray:
    y = np.array(y, dtype=np.float64, copy=True)
    y[~np.isfinite(y)] = 0.0
    y[lmi.nonneg] = np.maximum(y[lmi.nonneg], 0.0)
    return y


def _round_up_bound(lmi: LMI, rho: float) -> float:
    if lmi.bound_kind == "sqrt":
        base = float(np.nextafter(math.sqrt(rho), np.inf))
    else:
        base = float(rho)
    return base * lmi.scale  # scale is a power of two: exact


def certify(lmi: LMI, y: np.ndarray, y_interior: np.ndarray | None = None, max_tries: int = 6) -> Certificate:
    """Certify the multipliers ``y`` (rho ignored) for ``lmi``; see the module docstring.

    Args:
        lmi: the (scaled) LMI.
        y: multipliers from a solver (any float vector of length m; NaN treated as 0).
        y_interior: a strictly feasible point to repair towards (e.g. a solver's near-optimal
            interior iterate, ``info["y_interior"]`` of the ipm backend); if none is given, or
            no mixture with it can be certified, :meth:`LMI.interior_point` is used.

    Returns:
        A :class:`Certificate`; ``certified`` is False only if even the interior point fails.
    """
    t0 = time.perf_counter()
    k = lmi.rounding_depth()
    yp = _project(lmi, y)
    # Margin estimate: formation error and Cholesky rounding at a generous rho.
    rho_guess, z0 = exact_rho(lmi, yp, 0.0)
    details: dict = {"rounding_depth": k}

    def margin_for(yv, rho_est, power):
        """2x the verification shift at rho ~ 1.5 rho_est: a scalar (power 1) or a vector (psd module)."""
        yy = yv.copy()
        yy[0] = max(rho_est, 0.0) * 1.5 + 1e-300
        e = _formation_error(lmi, yy, k)
        tau = rounding_shift(np.diag(lmi.abs_matrix(yy)), power)
        return 2.0 * (e + tau) + 1e-300

    def attempt(yt, power, z=None):
        """rho certifiable at ``yt`` with the rounding bound of ``power`` (None if S is not definite enough)."""
        r_est, z = exact_rho(lmi, yt, 0.0, z)
        if r_est is None:
            return None, None
        c = margin_for(yt, r_est, power)
        rho_c, _ = exact_rho(lmi, yt, c, z)
        return rho_c, c

    candidates = []  # (rho, t, y, c, power)
    if rho_guess is not None:
        for power in POWERS:
            rho_c, c = attempt(yp, power, z0)
            if rho_c is not None:
                candidates.append((rho_c, 0.0, yp, c, power))
    interiors = [] if y_interior is None else [y_interior]
    while not candidates:
        if not interiors:
            if details.get("lmi_interior_point"):
                break
            details["lmi_interior_point"] = True
            try:
                interiors.append(lmi.interior_point())
            except ArithmeticError as exc:
                return Certificate(False, None, None, None, message=f"no interior point: {exc}",
                                   time=time.perf_counter() - t0, details=details)
        y_int = _project(lmi, interiors.pop(0))
        details["repair_point"] = "lmi_interior_point" if details.get("lmi_interior_point") else "given"
        for power in REPAIR_POWERS:
            _repair(lambda t: (1.0 - t) * yp + t * y_int, power, attempt, candidates)
    if not candidates:
        return Certificate(False, None, None, None,
                           message="the multipliers could not be repaired into a feasible point",
                           time=time.perf_counter() - t0, details=details)
    candidates.sort(key=lambda c_: c_[0])
    rho_c, t_rep, y_c, c, power = candidates[0]
    details["rounding_power"] = power
    # Rigorous proof at rho_cert slightly above the computed exact rho.
    rel = 1e-12
    c_max = float(np.max(c))
    last = None
    for _ in range(max_tries):
        rho_cert = float(np.nextafter(rho_c * (1.0 + rel) + c_max / lmi.rho_coeff * rel + 1e-300, np.inf))
        yy = y_c.copy()
        yy[0] = rho_cert
        z = lmi.matrix(yy)
        e = _formation_error(lmi, yy, k)
        chk = verify_psd(z, formation_error=e, power=power)
        last = chk
        if chk.ok:
            bound = _round_up_bound(lmi, rho_cert)
            details.update(formation_error=e, tau=chk.tau, relative_rho_margin=rel)
            msg = "certified" if t_rep == 0.0 else f"certified after repair (t = {t_rep:.0e})"
            return Certificate(True, bound, rho_cert, yy, repair=t_rep, margin=chk.shift, message=msg,
                               time=time.perf_counter() - t0, details=details)
        rel *= 1e3
    return Certificate(False, None, None, None,
                       message=f"rigorous PSD test failed (LAPACK info {last.info if last else '?'})",
                       time=time.perf_counter() - t0, details=details)


#: rounding-bound weights tried on the solver's own multipliers (psd module: 1 = uniform trace
#: bound, 0 = proportional to the diagonal); the smallest certified rho wins
POWERS = (1.0, 0.5, 0.0)
#: and when a repair is needed (each costs a search over t)
REPAIR_POWERS = (1.0, 0.0)


def _repair(mix, power, attempt, candidates) -> None:
    """Smallest t (powers of 10 from 1e-12, then bisected) with mix(t) certifiable; appends candidates."""
    t = 1e-12
    found = None
    while t <= 1.0:
        rho_c, c = attempt(mix(t), power)
        if rho_c is not None:
            found = t
            candidates.append((rho_c, t, mix(t), c, power))
            break
        t *= 10.0
    if found is None:
        return
    if found > 1e-12:
        # the cost grows with t: bisect (geometrically) between the last failing and the first working t
        lo_t, hi_t = found / 10.0, found
        for _ in range(6):
            mid = math.sqrt(lo_t * hi_t)
            rho_c, c = attempt(mix(mid), power)
            if rho_c is None:
                lo_t = mid
            else:
                hi_t = mid
                candidates.append((rho_c, mid, mix(mid), c, power))
    for t2 in (found * 10.0, found * 100.0):
        if t2 > 1.0:
            break
        rho_c, c = attempt(mix(t2), power)
        if rho_c is not None:
            candidates.append((rho_c, t2, mix(t2), c, power))
