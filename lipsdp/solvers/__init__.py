"""SDP backends (stage 5): the structure-exploiting IPM and cvxpy with CLARABEL/SCS/SDPA/CVXOPT/MOSEK.

Backends are registered in :data:`BACKENDS` (name -> :class:`Backend`: a solve function, an
``available()`` check and an ``applies(lmi)`` check). ``solve(lmi, solver)`` dispatches on the
name; ``"auto"`` takes the first backend in :data:`AUTO_ORDER` that is available and applies
to the LMI. ``"ipm"`` (:mod:`lipsdp.solvers.ipm`, pure numpy/scipy, always available) comes
first: it exploits the LipSDP structure (few multipliers, rank <= 2 coefficient matrices) and
was 20-200x faster than the cvxpy backends in ``python -m benchmarks solvers``. If it does not
reach an optimal status, "auto" retries with the next backend (the returned
``SolveOutput.info["fallback_from"]`` says so). Among the cvxpy backends: SDPA is often faster
than CVXOPT but stops at about 1e-6 relative accuracy through cvxpy ("pdFEAS"), so it comes after
it; CLARABEL's KKT system holds the dense PSD scaling block (order N^2/2 squared) and is slowest
beyond N ~ 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import SolverUnavailableError
from ..sdp.lmi import LMI
from . import ipm as _ipm
from .cvxpy_backend import (CVXPY_BACKENDS, SolveOutput, installed_cvxpy_backends, mosek_license_status,
                            solve_with_cvxpy)


@dataclass
class Backend:
    """A registered SDP backend: ``solve(lmi, verbose=..., **options) -> SolveOutput``."""

    name: str
    solve: Callable
    available: Callable[[], bool]
    applies: Callable = lambda lmi: True
    options: tuple | None = None  # option names it accepts (None: anything, passed through)


#: name -> Backend
BACKENDS: dict = {}


def register_backend(name: str, solve_fn: Callable, available: Callable[[], bool], applies: Callable | None = None,
                     options: tuple | None = None) -> None:
    BACKENDS[name] = Backend(name, solve_fn, available, applies or (lambda lmi: True), options)


def _cvxpy_backend(name: str) -> Backend:
    return Backend(name, lambda lmi, verbose=False, **kw: solve_with_cvxpy(lmi, name, verbose=verbose, **kw),
                   lambda: name in installed_cvxpy_backends())


register_backend("ipm", _ipm.solve_ipm, lambda: True, _ipm.applies, tuple(_ipm.DEFAULTS))
for _name in CVXPY_BACKENDS:
    BACKENDS[_name] = _cvxpy_backend(_name)

#: preference order of "auto" (fastest first)
AUTO_ORDER = ["ipm", "mosek", "cvxopt", "sdpa", "scs", "clarabel"]


def available_solvers() -> list[str]:
    """Names of the backends usable on this machine, in "auto" preference order."""
    inst = set(installed_cvxpy_backends())
    return [s for s in AUTO_ORDER if s in BACKENDS and (s in inst if s in CVXPY_BACKENDS else BACKENDS[s].available())]


def _candidates(lmi: LMI | None, options: dict | None = None) -> list[str]:
    out = []
    for s in available_solvers():
        b = BACKENDS[s]
        if lmi is not None and not b.applies(lmi):
            continue
        if options and b.options is not None and not set(options) <= set(b.options):
            continue  # options meant for another backend
        out.append(s)
    return out


def resolve_solver(name: str, lmi: LMI | None = None) -> str:
    """Map "auto" to a concrete backend name (the first that applies to ``lmi``); validate explicit names."""
    name = (name or "auto").lower()
    if name == "auto":
        avail = _candidates(lmi)
        if not avail:
            raise SolverUnavailableError("no SDP backend is installed (install cvxpy with clarabel or scs)")
        return avail[0]
    if name not in BACKENDS:
        raise SolverUnavailableError(f"unknown solver {name!r}; choose 'auto' or one of {sorted(BACKENDS)}")
    return name


def cvxpy_solver_name(name: str | None) -> str:
    """The cvxpy backend to use for a general conic problem (not an LMI) when ``name`` was requested.

    An explicit cvxpy backend is kept; "auto" and non-cvxpy backends ("ipm") map to the first
    installed cvxpy backend in :data:`AUTO_ORDER`.
    """
    name = (name or "auto").lower()
    if name in CVXPY_BACKENDS:
        return name
    inst = set(installed_cvxpy_backends())
    for s in AUTO_ORDER:
        if s in CVXPY_BACKENDS and s in inst:
            return s
    raise SolverUnavailableError("no cvxpy backend is installed (install cvxpy with clarabel or scs)")


def solve(lmi: LMI, solver: str = "auto", verbose: bool = False, **options) -> SolveOutput:
    """Solve ``lmi`` with the named backend (see :func:`resolve_solver`).

    With ``"auto"``, a backend that returns no optimal point is followed by the next candidate;
    the output's ``info["fallback_from"]`` lists the earlier attempts as (name, status, raw status).
    """
    name = (solver or "auto").lower()
    if name != "auto":
        name = resolve_solver(name)
        return BACKENDS[name].solve(lmi, verbose=verbose, **options)
    cands = _candidates(lmi, options)
    if not cands:
        raise SolverUnavailableError("no installed SDP backend applies to this LMI with these options")
    tried = []
    out = None
    for s in cands:
        out = BACKENDS[s].solve(lmi, verbose=verbose, **options)
        if out.status in ("optimal", "optimal_inaccurate") or out.status == "infeasible" and s == cands[-1]:
            break
        tried.append((s, out.status, out.raw_status))
    if tried:
        out.info["fallback_from"] = tried
    return out


__all__ = ["solve", "resolve_solver", "available_solvers", "AUTO_ORDER", "SolveOutput", "mosek_license_status",
           "BACKENDS", "Backend", "register_backend", "cvxpy_solver_name"]
