"""Real networks (VNN-COMP 2021, ``../shared/nets/*.onnx``): l2 bounds end to end from the ONNX file.

``python -m benchmarks real-nets [--quick] [--solver NAME] [--timeout S] [--nets a,b]``

Per network: LMI order (solved / certified), naive bound (product of proved spectral norms),
LipSDP-Layer and LipSDP-Neuron certified bounds, empirical lower bound (gradient ascent on
||J||), gap = neuron bound / lower bound, times (whole ``estimate`` call in a fresh process, and
the SDP solve within it) and peak memory (RSS of the isolated run).
Each solve runs in its own process with a timeout (default 600 s). A network whose LMI would
not fit in memory gets a row with the memory guard's message instead of a number.

``--quick`` (CI, < 2 minutes): the two ACAS Xu networks (N = 305), LipSDP-Layer only.
"""

from __future__ import annotations

import argparse
import time

from .common import SHARED, markdown_table, run_isolated, save_results

NETS = ["ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_2_1_batch_2000.onnx", "mnist-net_256x2.onnx",
        "ffnnSIGMOID__Point_6x200.onnx", "Convnet_avgpool.onnx", "cifar10_small.onnx", "resnet_2b.onnx"]
QUICK = NETS[:2]


def _basics(path: str) -> dict:
    """Extraction, LMI dimensions, naive and lower bounds (cheap: no SDP)."""
    import lipsdp
    from lipsdp.bounds.lower import lower_bound
    from lipsdp.bounds.naive import naive_bound
    from lipsdp.solvers.memory import lmi_dimensions

    t0 = time.perf_counter()
    net = lipsdp.extract(path)
    t_extract = time.perf_counter() - t0
    d = lmi_dimensions(net, "l2", "neuron")
    t0 = time.perf_counter()
    naive = naive_bound(net, "l2")
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    low = lower_bound(net, norm="l2", seed=0).value
    t_lower = time.perf_counter() - t0
    return {"layers": len(net.layers), "inputs": net.in_dim, "neurons": d.neurons, "N_solved": d.n_solve,
            "N_certified": d.n_certify, "naive": naive, "lower": low, "t_extract": t_extract, "t_naive": t_naive,
            "t_lower": t_lower}


def _bound(path: str, method: str, solver: str) -> dict:
    import lipsdp

    r = lipsdp.estimate(path, norm="l2", method=method, solver=solver, lower=False)
    return {"bound": r.details.get("sdp_bound", r.bound), "status": r.status, "solver": r.solver, "time": r.time.get("total"),
            "t_solve": r.time.get("solve"), "mem_est_gib": r.details.get("memory_estimate_bytes", 0) / 2**30}


def run(nets, methods, solver: str, timeout: float) -> list[dict]:
    rows = []
    for fname in nets:
        path = str(SHARED / "nets" / fname)
        row = {"net": fname.replace(".onnx", "")}
        b = run_isolated(_basics, path, timeout=timeout)
        if b["error"]:
            row["note"] = b["error"]
            rows.append(row)
            continue
        row.update(b["result"])
        for method in methods:
            r = run_isolated(_bound, path, method, solver, timeout=timeout)
            key = method
            row[f"{key}_wall"] = r["wall"]
            row[f"{key}_peak_mb"] = r["peak_mb"]
            if r["error"]:
                row[f"{key}_error"] = r["error"]
                kind = r["error"].split(":")[0]
                row.setdefault("note", "")
                short = "does not fit (ProblemTooLargeError)" if kind == "ProblemTooLargeError" else r["error"][:80]
                row["note"] = (row["note"] + f"; {method}: {short}").lstrip("; ")
            else:
                res = r["result"]
                row[key] = res["bound"]
                row[f"{key}_status"] = res["status"]
                row[f"{key}_time"] = res["time"]
                row[f"{key}_t_solve"] = res["t_solve"]
                row["solver"] = res["solver"]
                row[f"{key}_mem_est_gib"] = res["mem_est_gib"]
        best = row.get("neuron") or row.get("layer")
        if best and row.get("lower"):
            row["gap"] = best / row["lower"]
        rows.append(row)
        print(f"  {row['net']}: done", flush=True)
    return rows


COLUMNS = [("net", "network", ""), ("N_solved", "N (solved)", "d"), ("N_certified", "N (cert.)", "d"),
           ("naive", "naive", ".5g"), ("layer", "LipSDP-Layer", ".5g"), ("neuron", "LipSDP-Neuron", ".5g"),
           ("lower", "lower", ".5g"), ("gap", "gap", ".3g"), ("layer_time", "t layer (s)", ".3g"),
           ("neuron_time", "t neuron (s)", ".3g"), ("neuron_t_solve", "of which solve (s)", ".3g"),
           ("neuron_peak_mb", "peak MB (neuron)", ".0f"),
           ("note", "note", "")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks real-nets", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="ACAS Xu nets, LipSDP-Layer only (CI, < 2 minutes)")
    p.add_argument("--solver", default="auto")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per isolated run (default 600)")
    p.add_argument("--nets", default=None, help="comma-separated file names (default: all)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    if not (SHARED / "nets").exists():
        print(f"skipped: {SHARED / 'nets'} is not available (../shared is absent)")
        return 0
    nets = QUICK if args.quick else NETS
    if args.nets:
        nets = [n if n.endswith(".onnx") else n + ".onnx" for n in args.nets.split(",")]
    methods = ["layer"] if args.quick else ["layer", "neuron"]
    t0 = time.perf_counter()
    rows = run(nets, methods, args.solver, args.timeout)
    print(markdown_table(rows, COLUMNS))
    suite = "real_nets_quick" if args.quick else "real_nets"
    path = save_results(suite, rows, {"methods": methods, "solver": args.solver, "timeout_s": args.timeout,
                                      "quick": args.quick, "wall_s": time.perf_counter() - t0,
                                      "command": "python -m benchmarks real-nets" + (" --quick" if args.quick else "")},
                        out_dir=args.out)
    print(f"wrote {path}")
    return 0
