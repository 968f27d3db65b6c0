"""l-infinity LipSDP against oracles: closed form for linear maps, sandwich between lower and naive bounds."""

import numpy as np
import pytest

import lipsdp
from lipsdp.network import Affine, Network

from .conftest import mlp


def test_linear_scalar_map_is_l1_norm():
    c = np.array([[0.3, -1.7, 2.25, 0.0, -0.01]])
    r = lipsdp.estimate(Network([Affine(c)]), norm="linf")
    assert r.certified
    l1 = np.abs(c).sum()
    assert l1 <= r.bound <= l1 * (1 + 1e-6)
    assert abs(r.lower_bound - l1) <= 1e-9 * l1


def test_linear_vector_map_is_max_row_l1():
    w = np.random.default_rng(0).normal(size=(3, 4))
    r = lipsdp.estimate(Network([Affine(w)]), norm="linf")
    expect = np.abs(w).sum(axis=1).max()
    assert expect <= r.bound <= expect * (1 + 1e-6)
    assert len(r.per_output) == 3


@pytest.mark.parametrize("act,seed", [("relu", 0), ("tanh", 1), ("relu", 2)])
def test_sandwich(act, seed):
    net = mlp([4, 10, 8, 1], act=act, seed=seed)
    r = lipsdp.estimate(net, norm="linf")
    l2 = lipsdp.estimate(net, norm="l2", lower=False)
    assert r.certified
    assert r.lower_bound <= r.bound
    assert r.bound <= r.naive_bound * (1 + 1e-9)
    assert r.bound <= np.sqrt(4) * l2.bound * (1 + 1e-6)
