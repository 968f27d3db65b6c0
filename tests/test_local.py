"""Local Lipschitz bounds over input regions (issue 9): regions, bound propagation, slopes, estimate(region=)."""

from __future__ import annotations

import numpy as np
import pytest

import lipsdp
from lipsdp import Ball, Box, RegionError
from lipsdp.bounds.local import eliminate_linear, local_slopes, localize
from lipsdp.bounds.propagation import preactivation_bounds
from lipsdp.network import activations

from .conftest import mlp

ACTS = ["relu", "leaky_relu", "tanh", "sigmoid", "elu", "softplus", "silu", "gelu", "gelu_tanh", "hardtanh", "relu6"]


# ------------------------------------------------------------------ regions
def test_region_validation():
    with pytest.raises(RegionError, match="lower > upper at index 1"):
        Box([0, 1], [1, 0])
    with pytest.raises(RegionError, match="NaN or infinite"):
        Box([0, np.nan], [1, 1])
    with pytest.raises(RegionError, match="2 entries but upper has 3"):
        Box([0, 0], [1, 1, 1])
    with pytest.raises(RegionError, match="eps must be finite and >= 0"):
        Ball([0, 0], -1.0)
    with pytest.raises(RegionError, match="norm must be 'linf' or 'l2'"):
        Ball([0, 0], 1.0, norm="l1")
    net = mlp([3, 4, 2])
    with pytest.raises(RegionError, match="has 2 coordinates but the network takes 3 inputs"):
        lipsdp.estimate(net, region=Box([0, 0], [1, 1]))
    with pytest.raises(RegionError, match="both center= and eps="):
        lipsdp.estimate(net, center=[0, 0, 0])


def test_region_sample_project_linear_max():
    rng = np.random.default_rng(0)
    for reg in (Box([-1, 0, 2], [1, 0.5, 2]), Ball([1, 2, 3], 0.5, "linf"), Ball([1, 2, 3], 0.5, "l2")):
        xs = reg.sample(rng, 500)
        assert np.allclose(reg.project(xs), xs)
        far = reg.project(xs + 10 * rng.standard_normal(xs.shape))
        lo, hi = reg.box()
        assert np.all(far >= lo) and np.all(far <= hi)
        a = rng.standard_normal((4, 3))
        val, err = reg.linear_max(a)
        assert np.all((xs @ a.T).max(axis=0) <= val + err)
        # attained up to sampling: the maximiser is on the boundary
        assert np.all((far @ a.T).max(axis=0) >= val - 0.2)


# ------------------------------------------------------------------ slopes and propagation
@pytest.mark.parametrize("name", ACTS)
def test_local_slopes_contain_every_chord(name):
    spec = getattr(activations, name)()
    rng = np.random.default_rng(1)
    lo = rng.uniform(-4, 3, 300)
    hi = lo + rng.choice([0.0, 0.01, 0.5, 3.0], 300)
    a, b = local_slopes(spec, lo, hi)
    assert np.all(a <= b) and np.all(a >= spec.alpha) and np.all(b <= spec.beta)
    t = rng.uniform(0, 1, (300, 40))
    x = lo[:, None] + t * (hi - lo)[:, None]
    x = np.sort(np.concatenate([x, lo[:, None], hi[:, None]], axis=1), axis=1)
    y = spec.fn(x)
    dx = np.diff(x, axis=1)
    ok = dx > 1e-9
    q = np.where(ok, np.diff(y, axis=1) / np.where(ok, dx, 1.0), np.nan)
    qa = np.where(ok, q, np.inf).min(axis=1)
    qb = np.where(ok, q, -np.inf).max(axis=1)
    assert np.all(qa >= a - 1e-9) and np.all(qb <= b + 1e-9)
    # and it is tight: the derivative at sampled points reaches close to both ends on wide intervals
    wide = hi - lo >= 3.0
    d = spec.deriv(np.linspace(lo, hi, 2001))
    assert np.all(d.min(axis=0)[wide] <= a[wide] + 1e-3)
    assert np.all(d.max(axis=0)[wide] >= b[wide] - 1e-3)


