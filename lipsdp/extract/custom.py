"""User-declared elementwise activations: ``lipsdp.register_activation``.

``register_activation(MyAct, slope=(alpha, beta))`` tells the torch extractor that every
``MyAct`` module is an *elementwise* activation slope-restricted on [alpha, beta], i.e.
alpha <= (phi(x) - phi(y)) / (x - y) <= beta for all x != y; the LipSDP then uses the
slope-restricted QC exactly as for built-in activations. ``slope`` may also be a callable
``slope(module) -> (alpha, beta)`` or an array of shape (n, 2) per neuron (learned activations,
e.g. 1-Lipschitz linear splines with one spline per channel).

The declaration is checked, not trusted blindly: when a module is extracted its forward is
sampled on a dense grid (per neuron) and every difference quotient of neighbouring grid points
(and of random pairs) must lie in the declared interval up to 1e-7 (1 + |alpha| + |beta|);
otherwise :class:`~lipsdp.errors.SlopeRefutedError` names the module and a refuting pair.
Sampling can refute a wrong interval but not prove a right one: the declaration remains the
user's responsibility between grid points and outside the sampled range.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np

from ..errors import SlopeRefutedError
from ..network.activations import ActivationSpec, slope_interval
from ..network.layers import Activation

__all__ = ["register_activation", "unregister_activation", "check_slopes"]

_REGISTERED: dict = {}


def _torch_fn(mod, in_shape):
    import torch

    m = copy.deepcopy(mod).to(torch.float64).eval()

    def fn(x):
        x = np.asarray(x, dtype=np.float64)
        t = torch.from_numpy(np.ascontiguousarray(x.reshape((-1,) + tuple(in_shape))))
        with torch.no_grad():
            y = m(t)
        return y.reshape(x.shape).numpy()

    def deriv(x):
        x = np.asarray(x, dtype=np.float64)
        t = torch.from_numpy(np.ascontiguousarray(x.reshape((-1,) + tuple(in_shape)))).clone().requires_grad_(True)
        y = m(t)
        (g,) = torch.autograd.grad(y.sum(), t)
        return g.reshape(x.shape).detach().numpy()

    def deriv2(x, h: float = 1e-4):
        return (deriv(np.asarray(x) + h) - deriv(np.asarray(x) - h)) / (2 * h)

    return fn, deriv, deriv2


def check_slopes(fn, n: int, alpha: np.ndarray, beta: np.ndarray, name: str, span: float = 20.0,
                 points: int = 4001, seed: int = 0) -> None:
    """Refute per-neuron slope intervals by difference quotients of ``fn`` on [-span, span].

    ``fn`` maps (batch, n) -> (batch, n) elementwise. Raises SlopeRefutedError.
    """
    grid = np.linspace(-span, span, points)
    rng = np.random.default_rng(seed)
    extra = np.sort(rng.uniform(-span, span, points))
    xs = np.concatenate([grid, extra, np.linspace(-1, 1, points)])
    ys = fn(np.repeat(xs[:, None], n, axis=1))
    tol = 1e-7 * (1.0 + np.abs(alpha) + np.abs(beta))
    for lo, hi in ((0, points), (points, 2 * points), (2 * points, 3 * points)):
        dx = np.diff(xs[lo:hi])
        ok = dx > 0
        q = np.diff(ys[lo:hi], axis=0)[ok] / dx[ok][:, None]
        below = q < alpha[None, :] - tol[None, :]
        above = q > beta[None, :] + tol[None, :]
        bad = below | above
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            x1 = xs[lo:hi][:-1][ok][i]
            raise SlopeRefutedError(
                f"{name}: declared slope interval [{alpha[j]:g}, {beta[j]:g}] (neuron {j}) is refuted by sampling: "
                f"the difference quotient on [{x1:.6g}, {x1 + dx[ok][i]:.6g}] is {q[i, j]:.6g}"
            )


def register_activation(module_type: type, slope, name: str | None = None, check: bool = True,
                        span: float = 20.0) -> None:
    """Teach the torch extractor a custom elementwise activation module.

    Args:
        module_type: the ``torch.nn.Module`` subclass (its instances must act elementwise).
        slope: (alpha, beta) for every neuron; or a callable ``slope(module)`` returning
            (alpha, beta) or an (n, 2) array of per-neuron intervals; or such an array.
        name: label in reports (default: the class name).
        check: refute the declaration by sampling each extracted module on [-span, span].

    Raises:
        ValueError: a malformed interval (non-finite, alpha > beta).
        SlopeRefutedError: at extraction, when sampling contradicts the declared interval.
    """
    from .torch import register_module_handler

    if not isinstance(module_type, type):
        raise TypeError(f"register_activation needs a module class, got {module_type!r}")
    if not callable(slope):
        _as_slopes(slope, None, module_type.__name__)  # validate now
    label = name or module_type.__name__

    def handler(ctx):
        mod = ctx.target
        n = ctx.in_size
        if ctx.out_size != n:
            raise SlopeRefutedError(f"{label} at {ctx.where()} changes the shape {ctx.in_shape} -> {ctx.out_shape}; "
                                    "a registered activation must act elementwise")
        raw = slope(mod) if callable(slope) else slope
        a, b = _as_slopes(raw, n, f"{label} at {ctx.where()}")
        fn, deriv, deriv2 = _torch_fn(mod, ctx.in_shape)
        if check:
            check_slopes(fn, n, a, b, f"{label} at {ctx.where()}", span=span)
        ga, gb = slope_interval(float(np.min(a)), float(np.max(b)), exact=True)
        same = bool(np.all(a == a[0]) and np.all(b == b[0]))
        if same:
            ga, gb = slope_interval(float(a[0]), float(b[0]), exact=True)
        spec = ActivationSpec(f"{label}[{ga:g},{gb:g}]", (ga, gb), fn, deriv, deriv2, ())
        slopes = None if same else np.stack([a, b], axis=1)
        return [Activation(spec, n, name=ctx.qualname, slopes=slopes)]

    _REGISTERED[module_type] = handler
    register_module_handler(module_type, handler)


def unregister_activation(module_type: type) -> None:
    """Forget a registration made with :func:`register_activation`."""
    from .torch import MODULE_HANDLERS

    if _REGISTERED.pop(module_type, None) is not None:
        MODULE_HANDLERS.pop(module_type, None)


def _as_slopes(raw, n, where: str):
    arr = np.asarray(raw, dtype=np.float64)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (n or 1, 2))
    if arr.ndim != 2 or arr.shape[1] != 2 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{where}: slope must be (alpha, beta) or an array of shape (n, 2) with n = {n}, "
                         f"got shape {np.shape(raw)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: slope interval must be finite, got {np.asarray(raw).tolist()}")
    if np.any(arr[:, 0] > arr[:, 1]):
        raise ValueError(f"{where}: slope interval is empty (alpha > beta)")
    a = np.array([slope_interval(x, y, exact=True)[0] for x, y in arr]) if arr.shape[0] <= 1 else arr[:, 0].copy()
    b = np.array([slope_interval(x, y, exact=True)[1] for x, y in arr]) if arr.shape[0] <= 1 else arr[:, 1].copy()
    if arr.shape[0] > 1:
        from ..constraints.slope import dyadic_slopes

        a, b = dyadic_slopes(a, b)
    if n is not None and a.shape[0] != n:
        a, b = np.full(n, a[0]), np.full(n, b[0])
    return a, b
