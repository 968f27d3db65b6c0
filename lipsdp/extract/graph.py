"""Framework-independent lowering of a computation DAG with residual additions.

Extractors (torch.fx, ONNX) walk their graph in topological order and record, for every
tensor node, either the layers of a single-input operation (``lowered[node]``, with
``idom[node]`` its input) or an addition ``a + factor * b`` of two tensors
(``combos[node] = (a, b, factor)``, with ``idom[node]`` the nearest common dominator of
``a`` and ``b`` from :func:`dominator`). :func:`assemble_dag` then turns the path from the
source to the output into layers: each addition becomes a
:class:`~lipsdp.network.residual.Residual` block x -> P x + g(x) whose fork is that
dominator, the operand reached from it through affine layers only (possibly none: P = I)
is the skip and the other the branch; two affine operands fold into one affine map, two
nonlinear operands are refused with :class:`~lipsdp.errors.UnsupportedLayerError`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import UnsupportedLayerError
from ..network.layers import Affine
from ..network.linear_ops import fold_affine
from ..network.network import Network

__all__ = ["dominator", "as_affine", "assemble_dag", "fold_consecutive_affine"]


def dominator(a, b, idom):
    """The nearest node every path from the input to ``a`` and to ``b`` passes through."""
    seen = set()
    n = a
    while n is not None:
        seen.add(n)
        n = idom[n]
    n = b
    while n not in seen:
        n = idom[n]
    return n


def as_affine(layers, size: int):
    """(W, b) of a list of affine layers (the identity for an empty list)."""
    w, bias = sp.identity(size, format="csr"), np.zeros(size)
    for layer in layers:
        lw = layer.weight
        w = sp.csr_matrix(lw @ w) if sp.issparse(lw) else np.asarray(lw @ w)
        bias = np.asarray(lw @ bias).ravel() + layer.bias
    return w, bias


def assemble_dag(source, out, idom: dict, lowered: dict, combos: dict, size_of, name_of=str) -> list:
    """Layers computing ``out`` from ``source`` (see module docstring).

    ``size_of(node)`` is the flat per-sample size of a node's tensor, ``name_of(node)`` its label.
    """
    from ..network.residual import Residual

    def between(end, start) -> list:
        chunks = []
        node = end
        while node is not start:
            chunks.append([residual(node)] if node in combos else lowered[node])
            node = idom[node]
        return [layer for chunk in reversed(chunks) for layer in chunk]

    def residual(node):
        a, b, factor = combos[node]
        fork = idom[node]
        size = size_of(fork)
        pa, pb = between(a, fork), between(b, fork)
        if factor != 1.0:
            pb = pb + [Affine(sp.identity(size_of(b), format="csr") * factor)]
        linear_a = all(isinstance(x, Affine) for x in pa)
        linear_b = all(isinstance(x, Affine) for x in pb)
        name = name_of(node)
        if linear_a and linear_b:  # a linear map written as a sum
            wa, ba = as_affine(pa, size)
            wb, bb = as_affine(pb, size)
            w = wa + wb
            return Affine(sp.csr_matrix(w) if sp.issparse(w) else np.asarray(w), ba + bb, name=name)
        if linear_b:
            skip, branch = pb, pa
        elif linear_a:
            skip, branch = pa, pb
        else:
            raise UnsupportedLayerError(
                f"the addition '{name}' adds two nonlinear branches; residual blocks x -> P x + g(x) need one "
                "affine (or identity) path from the fork"
            )
        skip_layer = None
        if skip:
            w, bias = as_affine(skip, size)
            skip_layer = Affine(w, bias, name=f"{name} skip")
        return Residual(Network(branch), skip_layer, name=name)

    return between(out, source)


def fold_consecutive_affine(layers: list) -> list:
    """Merge runs of consecutive :class:`Affine` layers into one (recursively inside residual branches).

    The merged map is the exact composition (:func:`~lipsdp.network.linear_ops.fold_affine`):
    normalisations, BatchNorm, padding and layout permutations disappear into the
    neighbouring affine maps, and the network computes the same function.
    """
    from ..network.residual import Residual

    out: list = []
    for layer in layers:
        if isinstance(layer, Residual):
            layer = Residual(Network(fold_consecutive_affine(list(layer.branch.layers))), layer.skip, name=layer.name)
        if isinstance(layer, Affine) and out and isinstance(out[-1], Affine):
            prev = out.pop()
            w, b = fold_affine(layer.weight, layer.bias, prev.weight, prev.bias)
            name = "+".join(n for n in (prev.name, layer.name) if n)
            layer = Affine(w, b, name=name)
        out.append(layer)
    return out
