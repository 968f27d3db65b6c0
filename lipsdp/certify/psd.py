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

``gamma_k = k u / (1 - k u)`` with u = 2^-53. The argument holds for any order
of summation inside the factorisation (blocked LAPACK, FMA), provided the BLAS
does not use Strassen-like fast multiplication (OpenBLAS, MKL and Accelerate do
not in dpotrf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

__all__ = ["gamma", "verify_psd", "PSDCheck", "norm_bound_inf"]

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


def verify_psd(z: np.ndarray, formation_error: float = 0.0, extra_shift: float = 0.0) -> PSDCheck:
    """Prove that the exact matrix Z* with ||Z - Z*||_2 <= formation_error is PSD.

    Only the lower triangle of ``z`` is read (so an asymmetric float ``z`` is
    treated as the symmetric matrix of its lower triangle; the caller's
    formation error must bound that matrix's distance to Z*).

    Args:
        z: float64 square matrix (not modified).
        formation_error: bound on the spectral norm of Z - Z*.
        extra_shift: additional shift to subtract (to prove Z* >= extra_shift * I).

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
    trace_pos = float(np.sum(np.maximum(diag, 0.0))) * (1.0 + gamma(n + 1))
    g = gamma(n + 1)
    tau = g / (1.0 - g) * trace_pos * (1.0 + 1e-6)
    underflow = 4.0 * (n + 1) * (2.0 * (n + 2) + float(np.max(np.abs(diag)))) * _ETA
    c = (tau + formation_error + extra_shift + underflow) * (1.0 + 1e-6)
    a = np.array(z, dtype=np.float64, order="F", copy=True)
    shifted = np.nextafter(diag - c, -np.inf)  # rounded down: a_ii <= z_ii - c exactly
    a[np.arange(n), np.arange(n)] = shifted
    _, info = lapack.dpotrf(a, lower=1, overwrite_a=1, clean=0)
    return PSDCheck(info == 0, c, tau, formation_error, int(info))
