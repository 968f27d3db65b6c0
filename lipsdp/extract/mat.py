"""Load the MaxMin networks of Pauli et al. (2024) from their MATLAB ``.mat`` files.

A file holds a cell array ``W`` of weight matrices (no biases: they do not affect Lipschitz
constants). Two layouts:

* feedforward (``weights_*``): x^{k+1} = phi(W_k x^k) for all but the last matrix,
  y = W_last x^last;
* residual (file name starting with ``resweights``, or ``residual=True``):
  x^1 = W_first x^0; x^{k+1} = x^k + phi(W_k x^k) for the middle matrices; y = W_last x^last,
  as :class:`~lipsdp.network.Residual` blocks with identity skips.

phi is a group activation (``activation`` = "maxmin" (default), or "groupsort" with
``group_size``), with ``grouping`` "consecutive" (the paper's code: adjacent pairs) or
"halves".
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidNetworkError
from ..network.group import GroupActivation
from ..network.layers import Affine
from ..network.network import Network
from ..network.residual import Residual

__all__ = ["from_mat", "load_weights"]


def load_weights(path, key: str = "W") -> list:
    """The float64 matrices of the cell array ``key`` (MATLAB column order)."""
    import scipy.io as sio

    data = sio.loadmat(os.fspath(path))
    if key not in data:
        names = sorted(k for k in data if not k.startswith("__"))
        raise InvalidNetworkError(f"{path}: no variable {key!r} (variables: {names})")
    cells = np.asarray(data[key])
    mats = cells.ravel(order="F") if cells.dtype == object else [cells]
    return [np.asarray(w, dtype=np.float64) for w in mats]


def from_mat(path, activation: str = "maxmin", grouping: str = "consecutive", group_size: int = 2,
             residual: bool | None = None, descending: bool | None = None, key: str = "W") -> Network:
    """A :class:`Network` from a ``.mat`` file of the paper's layout (module docstring)."""
    ws = load_weights(path, key)
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    if residual is None:
        residual = name.startswith("resweights")
    if activation == "maxmin":
        group_size = 2

    def act(n, where):
        layer = GroupActivation(activation, n, group_size, grouping, descending, name=where)
        layer.check(f"{name}: activation after {where}")
        return layer

    if residual:
        if len(ws) < 2:
            raise InvalidNetworkError(f"{path}: a residual network needs at least 2 matrices, got {len(ws)}")
        layers = [Affine(ws[0], name="W1")]
        for k, w in enumerate(ws[1:-1], start=2):
            layers.append(Residual(Network([Affine(w, name=f"W{k}"), act(w.shape[0], f"W{k}")]), name=f"block{k}"))
        layers.append(Affine(ws[-1], name=f"W{len(ws)}"))
    else:
        layers = []
        for k, w in enumerate(ws[:-1], start=1):
            layers += [Affine(w, name=f"W{k}"), act(w.shape[0], f"W{k}")]
        layers.append(Affine(ws[-1], name=f"W{len(ws)}"))
    return Network(layers, name=name)
