"""``lipsdp.estimate``: extract, build, solve, certify, compare.

Data flow: model -> :func:`lipsdp.extract.extract` -> :class:`~lipsdp.network.Network`
-> canonical chain (with the output selection) -> LMI
(:mod:`lipsdp.sdp`) -> backend (:mod:`lipsdp.solvers`) -> certificate
(:mod:`lipsdp.certify`) -> :class:`~lipsdp.result.LipschitzResult`, next to the
naive and empirical lower bounds (:mod:`lipsdp.bounds`).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from dataclasses import dataclass
from typing import Callable

from .bounds.lower import lower_bound as _lower_bound
from .bounds.naive import naive_bound as _naive_bound
from .bounds.region import as_region
from .certify import certify
from .errors import UnsupportedNormError
from .extract import extract
from .result import LipschitzResult
from .sdp import build_lmis
from .solvers import resolve_solver, solve
from .solvers.memory import check_fits

__all__ = ["estimate", "normalize_norm", "output_matrix", "METHODS", "Method", "register_method"]


@dataclass
class Method:
    """A named way of bounding: a multiplier structure, optionally after rewriting the network.

    ``transform(network) -> network`` must return a network with the same function (or one
    whose Lipschitz constant is provably no smaller), e.g. MaxMin rewritten with ReLUs.
    """

    name: str
    multipliers: str
    description: str
    transform: Callable | None = None


#: method name -> Method
METHODS: dict = {}


def register_method(name: str, multipliers: str, description: str, transform: Callable | None = None) -> None:
    """Make ``estimate(..., method=name)`` available."""
    METHODS[name] = Method(name, multipliers, description, transform)


register_method("neuron", "neuron",
                "LipSDP-Neuron: one multiplier per neuron (per group for MaxMin/GroupSort/Householder)")
register_method("layer", "layer", "LipSDP-Layer: one multiplier per layer")


def _residual_relu(network):
    from .network.group import residual_relu_rewrite

    return residual_relu_rewrite(network)


register_method("residual-relu", "neuron",
                "LipSDP-RR baseline (Pauli et al. 2024): MaxMin/Householder rewritten as residual ReLU blocks, "
                "then LipSDP-Neuron", _residual_relu)

_NORM_ALIASES = {"l2": "l2", "2": "l2", "euclidean": "l2", "linf": "linf", "inf": "linf", "l_inf": "linf",
                 "l-inf": "linf", "infinity": "linf", "l-infinity": "linf"}


def normalize_norm(norm) -> str:
    """'l2' or 'linf' from the accepted spellings; anything else raises UnsupportedNormError."""
    key = str(norm).lower().replace(" ", "")
    if key in ("inf",) or norm in (np.inf, float("inf")):
        return "linf"
    if key not in _NORM_ALIASES:
        raise UnsupportedNormError(
            f"norm {norm!r} is not supported; lipsdp certifies 'l2' and 'linf' (l-infinity) Lipschitz bounds"
        )
    return _NORM_ALIASES[key]


def output_matrix(output, out_dim: int):
    """The selection matrix C for ``output``: None, an index, a list of indices, or a (k, out_dim) matrix."""
    if output is None:
        return None
    if isinstance(output, (int, np.integer)):
        output = [int(output)]
    arr = np.asarray(output)
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if np.any(arr < 0) or np.any(arr >= out_dim):
            raise ValueError(f"output indices {arr.tolist()} out of range for {out_dim} outputs")
        c = np.zeros((arr.size, out_dim))
        c[np.arange(arr.size), arr] = 1.0
        return c
    c = np.atleast_2d(np.asarray(output, dtype=np.float64))
    if c.shape[1] != out_dim:
        raise ValueError(f"output matrix has {c.shape[1]} columns, the network has {out_dim} outputs")
    if not np.all(np.isfinite(c)):
        raise ValueError("output matrix has NaN or infinite entries")
    return c


def _describe_output(output, c) -> str:
    if c is None:
        return "all outputs"
    if isinstance(output, (int, np.integer)):
        return f"output {int(output)}"
    arr = np.asarray(output)
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        return f"outputs {arr.tolist()}"
    return f"C f with C of shape {c.shape}"


def _solve_and_certify(lmis, solver_name: str, verbose: bool, solver_options: dict):
    """Solve the LMI, certify; fall back to the interior point if the solver fails. Returns a dict."""
    t0 = time.perf_counter()
    options = dict(solver_options)
    verbose = bool(options.pop("verbose", False)) or verbose  # accepted in either place
    out = solve(lmis.solve, solver_name, verbose=verbose, **options)
    t_solve = time.perf_counter() - t0
    raw = lmis.solve.bound_from_rho(out.objective) if out.objective is not None and np.isfinite(out.objective) else None
    cert = None
    status = None
    if out.y is not None and out.status in ("optimal", "optimal_inaccurate"):
        cert = certify(lmis.certify, out.y, y_interior=out.info.get("y_interior"))
        if cert.certified:
            status = "optimal" if out.status == "optimal" else "inaccurate"
    if status is None:
        y0 = lmis.certify.interior_point()
        cert_fb = certify(lmis.certify, y0, y_interior=y0)
        if cert_fb.certified:
            status, cert = "fallback", cert_fb
        else:
            status = "not_certified"
            cert = cert_fb
    message = {
        "optimal": cert.message,
        "inaccurate": f"solver status '{out.raw_status}'; {cert.message}",
        "fallback": f"solver status '{out.raw_status or out.status}'; bound from the feasible starting point",
        "not_certified": f"solver status '{out.raw_status or out.status}'; {cert.message}",
    }[status]
    return {
        "cert": cert,
        "out": out,
        "raw": raw,
        "status": status,
        "message": message,
        "t_solve": t_solve,
        "t_build_solver": out.info.get("build_time", 0.0),
    }


_STATUS_RANK = {"optimal": 0, "inaccurate": 1, "fallback": 2, "not_certified": 3}


def estimate(model, norm: str = "l2", method: str = "neuron", solver: str = "auto", *, output=None,
             input_shape=None, lower: bool = True, verbose: bool = False, solver_options: dict | None = None,
             seed: int = 0, lower_options: dict | None = None, region=None, center=None, eps=None,
             ball: str = "linf", propagation: str = "crown", compare_global: bool = True,
             memory_limit: float | None = None) -> LipschitzResult:
    """Certified upper bound on the Lipschitz constant of ``model``.

    Args:
        model: a ``torch.nn.Module``, a path to an ``.onnx`` file, or a :class:`lipsdp.Network`.
        norm: "l2" (||f(x) - f(y)||_2 <= L ||x - y||_2) or "linf" (l-infinity on input and
            output: for one output row |c^T(f(x) - f(y))| <= L ||x - y||_inf; for several,
            the maximum over rows, each row solved separately).
        method: "neuron" (LipSDP-Neuron, tightest sound choice) or "layer" (LipSDP-Layer).
        solver: "auto" or a backend name: "ipm" (structure-exploiting interior point, pure
            numpy/scipy, first choice of "auto"), "sdpa", "cvxopt", "clarabel", "scs", "mosek".
            "auto" skips backends whose memory estimate does not fit (see memory_limit).
        output: bound ``C f`` instead of ``f``: an output index, a list of indices, or a
            matrix C (e.g. a logit difference e_i - e_j).
        input_shape: shape of one input for torch models whose first layer is not Linear.
        lower: compute the empirical lower bound.
        verbose: print solver progress.
        solver_options: passed to the backend (e.g. ``{"eps_abs": 1e-8}`` for SCS).
        seed: random seed of the lower-bound search.
        lower_options: passed to :func:`lipsdp.bounds.lower.lower_bound`.
        region: a :class:`lipsdp.Box` or :class:`lipsdp.Ball`: bound the *local* Lipschitz
            constant over that input region (feedforward networks). Pre-activation bounds
            over the region (``propagation``: "crown" = CROWN ∩ IBP, or "ibp") tighten each
            neuron's slope interval (:mod:`lipsdp.bounds.local`); the LipSDP with those
            slopes is certified exactly as a global bound. The lower bound searches inside
            the region.
        center, eps, ball: shorthand for ``region=Ball(center, eps, ball)`` (ball "linf" or "l2").
        compare_global: for a local bound, also certify the global bound and return the
            smaller (both are certified; tightened slope QCs do not always dominate the global ones).
        memory_limit: bytes the solve may use (default: the memory available now); the
            estimate of :mod:`lipsdp.solvers.memory` is checked before the LMI is built.
            ``float("inf")`` disables the check.

    Returns:
        :class:`~lipsdp.result.LipschitzResult`. ``result.bound`` is certified
        (``result.certified``) or None; it is never the solver's unverified number.

    Raises:
        UnsupportedLayerError, InvalidNetworkError, TrainModeError: bad model.
        UnsupportedNormError: a norm other than l2 / l-infinity.
        SolverUnavailableError, SolverLicenseError: the backend cannot be used.
        ProblemTooLargeError: the LMI would not fit in memory (the message gives its order,
            the estimate and the options).
    """
    reg = as_region(region, center, eps, ball)
    if reg is not None:
        return _estimate_local(model, reg, norm=norm, method=method, solver=solver, output=output,
                               input_shape=input_shape, lower=lower, verbose=verbose,
                               solver_options=solver_options, seed=seed, lower_options=lower_options,
                               propagation=propagation, compare_global=compare_global,
                               memory_limit=memory_limit)
    t_all = time.perf_counter()
    norm = normalize_norm(norm)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    meth = METHODS[method]
    solver_name = resolve_solver(solver)  # validates the name; "auto" is resolved per LMI by solve()
    auto = (solver or "auto").lower() == "auto"
    solver_request = "auto" if auto else solver_name
    times: dict = {}
    t0 = time.perf_counter()
    net = extract(model, input_shape=input_shape)
    times["extract"] = time.perf_counter() - t0
    c = output_matrix(output, net.out_dim)
    bound_net = meth.transform(net) if meth.transform is not None else net
    size_info = check_fits(bound_net, norm, meth.multipliers, solver_name, memory_limit,
                           auto=auto)
    if size_info["solver"] != solver_name:  # "auto": the first backend did not fit, use one that does
        solver_name = solver_request = size_info["solver"]

    t0 = time.perf_counter()
    naive = _naive_bound(net, norm, c)
    times["naive"] = time.perf_counter() - t0

    n_rows = net.out_dim if c is None else c.shape[0]
    c_full = np.eye(net.out_dim) if c is None else c
    rows = [None] if norm == "l2" or n_rows == 1 else list(range(n_rows))
    runs = []
    t_build = 0.0
    for r in rows:
        c_row = c if r is None else c_full[r:r + 1]
        t0 = time.perf_counter()
        lmis = build_lmis(bound_net, norm, meth.multipliers, c_row)
        t_build += time.perf_counter() - t0
        run = _solve_and_certify(lmis, solver_request, verbose, solver_options or {})
        run["lmis"] = lmis
        run["row"] = r
        t_build += run["t_build_solver"]
        runs.append(run)
    times["build"] = t_build
    times["solve"] = sum(run["t_solve"] for run in runs) - sum(run["t_build_solver"] for run in runs)
    times["certify"] = sum(run["cert"].time for run in runs)

    certified = all(run["cert"].certified for run in runs)
    bound = max(run["cert"].bound for run in runs) if certified else None
    raws = [run["raw"] for run in runs]
    raw = max(raws) if all(v is not None for v in raws) else None
    status = max((run["status"] for run in runs), key=_STATUS_RANK.get)
    message = runs[0]["message"] if len(runs) == 1 else f"{len(runs)} output rows; worst status {status}"
    mults = [run["lmis"].certify.multipliers(run["cert"].y) if run["cert"].y is not None else None for run in runs]
    sdp_bound = bound
    if naive is not None and math.isfinite(naive) and (bound is None or naive < bound * (1.0 - 1e-6)):
        # Both are proved upper bounds; never report the larger one. This happens when the solver's
        # multipliers needed a large repair (or none could be certified) on badly scaled deep nets.
        bound, certified, status = naive, True, "naive"
        message = (f"the product-of-norms bound {naive:.6g} is smaller than the SDP certificate "
                   f"({'none' if sdp_bound is None else format(sdp_bound, '.6g')}; {message}); returned instead")

    low = None
    details: dict = {}
    if lower:
        t0 = time.perf_counter()
        lb = _lower_bound(net, norm=norm, output=c, seed=seed, **(lower_options or {}))
        times["lower"] = time.perf_counter() - t0
        low = lb.value
        details["lower_witness"] = {"x": lb.x, "jacobian_norm": lb.jacobian_value, "quotient": lb.quotient_value}
        if bound is not None and low > bound * (1.0 + 1e-9):
            warnings.warn(f"empirical lower bound {low} exceeds the certified bound {bound}: please report this bug",
                          RuntimeWarning, stacklevel=2)
    times["total"] = time.perf_counter() - t_all
    per_output = []
    if len(runs) > 1:
        per_output = [{"row": run["row"], "bound": run["cert"].bound, "raw_bound": run["raw"],
                       "status": run["status"]} for run in runs]
    lmi0 = runs[0]["lmis"]
    details.update(repair=[run["cert"].repair for run in runs],
                   solver_status=[run["out"].raw_status for run in runs],
                   solver_fallback=[run["out"].info.get("fallback_from") for run in runs],
                   layer_scales=lmi0.certify.meta.get("layer_scales"),
                   memory_estimate_bytes=size_info["estimate_bytes"],
                   sdp_bound=sdp_bound)
    return LipschitzResult(
        bound=bound,
        certified=certified,
        raw_bound=raw,
        naive_bound=naive,
        lower_bound=low,
        norm=norm,
        method=method,
        solver=",".join(dict.fromkeys(run["out"].solver for run in runs)),
        status=status,
        message=message,
        time=times,
        multipliers=mults[0] if len(mults) == 1 else mults,
        lmi_size={"solved": lmi0.solve.size, "certified": lmi0.certify.size},
        network=net.name or repr(net),
        output=_describe_output(output, c),
        per_output=per_output,
        details=details,
    )


def _estimate_local(model, reg, *, norm, method, solver, output, input_shape, lower, verbose, solver_options,
                    seed, lower_options, propagation, compare_global, memory_limit) -> LipschitzResult:
    """estimate() over an input region: bound propagation -> per-neuron slopes -> LipSDP (certified)."""
    from .bounds.local import eliminate_linear, localize, restrict_inputs
    from .bounds.propagation import preactivation_bounds

    t_all = time.perf_counter()
    norm = normalize_norm(norm)
    t0 = time.perf_counter()
    net = extract(model, input_shape=input_shape)
    t_extract = time.perf_counter() - t0
    reg.check(net.in_dim)
    full_net, full_reg = net, reg
    restricted = restrict_inputs(net, reg)
    if restricted is not None:  # pinned coordinates (lower == upper) fold into the first bias: exact
        net, reg, _ = restricted
    t0 = time.perf_counter()
    pre = preactivation_bounds(net, reg, method=propagation)
    local_net = eliminate_linear(localize(net, pre), pre)
    t_prop = time.perf_counter() - t0
    common = dict(norm=norm, method=method, solver=solver, output=output, verbose=verbose,
                  solver_options=solver_options, seed=seed, lower=False, memory_limit=memory_limit)
    res = estimate(local_net, **common)
    glob = estimate(net, **common) if compare_global else None
    details = dict(res.details)
    details["local_bound"] = res.bound
    details["local_status"] = res.status
    if glob is not None:
        details["global_bound"] = glob.bound
        details["global_status"] = glob.status
        details["global_naive_bound"] = glob.naive_bound
        if glob.bound is not None and (res.bound is None or glob.bound < res.bound):
            # both certified; the global constant bounds the local one
            res.bound, res.certified, res.status = glob.bound, True, glob.status
            res.multipliers, res.per_output = glob.multipliers, glob.per_output
            res.message = f"global bound is smaller than the local one; {glob.message}"
            details["used"] = "global"
        else:
            details["used"] = "local"
    times = dict(res.time)
    times["extract"] = t_extract
    times["propagation"] = t_prop
    if glob is not None:
        times["global"] = glob.time.get("total", 0.0)
    c = output_matrix(output, net.out_dim)
    if lower:
        t0 = time.perf_counter()
        lb = _lower_bound(net, norm=norm, output=c, seed=seed, region=reg, **(lower_options or {}))
        times["lower"] = time.perf_counter() - t0
        res.lower_bound = lb.value
        details["lower_witness"] = {"x": lb.x, "jacobian_norm": lb.jacobian_value, "quotient": lb.quotient_value}
        if res.bound is not None and lb.value > res.bound * (1.0 + 1e-9):
            warnings.warn(f"empirical lower bound {lb.value} exceeds the certified local bound {res.bound}: "
                          "please report this bug", RuntimeWarning, stacklevel=3)
    times["total"] = time.perf_counter() - t_all
    res.time = times
    res.details = details
    res.region = full_reg.to_dict()
    if restricted is not None:
        res.region["free_coordinates"] = int(reg.dim)
    res.preactivation_bounds = [b.to_dict() for b in pre]
    res.network = full_net.name or repr(full_net)
    return res
