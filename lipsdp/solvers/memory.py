"""Size and memory guard: refuse an SDP that cannot fit before building it.

LipSDP solves one LMI of order N = n_0 + (number of neurons) (with the l2 input reduction,
n_0 is replaced by min(n_0, n_1) for the solver; certification always works on the full
order). Memory is dominated by a few terms, each of which we estimate from the network's
shape alone, before anything large is allocated:

* ``nnz``: nonzeros of the LMI basis F (columns = variables). A neuron multiplier of
  layer k enters the off-diagonal block Lambda W_{k-1} (row j: its r_j nonzeros, on both
  sides of the diagonal) and the diagonal, so ``nnz ~ sum_j 2 (r_j + 1)`` (plus r_j^2 when the
  slope interval does not contain 0, where W^T Lambda W appears); cvxpy keeps several copies
  of F during canonicalisation (``C_CANON`` bytes per nonzero).
* dense N x N matrices (certification: eigen/Schur decompositions in float64;
  ``C_DENSE`` copies).
* the backend's own working set, with m the number of variables and d = N(N+1)/2:

  ===========  =====================================================================
  cvxopt       the scaled constraint matrix, dense (N^2 x m), twice; the Schur
               complement (m x m)
  sdpa, mosek  the Schur complement (m x m) twice and ~8 dense N x N block matrices
  ipm          the Schur complement (m x m) twice and ~12 dense N x N (X, Z, their
               factors, the Gram matrices of the stacked signal rows)
  scs          ~6 dense N x N (projection onto the PSD cone by eigendecomposition)
  clarabel     the dense PSD scaling block of its KKT system, d x d
  ===========  =====================================================================

The constants were checked against the peak RSS of ``lipsdp.estimate`` on a random ReLU MLP
(see :data:`CALIBRATION`); they are meant to be right within a factor of about 2, which is enough to tell "fits" from
"would be killed". :func:`check_fits` raises :class:`~lipsdp.errors.ProblemTooLargeError`
with the size, the estimate and the options when the estimate exceeds the available memory
(``MemAvailable`` of ``/proc/meminfo``, else ``os.sysconf``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import ProblemTooLargeError

__all__ = ["LMIDimensions", "lmi_dimensions", "estimate_memory", "available_memory", "check_fits", "CALIBRATION"]

#: bytes per basis nonzero kept by cvxpy/lipsdp during canonicalisation, and number of dense
#: N x N float64 copies (certification); baseline process size (python + numpy/scipy/cvxpy).
#: Checked against peak RSS of estimate(): random ReLU MLP 60-100-100-10 (N = 260): cvxopt 268 MB,
#: SCS 186 MB; from an ONNX file (onnx imported; benchmarks/results/real_nets.json): extraction and
#: guard alone 330 MB, ACAS Xu (N = 305) cvxopt neuron 570 MB / layer 359 MB, mnist-net_256x2
#: (N = 768) cvxopt layer 514 MB. With BASELINE = 350 MB the estimates are 0.96-2.1x of these.
C_CANON = 120.0
C_DENSE = 8.0
BASELINE = 350e6

CALIBRATION = ("checked against peak RSS at N = 260-768 (random MLP, ACAS Xu, mnist-net_256x2): estimate / measured "
               "0.96-2.1; the backend terms are models, expect a factor-2 accuracy")


@dataclass
class LMIDimensions:
    """Shape of the LMI a network leads to: order (solved / certified), variables, basis nonzeros."""

    n_solve: int
    n_certify: int
    n_vars: int
    nnz: float
    n_input: int
    neurons: int


def _row_nnz(w) -> np.ndarray:
    if sp.issparse(w):
        return np.diff(sp.csr_matrix(w).indptr)
    return np.full(w.shape[0], w.shape[1])


def _activation_sizes(layers) -> list[int]:
    """Neurons per activation layer, recursing into residual branches and implicit layers."""
    from ..network.layers import ActivationLayer
    from ..network.residual import Residual

    out = []
    for layer in layers:
        if isinstance(layer, ActivationLayer):
            out.append(int(layer.size))
        elif isinstance(layer, Residual):
            out.extend(_activation_sizes(layer.branch.layers))
        elif hasattr(layer, "size") and not hasattr(layer, "weight"):  # implicit layer: its equilibrium neurons
            out.append(int(layer.size))
    return out


def lmi_dimensions(network, norm: str = "l2", method: str = "neuron") -> LMIDimensions:
    """Estimate the LMI's order, variables and basis nonzeros from the network's structure (no LMI is built)."""
    n0 = int(network.in_dim)
    sizes = _activation_sizes(network.layers)
    neurons = int(sum(sizes))
    m = 1 + (neurons if method != "layer" else len(sizes)) + (n0 if norm == "linf" else 0)
    if network.is_feedforward:
        chain = network.chain()
        n1 = int(chain.weights[0].shape[0]) if chain.activations else n0
        n_in = min(n0, n1) if norm == "l2" else n0
        nnz = float(n_in)
        for k, layer in enumerate(chain.activations):
            r = _row_nnz(chain.weights[k]).astype(np.float64)
            if k == 0:
                r = np.minimum(r, n_in)
            nnz += float(np.sum(2.0 * (r + 1.0)))
            if not hasattr(layer, "slope_arrays"):  # group activations (MaxMin, ...): one block per group
                continue
            a, b = layer.slope_arrays()
            if np.any(a * b > 0):  # slopes bounded away from 0: the W^T Lambda W term
                nnz += float(np.sum(r ** 2))
    else:  # residual / implicit: every neuron may see its whole block's input
        n_in = n0
        prev = n0
        nnz = float(n0)
        for s in sizes:
            nnz += 2.0 * s * (prev + 1.0)
            prev = s
    extra = 1 if norm == "linf" else 0  # l-infinity: one output row per LMI, bordered
    return LMIDimensions(n_solve=n_in + neurons + extra, n_certify=n0 + neurons + extra, n_vars=int(m), nnz=nnz, n_input=n0,
                         neurons=neurons)


def estimate_memory(dims: LMIDimensions, solver: str) -> float:
    """Estimated peak bytes of solving and certifying with ``solver`` (see module docstring)."""
    n, nc, m = float(dims.n_solve), float(dims.n_certify), float(dims.n_vars)
    common = BASELINE + C_CANON * dims.nnz + C_DENSE * 8.0 * nc * nc
    d = n * (n + 1) / 2
    backend = {
        "cvxopt": 2 * 8.0 * n * n * m + 8.0 * m * m,
        "sdpa": 2 * 8.0 * m * m + 8 * 8.0 * n * n,
        "mosek": 2 * 8.0 * m * m + 8 * 8.0 * n * n,
        "scs": 6 * 8.0 * n * n,
        "ipm": 2 * 8.0 * m * m + 12 * 8.0 * n * n,
        "clarabel": 8.0 * d * d,
    }.get(solver, 2 * 8.0 * m * m + 8 * 8.0 * n * n)
    return common + backend


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable), or the physical memory when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return float("inf")


def _gb(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


def check_fits(network, norm: str, method: str, solver: str, limit: float | None = None,
               auto: bool = False) -> dict:
    """Raise :class:`ProblemTooLargeError` if the estimated memory exceeds ``limit`` (default: available).

    With ``auto`` (the user asked for ``solver="auto"``), a backend that does not fit is replaced by
    the next available one in :data:`~lipsdp.solvers.AUTO_ORDER` that does; ``info["solver"]``
    names the backend to use. Returns a dict with the dimensions and the estimates per backend
    (for reports and ``lipsdp info``).
    """
    from . import available_solvers

    dims = lmi_dimensions(network, norm, method)
    limit = available_memory() if limit is None else float(limit)
    others = {s: estimate_memory(dims, s) for s in available_solvers()}
    if auto and estimate_memory(dims, solver) > limit:
        fitting = [s for s in available_solvers() if others[s] <= limit]
        if fitting:
            solver = fitting[0]
    est = estimate_memory(dims, solver)
    info = {"n_solve": dims.n_solve, "n_certify": dims.n_certify, "n_vars": dims.n_vars, "nnz": dims.nnz,
            "estimate_bytes": est, "limit_bytes": limit, "per_solver_bytes": others, "solver": solver}
    if est > limit:
        alt = [s for s, b in others.items() if b <= limit and s != solver]  # in "auto" preference order
        layer = estimate_memory(lmi_dimensions(network, norm, "layer"), solver) if method != "layer" else None
        options = []
        if alt:
            options.append(f"solver={alt[0]!r} (estimated {_gb(others[alt[0]])})")
        if layer is not None and layer <= limit:
            options.append(f"method='layer' (estimated {_gb(layer)})")
        options.append("a smaller output selection does not help (the LMI order is set by the neurons); "
                       "split the network into sub-networks and multiply their bounds, or bound it on a "
                       "machine with more memory")
        raise ProblemTooLargeError(
            f"the LipSDP-{method} LMI for this network has order N = {dims.n_solve} "
            f"({dims.n_input} inputs + {dims.neurons} neurons; certified at order {dims.n_certify}) with "
            f"{dims.n_vars} variables; {solver} would need about {_gb(est)} but {_gb(limit)} is available. "
            "Options: " + "; ".join(options) + "."
        )
    return info
