"""Pre-activation bounds over an input region by bound propagation, sound in floating point.

For a feedforward network (``Affine``, ``Activation`` and group activation layers) and a region X
(:mod:`lipsdp.bounds.region`), compute for every activation layer an interval
[l_j, u_j] containing its j-th input for every x in X. Two methods:

* **IBP** (interval arithmetic): an affine layer maps the box c +- r to
  W c + b +- |W| r; an activation maps [l, u] into
  [max(phi(l) + min(0, a)(u - l), phi(u) - max(0, b)(u - l)),
  min(phi(l) + max(0, b)(u - l), phi(u) - min(0, a)(u - l))] where [a, b] is the
  activation's slope range over [l, u] (exact range for monotone phi).
* **CROWN** (Zhang et al. 2018, backward linear relaxation): each activation is
  sandwiched between two lines on its input interval,
  a_L v + c_L <= phi(v) <= a_U v + c_U, and the bound of a pre-activation z = lam^T x^k
  is propagated backward: lam^T phi(v) <= lam+^T (a_U v + c_U) + lam-^T (a_L v + c_L)
  and lam^T (W x + b) = (W^T lam)^T x + lam^T b, down to the input, where
  max_{x in X} lam^T x is exact (box: lam^T c + |lam|^T r; l2 ball: lam^T c + eps ||lam||_2).
  Lines: from the slope range [a, b] on [l, u] (phi(x) >= phi(l) + a (x - l),
  phi(x) >= phi(u) + b (x - u), phi(x) <= phi(l) + b (x - l), phi(x) <= phi(u) + a (x - u),
  the tighter at the midpoint), and the chord as upper line for convex activations
  (ReLU, leaky ReLU with slope <= 1, softplus, ELU(<= 1)); for ReLU this is the
  usual CROWN relaxation with the adaptive lower line.

The reported interval is the intersection IBP ∩ CROWN, used as the input
interval of every later layer.

**Group activations** (MaxMin, GroupSort, Householder): IBP by order statistics (the k-th
output of a sorted group lies between the k-th smallest lower and upper ends; a Householder
output is bounded by the group's l2 radius). CROWN passes through a layer whose every group
has a fixed order on the region (a permutation, exact); otherwise the backward pass stops
there and is concretised over that layer's output box.

**Floating point.** Every quantity is computed in float64 and widened by a bound
on its rounding error: matrix products by gamma_{n+2} (|A| |B|) |x|max (Higham's
bound, gamma_k = k u / (1 - k u)), the backward coefficients' rounding by the
known magnitudes of the signals they multiply, and activation values phi(x) by
2^-40 (1 + |x| + |phi(x)|), which covers the error of numpy/scipy's elementwise
functions (a few ulps) with a wide margin. Relaxation lines are made sound by
rounding their intercepts outward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..certify.psd import gamma
from ..errors import UnsupportedLayerError
from ..network.group import GroupActivation
from ..network.layers import Activation, Affine

__all__ = ["PreactivationBounds", "preactivation_bounds", "ibp_bounds", "activation_range", "relaxation"]

_TINY = 2.0**-1000
_FN_REL = 2.0**-40
_ARITH = 2.0**-50


def _down(x, *mags):
    m = np.abs(x)
    for v in mags:
        m = m + np.abs(v)
    return x - _ARITH * m - _TINY


def _up(x, *mags):
    m = np.abs(x)
    for v in mags:
        m = m + np.abs(v)
    return x + _ARITH * m + _TINY


def _fn_bounds(spec, x):
    """phi(x) evaluated, with a lower and an upper bound on the exact value."""
    v = np.asarray(spec.fn(x), dtype=np.float64)
    m = _FN_REL * (1.0 + np.abs(x) + np.abs(v))
    return v - m, v + m


def _dense(w):
    return w.toarray() if hasattr(w, "toarray") else np.asarray(w)


@dataclass
class PreactivationBounds:
    """Bounds on the inputs of one activation layer.

    Attributes:
        layer: index of the activation layer in ``network.layers``.
        lower, upper: the interval used (IBP ∩ CROWN, or IBP alone).
        ibp_lower, ibp_upper: the interval-arithmetic bounds (for comparison).
    """

    layer: int
    lower: np.ndarray
    upper: np.ndarray
    ibp_lower: np.ndarray
    ibp_upper: np.ndarray
    method: str = "crown"
    info: dict = field(default_factory=dict)

    @property
    def stable(self) -> dict:
        """Counts of neurons whose interval lies on one side of 0."""
        return {"positive": int(np.sum(self.lower >= 0)), "negative": int(np.sum(self.upper <= 0)),
                "total": int(self.lower.size)}

    def to_dict(self) -> dict:
        return {"layer": self.layer, "method": self.method, "lower": self.lower, "upper": self.upper,
                "mean_width": float(np.mean(self.upper - self.lower)),
                "ibp_mean_width": float(np.mean(self.ibp_upper - self.ibp_lower)), **self.stable, **self.info}


# ------------------------------------------------------------------ per-layer pieces
def _affine_ibp(layer: Affine, lo, hi):
    w = _dense(layer.weight)
    b = layer.bias
    c = 0.5 * (lo + hi)
    r = np.nextafter(np.maximum(hi - c, c - lo), np.inf)
    aw = np.abs(w)
    yc = w @ c + b
    yr = aw @ r
    err = 2.0 * gamma(w.shape[1] + 2) * (aw @ (np.abs(c) + r) + np.abs(b))
    return _down(yc - yr - err, yc, yr, err), _up(yc + yr + err, yc, yr, err)


def activation_range(spec, lo, hi, slopes=None):
    """Sound enclosure of phi([lo, hi]) per neuron (see module docstring)."""
    from .local import local_slopes

    a, b = local_slopes(spec, lo, hi) if slopes is None else slopes
    w = np.nextafter(hi - lo, np.inf)
    fl_lo, fl_hi = _fn_bounds(spec, lo)
    fu_lo, fu_hi = _fn_bounds(spec, hi)
    amin, bmax = np.minimum(a, 0.0), np.maximum(b, 0.0)
    low = np.maximum(_down(fl_lo + amin * w, fl_lo, amin * w), _down(fu_lo - bmax * w, fu_lo, bmax * w))
    up = np.minimum(_up(fl_hi + bmax * w, fl_hi, bmax * w), _up(fu_hi - amin * w, fu_hi, amin * w))
    return low, up


def fixed_group_order(layer: GroupActivation, lo, hi):
    """Groups of a sorting layer whose order is the same for every input in the box [lo, hi].

    Returns (fixed, perm): ``fixed`` (G,) booleans; ``perm`` (G, g) with output slot k of a fixed
    group taking input slot perm[k] (as :meth:`GroupActivation._perm`). A group is fixed when its
    members' intervals can be ordered so that each upper end is <= the next lower end (ties give
    equal values, so either order is the same function). Householder layers: none fixed.
    """
    idx = layer.groups()
    n_groups, g = idx.shape
    perm = np.tile(np.arange(g), (n_groups, 1))
    if layer.kind == "householder":
        return np.zeros(n_groups, dtype=bool), perm
    glo, ghi = np.asarray(lo)[idx], np.asarray(hi)[idx]
    order = np.argsort(glo, axis=1, kind="stable")
    slo = np.take_along_axis(glo, order, axis=1)
    shi = np.take_along_axis(ghi, order, axis=1)
    fixed = np.all(shi[:, :-1] <= slo[:, 1:], axis=1)
    perm = order[:, ::-1] if layer.descending else order
    return fixed, perm


def group_range(layer: GroupActivation, lo, hi):
    """Sound enclosure of a group activation's output over the box [lo, hi] (exact order statistics).

    Sorting: the k-th smallest output lies between the k-th smallest lower end and the k-th
    smallest upper end (order statistics are monotone in each argument). Householder: each output
    is z_i or (Hz)_i with |(Hz)_i| <= ||z||_2 <= ||max(|lo|, |hi|)||_2 (rounded up).
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    idx = layer.groups()
    out_lo, out_hi = np.empty_like(lo), np.empty_like(hi)
    if layer.kind == "householder":
        mag = np.maximum(np.abs(lo), np.abs(hi))[idx]
        r = np.sqrt(np.sum(mag * mag, axis=1)) * (1.0 + 4.0 * 2.0**-52 * (idx.shape[1] + 2))
        r = np.nextafter(r, np.inf)[:, None]
        out_lo[idx] = np.minimum(lo[idx], -r)
        out_hi[idx] = np.maximum(hi[idx], r)
        return out_lo, out_hi
    slo, shi = np.sort(lo[idx], axis=1), np.sort(hi[idx], axis=1)
    if layer.descending:
        slo, shi = slo[:, ::-1], shi[:, ::-1]
    out_lo[idx], out_hi[idx] = slo, shi
    return out_lo, out_hi


