"""MaxMin / GroupSort / Householder activations and LipSDP-NSR (Pauli et al. 2024): real oracles."""

import itertools

import numpy as np
import pytest

import lipsdp
from lipsdp.bounds.naive import naive_bound
from lipsdp.constraints import GroupQC, qc_for
from lipsdp.constraints.group import equality_matrices
from lipsdp.errors import InvalidNetworkError, UnsupportedLayerError
from lipsdp.network import Activation, Affine, GroupActivation, Network, activations, group_sort, householder, max_min
from lipsdp.network.group import residual_relu_rewrite
from lipsdp.sdp import build_lmis

RNG = np.random.default_rng(0)


def _between_identities(act):
    n = act.size
    return Network([Affine(np.eye(n)), act, Affine(np.eye(n))])


LAYERS = [
    max_min(4), max_min(6, "halves"), max_min(4, descending=False),
    group_sort(6, 3), group_sort(8, 4, "halves", descending=True),
    householder(4, [0.3, -0.8]), householder(6, RNG.standard_normal((3, 2)), "halves"),
    householder(6, [0.2, -0.5, 0.7]),
]


# ------------------------------------------------------------------ the layer itself
@pytest.mark.parametrize("act", LAYERS, ids=lambda a: a.describe())
def test_forward_matches_definition_and_derivatives(act):
    x = RNG.standard_normal((7, act.size))
    y = act.forward(x)
    for grp in act.groups():
        xs, ys = x[:, grp], y[:, grp]
        if act.kind == "householder":
            v = act.vectors()[list(act.groups()[:, 0]).index(grp[0])]
            keep = xs @ v > 0
            refl = xs - 2 * np.outer(xs @ v, v) / (v @ v)
            assert np.allclose(ys, np.where(keep[:, None], xs, refl))
        else:
            want = np.sort(xs, axis=1)
            assert np.allclose(ys, want[:, ::-1] if act.descending else want)
    # jvp against finite differences, vjp as its transpose
    d = RNG.standard_normal(x.shape)
    g = RNG.standard_normal(x.shape)
    h = 1e-7
    assert np.allclose(act.jvp(x, d), (act.forward(x + h * d) - act.forward(x - h * d)) / (2 * h), atol=1e-5)
    assert np.allclose(np.sum(act.vjp(x, g) * d, axis=1), np.sum(g * act.jvp(x, d), axis=1))


def test_sum_and_projection_preserved_and_one_lipschitz():
    for act in LAYERS:
        x, z = RNG.standard_normal((50, act.size)), RNG.standard_normal((50, act.size))
        da, db = x - z, act.forward(x) - act.forward(z)
        for grp, jm in zip(act.groups(), equality_matrices(act)):
            a, b = da[:, grp], db[:, grp]
            assert np.all(np.sum(b * b, 1) <= np.sum(a * a, 1) + 1e-12)
            assert np.allclose(np.einsum("bi,ij,bj->b", a, jm, a), np.einsum("bi,ij,bj->b", b, jm, b))


def test_validation_names_the_layer():
    with pytest.raises(InvalidNetworkError, match=r"layer 1 .*GroupActivation.*divisible"):
        Network([Affine(np.eye(5)), group_sort(5, 2), Affine(np.eye(5))])
    with pytest.raises(InvalidNetworkError, match=r"layer 1 .*nonzero"):
        Network([Affine(np.eye(4)), householder(4, [0.0, 0.0]), Affine(np.eye(4))])
    with pytest.raises(InvalidNetworkError, match="grouping"):
        Network([GroupActivation("maxmin", 4, 2, "interleaved")])
    with pytest.raises(InvalidNetworkError, match="MaxMin has group size 2"):
        Network([GroupActivation("maxmin", 6, 3)])


def test_qc_registered_and_lambda_is_one_scalar_per_group():
    act = group_sort(6, 3)
    assert isinstance(qc_for(act), GroupQC)
    qa = qc_for(act).atoms(act, "neuron")
    assert qa.n_vars == 4 and list(qa.nonneg) == [True, True, False, False]
    assert qc_for(act).atoms(act, "layer").n_vars == 2


