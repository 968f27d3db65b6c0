"""Residual and implicit networks: certified LipSDP bound against the naive bound and the lower bound.

``python -m benchmarks residual [--quick] [--solver NAME]``

Rows: random residual MLPs (and the same function as one ReLU net with x carried as
relu(x) - relu(-x), bounded by the feedforward builder), implicit layers (block-triangular,
i.e. a feedforward net in disguise; small feedback; monotone but not contractive), and the
paper's residual MaxMin networks (``../shared/paper-weights/resweights_5_*``) when the MaxMin
layer is available: once as the whole network in one LMI and once in the paper's form
(blocks alone, times ||W_first|| ||W_last||; reference 33.0425 for width 32).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import SHARED, markdown_table, save_results


def _resnet(n0, h, nblocks, nout, seed, act="relu"):
    from lipsdp.network import Activation, Affine, Network, Residual, activations

    rng = np.random.default_rng(seed)
    layers, mats = [], []
    for _ in range(nblocks):
        w1, w2 = rng.standard_normal((h, n0)) / np.sqrt(n0), rng.standard_normal((n0, h)) / np.sqrt(h)
        layers.append(Residual(Network([Affine(w1, 0.1 * rng.standard_normal(h)),
                                        Activation(getattr(activations, act)(), h), Affine(w2)])))
        mats.append((w1, w2))
    wo = rng.standard_normal((nout, n0))
    return Network(layers + [Affine(wo)]), mats, wo


def _relu_trick(mats, wo, n0):
    from lipsdp.network import Activation, Affine, Network, activations

    layers, cur = [], np.eye(n0)
    for w1, w2 in mats:
        layers += [Affine(np.vstack([w1 @ cur, cur, -cur])), Activation(activations.relu(), w1.shape[0] + 2 * n0)]
        cur = np.hstack([w2, np.eye(n0), -np.eye(n0)])
    return Network(layers + [Affine(wo @ cur)])


def _implicits(quick):
    from lipsdp.network import Activation, Affine, Implicit, Network, activations

    rng = np.random.default_rng(0)
    n0, h1, h2 = 8, 16, 16
    u1, w21, c2 = rng.standard_normal((h1, n0)), 2 * rng.standard_normal((h2, h1)) / 4, rng.standard_normal((3, h2))
    w = np.zeros((h1 + h2, h1 + h2))
    w[h1:, :h1] = w21
    tri = Network([Implicit(w, np.vstack([u1, np.zeros((h2, n0))]), None, np.hstack([np.zeros((3, h1)), c2]),
                            None, activations.relu())])
    tri_ff = Network([Affine(u1), Activation(activations.relu(), h1), Affine(w21), Activation(activations.relu(), h2),
                      Affine(c2)])
    n = 16 if quick else 32
    ws = rng.standard_normal((n, n))
    ws *= 0.5 / np.linalg.norm(ws, 2)
    small = Network([Implicit(ws, rng.standard_normal((n, n0)), rng.standard_normal(n), rng.standard_normal((3, n)),
                              None, activations.tanh())])
    wm = -2.0 * np.eye(n) + 0.5 * rng.standard_normal((n, n)) / np.sqrt(n)
    mono = Network([Implicit(wm, rng.standard_normal((n, n0)), rng.standard_normal(n), rng.standard_normal((3, n)),
                             None, activations.relu())])
    return [("implicit, block-triangular W", tri), ("  same net unrolled (feedforward)", tri_ff),
            (f"implicit, ‖W‖ = 0.5, tanh, n = {n}", small), (f"implicit, monotone, ‖W‖ > 1, relu, n = {n}", mono)]


def _paper(quick):
    try:
        from lipsdp.network.group import max_min
    except ImportError:
        return []
    import scipy.io as sio

    from lipsdp.network import Affine, Network, Residual

    out = []
    for width in ([32] if quick else [32, 64]):
        path = SHARED / "paper-weights" / f"resweights_5_{width}.mat"
        if not path.exists():
            continue
        ws = [np.asarray(w, dtype=np.float64) for w in sio.loadmat(path)["W"].ravel(order="F")]
        blocks = [Residual(Network([Affine(w), max_min(w.shape[0])])) for w in ws[1:-1]]
        outer = float(np.linalg.norm(ws[0], 2) * np.linalg.norm(ws[-1], 2))
        out.append((f"resweights_5_{width}: paper form (times ‖W_first‖ ‖W_last‖)", Network(blocks), outer))
        if not quick:
            out.append((f"resweights_5_{width}: whole network in one LMI",
                        Network([Affine(ws[0])] + blocks + [Affine(ws[-1])]), 1.0))
    return out


def main(argv=None) -> int:
    import lipsdp

    ap = argparse.ArgumentParser(prog="python -m benchmarks residual")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--solver", default="auto")
    args = ap.parse_args(argv)
    nets = []
    sizes = [(8, 16, 2), (16, 32, 3)] if args.quick else [(8, 16, 2), (16, 32, 3), (32, 64, 4)]
    for n0, h, nb in sizes:
        net, mats, wo = _resnet(n0, h, nb, 4, seed=n0)
        nets.append((f"residual MLP {n0}-[{h}]x{nb}-4, relu", net, 1.0))
        nets.append(("  same function as one ReLU net", _relu_trick(mats, wo, n0), 1.0))
    nets += [(name, net, 1.0) for name, net in _implicits(args.quick)]
    nets += _paper(args.quick)
    rows = []
    for name, net, factor in nets:
        t0 = time.perf_counter()
        r = lipsdp.estimate(net, solver=args.solver, lower=factor == 1.0)
        own = r.details.get("sdp_bound", r.bound)  # the SDP's certificate, even where naive is smaller
        row = {"network": name, "N": r.lmi_size["certified"], "bound": None if own is None else own * factor,
               "naive": None if r.naive_bound is None or factor != 1.0 else r.naive_bound,
               "lower": r.lower_bound, "status": r.status, "time": time.perf_counter() - t0}
        rows.append(row)
        print(f"{name}: {row['bound']}", flush=True)
    cols = [("network", "network", ""), ("N", "LMI size", "d"), ("bound", "certified l2 bound", ".6g"),
            ("naive", "naive", ".6g"), ("lower", "lower bound", ".6g"), ("status", "status", ""),
            ("time", "time (s)", ".1f")]
    print(markdown_table(rows, cols))
    path = save_results("residual" + ("-quick" if args.quick else ""), rows, {"quick": args.quick, "solver": args.solver})
    print(f"results: {path}")
    return 0
