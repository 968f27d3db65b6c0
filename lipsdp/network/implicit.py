"""Implicit (equilibrium, "DEQ") layers: z = phi(W z + U x + b),  y = C z + D x + c.

``phi`` is any activation layer with a registered quadratic constraint
(:func:`lipsdp.constraints.qc_for`): slope-restricted elementwise activations, and the
group activations of LipSDP-NSR once registered. The layer maps x (``in_dim``) to y
(``out_dim``); z has ``activation.size`` entries.

**Well-posedness.** Let Q(lam) be the activation's QC (every pair of inputs satisfies
[dv; dphi]^T Q(lam) [dv; dphi] >= 0 for admissible lam). The layer is accepted when some
admissible lam makes

    Z_zz(lam) = [W; I]^T (-Q(lam)) [W; I]  positive definite                        (WP)

(proved in float64 by :func:`lipsdp.sdp.wellposed.well_posedness`). For phi slope-restricted
in [0, 1] with LipSDP-Neuron multipliers this is 2 Lam - Lam W - W^T Lam > 0 (Revay, Wang &
Manchester 2020); it holds whenever some admissible T has T - W^T T W > 0 (the contraction
condition), since 2T - TW - W^T T = (T - W^T T W) + (I - W)^T T (I - W).
(WP) implies a unique equilibrium for every x and b: for F(z) = z - phi(W z + U x + b) and
any z1, z2, with e = F(z1) - F(z2), dz = z1 - z2, the QC at (W dz, dz - e) and (WP) give
||e|| >= kappa ||dz|| for some kappa > 0, so F is injective, proper and (invariance of
domain) open: a homeomorphism of R^n, and F(z) = 0 has exactly one solution. (WP) is also
exactly what the LipSDP LMI of the layer needs to have an interior point (its z block).

**Forward.** The equilibrium is found by Picard iteration z <- phi(W z + U x + b) and, for
the samples it does not settle, Newton's method on F with backtracking (the Newton matrix
I - J_phi W is nonsingular under (WP) for every J_phi the QC admits). The result satisfies
||z - phi(W z + U x + b)||_inf <= tol * max(1, ||z||_inf) (``tol`` = 1e-10 by default), or
:class:`~lipsdp.errors.EquilibriumError` is raised.

**Derivatives** by the implicit function theorem at the equilibrium:
dz = (I - J W)^{-1} J U dx with J = dphi/dv at v = W z + U x + b; dy = C dz + D dx.
"""

from __future__ import annotations

import numpy as np

from ..errors import EquilibriumError, InvalidNetworkError
from .activations import ActivationSpec
from .layers import Activation, Layer, _finite, as_float64_matrix

__all__ = ["Implicit"]

_PICARD_STEPS = 30


def _dense(w):
    import scipy.sparse as sp

    return w.toarray() if sp.issparse(w) else np.asarray(w, dtype=np.float64)


