"""Residual blocks: x -> P x + g(x).

``g`` (the branch) is any sequence of supported layers given as a
:class:`~lipsdp.network.Network`; ``P`` (the skip) is an :class:`Affine` map or
None for the identity. Extractors produce this layer for an ``add`` of two
branches that share an input; the SDP builders decide how to bound it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidNetworkError
from .layers import Affine, Layer

__all__ = ["Residual"]


@dataclass(eq=False)
class Residual(Layer):
    """x -> skip(x) + branch(x); skip None means the identity."""

    branch: object  # Network
    skip: Affine | None = None
    name: str = ""

    @property
    def in_dim(self) -> int:
        return self.branch.in_dim

    @property
    def out_dim(self) -> int:
        return self.branch.out_dim

    def _skip(self, x):
        return x if self.skip is None else self.skip.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._skip(x) + self.branch.forward(x)

    def vjp(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        gs = g if self.skip is None else self.skip.vjp(x, g)
        return gs + self.branch.vjp(x, g)

    def jvp(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        ds = d if self.skip is None else self.skip.jvp(x, d)
        return ds + self.branch.jvp(x, d)

    def check(self, where: str) -> None:
        if self.skip is None and self.branch.in_dim != self.branch.out_dim:
            raise InvalidNetworkError(
                f"{where}: identity skip needs a branch with equal input and output sizes, "
                f"got {self.branch.in_dim} -> {self.branch.out_dim}"
            )
        if self.skip is not None:
            self.skip.check(f"{where} skip")
            if self.skip.in_dim != self.branch.in_dim or self.skip.out_dim != self.branch.out_dim:
                raise InvalidNetworkError(
                    f"{where}: skip maps {self.skip.in_dim} -> {self.skip.out_dim} but the branch maps "
                    f"{self.branch.in_dim} -> {self.branch.out_dim}"
                )

    def describe(self) -> str:
        skip = "I" if self.skip is None else "P"
        return f"Residual({skip} + [{', '.join(layer.describe() for layer in self.branch.layers)}])"
