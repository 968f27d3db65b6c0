"""Rigorous verification that a symmetric matrix is positive semidefinite, in float64.

The test (after Rump, "Verification of positive definiteness", BIT 2006, and the
Cholesky error analysis of Demmel 1989 / Higham, *Accuracy and Stability of
Numerical Algorithms*, Thm 10.5):

* If floating-point Cholesky of a symmetric A (order n) runs to completion
  (round-to-nearest, no underflow), then R^T R = A + dA with
  |dA| <= gamma_{n+1} |R^T| |R|. Since ||r_i||^2 = a_ii + da_ii, one gets
  ||r_i||^2 <= a_ii / (1 - gamma_{n+1}), hence
  ||dA||_2 <= tau := gamma_{n+1} / (1 - gamma_{n+1}) * trace(A), and so
  A >= -tau I.
* To prove that an *exact* matrix Z* is PSD when we only hold a float matrix Z
  with ||Z - Z*||_2 <= e (the caller's formation-error bound), run Cholesky on
  A = Z - c I with the diagonal rounded *down* (so A <= Z - c I exactly) and
  c >= tau + e + (underflow allowance). Success gives
  Z* >= Z - e I >= A + (c - e) I >= (c - e - tau) I >= 0.

* **Weighted variant** (``power`` p < 1; Rump's diagonal scaling in another guise).
  Componentwise, |dA_ij| <= gamma' d_i d_j with d_i^2 = a_ii and gamma' = gamma_{n+1} /
  (1 - gamma_{n+1}). For any positive weights w, Cauchy-Schwarz gives
  x^T dA x <= gamma' (sum_i |x_i| d_i)^2 <= gamma' (sum_j w_j) sum_i x_i^2 a_ii / w_i, so
  A >= -gamma' (sum_j w_j) diag(a_ii / w_i). With w_i = z_ii^p (a_ii <= z_ii) the shift is
  the *vector* c_i = gamma' (sum_j z_jj^p) z_ii^(1-p) + e (+ underflow): p = 1 is the uniform
  trace bound above; p = 0 gives c_i = gamma' n z_ii, far smaller on the coordinates with
  small diagonal, which is where the near-null vectors of a badly scaled LMI live (deep
  nets whose multipliers span many orders of magnitude). Every p is a valid proof.

``gamma_k = k u / (1 - k u)`` with u = 2^-53. The argument holds for any order
of summation inside the factorisation (blocked LAPACK, FMA), provided the BLAS
does not use Strassen-like fast multiplication (OpenBLAS, MKL and Accelerate do
not in dpotrf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

__all__ = ["gamma", "verify_psd", "rounding_shift", "PSDCheck", "norm_bound_inf"]

UNIT_ROUNDOFF = 2.0**-53
_ETA = 2.0**-1074  # smallest subnormal


def gamma(k: int) -> float:
    """gamma_k = k u / (1 - k u), rounded up generously (by a relative 1e-6)."""
    ku = k * UNIT_ROUNDOFF
    if ku >= 0.5:
        raise ValueError(f"gamma_{k} is not defined in float64 (k u = {ku})")
    return ku / (1.0 - ku) * (1.0 + 1e-6)


def norm_bound_inf(abs_matrix: np.ndarray) -> float:
    """An upper bound on ||E||_2 for symmetric E with |E| <= abs_matrix: the max row sum (rounded up)."""
    if abs_matrix.size == 0:
        return 0.0
    rows = np.asarray(abs_matrix.sum(axis=1)).ravel()
    n = abs_matrix.shape[1]
    return float(rows.max()) * (1.0 + gamma(n + 1))


@dataclass
class PSDCheck:
    """Outcome of :func:`verify_psd`.

    ok: the exact matrix is proved PSD. shift: the c subtracted from the diagonal.
    tau: the Cholesky rounding term; formation_error: the caller's e. info: LAPACK info
    (0 on success, else the order of the failing leading minor).
    """

    ok: bool
    shift: float
    tau: float
    formation_error: float
    info: int


def rounding_shift(diag: np.ndarray, power: float = 1.0) -> np.ndarray | float:
    """The Cholesky rounding term of the module docstring for a matrix with diagonal ``diag``.

    ``power`` 1: the scalar gamma' trace(A+); otherwise the vector gamma' (sum_j w_j) z_ii / w_i,
    w_i = max(z_ii, 0)^power (rounded up by generous relative margins).
    """
    n = diag.shape[0]
    g = gamma(n + 1)
    gp = g / (1.0 - g) * (1.0 + 1e-6)
    pos = np.maximum(diag, 0.0)
    if power == 1.0:
        return gp * float(np.sum(pos)) * (1.0 + gamma(n + 1))
    tiny = np.finfo(np.float64).tiny
    w = np.maximum(pos, tiny) ** power
    total = float(np.sum(w)) * (1.0 + gamma(n + 1)) * (1.0 + 1e-12)
    return gp * total * (np.maximum(pos, tiny) / w) * (1.0 + 1e-12)


def verify_psd(z: np.ndarray, formation_error: float = 0.0, extra_shift: float = 0.0,
               power: float = 1.0) -> PSDCheck:
    """Prove that the exact matrix Z* with ||Z - Z*||_2 <= formation_error is PSD.

    Only the lower triangle of ``z`` is read (so an asymmetric float ``z`` is
    treated as the symmetric matrix of its lower triangle; the caller's
    formation error must bound that matrix's distance to Z*).

    Args:
        z: float64 square matrix (not modified).
        formation_error: bound on the spectral norm of Z - Z*.
        extra_shift: additional shift to subtract (to prove Z* >= extra_shift * I).
        power: weights of the rounding term (module docstring); 1 = uniform trace bound.

    Returns:
        PSDCheck with ok=True only if the proof succeeded.
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    if n == 0:
        return PSDCheck(True, 0.0, 0.0, formation_error, 0)
    if not np.all(np.isfinite(z)):
        return PSDCheck(False, np.inf, np.inf, formation_error, -1)
    diag = np.diag(z).copy()
    tau = rounding_shift(diag, power)
    underflow = 4.0 * (n + 1) * (2.0 * (n + 2) + float(np.max(np.abs(diag)))) * _ETA
    c = (tau + formation_error + extra_shift + underflow) * (1.0 + 1e-6)
    a = np.array(z, dtype=np.float64, order="F", copy=True)
    # rounded down: a_ii <= z_ii - c_i exactly (diag - c is one rounding, nextafter covers it)
    shifted = np.nextafter(diag - c, -np.inf)
    a[np.arange(n), np.arange(n)] = shifted
    _, info = lapack.dpotrf(a, lower=1, overwrite_a=1, clean=0)
    c_max = float(np.max(c))
    return PSDCheck(info == 0, c_max, float(np.max(tau)), formation_error, int(info))