# ------------------------------------------------------------------ LipSDP-NSR, l2
@pytest.mark.parametrize("act", LAYERS, ids=lambda a: a.describe())
def test_single_layer_between_identities_is_one(act):
    r = lipsdp.estimate(_between_identities(act), lower=False)
    assert r.certified and 1.0 <= r.bound <= 1.0 + 1e-6


@pytest.mark.parametrize("act", [max_min(4), max_min(4, "halves"), group_sort(4, 2)], ids=lambda a: a.describe())
def test_residual_relu_baseline_cannot_prove_one(act):
    net = _between_identities(act)
    x = RNG.standard_normal((9, 4))
    assert np.allclose(residual_relu_rewrite(net)(x), net(x))
    r = lipsdp.estimate(net, method="residual-relu", lower=False)
    # sqrt(2) for one MaxMin (paper); estimate() then returns the smaller, proved naive bound 1
    assert r.certified and r.details["sdp_bound"] > 1.3
    assert r.status == "naive" and r.bound == r.naive_bound and r.bound < 1 + 1e-9
    assert r.details["sdp_bound"] == pytest.approx(np.sqrt(2), rel=1e-5)


def test_residual_relu_refuses_large_groups():
    with pytest.raises(UnsupportedLayerError, match="GroupSort"):
        lipsdp.estimate(_between_identities(group_sort(6, 3)), method="residual-relu", lower=False)


def _orth(n, rng):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("kind", ["maxmin", "groupsort", "householder"])
def test_orthogonal_weights_give_one(depth, kind):
    rng = np.random.default_rng(depth)
    n = 6
    layers = [Affine(_orth(n, rng), rng.standard_normal(n))]
    for _ in range(depth):
        act = {"maxmin": max_min(n), "groupsort": group_sort(n, 3),
               "householder": householder(n, rng.standard_normal((3, 2)))}[kind]
        layers += [act, Affine(_orth(n, rng))]
    # the optimum is T = I everywhere; Clarabel's default tolerances reach it to ~1e-8 at depth 5
    r = lipsdp.estimate(Network(layers), lower=False, solver="clarabel")
    assert r.certified and 1.0 - 1e-9 <= r.bound <= 1.0 + 1e-6


