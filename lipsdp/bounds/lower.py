"""Empirical lower bounds on the Lipschitz constant.

Any Jacobian norm at a point where f is differentiable, and any difference
quotient ||f(x) - f(y)|| / ||x - y||, is a lower bound on the Lipschitz constant
(in the matching norms). This module searches for large ones:

1. **Sampling**: points from Gaussians at several scales (the interesting region
   is where pre-activations change sign); ||J(x)|| is computed exactly from
   one vector-Jacobian product per output.
2. **Gradient ascent** on sigma(x) = u^T J(x) w (u, w the maximising pair of the
   current Jacobian: top singular vectors for l2, a row and its sign pattern for
   l-infinity). Its gradient, the Hessian of u^T f applied to w, is taken by a
   central difference of two vector-Jacobian products; for piecewise-linear
   activations the finite step smooths the kinks, which is what lets the ascent
   move between linear regions.
3. **Difference quotients** at the best point along the maximising direction,
   which are witnesses independent of differentiability.

Norms: "l2" uses the spectral norm of J; "linf" the induced l-infinity norm
(max row l1 norm), which for a single output row is ||grad (c^T f)||_1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LowerBound", "lower_bound", "jacobian_norms"]


@dataclass
class LowerBound:
    """value: the lower bound; x: the point of the best Jacobian; pair: the best difference quotient's (x, y)."""

    value: float
    x: np.ndarray | None
    pair: tuple | None
    jacobian_value: float
    quotient_value: float
    evaluations: int
    time: float
    details: dict = field(default_factory=dict)


def _jac(network, x, c):
    j = network.jacobian(x)
    if c is not None:
        j = np.einsum("oi,bij->boj", c, j)
    return j


def jacobian_norms(j: np.ndarray, norm: str) -> np.ndarray:
    """Induced norms of a stack of Jacobians (batch, out, in)."""
    if norm == "l2":
        if j.shape[1] == 1 or j.shape[2] == 1:
            return np.sqrt(np.sum(j * j, axis=(1, 2)))
        return np.linalg.norm(j, 2, axis=(1, 2))
    return np.max(np.sum(np.abs(j), axis=2), axis=1)


def _pairs(j: np.ndarray, norm: str):
    """Maximising (u, w) per Jacobian: sigma = u^T J w."""
    b = j.shape[0]
    if norm == "l2":
        u, s, vt = np.linalg.svd(j, full_matrices=False)
        return u[:, :, 0], vt[:, 0, :]
    rows = np.argmax(np.sum(np.abs(j), axis=2), axis=1)
    u = np.zeros((b, j.shape[1]))
    u[np.arange(b), rows] = 1.0
    w = np.sign(j[np.arange(b), rows, :])
    return u, w


def _sample_scale(network) -> float:
    """A scale at which pre-activations of the first layer change sign."""
    from ..network.layers import Affine

    first = next((layer for layer in network.layers if isinstance(layer, Affine)), None)
    if first is None:
        return 1.0
    w = first.dense_weight() if first.in_dim * first.out_dim <= 4_000_000 else None
    if w is None:
        return 1.0
    rn = np.median(np.linalg.norm(w, axis=1)) + 1e-300
    b = np.median(np.abs(first.bias))
    return float(max(1.0, b / rn))


