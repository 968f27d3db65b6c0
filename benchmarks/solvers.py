"""SDP backends side by side on LipSDP-Neuron (l2) for random ReLU MLPs of growing LMI size N.

``python -m benchmarks solvers [--quick] [--timeout S] [--ipm-only-above N] [--big] [--only LABELS] [--backends B]
[--threads T] [--name NAME]``

For every network and backend (``ipm`` and the installed cvxpy backends) one isolated process
(:func:`benchmarks.common.run_isolated`) runs ``lipsdp.estimate(net, solver=backend,
lower=False)``: the row has the solve time (build + solve, certification apart), the certified
bound, the status, the peak resident memory of that process, the ratio to the fastest cvxpy
backend on the same network, and the time divided by the time of one dense Cholesky
factorisation of an N x N SPD matrix (measured in the same kind of process, N = the order of
the LMI handed to the solver: the l2 input reduction makes it n1 + sum(hidden) when n1 < n0).
Every process runs with OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = MKL_NUM_THREADS = 1 (``--threads``
changes it for every process of the run, the Cholesky reference included), so by default the
backends are compared on one core each (the machine is shared; ratios from the same run are the
meaningful figures). Results go to ``benchmarks/results/NAME.json`` (default ``solvers`` or
``solvers-quick``). cvxpy backends are skipped above ``--ipm-only-above`` and above their
entry in :data:`CVXPY_MAX_N` (where they time out on this machine); a timeout is a row with
status "timeout after ... s".
"""

from __future__ import annotations

import argparse
import os
import sys

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from .common import markdown_table, run_isolated, save_results  # noqa: E402

# (label, dims); dims = [n0, hidden..., n_out]
QUICK = [
    ("2-[50]x2", [2, 50, 50, 2]),
    ("5-[50]x6 (ACAS-like)", [5] + [50] * 6 + [5]),
    ("784-[256]x2 (MNIST-like)", [784, 256, 256, 10]),
]
FULL = QUICK[:2] + [
    ("2-[250]x2", [2, 250, 250, 2]),
    ("784-[256]x2 (MNIST-like)", [784, 256, 256, 10]),
    ("10-[500]x2", [10, 500, 500, 2]),
    ("784-[512]x2", [784, 512, 512, 10]),
]
#: largest N at which each cvxpy backend is still run (beyond it they time out: measured here)
CVXPY_MAX_N = {"clarabel": 110, "scs": 110, "cvxopt": 800, "sdpa": 800, "mosek": 2000}
BIG = [("784-[1024]x4", [784, 1024, 1024, 1024, 1024, 10])]