def _is_convex(spec) -> bool:
    name = spec.name
    if name in ("relu", "identity") or name.startswith("softplus"):
        return True
    if name.startswith("leaky_relu") or name.startswith("elu"):
        return bool(spec.params) and spec.params[0] <= 1.0 and (name.startswith("leaky") or spec.params[0] >= 0)
    return False


def relaxation(spec, lo, hi, slopes=None):
    """Sound lines a_L v + c_L <= phi(v) <= a_U v + c_U on [lo, hi] (per neuron)."""
    from .local import local_slopes

    a, b = local_slopes(spec, lo, hi) if slopes is None else slopes
    fl_lo, fl_hi = _fn_bounds(spec, lo)
    fu_lo, fu_hi = _fn_bounds(spec, hi)
    mid = 0.5 * (lo + hi)
    # lower candidates: slope a through (lo, phi(lo)) or slope b through (hi, phi(hi))
    c1 = _down(fl_lo - a * lo, fl_lo, a * lo)
    c2 = _down(fu_lo - b * hi, fu_lo, b * hi)
    pick = a * mid + c1 >= b * mid + c2
    a_l, c_l = np.where(pick, a, b), np.where(pick, c1, c2)
    # upper candidates: slope b through lo or slope a through hi
    d1 = _up(fl_hi - b * lo, fl_hi, b * lo)
    d2 = _up(fu_hi - a * hi, fu_hi, a * hi)
    pick = b * mid + d1 <= a * mid + d2
    a_u, c_u = np.where(pick, b, a), np.where(pick, d1, d2)
    if _is_convex(spec):
        width = hi - lo
        ok = width > 0
        k = np.where(ok, (fu_hi - fl_lo) / np.where(ok, width, 1.0), 0.0)
        ck = np.maximum(_up(fl_hi - k * lo, fl_hi, k * lo), _up(fu_hi - k * hi, fu_hi, k * hi))
        better = ok & (k * mid + ck < a_u * mid + c_u)
        a_u, c_u = np.where(better, k, a_u), np.where(better, ck, c_u)
    return a_l, c_l, a_u, c_u