def test_relu_stable_neurons_are_exact():
    spec = activations.relu()
    a, b = local_slopes(spec, np.array([0.0, 1.0, -2.0, -1.0, 0.0]), np.array([2.0, 3.0, 0.0, 1.0, 0.0]))
    assert a.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0] and b.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]


def _region_samples(net, reg, x0, rng, spread, n_edge):
    """Points of the region (interior samples and projections of far points onto its boundary) and
    every layer's input at them: the empirical oracle for pre-activation enclosures."""
    xs = np.concatenate([reg.sample(rng, 3000), reg.project(x0 + spread * rng.standard_normal((n_edge, x0.size)))])
    return xs, net._inputs(xs)


@pytest.mark.parametrize("name", ["relu", "tanh", "silu", "gelu", "sigmoid", "leaky_relu", "hardtanh"])
@pytest.mark.parametrize("kind", ["box", "linf", "l2"])
def test_propagation_is_sound_and_crown_inside_ibp(name, kind):
    net = mlp([5, 12, 12, 3], act=name, seed=3)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal(5)
    reg = {"box": Box(x0 - [0.1, 0.2, 0.3, 0.0, 0.5], x0 + 0.3), "linf": Ball(x0, 0.4), "l2": Ball(x0, 0.6, "l2")}[kind]
    bounds = preactivation_bounds(net, reg)
    xs, inputs = _region_samples(net, reg, x0, rng, spread=5.0, n_edge=500)
    for b in bounds:
        v = inputs[b.layer]
        assert np.all(v >= b.lower) and np.all(v <= b.upper)
        assert np.all(b.lower >= b.ibp_lower) and np.all(b.upper <= b.ibp_upper)
        # not absurdly loose: within 5x the sampled range on this small net
        assert np.mean(b.upper - b.lower) <= 5 * np.mean(v.max(0) - v.min(0)) + 1e-9
    ibp = preactivation_bounds(net, reg, method="ibp")
    assert all(np.array_equal(b.lower, b.ibp_lower) for b in ibp)


def test_crown_tighter_than_ibp_on_bundled_mnist():
    from lipsdp.data import mnist_relu_network

    net = mnist_relu_network()
    x0 = np.random.default_rng(0).uniform(0, 1, 784)
    bounds = preactivation_bounds(net, Ball(x0, 0.02))
    last = bounds[-1]
    assert np.mean(last.upper - last.lower) < 0.6 * np.mean(last.ibp_upper - last.ibp_lower)


def test_eliminate_linear_keeps_the_function_on_the_region():
    net = mlp([4, 16, 16, 3], act="relu", seed=5, bias=1.0)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(4)
    reg = Ball(x0, 0.3)
    pre = preactivation_bounds(net, reg)
    red = eliminate_linear(localize(net, pre), pre)
    assert any(isinstance(layer, lipsdp.network.Residual) for layer in red.layers)
    xs = reg.sample(rng, 200)
    assert np.allclose(red.forward(xs), net.forward(xs), atol=1e-10)


# ------------------------------------------------------------------ estimate(region=)
def _stable_point(net, rng, tries=200):
    """A point whose first-layer and second-layer pre-activations are all at least 0.05 away from 0."""
    for _ in range(tries):
        x = rng.standard_normal(net.in_dim)
        ok = all(np.min(np.abs(v)) > 0.05 for v, layer in zip(net._inputs(x[None])[1:], net.layers[1:])
                 if isinstance(layer, lipsdp.Activation))
        if ok:
            return x
    raise AssertionError("no stable point found")


def test_linear_region_gives_exact_jacobian_norm():
    net = mlp([4, 8, 8, 3], act="relu", seed=7, bias=0.5)
    rng = np.random.default_rng(3)
    x0 = _stable_point(net, rng)
    j = net.jacobian(x0[None])[0]
    res = lipsdp.estimate(net, "l2", center=x0, eps=1e-4, ball="l2", compare_global=False)
    assert res.certified
    assert res.bound == pytest.approx(np.linalg.norm(j, 2), rel=1e-6)
    c = np.array([[1.0, -1.0, 0.0]])
    res = lipsdp.estimate(net, "linf", output=c, region=Box(x0 - 1e-4, x0 + 1e-4), compare_global=False)
    assert res.certified
    assert res.bound == pytest.approx(np.sum(np.abs(c @ j)), rel=1e-6)
    d = res.to_dict()
    assert d["region"]["kind"] == "box" and len(d["preactivation_bounds"]) == 2
    assert d["preactivation_bounds"][0]["positive"] + d["preactivation_bounds"][0]["negative"] == 8


