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
* an activation without ``local_slope`` keeps its global interval (safe fallback).
"""

from __future__ import annotations

import numpy as np

from ..network.layers import Activation
from ..network.network import Network

__all__ = ["local_slopes", "localize"]

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
