"""The same feedforward networks through lipsdp and through another public estimator, in one process.

``python -m benchmarks peers [--quick] [--solver NAME]``

Peer: ECLipsE and ECLipsE-Fast (Xu & Sivaranjani, NeurIPS 2024; PyPI ``eclipse-nn``), when installed.
Both act on the weight chain of a slope-restricted feedforward network (biases play no role in a
global bound). Their numbers are reported as the package returns them: they are **not** certified
(ECLipsE's sequential SDP stages are solved by cvxpy without an a-posteriori proof), whereas the
lipsdp column is LipSDP-Neuron after float64 certification. ``ours / peer`` < 1 means lipsdp is tighter.

Networks: the bundled MNIST classifier, random ReLU MLPs of a few shapes, and the ACAS Xu weight chains
from ``../shared/nets`` when the ONNX extractor and the shared folder are available.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import SHARED, markdown_table, run_isolated, save_results


def _random_mlp(n0, widths, nout, seed):
    from lipsdp.network import Activation, Affine, Network, activations

    rng = np.random.default_rng(seed)
    layers, d = [], n0
    for w in widths:
        layers += [Affine(rng.standard_normal((w, d)) / np.sqrt(d), rng.standard_normal(w) * 0.1),
                   Activation(activations.relu(), w)]
        d = w
    layers.append(Affine(rng.standard_normal((nout, d)) / np.sqrt(d)))
    return Network(layers, name=f"random {n0}-{widths}-{nout}")


def _weight_chain(net):
    """The dense weight matrices and slope bounds of an Affine/Activation alternation (None if not one)."""
    from lipsdp.network import Activation, Affine

    weights, alphas, betas = [], [], []
    for i, layer in enumerate(net.layers):
        want = Affine if i % 2 == 0 else Activation
        if not isinstance(layer, want):
            return None
        if isinstance(layer, Affine):
            weights.append(np.asarray(layer.dense_weight(), dtype=np.float64))
        else:
            alphas.append(float(layer.spec.alpha))
            betas.append(float(layer.spec.beta))
    if not isinstance(net.layers[-1], Affine):
        return None
    return weights, alphas, betas


def _networks(quick: bool):
    from lipsdp.data import mnist_relu_network

    nets = [("mnist_relu_64x32 (bundled)", mnist_relu_network), ("random 5-[50]x6-5", lambda: _random_mlp(5, [50] * 6, 5, 0))]
    if not quick:
        nets += [("random 20-[64]x3-10", lambda: _random_mlp(20, [64] * 3, 10, 1)),
                 ("random 100-[128]x2-10", lambda: _random_mlp(100, [128] * 2, 10, 2))]
        for f in ("ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_2_1_batch_2000.onnx"):
            if (SHARED / "nets" / f).exists():
                nets.append((f.split("_batch")[0], lambda f=f: _extract(SHARED / "nets" / f)))
    return nets


def _extract(path):
    from lipsdp import extract

    return extract(str(path))


def _run_eclipse(weights, alphas, betas, method):
    import torch
    from eclipse_nn import LipConstEstimator

    est = LipConstEstimator(weights=[torch.tensor(w, dtype=torch.float64) for w in weights],
                            alphas=alphas, betas=betas)
    t0 = time.perf_counter()
    value = est.estimate(method=method)
    return float(value), time.perf_counter() - t0


def _make(name, quick):
    return dict(_networks(quick))[name]()


def _run_lipsdp(name, quick, solver):
    import lipsdp

    net = _make(name, quick)
    r = lipsdp.estimate(net, norm="l2", method="neuron", solver=solver)
    return {"bound": r.bound, "certified": r.certified, "naive": r.naive_bound, "lower": r.lower_bound,
            "time": r.time["total"] - r.time.get("lower", 0.0), "solver": r.solver, "status": r.status}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks peers", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small networks (CI)")
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per tool and network")
    args = ap.parse_args(argv)
    try:
        import eclipse_nn  # noqa: F401
        have_peer = True
    except ImportError:
        have_peer = False
        print("eclipse-nn is not installed (pip install eclipse-nn): peer columns left empty")

    rows = []
    for name, make in _networks(args.quick):
        try:
            net = make()
        except Exception as exc:  # e.g. no ONNX extractor: say so, go on
            print(f"{name}: skipped ({type(exc).__name__}: {exc})")
            continue
        chain = _weight_chain(net)
        row = {"network": name, "N": net.in_dim + sum(w.shape[0] for w in chain[0][:-1]) if chain else None}
        ours = run_isolated(_run_lipsdp, name, args.quick, args.solver, timeout=args.timeout)
        if ours["error"] is None:
            row.update(ours["result"])
        else:
            row["error"] = ours["error"]
        if have_peer and chain is not None:
            for method, key in (("ECLipsE", "eclipse"), ("ECLipsE_Fast", "eclipse_fast")):
                out = run_isolated(_run_eclipse, *chain, method, timeout=args.timeout)
                if out["error"] is None:
                    row[key], row[f"{key}_time"] = out["result"]
                else:
                    row[f"{key}_error"] = out["error"]
        for key in ("eclipse", "eclipse_fast"):
            if row.get(key) and row.get("bound"):
                row[f"ours_over_{key}"] = row["bound"] / row[key]
        rows.append(row)
        print(f"{name}: ours {row.get('bound')} ({row.get('time', float('nan')):.2f} s), "
              f"ECLipsE {row.get('eclipse')}, ECLipsE-Fast {row.get('eclipse_fast')}")

    cols = [("network", "network", ""), ("N", "N", "d"), ("naive", "naive", ".6g"),
            ("bound", "lipsdp Neuron (certified)", ".6g"), ("time", "time s", ".3g"),
            ("eclipse", "ECLipsE", ".6g"), ("eclipse_time", "time s", ".3g"),
            ("eclipse_fast", "ECLipsE-Fast", ".6g"), ("eclipse_fast_time", "time s", ".3g"),
            ("ours_over_eclipse", "ours/ECLipsE", ".4f"), ("ours_over_eclipse_fast", "ours/Fast", ".4f"),
            ("lower", "lower", ".6g")]
    print(markdown_table(rows, cols))
    path = save_results("peers" + ("-quick" if args.quick else ""), rows, {"quick": args.quick, "solver": args.solver})
    print("wrote", path)
    return 0