def random_mlp(dims, seed=0):
    """ReLU MLP with weights ~ N(0, 1/fan_in) (the test suite's generator)."""
    from lipsdp.network import Activation, Affine, Network, activations

    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(dims) - 1):
        w = rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])
        layers.append(Affine(w, 0.1 * rng.standard_normal(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(Activation(activations.relu(), dims[i + 1]))
    return Network(layers)


def lmi_sizes(dims):
    """(N solved, N certified, number of variables) of the LipSDP-Neuron l2 LMI."""
    n0, n1, hidden = dims[0], dims[1], dims[1:-1]
    n_solve = min(n0, n1) + sum(hidden)
    return n_solve, n0 + sum(hidden), 1 + sum(hidden)


def _estimate(dims, solver):
    import lipsdp

    r = lipsdp.estimate(random_mlp(dims), solver=solver, lower=False)
    out = r.details.get("solver_status") or [""]
    return {"bound": r.bound, "raw_bound": r.raw_bound, "status": r.status, "solver_status": out[0],
            "time_solve": r.time["build"] + r.time["solve"], "time_certify": r.time["certify"]}


def _cholesky_time(n, repeats=3):
    import scipy.linalg as sla

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    a = a @ a.T + n * np.eye(n)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        sla.cho_factor(a, lower=True, check_finite=False)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks solvers")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--timeout", type=float, default=None, help="per cvxpy run (default 60 quick, 120 full)")
    ap.add_argument("--ipm-timeout", type=float, default=600)
    ap.add_argument("--ipm-only-above", type=int, default=None,
                    help="N above which cvxpy backends are skipped (default 150 quick; per backend, CVXPY_MAX_N, full)")
    ap.add_argument("--big", action="store_true", help="add 784-[1024]x4 (N = 4,880; ipm only)")
    ap.add_argument("--backends", default=None, help="comma-separated subset")
    ap.add_argument("--only", default=None, help="comma-separated substrings: run only matching networks")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads of every benchmark process (default 1)")
    ap.add_argument("--name", default=None, help="results file name (default solvers / solvers-quick)")
    args = ap.parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # inherited by the spawned benchmark processes
    from lipsdp.solvers import available_solvers

    nets = QUICK if args.quick else FULL + (BIG if args.big else [])
    if args.only:
        nets = [(label, dims) for label, dims in nets if any(o in label for o in args.only.split(","))]
    timeout = args.timeout or (30.0 if args.quick else 90.0)
    limit = args.ipm_only_above or (150 if args.quick else 10**9)
    backends = available_solvers()
    if args.backends:
        backends = [b for b in backends if b in args.backends.split(",")]
    rows = []
    for label, dims in nets:
        n, n_cert, m = lmi_sizes(dims)
        chol = run_isolated(_cholesky_time, n, timeout=300)["result"]
        net_rows = []
        for b in backends:
            if b != "ipm" and (n > limit or n > CVXPY_MAX_N.get(b, 10**9)):
                continue
            res = run_isolated(_estimate, dims, b, timeout=args.ipm_timeout if b == "ipm" else timeout)
            row = {"network": label, "N": n, "N_certified": n_cert, "m": m, "backend": b,
                   "peak_mb": res["peak_mb"], "cholesky_s": chol}
            if res["result"] is not None:
                row.update(res["result"])
                row["time_per_cholesky"] = row["time_solve"] / chol if chol else None
            else:
                row.update(status=res["error"])
            net_rows.append(row)
            print(f"  {label} N={n} {b}: {row.get('time_solve')} s, bound {row.get('bound')}, {row.get('status')}",
                  flush=True)
        cvx = [r["time_solve"] for r in net_rows if r["backend"] != "ipm" and r.get("time_solve") is not None
               and r.get("status") in ("optimal", "inaccurate")]
        best = min(cvx) if cvx else None
        ref_bound = min((r["bound"] for r in net_rows if r["backend"] != "ipm" and r.get("bound") is not None),
                        default=None)
        timed_out = [r for r in net_rows if r["backend"] != "ipm" and str(r.get("status", "")).startswith("timeout")]
        for r in net_rows:
            if best and r.get("time_solve"):
                r["speedup_vs_best_cvxpy"] = best / r["time_solve"]
            elif timed_out and not cvx and r.get("time_solve"):
                r["speedup_at_least"] = timeout / r["time_solve"]  # every cvxpy backend run timed out
            if ref_bound and r.get("bound") is not None:
                r["rel_diff_vs_best_cvxpy_bound"] = (r["bound"] - ref_bound) / ref_bound
        rows += net_rows
    cols = [("network", "network", ""), ("N", "N", "d"), ("m", "m", "d"), ("backend", "backend", ""),
            ("time_solve", "time [s]", ".3g"), ("bound", "certified bound", ".10g"), ("status", "status", ""),
            ("speedup_vs_best_cvxpy", "speed-up vs best cvxpy", ".3g"),
            ("speedup_at_least", "speed-up at least (all cvxpy timed out)", ".3g"),
            ("rel_diff_vs_best_cvxpy_bound", "bound rel. diff", ".1e"), ("peak_mb", "peak MB", ".0f"),
            ("time_per_cholesky", "time / Cholesky(N)", ".3g")]
    print(markdown_table(rows, cols))
    name = args.name or ("solvers" + ("-quick" if args.quick else ""))
    path = save_results(name, rows,
                        {"quick": args.quick, "timeout_cvxpy_s": timeout, "threads": args.threads,
                         "ipm_only_above": limit, "cvxpy_max_n": CVXPY_MAX_N, "backends": backends,
                         "command": "python -m benchmarks solvers " + " ".join(sys.argv[1:] if argv is None else argv)})
    print(f"wrote {path}")
    return 0