def lower_bound(network, norm: str = "l2", output=None, n_samples: int = 512, ascent_starts: int = 16,
                ascent_steps: int = 60, seed: int = 0, center=None, radius=None, region=None) -> LowerBound:
    """Search for a large Jacobian norm / difference quotient of ``output @ network``.

    Args:
        network: a :class:`~lipsdp.network.Network` (anything with forward/jacobian/vjp).
        norm: "l2" or "linf".
        output: optional (k, out_dim) selection matrix C (bound C f).
        n_samples, ascent_starts, ascent_steps: search effort.
        seed: for reproducibility.
        center, radius: restrict the search to the box center +- radius (local bounds).
        region: restrict the search to a :class:`~lipsdp.bounds.region.Region` (sampling inside it,
            projected gradient ascent); overrides center/radius.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n0 = network.in_dim
    c = None if output is None else np.atleast_2d(np.asarray(output, dtype=np.float64))
    evals = 0

    if region is None and center is not None:
        from .region import Box

        cen = np.asarray(center, dtype=np.float64).reshape(-1)
        rad = np.broadcast_to(np.asarray(radius, dtype=np.float64), cen.shape)
        region = Box(cen - rad, cen + rad)

    def clip(x):
        if region is None:
            return x
        return region.project(x)

    # 1. sampling
    if region is None:
        base = _sample_scale(network)
        scales = base * np.array([0.1, 1.0, 10.0])
        per = max(1, n_samples // len(scales))
        xs = np.concatenate([s * rng.standard_normal((per, n0)) for s in scales])
    else:
        xs = region.sample(rng, n_samples)
        lo_b, hi_b = region.box()
        if hasattr(region, "center"):
            xs[0] = region.center
    best_val, best_x = -1.0, None
    chunk = max(1, min(256, int(2e7 // max(1, n0 * (network.out_dim if c is None else c.shape[0])))))
    all_vals = []
    for i in range(0, xs.shape[0], chunk):
        j = _jac(network, xs[i:i + chunk], c)
        evals += j.shape[0]
        all_vals.append(jacobian_norms(j, norm))
    vals = np.concatenate(all_vals)
    order = np.argsort(-vals)
    best_val, best_x = float(vals[order[0]]), xs[order[0]].copy()

    # 2. gradient ascent on sigma(x) = u^T J(x) w from the best samples
    starts = xs[order[:ascent_starts]].copy()
    step = 0.1 * (np.std(xs) + 1e-12) if region is None else 0.25 * 0.5 * float(np.max(hi_b - lo_b))
    h_fd = 1e-3 * max(1.0, float(np.std(xs)))
    x = starts
    for it in range(ascent_steps):
        j = _jac(network, x, c)
        evals += x.shape[0]
        v = jacobian_norms(j, norm)
        k = int(np.argmax(v))
        if v[k] > best_val:
            best_val, best_x = float(v[k]), x[k].copy()
        u, w = _pairs(j, norm)
        # gradient of u^T J(x) w: Hessian-vector product of u^T (C f) by central differences of VJPs
        gu = u if c is None else u @ c
        gp = network.vjp(clip(x + h_fd * w), gu)
        gm = network.vjp(clip(x - h_fd * w), gu)
        grad = (gp - gm) / (2.0 * h_fd)
        gnorm = np.linalg.norm(grad, axis=1, keepdims=True)
        direction = np.where(gnorm > 0, grad / np.maximum(gnorm, 1e-300), rng.standard_normal(x.shape) / np.sqrt(n0))
        lr = step * (1.0 - it / ascent_steps) + 1e-3 * step
        x = clip(x + lr * direction * np.sqrt(n0) / max(1.0, np.sqrt(n0)))
    jac_best = best_val

    # 3. difference quotients at the best point along the maximising direction
    quot_best, pair = 0.0, None
    if best_x is not None:
        j = _jac(network, best_x[None, :], c)
        _, w = _pairs(j, norm)
        w = w[0]
        wn = np.linalg.norm(w) if norm == "l2" else np.max(np.abs(w))
        for h in (1e-2, 1e-4, 1e-6):
            hh = h * max(1.0, float(np.max(np.abs(best_x))))
            xa, xb = clip(best_x - hh * w / wn), clip(best_x + hh * w / wn)
            fa, fb = network.forward(np.stack([xa, xb]))
            if c is not None:
                fa, fb = c @ fa, c @ fb
            dx = xb - xa
            den = np.linalg.norm(dx) if norm == "l2" else np.max(np.abs(dx))
            if den == 0:
                continue
            num = np.linalg.norm(fb - fa) if norm == "l2" else np.max(np.abs(fb - fa))
            q = float(num / den)
            if q > quot_best:
                quot_best, pair = q, (xa, xb)
    value = max(jac_best, quot_best)
    return LowerBound(value, best_x, pair, jac_best, quot_best, evals, time.perf_counter() - t0)