# ------------------------------------------------------------------ drivers
def _check_feedforward(network):
    for i, layer in enumerate(network.layers):
        if not isinstance(layer, (Affine, Activation, GroupActivation)):
            raise UnsupportedLayerError(
                f"local bounds (bound propagation) support feedforward networks only; layer {i} is "
                f"{type(layer).__name__} ({layer.describe()})"
            )


def ibp_bounds(network, region) -> list:
    """Interval bounds on every layer's input and the output: list of (lo, hi), len(layers) + 1."""
    _check_feedforward(network)
    lo, hi = region.box()
    out = [(lo, hi)]
    for layer in network.layers:
        if isinstance(layer, Affine):
            lo, hi = _affine_ibp(layer, lo, hi)
        elif isinstance(layer, GroupActivation):
            lo, hi = group_range(layer, lo, hi)
        else:
            lo, hi = activation_range(layer.spec, lo, hi)
        out.append((lo, hi))
    return out


def _crown_upper(network, k: int, lam: np.ndarray, ranges: list, relax: dict, region) -> np.ndarray:
    """Sound upper bounds of lam @ (input of layer k) over the region (rows of lam)."""
    const = np.zeros(lam.shape[0])
    slack = np.zeros(lam.shape[0])
    for i in range(k - 1, -1, -1):
        layer = network.layers[i]
        lo, hi = ranges[i]
        amax = np.maximum(np.abs(lo), np.abs(hi))
        if isinstance(layer, Affine):
            w = _dense(layer.weight)
            al = np.abs(lam)
            const = const + lam @ layer.bias
            slack = slack + 2.0 * gamma(lam.shape[1] + 2) * (al @ (np.abs(w) @ amax + np.abs(layer.bias)))
            lam = lam @ w
        elif isinstance(layer, GroupActivation):
            perm_map = relax[i]
            if perm_map is None:  # not linear on the region: concretise over the layer's output box
                olo, ohi = ranges[i + 1]
                val = np.maximum(lam, 0.0) @ ohi + np.minimum(lam, 0.0) @ olo
                omax = np.maximum(np.abs(olo), np.abs(ohi))
                err = 2.0 * gamma(lam.shape[1] + 2) * (np.abs(lam) @ omax)
                total = val + const + slack * (1.0 + 2.0**-40) + err
                return _up(total, val, const, slack, err)
            lam = lam[:, perm_map]  # y_o = x_src[o], so lam^T y = sum_j lam_inv[j] x_j (a permutation: exact)
        else:
            a_l, c_l, a_u, c_u = relax[i]
            pos, neg = np.maximum(lam, 0.0), np.minimum(lam, 0.0)
            new = pos * a_u + neg * a_l
            const = const + pos @ c_u + neg @ c_l
            slack = slack + 2.0 * gamma(lam.shape[1] + 2) * (np.abs(lam) @ (np.abs(c_u) + np.abs(c_l)))
            slack = slack + 4.0 * 2.0**-53 * (np.abs(new) @ amax)
            lam = new
    val, err = region.linear_max(lam)
    total = val + const + slack * (1.0 + 2.0**-40) + err
    return _up(total, val, const, slack, err)


