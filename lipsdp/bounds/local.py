"""Per-neuron slope intervals from pre-activation bounds (local Lipschitz bounds).

If every input of neuron j stays in [l_j, u_j] for x in the region X, then phi_j is
slope-restricted on [alpha_j, beta_j] = [min phi', max phi'] over [l_j, u_j] for all
pairs of inputs in X (mean value theorem; for piecewise-linear phi the slopes of
the pieces the interval meets). So the LipSDP with these per-neuron intervals
bounds the Lipschitz constant of f restricted to X:

* ReLU stably active (l_j >= 0) -> [1, 1]; stably inactive (u_j <= 0) -> [0, 0];
  leaky ReLU likewise ([1, 1] / [a, a]); such neurons are linear on X and the
  slope QC holds with equality, so their multipliers are free in sign
  (:class:`lipsdp.constraints.SlopeRestrictedQC`);
* smooth activations: the exact min / max of phi' over [l_j, u_j] (endpoints and
  zeros of phi'' inside the interval, see ``ActivationSpec.local_slope``), widened
  by 2^-40 (1 + |value|) for the rounding of phi' and intersected with the global
  interval (which is itself sound), then rounded outward onto the dyadic grid by
  the QC;
* an activation without ``local_slope`` keeps its global interval (safe fallback);
* MaxMin / GroupSort groups whose order is the same over the whole region
  (:func:`lipsdp.bounds.propagation.fixed_group_order`) are an exact permutation there and
  are eliminated like linear neurons; the other groups keep the LipSDP-NSR constraint.
  Householder groups are kept (their reflection is not exact in floating point).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..network.group import GroupActivation
from ..network.layers import Activation, Affine
from ..network.network import Network

__all__ = ["local_slopes", "localize", "eliminate_linear"]

_WIDEN = 2.0**-40


def local_slopes(spec, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """Sound per-neuron slope intervals of ``spec`` over [lower_j, upper_j]."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    ga, gb = spec.slope
    if spec.local_slope is None:
        return np.full(lower.shape, ga), np.full(lower.shape, gb)
    a, b, exact = spec.local_slope(lower, upper)
    a = np.asarray(a, dtype=np.float64).copy()
    b = np.asarray(b, dtype=np.float64).copy()
    if not exact:
        a -= _WIDEN * (1.0 + np.abs(a))
        b += _WIDEN * (1.0 + np.abs(b))
    bad = ~(np.isfinite(a) & np.isfinite(b))
    a = np.where(bad, ga, np.maximum(a, ga))
    b = np.where(bad, gb, np.minimum(b, gb))
    flip = a > b  # cannot happen for a correct local_slope; fall back to the global interval
    a, b = np.where(flip, ga, a), np.where(flip, gb, b)
    return a, b


def localize(network: Network, bounds: list) -> Network:
    """A copy of ``network`` whose activation layers carry the local per-neuron slopes.

    ``bounds``: :class:`~lipsdp.bounds.propagation.PreactivationBounds` per activation layer.
    """
    by_layer = {b.layer: b for b in bounds}
    layers = []
    for i, layer in enumerate(network.layers):
        if isinstance(layer, Activation) and i in by_layer:
            b = by_layer[i]
            a, c = local_slopes(layer.spec, b.lower, b.upper)
            if layer.slopes is not None:  # intersect with slopes the layer already had
                s = np.asarray(layer.slopes, dtype=np.float64)
                a, c = np.maximum(a, s[:, 0]), np.minimum(c, s[:, 1])
                a, c = np.where(a > c, s[:, 0], a), np.where(a > c, s[:, 1], c)
            layer = Activation(layer.spec, layer.size, name=layer.name, slopes=np.stack([a, c], axis=1))
        layers.append(layer)
    return Network(layers, input_shape=network.input_shape, name=network.name)


def _rows(p, idx):
    return p[idx] if not sp.issparse(p) else p.tocsr()[idx]


def _mm(a, b):
    out = a @ b
    return out.toarray() if sp.issparse(out) and not (sp.issparse(a) and sp.issparse(b)) else out


