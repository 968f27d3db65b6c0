"""Shared fixtures: the ../shared data folder (skipped cleanly when absent) and small networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipsdp.network import Activation, Affine, Network, activations

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts) -> Path:
    """Path inside ../shared, or skip the test with a reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is not available (../shared is absent on this machine)")
    return p


@pytest.fixture
def shared():
    return shared_path


def mlp(dims, act="relu", seed=0, bias=0.1, scale=1.0) -> Network:
    """A random MLP with the given widths [n0, n1, ..., n_out]; weights ~ N(0, 1/fan_in)."""
    rng = np.random.default_rng(seed)
    make = getattr(activations, act)
    layers = []
    for i in range(len(dims) - 1):
        w = scale * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])
        layers.append(Affine(w, bias * rng.standard_normal(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(Activation(make(), dims[i + 1]))
    return Network(layers)