def _pattern_jacobians(w0, w1, act, n_samples=4000, seed=0):
    """max ||W1 J W0|| over the activation patterns realised by sampled inputs (true lower bound)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, w0.shape[1])) * 3
    v = x @ w0.T
    idx = act.groups()
    perms = np.argsort(v[:, idx], axis=-1, kind="stable")
    seen = {tuple(p.ravel()) for p in perms}
    best = 0.0
    for key in seen:
        p = np.array(key).reshape(idx.shape)
        jm = np.zeros((act.size, act.size))
        for grp, pg in zip(idx, p):
            jm[grp, grp[pg]] = 1.0
        best = max(best, np.linalg.norm(w1 @ jm @ w0, 2))
    return best, len(seen)


@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_groupsort_net_between_enumeration_and_naive(seed):
    rng = np.random.default_rng(seed)
    w0, w1 = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))
    act = group_sort(6, 3)
    net = Network([Affine(w0, rng.standard_normal(6)), act, Affine(w1)])
    exact_lb, n_patterns = _pattern_jacobians(w0, w1, act)
    assert n_patterns > 1
    r = lipsdp.estimate(net)
    assert r.certified
    assert r.bound >= exact_lb * (1 - 1e-9)
    assert r.bound >= r.lower_bound * (1 - 1e-9)
    assert r.bound <= r.naive_bound * (1 + 1e-9)
    rl = lipsdp.estimate(net, method="layer", lower=False)
    assert rl.certified and rl.bound >= r.bound * (1 - 1e-7)


def test_one_hidden_maxmin_layer_every_pattern_realisable():
    rng = np.random.default_rng(3)
    w0, w1 = rng.standard_normal((8, 3)), rng.standard_normal((2, 8))
    net = Network([Affine(w0), max_min(8), Affine(w1)])
    pats = [np.array(p) for p in itertools.product([0, 1], repeat=4)]
    exact = 0.0
    for p in pats:
        jm = np.zeros((8, 8))
        for k, s in enumerate(p):
            i, j = 2 * k, 2 * k + 1
            jm[[i, j], [j, i] if s else [i, j]] = 1.0
        exact = max(exact, np.linalg.norm(w1 @ jm @ w0, 2))
    r = lipsdp.estimate(net)
    assert r.certified and exact * (1 - 1e-9) <= r.bound <= r.naive_bound
    assert r.lower_bound <= exact * (1 + 1e-9)


def test_cross_terms_variant_is_sound_and_no_looser(monkeypatch):
    rng = np.random.default_rng(5)
    net = Network([Affine(rng.standard_normal((6, 4))), max_min(6), Affine(rng.standard_normal((6, 6))),
                   group_sort(6, 3), Affine(rng.standard_normal((2, 6)))])
    base = lipsdp.estimate(net)
    from lipsdp.constraints import QC_REGISTRY

    monkeypatch.setitem(QC_REGISTRY, GroupActivation, GroupQC(cross_terms=True))
    tight = lipsdp.estimate(net, lower=False)
    assert tight.certified
    assert base.lower_bound <= tight.bound
    if tight.status == "optimal":  # the free S, P multipliers are badly conditioned; solvers may stop early
        assert tight.bound <= base.bound * (1 + 1e-6)


def test_relu_and_groupsort_mixed_in_one_sdp():
    rng = np.random.default_rng(7)
    net = Network([Affine(rng.standard_normal((8, 5))), Activation(activations.relu(), 8),
                   Affine(rng.standard_normal((6, 8))), group_sort(6, 3),
                   Affine(rng.standard_normal((6, 6))), Activation(activations.tanh(), 6),
                   Affine(rng.standard_normal((2, 6)))])
    lmis = build_lmis(net, "l2", "neuron")
    labels = " ".join(g.name for g in lmis.certify.groups)
    assert "relu" in labels and "GroupSort" in labels
    r = lipsdp.estimate(net)
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound


# ------------------------------------------------------------------ l-infinity
def test_linf_between_lower_and_naive():
    rng = np.random.default_rng(11)
    net = Network([Affine(rng.standard_normal((6, 4))), max_min(6), Affine(rng.standard_normal((6, 6))),
                   householder(6, rng.standard_normal((3, 2))), Affine(rng.standard_normal((3, 6)))])
    for out in range(3):
        r = lipsdp.estimate(net, norm="linf", output=out)
        l2 = lipsdp.estimate(net, output=out, lower=False)
        assert r.certified
        assert r.lower_bound <= r.bound * (1 + 1e-9)
        assert r.bound <= min(r.naive_bound, np.sqrt(4) * l2.bound) * (1 + 1e-6)


def test_linf_lipschitz_of_layers():
    assert max_min(4).lipschitz_in("linf") == 1.0
    h = householder(2, [np.sin(np.pi / 8), -np.cos(np.pi / 8)])  # reflection at 45 degrees: ||H||_inf = sqrt 2
    assert h.lipschitz_in("linf") == pytest.approx(np.sqrt(2), rel=1e-8)
    assert h.lipschitz_in("l2") == 1.0
    x = RNG.standard_normal((500, 2))
    z = RNG.standard_normal((500, 2))
    ratio = np.abs(h.forward(x) - h.forward(z)).max(1) / np.abs(x - z).max(1)
    assert ratio.max() <= h.lipschitz_in("linf")


# ------------------------------------------------------------------ residual networks
def test_residual_maxmin_block_naive_and_bound():
    rng = np.random.default_rng(2)
    from lipsdp.network import Residual

    w = _orth(4, rng) * 0.5
    net = Network([Residual(Network([Affine(w), max_min(4)])), Affine(np.eye(4))])
    r = lipsdp.estimate(net)
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound * (1 + 1e-9)
    assert naive_bound(net) == pytest.approx(1.5, rel=1e-9)
    rr = lipsdp.estimate(net, method="residual-relu", lower=False)
    assert rr.certified and rr.bound >= r.bound * (1 - 1e-6)