def eliminate_linear(network: Network, bounds: list | None = None) -> Network:
    """Remove the provably linear neurons (alpha_j == beta_j = c_j) exactly.

    On the region such a neuron computes phi(v_j) = c_j v_j + d_j (d_j = phi(l_j) - c_j l_j), so
    with the chain's pre-activation v = P s + q of the current signal s, the next pre-activation is

        v' = W[:, N] phi_N(P_N s + q_N) + (W[:, L] C_L P_L) s + W[:, L] (C_L q_L + d_L) + b,

    a residual block s -> P' s + g(s) (skip P' = W[:, L] C_L P_L, branch g = W[:, N] phi_N P_N), or a
    plain affine map when every neuron is linear. The resulting network equals the original on the
    region and its LMI (one LMI for the whole network, :mod:`lipsdp.sdp.dag`) has no multiplier for
    the eliminated neurons, so e.g. a region inside one linear region of a ReLU network gets
    exactly ||J||. Restricting the global LMI to the subspace dphi_L = C_L dv_L only drops terms
    -lam_j q_j <= 0, so after elimination the SDP optimum is never above the global one when the
    remaining intervals are the global ones (ReLU).

    ``bounds`` (the pre-activation bounds, one per activation layer in order) only fix the
    constants d_j, i.e. the forward values on the region; the Lipschitz bound does not use them.
    """
    from ..network.residual import Residual

    chain = network.chain()
    out_layers: list = []
    p = chain.weights[0]
    q = np.asarray(chain.biases[0], dtype=np.float64)
    for k, act in enumerate(chain.activations):
        w_next, b_next = chain.weights[k + 1], np.asarray(chain.biases[k + 1], dtype=np.float64)
        if isinstance(act, GroupActivation):
            split = _split_group(act, bounds[k] if bounds is not None else None)
            if split is None:
                out_layers += [Affine(p, q), act]
                p, q = w_next, b_next
                continue
            lin_idx, src, non_idx, sub = split
            # fixed groups permute: output neuron lin_idx[i] is input neuron src[i] (exact, no rounding)
            w_l = _dense_cols(w_next, lin_idx)
            skip_w = _mm(w_l, _rows(p, src))
            skip_b = w_l @ q[src] + b_next
        else:
            a, b = act.slope_arrays()
            lin = a == b
            if not np.any(lin):
                out_layers += [Affine(p, q), act]
                p, q = w_next, b_next
                continue
            lin_idx, non_idx = np.flatnonzero(lin), np.flatnonzero(~lin)
            cl = a[lin_idx]
            # d_j = phi(v) - c v for the linear neurons (constant on the region), evaluated at a point of the
            # neuron's interval; only the forward value depends on it, not the Lipschitz bound
            v0 = bounds[k].lower[lin_idx] if bounds is not None else np.zeros(lin_idx.size)
            dl = np.asarray(act.spec.fn(v0), dtype=np.float64) - cl * v0
            w_l = _dense_cols(w_next, lin_idx)
            skip_w = _mm(w_l * cl[None, :], _rows(p, lin_idx))
            skip_b = w_l @ (cl * q[lin_idx] + dl) + b_next
            sub = Activation(act.spec, int(non_idx.size), name=act.name,
                             slopes=np.stack([a[non_idx], b[non_idx]], axis=1)) if non_idx.size else None
        if non_idx.size == 0:
            p, q = skip_w, skip_b
            continue
        branch = Network([Affine(_rows(p, non_idx), q[non_idx]), sub, Affine(_dense_cols(w_next, non_idx))])
        skip_w = sp.csr_matrix(skip_w) if sp.issparse(skip_w) else np.asarray(skip_w)
        out_layers.append(Residual(branch, Affine(skip_w, skip_b), name=f"{act.name or 'act'} (linear neurons eliminated)"))
        n = int(np.asarray(w_next.shape)[0])
        p, q = (np.eye(n) if n <= 2048 else sp.identity(n, format="csr")), np.zeros(n)
    out_layers.append(Affine(p, q))
    return Network(out_layers, input_shape=network.input_shape, name=network.name)


def _split_group(act: GroupActivation, bounds):
    """Fixed-order groups of a sorting layer as a permutation, the others as a smaller layer.

    Returns None when no group is fixed (or no bounds), else (lin_idx, src, non_idx, sub):
    output neurons ``lin_idx`` equal input neurons ``src`` on the region; ``non_idx`` are the
    neurons of the other groups, group by group, and ``sub`` the same activation on them
    (consecutive grouping in that order).
    """
    from .propagation import fixed_group_order

    if bounds is None:
        return None
    fixed, perm = fixed_group_order(act, bounds.lower, bounds.upper)
    if not np.any(fixed):
        return None
    idx = act.groups()
    lin_idx = idx[fixed].ravel()
    src = np.take_along_axis(idx[fixed], perm[fixed], axis=1).ravel()
    non_idx = idx[~fixed].ravel()
    sub = None
    if non_idx.size:
        v = None
        if act.kind == "householder":  # never fixed (see fixed_group_order); kept for completeness
            v = act.vectors()[~fixed]
        sub = GroupActivation(act.kind, int(non_idx.size), group_size=act.group_size, grouping="consecutive",
                              descending=act.descending, v=v, name=act.name)
    return lin_idx, src, non_idx, sub


def _dense_cols(w, idx):
    w = w.toarray() if sp.issparse(w) else np.asarray(w)
    return w[:, idx]


def restrict_inputs(network: Network, region):
    """Fix the coordinates a Box pins (lower_j == upper_j): (network of the free inputs, free region, free index).

    For x, y in the region the pinned coordinates of x - y vanish, so ||x - y|| (l2 or l-inf) is the
    norm of the free part and the first affine map's pinned columns only shift its bias: the
    restricted network has exactly the same local Lipschitz constant (and smaller LMIs: the
    l-infinity LMI has one multiplier per input). Returns None when nothing is pinned.
    """
    from .region import Box

    if not isinstance(region, Box):
        return None
    fixed = region.lower == region.upper
    if not np.any(fixed) or np.all(fixed):
        return None
    free = np.flatnonzero(~fixed)
    first = network.layers[0]
    if isinstance(first, Affine):
        w = first.dense_weight()
        bias = first.bias + w[:, fixed] @ region.lower[fixed]
        head = [Affine(w[:, free], bias, name=first.name)]
        rest = list(network.layers[1:])
    else:
        sel = np.zeros((network.in_dim, free.size))
        sel[free, np.arange(free.size)] = 1.0
        bias = np.zeros(network.in_dim)
        bias[fixed] = region.lower[fixed]
        head = [Affine(sel, bias)]
        rest = list(network.layers)
    net = Network(head + rest, name=network.name)
    return net, Box(region.lower[free], region.upper[free]), free
