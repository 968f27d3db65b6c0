"""Naive bounds for networks with residual and implicit layers (products of per-layer bounds).

Lip(f_L o ... o f_1) <= prod_i Lip(f_i), with consecutive affine layers merged first and
each factor a proved upper bound (rounded up):

* affine x -> W x: ||W|| (spectral for l2, max row l1 for l-infinity, as for chains);
* an activation layer: its Lipschitz constant (``lipschitz_in(norm)`` when the layer has it);
* a residual block x -> P x + g(x): ||P|| + Lip(g) (||I|| = 1), Lip(g) the naive bound of
  the branch;
* an implicit layer z = phi(W z + U x + b), y = C z + D x: with q = Lip(phi) ||W|| < 1 (the
  fixed-point map is a contraction) ||dz|| <= Lip(phi) (||W|| ||dz|| + ||U|| ||dx||), so
  Lip <= ||C|| Lip(phi) ||U|| / (1 - q) + ||D||; no naive bound when q >= 1.

For a residual network x^1 = W_1 x^0, x^{k+1} = x^k + phi(W_k x^k), y = W_L x^{m+1} this is
the paper's ||W_1|| prod_k (1 + ||W_k||) ||W_L||.
"""

from __future__ import annotations

import numpy as np

from ..network.implicit import Implicit
from ..network.layers import Affine
from ..network.network import _matmul
from ..network.residual import Residual
from .naive import inf_norm_upper, product_up, register_naive, spectral_norm_upper

__all__ = ["layers_naive_bound", "implicit_naive_bound"]


def _up(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def _norm(w, norm):
    return spectral_norm_upper(w) if norm == "l2" else inf_norm_upper(w)


def _act_lip(layer, norm) -> float:
    fn = getattr(layer, "lipschitz_in", None)
    return float(fn(norm)) if fn is not None else float(layer.lipschitz)


def implicit_naive_bound(layer: Implicit, norm: str = "l2") -> float | None:
    """The contraction bound of the module docstring (None when Lip(phi) ||W|| >= 1)."""
    lip = _act_lip(layer.activation, norm)
    q = _up(lip * _norm(layer.W, norm))
    if q >= 1.0:
        return None
    num = product_up([_norm(layer.C, norm), lip, _norm(layer.U, norm)])
    den = float(np.nextafter(1.0 - q, -np.inf))
    d = _norm(layer.D, norm) if np.any(layer.D) else 0.0
    return _up(_up(num / den) + d)


def _layer_bound(layer, norm) -> float | None:
    if isinstance(layer, Affine):
        return _norm(layer.weight, norm)
    if isinstance(layer, Residual):
        inner = layers_naive_bound(layer.branch.layers, norm)
        if inner is None:
            return None
        return _up((1.0 if layer.skip is None else _norm(layer.skip.weight, norm)) + inner)
    if isinstance(layer, Implicit):
        return implicit_naive_bound(layer, norm)
    return _act_lip(layer, norm)


def layers_naive_bound(layers, norm: str = "l2", c=None) -> float | None:
    """Product of the per-layer bounds of ``c @ (layers)`` (consecutive affines merged)."""
    items = list(layers)
    if c is not None:
        items.append(Affine(np.atleast_2d(np.asarray(c, dtype=np.float64))))
    factors = []
    pending = None  # product of consecutive affine weights
    for layer in items:
        if isinstance(layer, Affine):
            pending = layer.weight if pending is None else _matmul(layer.weight, pending)
            continue
        if pending is not None:
            factors.append(_norm(pending, norm))
            pending = None
        f = _layer_bound(layer, norm)
        if f is None:
            return None
        factors.append(f)
    if pending is not None:
        factors.append(_norm(pending, norm))
    return product_up(factors)


def _applies(network) -> bool:
    from ..sdp.dag import dag_supported

    return not network.is_feedforward and dag_supported(network)


register_naive(_applies, lambda net, c, norm: layers_naive_bound(net.layers, norm, c))
