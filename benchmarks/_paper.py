"""Shared driver of the paper suites (paper-l2, paper-linf, paper-residual).

Every network of ``../shared/paper-weights`` (Pauli et al. 2024, MaxMin on consecutive pairs)
is bounded in a fresh process (:func:`benchmarks.common.run_isolated`, with a time limit):
naive (matrix-norm product, MP), the residual-ReLU LipSDP baseline (LipSDP-RR), LipSDP-NSR
(S = P = 0) and the empirical lower bound, next to the reference figures of
``../shared/paper/README.md`` (paper-reported where the paper has them, otherwise the
independent CVXPY reproduction) and the relative difference ours / reference - 1.
"""

from __future__ import annotations

import argparse
import time
import os
from pathlib import Path

import numpy as np

from .common import SHARED, markdown_table, run_isolated, save_results

WEIGHTS = SHARED / "paper-weights"

# ../shared/paper/README.md: (MP l2, NSR l2, exact l2, MP l-inf label 8, exact l-inf label 8)
REF = {
    "weights_l2_2fc_16": (23.4615, 22.5944, 22.0213, 543.613, 153.230),
    "weights_l2_2fc_32": (42.4631, 38.5483, 37.7585, 1140.31, 318.913),
    "weights_l2_2fc_64": (83.9875, 73.77, None, 3572.5, None),
    "weights_l2_2fc_128": (80.0251, 70.87, None, 4889.69, None),
    "weights_l2_5fc_32": (298.415, 224.53, None, 522712.0, None),
    "weights_l2_5fc_64": (520.72, 386.81, None, 1.3371e6, None),
    "weights_l2_8fc_32": (780.044, 401.03, None, 2.01263e7, None),
    "weights_l2_8fc_64": (1241.60, 722.34, None, 1.21982e8, None),
    "weights_l2_18fc_32": (73403.0, 17431.54, None, 2.22585e13, None),
    "weights_l2_18fc_128": (74167.0, 24271.0, None, 2.79e16, None),
    "resweights_5_32": (55.6488, 33.0425, None, None, None),
    "resweights_5_64": (None, None, None, None, None),
}
# paper-reported (Table 1) l-inf NSR figure
REF_NSR_LINF = {"weights_l2_18fc_128": 1.97e5}
LABEL = 8


def nets(kind: str, quick: bool) -> list[str]:
    names = sorted(p.stem for p in WEIGHTS.glob("*.mat")) if WEIGHTS.exists() else []
    if kind == "residual":
        names = [n for n in names if n.startswith("resweights")]
        return names[:1] if quick else names
    names = [n for n in names if n.startswith("weights")]
    if quick:
        # l-infinity keeps the 784 inputs in the LMI (no input reduction): only the smallest net
        names = [n for n in names if n.endswith("_2fc_16")] if kind == "linf" else \
            [n for n in names if "_2fc_" in n and n.endswith(("_16", "_32"))]
    depth = {n: int(n.split("_")[2].split("fc")[0]) for n in names}
    return sorted(names, key=lambda n: (depth[n], int(n.split("_")[-1])))


def _estimate(net, norm, method, solver, output):
    import lipsdp

    t0 = time.perf_counter()
    r = lipsdp.estimate(net, norm=norm, method=method, solver=solver, output=output, lower=False)
    # the method's own certified bound (estimate() would return the naive bound where that is smaller)
    return {"bound": r.details.get("sdp_bound", r.bound), "status": r.status, "time": time.perf_counter() - t0,
            "N": r.lmi_size["certified"]}