@pytest.mark.parametrize("act,norm", [("relu", "l2"), ("tanh", "l2"), ("relu", "linf"), ("silu", "l2")])
def test_local_between_sampled_gradients_and_global_and_monotone(act, norm):
    net = mlp([3, 10, 10, 2], act=act, seed=11, bias=0.5)
    x0 = np.array([0.3, -0.2, 0.5])
    out = 0 if norm == "linf" else None
    glob = lipsdp.estimate(net, norm, output=out, lower=False)
    prev = np.inf
    rng = np.random.default_rng(0)
    for eps in (1.0, 0.3, 0.1, 0.02):
        reg = Ball(x0, eps, "l2" if norm == "l2" else "linf")
        res = lipsdp.estimate(net, norm, output=out, region=reg, seed=1)
        assert res.certified
        assert res.bound <= glob.bound * (1 + 1e-9)
        assert res.bound <= prev * (1 + 1e-6)  # nested regions: never larger
        prev = res.bound
        xs = reg.sample(rng, 400)
        j = net.jacobian(xs)
        if out is not None:
            j = j[:, [out], :]
        sampled = lipsdp.bounds.lower.jacobian_norms(j, norm).max()
        assert sampled <= res.bound * (1 + 1e-7)
        assert res.lower_bound <= res.bound * (1 + 1e-7)
        assert res.lower_bound >= sampled * (1 - 1e-9)


def _mnist_case(free):
    from lipsdp.data import mnist_relu_network

    net = mnist_relu_network()
    x0 = np.random.default_rng(4).uniform(0.0, 1.0, 784)
    c = np.zeros((1, 10))
    c[0, 3], c[0, 5] = 1.0, -1.0
    if free is None:
        return net, c, Ball(x0, 0.01)
    lo, hi = x0.copy(), x0.copy()
    idx = np.random.default_rng(6).choice(784, free, replace=False)
    lo[idx] -= 0.05
    hi[idx] += 0.05
    return net, c, Box(lo, hi)


def _brute_linf(net, c, reg, n=2000):
    """max over samples of ||c^T J(x)||_1 restricted to the coordinates the region lets vary."""
    rng = np.random.default_rng(5)
    lo, hi = reg.box()
    free = hi > lo
    corners = np.where(rng.uniform(size=(n, lo.size)) < 0.5, lo, hi)
    xs = np.concatenate([reg.sample(rng, n), corners])
    g = np.einsum("oi,bij->boj", c, net.jacobian(xs))[:, :, free]
    return float(np.max(np.sum(np.abs(g), axis=2)))


def test_mnist_linf_local_bound_on_pixel_box_against_brute_force():
    """l-inf local bound of a logit difference of the bundled MNIST net, 40 pixels free (+-0.05)."""
    net, c, reg = _mnist_case(40)
    res = lipsdp.estimate(net, "linf", output=c, region=reg, compare_global=False,
                          lower_options={"n_samples": 256, "ascent_starts": 4, "ascent_steps": 20})
    assert res.certified and res.region["free_coordinates"] == 40
    brute = _brute_linf(net, c, reg)
    assert brute <= res.bound * (1 + 1e-7)
    assert res.lower_bound <= res.bound * (1 + 1e-7)
    assert res.bound <= 1.5 * brute  # few unstable neurons: close to the truth
    from lipsdp.bounds.naive import naive_bound

    assert res.bound < 0.2 * naive_bound(net, "linf", c)


@pytest.mark.slow
def test_mnist_linf_local_bound_on_ball_against_brute_force():
    net, c, reg = _mnist_case(None)
    res = lipsdp.estimate(net, "linf", output=c, region=reg, compare_global=False,
                          lower_options={"n_samples": 256, "ascent_starts": 4, "ascent_steps": 20})
    assert res.certified
    brute = _brute_linf(net, c, reg)
    assert brute <= res.bound * (1 + 1e-7)
    assert res.bound <= 1.5 * brute


