"""Input regions for local Lipschitz bounds.

A *local* Lipschitz constant over a region X is the smallest L with
||f(x) - f(y)|| <= L ||x - y|| for all x, y in X. Two kinds of region are offered:

* :class:`Box`: {x : lower <= x <= upper} (elementwise);
* :class:`Ball`: {x : ||x - center|| <= eps} in the l-infinity or l2 norm
  (an l-infinity ball is the box center +- eps).

Regions are validated on construction (finite, lower <= upper, eps >= 0) and
against the network input size by :meth:`Region.check`. Every region knows how
to sample from itself, project onto itself (for projected gradient ascent in
the lower bound), and bound a linear function over itself (for bound
propagation): ``max_{x in X} a^T x``.
"""

from __future__ import annotations

import numpy as np

from ..errors import LipSDPError

__all__ = ["Region", "Box", "Ball", "RegionError", "as_region"]


class RegionError(LipSDPError, ValueError):
    """The input region is malformed or does not match the network's input."""


def _vector(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RegionError(f"{what} must be an array of numbers ({exc})") from exc
    a = a.reshape(-1)
    if a.size == 0:
        raise RegionError(f"{what} is empty")
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise RegionError(f"{what} has a NaN or infinite entry (first at index {bad})")
    return a


class Region:
    """Base class: a compact convex input region (flat C-order vectors)."""

    @property
    def dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, in_dim: int) -> None:
        """Raise :class:`RegionError` if the region's dimension is not the network's input size."""
        if self.dim != in_dim:
            raise RegionError(
                f"{self.describe()} has {self.dim} coordinates but the network takes {in_dim} inputs "
                "(give the region as a flat vector, or with the model's input shape)"
            )

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The smallest box containing the region (exact float endpoints)."""
        raise NotImplementedError  # pragma: no cover

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def project(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def linear_max(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """(value, error): max over the region of each row of ``a`` x, computed in floating point, and a
        bound on the rounding error of that computation (add it to be safe)."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


def _gamma(k: int) -> float:
    from ..certify.psd import gamma

    return gamma(int(k))


class Box(Region):
    """{x : lower <= x <= upper}; ``lower`` and ``upper`` are arrays of the input's shape (or flat)."""

    def __init__(self, lower, upper):
        lo = _vector(lower, "Box lower")
        hi = _vector(upper, "Box upper")
        if lo.shape != hi.shape:
            raise RegionError(f"Box lower has {lo.size} entries but upper has {hi.size}")
        if np.any(lo > hi):
            j = int(np.flatnonzero(lo > hi)[0])
            raise RegionError(f"Box lower > upper at index {j} ({lo[j]} > {hi[j]})")
        self.lower, self.upper = lo, hi

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    def box(self):
        return self.lower, self.upper

    def center_radius(self) -> tuple[np.ndarray, np.ndarray]:
        """(c, r) with [lower, upper] inside [c - r, c + r] exactly (r rounded up)."""
        c = 0.5 * (self.lower + self.upper)
        r = np.maximum(self.upper - c, c - self.lower)
        r = np.nextafter(r, np.inf) * (1.0 + 2.0**-52)
        return c, r

    def sample(self, rng, n):
        return self.lower + (self.upper - self.lower) * rng.uniform(0.0, 1.0, size=(n, self.dim))

    def project(self, x):
        return np.clip(x, self.lower, self.upper)

    def linear_max(self, a):
        c, r = self.center_radius()
        aa = np.abs(a)
        val = a @ c + aa @ r
        err = _gamma(self.dim + 2) * (aa @ (np.abs(c) + r)) * 2.0
        return val, err

    def describe(self) -> str:
        w = float(np.max(self.upper - self.lower))
        return f"Box({self.dim} coordinates, max width {w:.3g})"

    def to_dict(self) -> dict:
        return {"kind": "box", "description": self.describe(), "lower": self.lower.tolist(),
                "upper": self.upper.tolist()}

    def __repr__(self) -> str:
        return self.describe()


class Ball(Region):
    """{x : ||x - center|| <= eps}, ``norm`` 'linf' (a box) or 'l2'."""

    def __init__(self, center, eps, norm: str = "linf"):
        self.center = _vector(center, "Ball center")
        try:
            e = float(eps)
        except (TypeError, ValueError) as exc:
            raise RegionError(f"Ball eps must be a number, got {eps!r}") from exc
        if not np.isfinite(e) or e < 0:
            raise RegionError(f"Ball eps must be finite and >= 0, got {e}")
        key = str(norm).lower().replace("-", "").replace("_", "")
        key = {"inf": "linf", "linf": "linf", "linfinity": "linf", "l2": "l2", "2": "l2"}.get(key)
        if key is None:
            raise RegionError(f"Ball norm must be 'linf' or 'l2', got {norm!r}")
        self.eps, self.norm = e, key

    @property
    def dim(self) -> int:
        return int(self.center.size)

    def box(self):
        lo = np.nextafter(self.center - self.eps, -np.inf)
        hi = np.nextafter(self.center + self.eps, np.inf)
        return lo, hi

    def sample(self, rng, n):
        if self.norm == "linf":
            return self.center + self.eps * rng.uniform(-1.0, 1.0, size=(n, self.dim))
        d = rng.standard_normal((n, self.dim))
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
        rad = self.eps * rng.uniform(0.0, 1.0, size=(n, 1)) ** (1.0 / self.dim)
        return self.center + rad * d

    def project(self, x):
        if self.norm == "linf":
            return np.clip(x, self.center - self.eps, self.center + self.eps)
        d = x - self.center
        nrm = np.linalg.norm(d, axis=-1, keepdims=True)
        f = np.where(nrm > self.eps, self.eps / np.maximum(nrm, 1e-300), 1.0) * (1.0 - 1e-12)
        return self.center + d * np.minimum(f, 1.0)

    def linear_max(self, a):
        aa = np.abs(a)
        n = self.dim + 2
        if self.norm == "linf":
            val = a @ self.center + self.eps * aa.sum(axis=1)
            err = 2.0 * _gamma(n) * (aa @ (np.abs(self.center) + self.eps))
            return val, err
        rn = np.sqrt(np.sum(a * a, axis=1))
        val = a @ self.center + self.eps * rn
        err = 2.0 * _gamma(n) * (aa @ np.abs(self.center) + self.eps * rn) + 4.0 * _gamma(n) * self.eps * rn
        return val, err

    def describe(self) -> str:
        return f"Ball({self.norm}, eps={self.eps:g}, {self.dim} coordinates)"

    def to_dict(self) -> dict:
        return {"kind": "ball", "description": self.describe(), "norm": self.norm, "center": self.center.tolist(),
                "eps": self.eps}

    def __repr__(self) -> str:
        return self.describe()


def as_region(region=None, center=None, eps=None, ball: str = "linf") -> Region | None:
    """A :class:`Region` from ``region=`` or the ``center=, eps=, ball=`` shorthand (None if neither)."""
    if region is not None:
        if center is not None or eps is not None:
            raise RegionError("give either region= or center=/eps=, not both")
        if not isinstance(region, Region):
            raise RegionError(f"region must be a lipsdp Box or Ball, got {type(region).__name__}")
        return region
    if center is None and eps is None:
        return None
    if center is None or eps is None:
        raise RegionError("a ball region needs both center= and eps=")
    return Ball(center, eps, norm=ball)