def _inverse_permutation(layer: GroupActivation, perm) -> np.ndarray:
    """For a layer whose every group has a fixed order: inv with lam_in = lam_out[:, inv] (exact)."""
    idx = layer.groups()
    src = np.empty(layer.size, dtype=np.int64)  # output neuron o takes input neuron src[o]
    src[idx] = np.take_along_axis(idx, perm, axis=1)
    inv = np.empty_like(src)
    inv[src] = np.arange(layer.size)
    return inv


def preactivation_bounds(network, region, method: str = "crown") -> list:
    """Bounds on the input of every activation layer of a feedforward ``network`` over ``region``.

    Args:
        network: a feedforward :class:`~lipsdp.network.Network`.
        region: a :class:`~lipsdp.bounds.region.Region` with ``region.dim == network.in_dim``.
        method: "ibp" or "crown" (CROWN intersected with IBP).

    Returns:
        a list of :class:`PreactivationBounds`, one per activation layer, in order.
    """
    if method not in ("ibp", "crown"):
        raise ValueError(f"unknown bound propagation method {method!r}; use 'ibp' or 'crown'")
    _check_feedforward(network)
    region.check(network.in_dim)
    lo, hi = region.box()
    ranges = [(lo, hi)]  # ranges[i]: enclosure of layer i's input
    relax: dict = {}
    result = []
    for i, layer in enumerate(network.layers):
        lo, hi = ranges[i]
        if isinstance(layer, GroupActivation):
            result.append(PreactivationBounds(i, lo, hi, lo, hi, method))
            fixed, perm = fixed_group_order(layer, lo, hi)
            result[-1].info["fixed_groups"] = int(np.sum(fixed))
            result[-1].info["groups"] = int(fixed.size)
            relax[i] = _inverse_permutation(layer, perm) if np.all(fixed) else None
            ranges.append(group_range(layer, lo, hi))
            continue
        if isinstance(layer, Activation):
            ilo, ihi = lo, hi
            if method == "crown" and i > 0:
                n = layer.size
                lam = np.vstack([np.eye(n), -np.eye(n)])
                ub = _crown_upper(network, i, lam, ranges, relax, region)
                lo = np.maximum(lo, -ub[n:])
                hi = np.minimum(hi, ub[:n])
                # an empty intersection would mean an unsound bound: keep IBP (never happens in exact arithmetic)
                bad = lo > hi
                if np.any(bad):
                    lo, hi = np.where(bad, ilo, lo), np.where(bad, ihi, hi)
                ranges[i] = (lo, hi)
            result.append(PreactivationBounds(i, lo, hi, ilo, ihi, method))
            from .local import local_slopes

            sl = local_slopes(layer.spec, lo, hi)
            relax[i] = relaxation(layer.spec, lo, hi, sl)
            ranges.append(activation_range(layer.spec, lo, hi, sl))
        else:
            ranges.append(_affine_ibp(layer, lo, hi))
    return result
