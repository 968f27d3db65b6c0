"""Solve an :class:`~lipsdp.sdp.lmi.LMI` with cvxpy and any installed conic backend.

The problem handed to cvxpy is

    minimise y_0   s.t.   reshape(F y + f0, (N, N)) >= 0 (PSD),   y_i >= 0 for nonnegative multipliers,

with F the sparse basis of :meth:`LMI.basis` (one column per variable). Building
the LMI from a precomputed basis, rather than with cvxpy atoms
(``AB.T @ Q(T) @ AB``), gives the same solver data at a fraction of the
canonicalisation time and memory.

Backends: CLARABEL and SCS (always installed), SDPA (``sdpa-python``), CVXOPT,
MOSEK (only with a license; :func:`mosek_license_status` checks it before use).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import SolverLicenseError, SolverUnavailableError
from ..sdp.lmi import LMI

__all__ = ["SolveOutput", "solve_with_cvxpy", "CVXPY_BACKENDS", "installed_cvxpy_backends", "mosek_license_status"]

#: lipsdp name -> cvxpy solver name
CVXPY_BACKENDS = {"sdpa": "SDPA", "cvxopt": "CVXOPT", "clarabel": "CLARABEL", "scs": "SCS", "mosek": "MOSEK"}

#: default options per backend: tight enough that certification loses little
DEFAULT_OPTIONS = {
    "scs": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 200_000},
    "clarabel": {},
    "cvxopt": {},
    "sdpa": {},
    "mosek": {},
}


@dataclass
class SolveOutput:
    """What a backend returns.

    y: the variables (rho first) or None; status: normalised status string
    ("optimal", "optimal_inaccurate", "infeasible", "unbounded", "error");
    objective: the solver's rho; time: solve seconds; raw_status: the backend's own word.
    """

    y: np.ndarray | None
    status: str
    objective: float | None
    time: float
    solver: str
    raw_status: str = ""
    info: dict = field(default_factory=dict)


def mosek_license_status() -> str | None:
    """None if MOSEK is installed and licensed, else a sentence saying why it cannot be used."""
    try:
        import mosek  # noqa: F401
    except ImportError:
        return "the mosek package is not installed (pip install 'lipsdp[mosek]')"
    try:
        env = mosek.Env()
        env.checkoutlicense(mosek.feature.pts)
        env.checkinlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error, with the license problem in its text
        return f"MOSEK is installed but has no usable license ({exc}); see https://www.mosek.com/products/academic-licenses/"
    return None


def installed_cvxpy_backends() -> list[str]:
    """lipsdp names of the cvxpy backends usable now (MOSEK only when licensed)."""
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - cvxpy is a core dependency
        return []
    inst = set(cp.installed_solvers())
    out = [name for name, cv in CVXPY_BACKENDS.items() if cv in inst]
    if "mosek" in out and mosek_license_status() is not None:
        out.remove("mosek")
    return out


@contextlib.contextmanager
def _quiet_c_stdout(enabled: bool):
    """Silence output that compiled backends write straight to file descriptor 1 (SDPA does)."""
    if not enabled:
        yield
        return
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured): nothing to silence
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _status(cp_status: str) -> str:
    return {
        "optimal": "optimal",
        "optimal_inaccurate": "optimal_inaccurate",
        "infeasible": "infeasible",
        "infeasible_inaccurate": "infeasible",
        "unbounded": "unbounded",
        "unbounded_inaccurate": "unbounded",
    }.get(str(cp_status), "error")


def solve_with_cvxpy(lmi: LMI, backend: str, verbose: bool = False, **options) -> SolveOutput:
    """Solve ``lmi`` with cvxpy + ``backend``.

    Raises:
        SolverUnavailableError: the backend is not installed.
        SolverLicenseError: MOSEK without a license.
    """
    import cvxpy as cp

    name = backend.lower()
    if name not in CVXPY_BACKENDS:
        raise SolverUnavailableError(f"unknown cvxpy backend {backend!r}; known: {sorted(CVXPY_BACKENDS)}")
    if name == "mosek":
        why = mosek_license_status()
        if why is not None:
            raise SolverLicenseError(why)
    if CVXPY_BACKENDS[name] not in cp.installed_solvers():
        extra = {"sdpa": "sdpa", "cvxopt": "cvxopt", "mosek": "mosek"}.get(name, "")
        hint = f" (pip install 'lipsdp[{extra}]')" if extra else ""
        raise SolverUnavailableError(f"the {name} backend is not installed{hint}")
    n = lmi.size
    t0 = time.perf_counter()
    f, f0 = lmi.basis()
    y = cp.Variable(lmi.n_vars)
    z = cp.reshape(f @ y + f0, (n, n), order="C")
    cons = [z >> 0]
    nn = np.nonzero(lmi.nonneg)[0]
    if nn.size:
        cons.append(y[nn] >= 0)
    prob = cp.Problem(cp.Minimize(y[0]), cons)
    opts = dict(DEFAULT_OPTIONS.get(name, {}))
    opts.update(options)
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        with _quiet_c_stdout(name == "sdpa" and not verbose), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            warnings.filterwarnings("ignore", message="Python recalculation of primal")
            prob.solve(solver=CVXPY_BACKENDS[name], verbose=verbose, **opts)
        raw = str(prob.status)
    except Exception as exc:  # backends fail in many ways (SolverError, bugs in their wrappers)
        return SolveOutput(None, "error", None, time.perf_counter() - t1, name,
                           raw_status=f"{type(exc).__name__}: {exc}", info={"build_time": t_build})
    t_solve = time.perf_counter() - t1
    yv = None if y.value is None else np.asarray(y.value, dtype=np.float64).ravel()
    obj = None if yv is None else float(yv[0])
    iters = None
    try:
        iters = prob.solver_stats.num_iters
    except Exception:  # pragma: no cover - depends on backend
        pass
    return SolveOutput(yv, _status(raw), obj, t_solve, name, raw_status=raw,
                       info={"build_time": t_build, "iterations": iters})