def compute(name: str, norm: str, solver: str, baseline: bool, lower: bool) -> dict:
    """All figures for one network (run in a child process)."""
    from lipsdp.bounds.lower import lower_bound
    from lipsdp.bounds.naive import naive_bound
    from lipsdp.extract.mat import from_mat
    from lipsdp.network import Network

    net, label = _load(name)
    c = None
    output = None
    if norm == "linf":
        c = np.zeros((1, net.out_dim))
        c[0, label] = 1.0
        output = label
    row = {"naive": naive_bound(net, norm, c)}
    nsr = _estimate(net, norm, "neuron", solver, output)
    row.update(nsr=nsr["bound"], nsr_status=nsr["status"], nsr_time=nsr["time"], N=nsr["N"])
    if norm == "linf":  # |c^T df| <= L2 ||dx||_2 <= L2 sqrt(n0) ||dx||_inf: the l2-derived comparison
        l2 = _estimate(net, "l2", "neuron", solver, output)
        row["sqrt_n0_l2"] = None if l2["bound"] is None else float(np.sqrt(net.in_dim)) * l2["bound"]
        row["l2_time"] = l2["time"]
    if baseline and name.startswith("ACASXU"):
        baseline = False  # ReLU nets: no MaxMin to rewrite
    if baseline:
        rr = _estimate(net, norm, "residual-relu", solver, output)
        row.update(rr=rr["bound"], rr_status=rr["status"], rr_time=rr["time"])
    if name.startswith("resweights"):
        # the paper's form: residual blocks alone in the LMI, times ||W_first|| ||W_last||
        from lipsdp.bounds.naive import spectral_norm_upper

        blocks = Network(list(net.layers[1:-1]))
        outer = spectral_norm_upper(net.layers[0].weight) * spectral_norm_upper(net.layers[-1].weight)
        pf = _estimate(blocks, norm, "neuron", solver, None)
        row.update(nsr_paper_form=None if pf["bound"] is None else pf["bound"] * outer, paper_form_time=pf["time"])
        if baseline:
            pr = _estimate(blocks, norm, "residual-relu", solver, None)
            row.update(rr_paper_form=None if pr["bound"] is None else pr["bound"] * outer)
    if lower:
        t0 = time.perf_counter()
        row["lower"] = lower_bound(net, norm=norm, output=c, seed=0).value
        row["lower_time"] = time.perf_counter() - t0
    return row


def _load(name: str):
    """(network, output label for l-infinity): the paper's .mat nets (label 8), ACAS Xu ONNX (output 0)."""
    if name.startswith("ACASXU"):
        import lipsdp

        return lipsdp.extract(str(SHARED / "nets" / f"{name}.onnx")), 0
    from lipsdp.extract.mat import from_mat

    return from_mat(WEIGHTS / f"{name}.mat"), LABEL


def _naive_only(name: str, norm: str):
    from lipsdp.bounds.naive import naive_bound

    net, label = _load(name)
    c = None
    if norm == "linf":
        c = np.zeros((1, net.out_dim))
        c[0, label] = 1.0
    return naive_bound(net, norm, c)


def _rel(ours, ref):
    if ours is None or ref is None:
        return None
    return ours / ref - 1.0


