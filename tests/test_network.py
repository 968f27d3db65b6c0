"""The network description: validation errors name the layer; chain merging and derivatives are exact."""

import numpy as np
import pytest
import scipy.sparse as sp

from lipsdp.errors import InvalidNetworkError
from lipsdp.network import Activation, Affine, Network, activations
from lipsdp.network.residual import Residual

from .conftest import mlp


def test_rejects_nan_and_inf_naming_layer():
    w = np.ones((3, 2))
    w[1, 1] = np.nan
    with pytest.raises(InvalidNetworkError, match=r"layer 0 \(Affine 'fc1'\).*NaN"):
        Network([Affine(w, name="fc1")])
    b = np.zeros(3)
    b[0] = np.inf
    with pytest.raises(InvalidNetworkError, match=r"layer 2 .*bias.*infinite"):
        Network([Affine(np.ones((3, 2))), Activation(activations.relu(), 3), Affine(np.ones((3, 3)), b)])


def test_rejects_shape_mismatch_and_empty():
    with pytest.raises(InvalidNetworkError, match=r"layer 2 .*expects input of size 4 but the previous layer outputs 3"):
        Network([Affine(np.ones((3, 2))), Activation(activations.relu(), 3), Affine(np.ones((1, 4)))])
    with pytest.raises(InvalidNetworkError, match="no layers"):
        Network([])
    with pytest.raises(InvalidNetworkError, match="bias has 2 entries"):
        Network([Affine(np.ones((3, 2)), np.zeros(2))])
    with pytest.raises(InvalidNetworkError, match="input shape"):
        Network([Affine(np.ones((3, 2)))], input_shape=(3,))


def test_chain_merges_affines_and_inserts_identities():
    rng = np.random.default_rng(1)
    w1, w2, w3 = rng.normal(size=(4, 3)), rng.normal(size=(5, 4)), rng.normal(size=(2, 5))
    net = Network([Activation(activations.tanh(), 3), Affine(w1), Affine(sp.csr_matrix(w2)), Activation(activations.relu(), 5),
                   Affine(w3), Activation(activations.sigmoid(), 2)])
    ch = net.chain()
    assert ch.depth == 3 and ch.widths == [3, 3, 5, 2, 2]
    x = rng.normal(size=(7, 3))
    np.testing.assert_allclose(ch.forward(x), net.forward(x), rtol=1e-13, atol=1e-13)


def test_jacobian_matches_finite_differences():
    net = mlp([4, 6, 5, 3], act="tanh", seed=3)
    x = np.random.default_rng(0).normal(size=(2, 4))
    j = net.jacobian(x)
    h = 1e-6
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd = (net.forward(x + e) - net.forward(x - e)) / (2 * h)
        np.testing.assert_allclose(j[:, :, i], fd, rtol=1e-6, atol=1e-8)


def test_residual_forward_and_vjp():
    rng = np.random.default_rng(2)
    branch = Network([Affine(rng.normal(size=(4, 4))), Activation(activations.relu(), 4), Affine(rng.normal(size=(4, 4)))])
    net = Network([Residual(branch), Affine(rng.normal(size=(2, 4)))])
    x = rng.normal(size=(3, 4))
    y = net.forward(x)
    expect = (x + branch.forward(x)) @ net.layers[1].weight.T
    np.testing.assert_allclose(y, expect, rtol=1e-13)
    j = net.jacobian(x[:1])[0]
    h = 1e-7
    fd = np.stack([(net.forward(x[:1] + h * e) - net.forward(x[:1] - h * e))[0] / (2 * h) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(j, fd, rtol=1e-5, atol=1e-7)
    with pytest.raises(InvalidNetworkError, match="identity skip"):
        Network([Residual(Network([Affine(np.ones((3, 4)))]))])