class Implicit(Layer):
    """z = phi(W z + U x + b), y = C z + D x + out_bias; see the module docstring.

    Args:
        W: (n, n) feedback matrix.
        U: (n, in) input matrix.
        b: (n,) bias (default 0).
        C: (out, n) output matrix (default: the identity, y = z).
        D: (out, in) feedthrough (default 0).
        activation: an activation layer on n neurons (e.g. ``Activation(activations.relu(), n)``)
            or an :class:`ActivationSpec` (then applied elementwise).
        out_bias: (out,) output bias (default 0).
        tol: residual tolerance of the equilibrium (relative to max(1, ||z||_inf)).
        max_iter: Newton steps allowed after at most 30 Picard steps.
        name: label.
    """

    def __init__(self, W, U, b=None, C=None, D=None, activation=None, *, out_bias=None, tol: float = 1e-10,
                 max_iter: int = 100, name: str = ""):
        self.W = _dense(as_float64_matrix(W, "W"))
        self.U = _dense(as_float64_matrix(U, "U"))
        n = self.W.shape[0]
        self.b = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
        self.C = np.eye(n) if C is None else _dense(as_float64_matrix(C, "C"))
        self.D = np.zeros((self.C.shape[0], self.U.shape[1])) if D is None else _dense(as_float64_matrix(D, "D"))
        self.out_bias = np.zeros(self.C.shape[0]) if out_bias is None else np.asarray(out_bias, np.float64).reshape(-1)
        if activation is None:
            raise InvalidNetworkError("an implicit layer needs its activation (a layer or an ActivationSpec)")
        if isinstance(activation, ActivationSpec):
            activation = Activation(activation, n)
        self.activation = activation
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.name = name
        self._wp: dict = {}
        self._cache = None  # (x, z) of the last equilibrium solve

    # ------------------------------------------------------------------ shape
    @property
    def in_dim(self) -> int:
        return int(self.U.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.C.shape[0])

    @property
    def size(self) -> int:
        """n, the number of equilibrium neurons."""
        return int(self.W.shape[0])

    def check(self, where: str) -> None:
        n = self.size
        shapes = {"W": (self.W.shape, (n, n)), "U": (self.U.shape, (n, self.in_dim)), "b": (self.b.shape, (n,)),
                  "C": (self.C.shape, (self.out_dim, n)), "D": (self.D.shape, (self.out_dim, self.in_dim)),
                  "out_bias": (self.out_bias.shape, (self.out_dim,))}
        for key, (got, want) in shapes.items():
            if got != want:
                raise InvalidNetworkError(f"{where}: {key} has shape {got}, expected {want}")
            arr = getattr(self, key)
            if not _finite(arr):
                raise InvalidNetworkError(f"{where}: {key} has NaN or infinite entries")
        if n == 0 or self.in_dim == 0 or self.out_dim == 0:
            raise InvalidNetworkError(f"{where}: implicit layer with an empty dimension")
        if not isinstance(self.activation, Layer) or self.activation.in_dim != n or self.activation.out_dim != n:
            raise InvalidNetworkError(f"{where}: the activation must be a layer on {n} neurons, "
                                      f"got {getattr(self.activation, 'describe', lambda: self.activation)()}")
        self.activation.check(f"{where} activation")
        if not (self.tol > 0 and self.max_iter > 0):
            raise InvalidNetworkError(f"{where}: tol and max_iter must be positive")

    def describe(self) -> str:
        return f"Implicit({self.in_dim} -> {self.out_dim}, z = {self.activation.describe()}(W z + U x + b))"

    # ------------------------------------------------------------------ well-posedness
    def well_posedness(self, method: str = "neuron"):
        """The proof of (WP) with the QC's ``method`` multipliers (cached).

        Raises:
            NotWellPosedError: no admissible multipliers make Z_zz positive definite.
        """
        if method not in self._wp:
            from ..sdp.wellposed import well_posedness

            self._wp[method] = well_posedness(self.W, self.activation, method)
        return self._wp[method]

    # ------------------------------------------------------------------ equilibrium
    def _phi_jacobian(self, v: np.ndarray) -> np.ndarray:
        """(batch, n, n) Jacobians of phi at the rows of v."""
        act = self.activation
        bsz, n = v.shape
        if isinstance(act, Activation):
            d = act.spec.deriv(v)
            out = np.zeros((bsz, n, n))
            out[:, np.arange(n), np.arange(n)] = d
            return out
        cols = act.jvp(np.repeat(v, n, axis=0), np.tile(np.eye(n), (bsz, 1))).reshape(bsz, n, n)
        return np.transpose(cols, (0, 2, 1))  # cols[b, i] = J_b e_i

    def equilibrium(self, x: np.ndarray, check: bool = True) -> np.ndarray:
        """z with z = phi(W z + U x + b) to the stated tolerance, for a batch x (rows).

        ``check=False`` skips the (cached) well-posedness proof, e.g. during training; the
        tolerance is still enforced (:class:`~lipsdp.errors.EquilibriumError`).
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if self._cache is not None and self._cache[0].shape == x.shape and np.array_equal(self._cache[0], x):
            return self._cache[1]
        if check:
            self.well_posedness()
        ux = x @ self.U.T + self.b
        act = self.activation
        wt = self.W.T

        def residual(z):
            return z - act.forward(z @ wt + ux)

        def small(r, z):
            return np.max(np.abs(r), axis=1) <= self.tol * np.maximum(1.0, np.max(np.abs(z), axis=1))

        z = np.zeros((x.shape[0], self.size))
        r = residual(z)
        best, best_r = z, np.max(np.abs(r), axis=1)
        done = small(r, z)
        for _ in range(_PICARD_STEPS):  # cheap when the map contracts; Newton finishes the rest
            if done.all():
                break
            z = np.where(done[:, None], z, z - r)
            r = residual(z)
            rn = np.max(np.abs(r), axis=1)
            improved = rn < best_r  # NaN (divergence) never improves
            best = np.where(improved[:, None], z, best)
            best_r = np.where(improved, rn, best_r)
            done = small(r, z) & np.isfinite(rn)
        z = np.where(done[:, None], z, best)
        todo = np.nonzero(~done)[0]
        if todo.size:
            z[todo] = self._newton(z[todo], ux[todo])
        self._cache = (x.copy(), z)
        return z

    def _newton(self, z: np.ndarray, ux: np.ndarray) -> np.ndarray:
        act = self.activation
        eye = np.eye(self.size)
        wt = self.W.T

        def res(zz):
            return zz - act.forward(zz @ wt + ux)

        r = res(z)
        for _ in range(self.max_iter):
            nrm = np.linalg.norm(r, axis=1)
            ok = np.max(np.abs(r), axis=1) <= self.tol * np.maximum(1.0, np.max(np.abs(z), axis=1))
            if ok.all():
                return z
            jac = eye - self._phi_jacobian(z @ wt + ux) @ self.W
            try:
                step = -np.linalg.solve(jac, r[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                step = -r  # singular at a kink: fall back to a Picard step
            t = np.ones(z.shape[0])
            for _ in range(40):  # backtracking on ||F||
                cand = z + t[:, None] * step
                rc = res(cand)
                better = np.linalg.norm(rc, axis=1) <= (1.0 - 1e-4 * t) * nrm
                if better.all():
                    break
                t = np.where(better, t, 0.5 * t)
            z = np.where(ok[:, None], z, z + t[:, None] * step)
            r = res(z)
        worst = float(np.max(np.abs(r)))
        raise EquilibriumError(
            f"{self.describe()}: the equilibrium was not found to tolerance {self.tol:g} "
            f"(residual {worst:.3g} after {self.max_iter} Newton steps)"
        )

    # ------------------------------------------------------------------ Layer interface
    def forward(self, x: np.ndarray) -> np.ndarray:
        z = self.equilibrium(x)
        return z @ self.C.T + np.atleast_2d(x) @ self.D.T + self.out_bias

    def _system(self, x):
        z = self.equilibrium(x)
        j = self._phi_jacobian(z @ self.W.T + np.atleast_2d(x) @ self.U.T + self.b)
        return j, np.eye(self.size) - j @ self.W

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        j, a = self._system(x)
        rhs = j @ (d @ self.U.T)[:, :, None]
        dz = np.linalg.solve(a, rhs)[:, :, 0]
        return dz @ self.C.T + d @ self.D.T

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        j, a = self._system(x)
        u = np.linalg.solve(np.transpose(a, (0, 2, 1)), (g @ self.C)[:, :, None])
        return (np.transpose(j, (0, 2, 1)) @ u)[:, :, 0] @ self.U + g @ self.D