def main(suite: str, argv=None) -> int:
    kind = {"paper-l2": "l2", "paper-linf": "linf", "paper-residual": "residual"}[suite]
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks {suite}")
    ap.add_argument("--quick", action="store_true", help="only the smallest networks (CI)")
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per network")
    ap.add_argument("--skip", default="", help="comma-separated substrings of network names to skip")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching networks")
    ap.add_argument("--merge", action="store_true",
                    help="replace the rows of the networks run in the existing JSON, keep the others")
    ap.add_argument("--no-baseline", action="store_true", help="skip the residual-ReLU baseline")
    ap.add_argument("--no-lower", action="store_true")
    ap.add_argument("--out-dir", default=None, help="where the JSON goes (default benchmarks/results)")
    args = ap.parse_args(argv)
    norm = "linf" if kind == "linf" else "l2"
    skip = [s for s in args.skip.split(",") if s]
    rows = []
    names = nets(kind, args.quick)
    if kind == "linf" and not args.quick:  # issue 8's table: two ACAS Xu networks too (output 0)
        names += [n for n in ("ACASXU_run2a_1_1_batch_2000", "ACASXU_run2a_2_1_batch_2000")
                  if (SHARED / "nets" / f"{n}.onnx").exists()]
    if not names:
        print(f"no networks found under {WEIGHTS}")
    for name in names:
        if any(s in name for s in skip):
            continue
        if args.only and not any(s in name for s in args.only.split(",") if s):
            continue
        out = run_isolated(compute, name, norm, args.solver, not args.no_baseline, not args.no_lower,
                           timeout=args.timeout)
        res = out["result"] or {}
        if "naive" not in res:  # the child timed out or failed: the naive bound is cheap, compute it here
            res = dict(res, naive=_naive_only(name, norm))
        ref = REF.get(name, (None,) * 5)
        ref_mp, ref_nsr, ref_exact = (ref[3], REF_NSR_LINF.get(name), ref[4]) if norm == "linf" else ref[:3]
        ours = res.get("nsr_paper_form") if kind == "residual" else res.get("nsr")
        row = {"network": name, "N": res.get("N"), "naive": res.get("naive"), "ref_mp": ref_mp,
               "rr": res.get("rr_paper_form") if kind == "residual" else res.get("rr"),
               "nsr": ours, "ref_nsr": ref_nsr, "rel_nsr": _rel(ours, ref_nsr), "rel_mp": _rel(res.get("naive"), ref_mp),
               "exact": ref_exact, "lower": res.get("lower"), "status": res.get("nsr_status"),
               "time_nsr": res.get("nsr_time"), "time_rr": res.get("rr_time"), "wall": out["wall"],
               "peak_mb": out["peak_mb"], "error": out["error"]}
        if kind == "residual":
            row["nsr_whole"] = res.get("nsr")
        if kind == "linf":
            row["sqrt_n0_l2"] = res.get("sqrt_n0_l2")
        rows.append(row)
        print(f"{name}: naive {row['naive']}, NSR {row['nsr']}, RR {row['rr']}, lower {row['lower']}"
              + (f"  [{out['error']}]" if out["error"] else ""), flush=True)
    if args.quick:
        suite = suite + "-quick"
    out_dir = Path(args.out_dir or os.environ.get("LIPSDP_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
    if args.merge and (out_dir / f"{suite}.json").exists():
        import json

        old = json.loads((out_dir / f"{suite}.json").read_text()).get("rows", [])
        done = {r["network"] for r in rows}
        order = names
        rows = sorted([r for r in old if r["network"] not in done] + rows,
                      key=lambda r: order.index(r["network"]) if r["network"] in order else len(order))
    cols = [("network", "network", ""), ("naive", "naive (MP)", ".6g"), ("ref_mp", "ref MP", ".6g"),
            ("rel_mp", "rel. diff", ".1e"), ("rr", "LipSDP-RR", ".6g"), ("nsr", "LipSDP-NSR", ".6g"),
            ("ref_nsr", "ref NSR", ".6g"), ("rel_nsr", "rel. diff", ".1e")]
    if kind == "residual":
        cols.append(("nsr_whole", "NSR, whole net in one LMI", ".6g"))
    if kind == "linf":
        cols.append(("sqrt_n0_l2", "√n0 · l2 bound", ".6g"))
    cols += [("exact", "exact", ".6g"), ("lower", "lower bound", ".6g"), ("status", "status", ""),
             ("time_nsr", "NSR time (s)", ".1f"), ("time_rr", "RR time (s)", ".1f")]
    print()
    print(markdown_table(rows, cols))
    if kind == "residual":
        print("\nLipSDP-NSR and LipSDP-RR in the paper's form: residual blocks in the LMI, times ||W_first|| ||W_last||.")
    print(f"{'l-infinity, output label ' + str(LABEL) if norm == 'linf' else 'l2'}; reference: ../shared/paper/README.md")
    path = save_results(suite, rows, {"quick": args.quick, "solver": args.solver, "norm": norm,
                                      "timeout": args.timeout, "skip": skip},
                        out_dir=out_dir)
    print(f"results: {path}")
    return 0
