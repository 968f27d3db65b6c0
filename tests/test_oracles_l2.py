"""l2 LipSDP against real oracles: closed forms, exhaustive activation patterns, counterexamples, other solvers."""

import itertools

import numpy as np
import pytest

import lipsdp
from lipsdp.network import Activation, Affine, Network, activations
from lipsdp.solvers import available_solvers

from .conftest import mlp


def test_one_linear_layer_is_spectral_norm():
    w = np.random.default_rng(0).normal(size=(5, 7))
    r = lipsdp.estimate(Network([Affine(w)]), lower=False)
    assert r.certified
    sigma = np.linalg.norm(w, 2)
    assert sigma <= r.bound <= sigma * (1 + 1e-6)
    assert sigma <= r.naive_bound <= sigma * (1 + 1e-9)


def _max_over_patterns(weights):
    """max over D in {0,1}^n (every hidden layer) of ||W_L D_L ... D_1 W_0||_2."""
    sizes = [w.shape[0] for w in weights[:-1]]
    best = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        bits = np.array(bits)
        j = weights[0]
        pos = 0
        for w, n in zip(weights[1:], sizes):
            j = w @ (bits[pos:pos + n, None] * j)
            pos += n
        best = max(best, np.linalg.norm(j, 2))
    return best


@pytest.mark.parametrize("dims,seed", [([2, 10, 2], 0), ([3, 6, 6, 2], 1), ([2, 5, 4, 3, 1], 2), ([4, 12, 3], 3)])
def test_tiny_relu_nets_against_enumerated_patterns(dims, seed):
    net = mlp(dims, seed=seed)
    weights = [layer.weight for layer in net.layers if isinstance(layer, Affine)]
    enum = _max_over_patterns(weights)
    neuron = lipsdp.estimate(net, method="neuron")
    layer = lipsdp.estimate(net, method="layer", lower=False)
    assert neuron.certified and layer.certified
    # every pattern's Jacobian satisfies the slope QC, so LipSDP must cover all of them
    assert neuron.bound >= enum * (1 - 1e-9)
    assert neuron.lower_bound <= enum * (1 + 1e-9)
    assert neuron.bound <= layer.bound * (1 + 1e-6)
    assert layer.bound <= neuron.naive_bound * (1 + 1e-6)


def test_counterexample_a_relu_difference():
    # f(x) = ReLU(x) - ReLU(x - 1): true Lipschitz constant 1; the coupled "LipSDP-Network" form gives ~0
    net = Network([Affine([[1.0], [1.0]], [0.0, -1.0]), Activation(activations.relu(), 2), Affine([[1.0, -1.0]])])
    for method in ("neuron", "layer"):
        r = lipsdp.estimate(net, method=method)
        assert r.certified
        assert abs(r.bound - 1.0) < 1e-6
        assert r.lower_bound <= r.bound


def _coupled_network_bound(w0, w1):
    """The unsound LipSDP-Network LMI (coupled multipliers), solved here only to show why it is excluded."""
    import cvxpy as cp

    n = w0.shape[0]
    lam = cp.Variable(n, nonneg=True)
    nu = cp.Variable((n, n), nonneg=True)
    rho = cp.Variable()
    t = cp.diag(lam)
    for i in range(n):
        for j in range(i + 1, n):
            e = np.zeros((n, 1))
            e[i], e[j] = 1, -1
            t = t + nu[i, j] * (e @ e.T)
    n0 = w0.shape[1]
    m = cp.bmat([[-rho * np.eye(n0), w0.T @ t], [t @ w0, -2 * t + w1.T @ w1]])
    cp.Problem(cp.Minimize(rho), [(m + m.T) / 2 << 0]).solve(solver="CVXOPT")
    return float(np.sqrt(rho.value))


def test_counterexample_b_coupled_multipliers_unsound():
    w1 = np.array([[-1.425, 0.333], [-0.651, 0.862]])
    b1 = np.array([-1.0, 1.0])
    w2 = np.array([[-0.126, 0.669]])
    net = Network([Affine(w1, b1), Activation(activations.relu(), 2), Affine(w2)])
    # a pair of inputs with a large difference quotient, found by search
    rng = np.random.default_rng(0)
    best = 0.0
    for _ in range(20):
        x = rng.uniform(-4, 4, size=(20000, 2))
        y = x + rng.normal(scale=rng.choice([0.01, 0.3, 2.0]), size=x.shape)
        q = np.abs(net.forward(x) - net.forward(y))[:, 0] / np.linalg.norm(x - y, axis=1)
        best = max(best, q.max())
    assert best > 0.72
    coupled = _coupled_network_bound(w1, w2)
    assert coupled < best - 0.1  # the coupled form "certifies" less than an observed ratio: unsound
    r = lipsdp.estimate(net, method="neuron")
    assert r.certified and r.bound >= best
    with pytest.raises(ValueError, match="unknown method"):
        lipsdp.estimate(net, method="network")


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "elu", "softplus", "silu", "gelu", "leaky_relu"])
def test_smooth_activations_lower_le_bound_le_naive(act):
    net = mlp([3, 12, 8, 2], act=act, seed=7)
    r = lipsdp.estimate(net)
    assert r.certified
    assert r.lower_bound <= r.bound <= r.naive_bound * (1 + 1e-9)


def test_backends_agree():
    net = mlp([3, 10, 8, 2], seed=11)
    bounds = {}
    for s in available_solvers():
        bounds[s] = lipsdp.estimate(net, solver=s, lower=False).bound
    ref = min(bounds.values())
    for s, b in bounds.items():
        assert abs(b - ref) <= 1e-4 * ref, bounds


def test_paper_repository_example_ordering():
    # the LipSDP repository's example architecture 2-10-30-20-2 (random weights here)
    net = mlp([2, 10, 30, 20, 2], seed=3, scale=2.0)
    r_n = lipsdp.estimate(net, method="neuron")
    r_l = lipsdp.estimate(net, method="layer", lower=False)
    assert r_n.lower_bound <= r_n.bound <= r_l.bound <= r_n.naive_bound