def test_local_bound_of_residual_network_is_refused_clearly():
    from lipsdp.network import Activation, Affine, Network, Residual

    rng = np.random.default_rng(0)
    net = Network([Residual(Network([Affine(rng.standard_normal((4, 3))), Activation(activations.relu(), 4),
                                     Affine(rng.standard_normal((3, 4)))])), Affine(np.eye(3))])
    with pytest.raises(lipsdp.UnsupportedLayerError, match="feedforward networks only; layer 0 is Residual"):
        lipsdp.estimate(net, center=np.zeros(3), eps=0.1)


def test_naive_norm_of_small_sparse_selection():
    """Eliminated networks carry small sparse maps; ARPACK used to fail on them (regression)."""
    import scipy.sparse as sp

    from lipsdp.bounds.naive import spectral_norm_upper

    s = spectral_norm_upper(sp.identity(10, format="csr") * 3.0)
    assert 3.0 <= s <= 3.0 * (1 + 1e-9)


# ------------------------------------------------------------------ group activations (MaxMin / GroupSort)
def _group_net(act_factory, seed):
    from lipsdp import Affine, Network

    rng = np.random.default_rng(seed)
    return Network([Affine(rng.standard_normal((8, 5)), rng.standard_normal(8)), act_factory(),
                    Affine(rng.standard_normal((8, 8)), rng.standard_normal(8)), act_factory(),
                    Affine(rng.standard_normal((3, 8)))])


GROUP_ACTS = {"maxmin": lambda: lipsdp.network.group.max_min(8), "maxmin-halves": lambda: lipsdp.network.group.max_min(8, "halves"),
              "groupsort4": lambda: lipsdp.network.group.group_sort(8, 4)}


@pytest.mark.parametrize("kind", sorted(GROUP_ACTS))
def test_group_propagation_is_sound_and_fixed_groups_are_permutations(kind):
    from lipsdp.bounds.propagation import fixed_group_order

    net = _group_net(GROUP_ACTS[kind], seed=1)
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal(5)
    reg = Ball(x0, 0.2)
    bounds = preactivation_bounds(net, reg)
    xs, inputs = _region_samples(net, reg, x0, rng, spread=3.0, n_edge=300)
    for b in bounds:
        v = inputs[b.layer]
        assert np.all(v >= b.lower) and np.all(v <= b.upper)
        layer = net.layers[b.layer]
        fixed, perm = fixed_group_order(layer, b.lower, b.upper)
        idx = layer.groups()
        out = layer.forward(v)
        for gi in np.flatnonzero(fixed):  # the same permutation at every sample of the region
            assert np.array_equal(out[:, idx[gi]], v[:, idx[gi][perm[gi]]])
    red = eliminate_linear(localize(net, bounds), bounds)
    assert np.allclose(red.forward(xs[:500]), net.forward(xs[:500]), atol=1e-10)


@pytest.mark.parametrize("kind", sorted(GROUP_ACTS))
def test_group_local_bound_exact_in_a_tiny_ball_and_monotone(kind):
    net = _group_net(GROUP_ACTS[kind], seed=0)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(5)
    exact = np.linalg.norm(net.jacobian(x0[None])[0], 2)
    prev = None
    for eps in (1e-4, 0.05, 0.3, 3.0):
        r = lipsdp.estimate(net, center=x0, eps=eps, ball="l2")
        assert r.certified
        assert r.bound <= r.details["global_bound"] * (1 + 1e-12)
        assert r.lower_bound <= r.bound * (1 + 1e-9)
        if prev is not None:
            assert r.bound >= prev * (1 - 1e-9)  # a larger region never gets a smaller bound
        prev = r.bound
        if eps == 1e-4:  # every group's order is fixed: the network is linear on the ball
            assert all(b["fixed_groups"] == b["groups"] for b in r.preactivation_bounds)
            assert r.bound == pytest.approx(exact, rel=1e-6) and r.bound >= exact * (1 - 1e-12)
    assert prev < r.details["global_bound"] * (1 + 1e-12)
