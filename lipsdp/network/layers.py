"""Layers of the network description.

The description is deliberately plain: float64 arrays (dense ``numpy.ndarray`` or
``scipy.sparse`` for convolution-like maps) and activation descriptors. Nothing
here knows about torch or ONNX, and nothing here knows about SDPs.

Conventions: a layer maps a flat vector of ``in_dim`` entries to ``out_dim``
entries; batches are rows, ``forward(x)`` takes ``x`` of shape (batch, in_dim).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidNetworkError
from .activations import ActivationSpec

__all__ = ["Layer", "ActivationLayer", "Affine", "Activation", "as_float64_matrix"]


def as_float64_matrix(w, what: str = "weight"):
    """Return ``w`` as a float64 2-D dense array or CSR matrix (copying only if needed)."""
    if sp.issparse(w):
        m = sp.csr_matrix(w, dtype=np.float64)
        m.sum_duplicates()
        return m
    a = np.asarray(w, dtype=np.float64)
    if a.ndim != 2:
        raise InvalidNetworkError(f"{what} must be 2-D, got shape {a.shape}")
    return a


def _finite(w) -> bool:
    data = w.data if sp.issparse(w) else w
    return bool(np.all(np.isfinite(data)))


class Layer:
    """Base class: a map from R^in_dim to R^out_dim."""

    name: str

    @property
    def in_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def out_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Batched evaluation: x of shape (batch, in_dim)."""
        raise NotImplementedError

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Batched vector-Jacobian product g^T J(x): x (batch, in), g (batch, out) -> (batch, in)."""
        raise NotImplementedError

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Batched Jacobian-vector product J(x) d: x, d (batch, in) -> (batch, out)."""
        raise NotImplementedError

    def check(self, where: str) -> None:
        """Raise :class:`InvalidNetworkError` (prefixed with ``where``) if malformed."""

    def describe(self) -> str:
        return f"{type(self).__name__}({self.in_dim} -> {self.out_dim})"


@dataclass(eq=False)
class Affine(Layer):
    """x -> W x + b, with W of shape (out, in), dense or scipy.sparse."""

    weight: object
    bias: np.ndarray | None = None
    name: str = ""

    def __post_init__(self):
        self.weight = as_float64_matrix(self.weight)
        if self.bias is None:
            self.bias = np.zeros(self.weight.shape[0])
        else:
            self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.weight)

    def dense_weight(self) -> np.ndarray:
        return self.weight.toarray() if sp.issparse(self.weight) else self.weight

    def forward(self, x: np.ndarray) -> np.ndarray:
        if sp.issparse(self.weight):
            return np.asarray((self.weight @ x.T).T) + self.bias
        return x @ self.weight.T + self.bias

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        if sp.issparse(self.weight):
            return np.asarray((self.weight.T @ g.T).T)
        return g @ self.weight

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        if sp.issparse(self.weight):
            return np.asarray((self.weight @ d.T).T)
        return d @ self.weight.T

    def check(self, where: str) -> None:
        if self.bias.shape[0] != self.weight.shape[0]:
            raise InvalidNetworkError(
                f"{where}: bias has {self.bias.shape[0]} entries but the weight has {self.weight.shape[0]} rows"
            )
        if self.weight.shape[0] == 0 or self.weight.shape[1] == 0:
            raise InvalidNetworkError(f"{where}: weight has an empty shape {self.weight.shape}")
        if not _finite(self.weight):
            raise InvalidNetworkError(f"{where}: weight has NaN or infinite entries")
        if not np.all(np.isfinite(self.bias)):
            raise InvalidNetworkError(f"{where}: bias has NaN or infinite entries")

    def describe(self) -> str:
        kind = "sparse " if self.is_sparse else ""
        return f"Affine({self.in_dim} -> {self.out_dim}, {kind}W)"


class ActivationLayer(Layer):
    """Base of every activation layer bounded by a quadratic constraint (size -> size).

    Subclasses: :class:`Activation` (elementwise, slope-restricted) and
    :class:`lipsdp.network.group.GroupActivation` (MaxMin / GroupSort / Householder).
    The feedforward chain and the SDP builders treat them alike; the QC comes from
    :func:`lipsdp.constraints.qc_for`.
    """

    size: int

    def lipschitz_in(self, norm: str = "l2") -> float:
        """A proved upper bound on the layer's Lipschitz constant in ``norm`` (default: ``lipschitz``)."""
        return float(self.lipschitz)


@dataclass(eq=False)
class Activation(ActivationLayer):
    """Elementwise slope-restricted activation on ``size`` neurons.

    ``slopes``, when given, is an (size, 2) array of per-neuron slope intervals that
    override the activation's global [alpha, beta] (used by local bounds); each row
    must lie inside the global interval.
    """

    spec: ActivationSpec
    size: int
    name: str = ""
    slopes: np.ndarray | None = field(default=None, repr=False)

    @property
    def in_dim(self) -> int:
        return int(self.size)

    @property
    def out_dim(self) -> int:
        return int(self.size)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.spec.fn(x)

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return g * self.spec.deriv(x)

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        return d * self.spec.deriv(x)

    def slope_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-neuron (alpha, beta) arrays."""
        if self.slopes is not None:
            s = np.asarray(self.slopes, dtype=np.float64)
            return s[:, 0].copy(), s[:, 1].copy()
        return np.full(self.size, self.spec.alpha), np.full(self.size, self.spec.beta)

    @property
    def lipschitz(self) -> float:
        a, b = self.slope_arrays()
        return float(max(np.max(np.abs(a)), np.max(np.abs(b))))

    def check(self, where: str) -> None:
        if self.size <= 0:
            raise InvalidNetworkError(f"{where}: activation has no neurons")
        if self.slopes is not None:
            s = np.asarray(self.slopes)
            if s.shape != (self.size, 2):
                raise InvalidNetworkError(f"{where}: per-neuron slopes must have shape ({self.size}, 2), got {s.shape}")
            if not np.all(np.isfinite(s)) or np.any(s[:, 0] > s[:, 1]):
                raise InvalidNetworkError(f"{where}: per-neuron slopes must be finite intervals with alpha <= beta")

    def describe(self) -> str:
        return f"{self.spec.name}({self.size})"
