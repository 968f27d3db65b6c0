"""The network description: an ordered, validated sequence of layers.

:class:`Network` is what extractors produce and what every bound consumes. For
feedforward networks :meth:`Network.chain` gives the canonical alternating form

    x^0 -> v^0 = W_0 x^0 + b_0 -> x^1 = phi_1(v^0) -> ... -> x^l = phi_l(v^{l-1}) -> y = W_l x^l + b_l

(consecutive affine maps merged, identity maps inserted where two activations
meet or the network starts/ends with an activation) used by the SDP builders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidNetworkError
from .layers import ActivationLayer, Affine, Layer

__all__ = ["Network", "Chain"]


@dataclass
class Chain:
    """Canonical feedforward form: weights W_0..W_l, biases, activation layers phi_1..phi_l.

    ``len(weights) == len(activations) + 1``. ``activations[k]`` acts on the output of
    ``weights[k]``.
    """

    weights: list
    biases: list
    activations: list
    names: list

    @property
    def depth(self) -> int:
        """Number of activation layers l."""
        return len(self.activations)

    @property
    def widths(self) -> list[int]:
        """[n0, n1, ..., nl, n_out]."""
        return [int(self.weights[0].shape[1])] + [int(w.shape[0]) for w in self.weights]

    def with_output(self, c: np.ndarray | None) -> "Chain":
        """The chain of ``c @ f``: last weight replaced by ``c W_l`` (bias ``c b_l``)."""
        if c is None:
            return self
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 1:
            c = c[None, :]
        w_last = self.weights[-1]
        if c.shape[1] != w_last.shape[0]:
            raise InvalidNetworkError(
                f"output selection has {c.shape[1]} columns but the network has {w_last.shape[0]} outputs"
            )
        new_last = np.asarray(c @ (w_last.toarray() if sp.issparse(w_last) else w_last))
        return Chain(
            self.weights[:-1] + [new_last],
            self.biases[:-1] + [c @ self.biases[-1]],
            list(self.activations),
            list(self.names),
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        for k, act in enumerate(self.activations):
            x = act.forward(_apply(self.weights[k], x) + self.biases[k])
        return _apply(self.weights[-1], x) + self.biases[-1]


def _apply(w, x):
    if sp.issparse(w):
        return np.asarray((w @ x.T).T)
    return x @ w.T


def _matmul(a, b):
    """a @ b for dense/sparse operands, result dense unless both sparse."""
    if sp.issparse(a) and sp.issparse(b):
        return sp.csr_matrix(a @ b)
    if sp.issparse(a) or sp.issparse(b):
        return np.asarray((a @ b).toarray() if sp.issparse(a @ b) else a @ b)
    return a @ b


class Network:
    """An ordered sequence of layers, validated on construction.

    Args:
        layers: the layers, in order.
        input_shape: shape of one input as the original model sees it (for display
            and for extractors); defaults to ``(in_dim,)``.
        name: a label for reports.

    Raises:
        InvalidNetworkError: empty network, NaN/inf weights, or a shape mismatch; the
            message names the offending layer.
    """

    def __init__(self, layers, input_shape=None, name: str = ""):
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.name = name
        self._validate()
        self.input_shape = tuple(input_shape) if input_shape is not None else (self.in_dim,)
        if int(np.prod(self.input_shape)) != self.in_dim:
            raise InvalidNetworkError(
                f"input shape {self.input_shape} has {int(np.prod(self.input_shape))} entries "
                f"but the first layer expects {self.in_dim}"
            )

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _where(i: int, layer: Layer) -> str:
        label = f" '{layer.name}'" if getattr(layer, "name", "") else ""
        return f"layer {i} ({type(layer).__name__}{label})"

    def _validate(self) -> None:
        if not self.layers:
            raise InvalidNetworkError("the network has no layers")
        prev = None
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise InvalidNetworkError(f"layer {i} is {type(layer).__name__}, not a lipsdp Layer")
            where = self._where(i, layer)
            layer.check(where)
            if prev is not None and layer.in_dim != prev:
                raise InvalidNetworkError(
                    f"{where}: expects input of size {layer.in_dim} but the previous layer outputs {prev}"
                )
            prev = layer.out_dim

    # ------------------------------------------------------------------ properties
    @property
    def in_dim(self) -> int:
        return self.layers[0].in_dim

    @property
    def out_dim(self) -> int:
        return self.layers[-1].out_dim

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        body = ", ".join(layer.describe() for layer in self.layers)
        return f"Network({self.in_dim} -> {self.out_dim}: {body})"

    def summary(self) -> str:
        """A multi-line table of the layers."""
        lines = [f"Network {self.name or ''}".rstrip() + f": input {self.input_shape} ({self.in_dim}), output {self.out_dim}"]
        for i, layer in enumerate(self.layers):
            label = f"  [{layer.name}]" if getattr(layer, "name", "") else ""
            lines.append(f"  {i:3d}  {layer.describe()}{label}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluate on a batch (rows) or a single vector, in float64."""
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x).reshape(x.shape[0] if not single else 1, -1)
        for layer in self.layers:
            x = layer.forward(x)
        return x[0] if single else x

    __call__ = forward

    def _inputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Forward pass keeping every layer's input (batch rows)."""
        xs = [np.atleast_2d(np.asarray(x, dtype=np.float64))]
        for layer in self.layers[:-1]:
            xs.append(layer.forward(xs[-1]))
        return xs

    def vjp(self, x: np.ndarray, g: np.ndarray, inputs: list | None = None) -> np.ndarray:
        """g^T J(x) for a batch: x (batch, in_dim), g (batch, out_dim) -> (batch, in_dim)."""
        xs = inputs if inputs is not None else self._inputs(x)
        for layer, xin in zip(reversed(self.layers), reversed(xs)):
            g = layer.vjp(xin, g)
        return g

    def jvp(self, x: np.ndarray, d: np.ndarray, inputs: list | None = None) -> np.ndarray:
        """J(x) d for a batch: x, d (batch, in_dim) -> (batch, out_dim)."""
        xs = inputs if inputs is not None else self._inputs(x)
        for layer, xin in zip(self.layers, xs):
            d = layer.jvp(xin, d)
        return d

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Jacobians at a batch of points: (batch, out_dim, in_dim) (one VJP per output)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        xs = self._inputs(x)
        eye = np.eye(self.out_dim)
        rows = [self.vjp(x, np.broadcast_to(eye[i], (x.shape[0], self.out_dim)).copy(), xs)
                for i in range(self.out_dim)]
        return np.stack(rows, axis=1)

    # ------------------------------------------------------------------ structure
    @property
    def is_feedforward(self) -> bool:
        return all(isinstance(layer, (Affine, ActivationLayer)) for layer in self.layers)

    def chain(self) -> Chain:
        """The canonical alternating affine/activation form (see module docstring).

        Raises:
            InvalidNetworkError: if the network contains non-feedforward layers.
        """
        weights, biases, acts, names = [], [], [], []
        cur_w, cur_b, cur_names = None, None, []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Affine):
                if cur_w is None:
                    cur_w, cur_b = layer.weight, layer.bias.copy()
                else:
                    cur_w = _matmul(layer.weight, cur_w)
                    cur_b = _apply(layer.weight, cur_b[None, :])[0] + layer.bias
                cur_names.append(layer.name or f"layer{i}")
            elif isinstance(layer, ActivationLayer):
                if cur_w is None:
                    cur_w, cur_b = sp.identity(layer.size, format="csr"), np.zeros(layer.size)
                weights.append(cur_w)
                biases.append(cur_b)
                names.append("+".join(cur_names) or "identity")
                acts.append(layer)
                cur_w, cur_b, cur_names = None, None, []
            else:
                raise InvalidNetworkError(
                    f"{self._where(i, layer)} is not feedforward; chain() needs affine and activation layers only"
                )
        if cur_w is None:
            n = self.out_dim
            cur_w, cur_b = sp.identity(n, format="csr"), np.zeros(n)
        weights.append(cur_w)
        biases.append(cur_b)
        names.append("+".join(cur_names) or "identity")
        return Chain(weights, biases, acts, names)
