"""SDP backends (stage 5): cvxpy with CLARABEL/SCS/SDPA/CVXOPT/MOSEK.

``solve(lmi, solver)`` dispatches on the solver name; ``"auto"`` picks the first
available backend in :data:`AUTO_ORDER`: the fastest that reaches about 1e-8
relative accuracy first (measured by ``python -m benchmarks solvers``). SDPA is
often faster than CVXOPT but stops at about 1e-6 relative accuracy through
cvxpy ("pdFEAS"), so it comes second; CLARABEL's KKT system holds the dense
PSD scaling block (order N^2/2 squared) and is slowest beyond N ~ 100.
"""

from __future__ import annotations

from ..errors import SolverUnavailableError
from ..sdp.lmi import LMI
from .cvxpy_backend import (CVXPY_BACKENDS, SolveOutput, installed_cvxpy_backends, mosek_license_status,
                            solve_with_cvxpy)

#: preference order of "auto" (fastest first)
AUTO_ORDER = ["mosek", "cvxopt", "sdpa", "scs", "clarabel"]


def available_solvers() -> list[str]:
    """Names of the backends usable on this machine, in "auto" preference order."""
    inst = set(installed_cvxpy_backends())
    return [s for s in AUTO_ORDER if s in inst]


def resolve_solver(name: str) -> str:
    """Map "auto" to a concrete backend name; validate explicit names."""
    name = (name or "auto").lower()
    if name == "auto":
        avail = available_solvers()
        if not avail:
            raise SolverUnavailableError("no SDP backend is installed (install cvxpy with clarabel or scs)")
        return avail[0]
    if name not in CVXPY_BACKENDS:
        raise SolverUnavailableError(f"unknown solver {name!r}; choose 'auto' or one of {sorted(CVXPY_BACKENDS)}")
    return name


def solve(lmi: LMI, solver: str = "auto", verbose: bool = False, **options) -> SolveOutput:
    """Solve ``lmi`` with the named backend (see :func:`resolve_solver`)."""
    name = resolve_solver(solver)
    return solve_with_cvxpy(lmi, name, verbose=verbose, **options)


__all__ = ["solve", "resolve_solver", "available_solvers", "AUTO_ORDER", "SolveOutput", "mosek_license_status"]
