"""certified_radius: for a linear classifier the radius is the exact distance to the decision boundary."""

import numpy as np
import pytest

import lipsdp
from lipsdp.network import Affine, Network

from .conftest import mlp


@pytest.mark.parametrize("norm,dual", [("l2", 2), ("linf", 1)])
def test_linear_classifier_radius_is_distance_to_boundary(norm, dual):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 6)), rng.normal(size=4)
    net = Network([Affine(w, b)])
    x = rng.normal(size=6)
    logits = w @ x + b
    i = int(np.argmax(logits))
    # distance from x to {g_ij = 0} in the primal norm is g_ij(x) / ||w_i - w_j||_dual
    exact = min((logits[i] - logits[j]) / np.linalg.norm(w[i] - w[j], dual) for j in range(4) if j != i)
    r = lipsdp.certified_radius(net, x, norm=norm)
    assert r.certified and r.label == i
    assert exact * (1 - 1e-6) <= r.radius <= exact
    # the global mode is valid but looser
    g = lipsdp.certified_radius(net, x, norm=norm, mode="global")
    assert g.radius <= r.radius * (1 + 1e-9)


def test_radius_is_respected_by_attacks():
    net = mlp([4, 16, 3], seed=5)
    x = np.random.default_rng(1).normal(size=4)
    r = lipsdp.certified_radius(net, x, norm="l2")
    assert r.radius > 0
    pred = int(np.argmax(net.forward(x)))
    d = np.random.default_rng(2).normal(size=(20000, 4))
    d *= (0.999 * r.radius / np.linalg.norm(d, axis=1))[:, None]
    assert np.all(np.argmax(net.forward(x + d), axis=1) == pred)


def test_wrong_label_gives_zero():
    net = Network([Affine(np.eye(2))])
    r = lipsdp.certified_radius(net, np.array([1.0, 0.0]), label=1)
    assert r.radius == 0.0
