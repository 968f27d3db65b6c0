"""Implicit (equilibrium) layers: well-posedness, the equilibrium and its derivatives, and their LipSDP bounds."""

import numpy as np
import pytest

import lipsdp
from lipsdp.bounds.naive import naive_bound
from lipsdp.certify.psd import verify_psd
from lipsdp.errors import InfeasibleSDPError, InvalidNetworkError, NotWellPosedError
from lipsdp.network import Activation, Affine, Implicit, Network, Residual, activations
from lipsdp.sdp import build_lmis


def triangular_pair(seed=0, n0=4, h1=6, h2=5, no=3, gain=2.0):
    """An implicit layer with strictly block lower triangular W and its unrolled feedforward net."""
    rng = np.random.default_rng(seed)
    u1, w21, c2 = rng.standard_normal((h1, n0)), gain * rng.standard_normal((h2, h1)), rng.standard_normal((no, h2))
    b = rng.standard_normal(h1 + h2)
    w = np.zeros((h1 + h2, h1 + h2))
    w[h1:, :h1] = w21
    u = np.vstack([u1, np.zeros((h2, n0))])
    c = np.hstack([np.zeros((no, h1)), c2])
    imp = Network([Implicit(w, u, b, c, None, activations.relu())])
    ff = Network([Affine(u1, b[:h1]), Activation(activations.relu(), h1), Affine(w21, b[h1:]),
                  Activation(activations.relu(), h2), Affine(c2)])
    return imp, ff


def small_implicit(seed=0, n0=4, n=7, no=2, w_norm=0.5, act="tanh", feedthrough=True):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, n))
    w *= w_norm / np.linalg.norm(w, 2)
    d = rng.standard_normal((no, n0)) * 0.3 if feedthrough else None
    return Implicit(w, rng.standard_normal((n, n0)), rng.standard_normal(n), rng.standard_normal((no, n)), d,
                    getattr(activations, act)())


def test_equilibrium_and_derivatives():
    rng = np.random.default_rng(1)
    for layer in (small_implicit(w_norm=0.9), small_implicit(act="relu", w_norm=0.5),
                  Implicit(-3.0 * np.eye(5) + 0.5 * rng.standard_normal((5, 5)), rng.standard_normal((5, 3)),
                       rng.standard_normal(5), rng.standard_normal((2, 5)), None, activations.relu())):
        x = rng.standard_normal((6, layer.in_dim))
        z = layer.equilibrium(x)
        resid = z - layer.activation.forward(z @ layer.W.T + x @ layer.U.T + layer.b)
        assert np.max(np.abs(resid)) <= layer.tol * max(1.0, np.max(np.abs(z)))
        d = rng.standard_normal(x.shape)
        h = 1e-6
        fd = (layer.forward(x + h * d) - layer.forward(x - h * d)) / (2 * h)
        assert np.allclose(layer.jvp(x, d), fd, atol=1e-6)
        g = rng.standard_normal((6, layer.out_dim))
        assert np.allclose(np.sum(layer.vjp(x, g) * d, axis=1), np.sum(g * layer.jvp(x, d), axis=1), atol=1e-12)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_triangular_implicit_equals_unrolled_feedforward(norm):
    imp, ff = triangular_pair()
    x = np.random.default_rng(2).standard_normal((10, 4))
    assert np.allclose(imp(x), ff(x), atol=1e-12)
    out = 0 if norm == "linf" else None
    ri = lipsdp.estimate(imp, norm=norm, output=out, lower=False)
    rf = lipsdp.estimate(ff, norm=norm, output=out, lower=False)
    assert ri.certified and rf.certified
    assert abs(ri.bound - rf.bound) <= 1e-5 * rf.bound
    # needs non-uniform multipliers: the uniform direction does not make the z block definite
    assert imp.layers[0].well_posedness().how == "phase-one SDP"


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_small_feedback_bounded_by_contraction_bound(norm, act):
    net = Network([small_implicit(act=act, w_norm=0.4)])
    out = 1 if norm == "linf" else None
    r = lipsdp.estimate(net, norm=norm, output=out)
    assert r.certified
    assert r.naive_bound is not None and r.bound <= r.naive_bound * (1 + 1e-9)
    assert r.lower_bound <= r.bound * (1 + 1e-9)
    assert r.bound <= 1.5 * r.lower_bound  # not vacuous


def test_naive_contraction_bound_closed_form():
    layer = small_implicit(w_norm=0.5, act="relu")
    norms = [np.linalg.norm(m, 2) for m in (layer.C, layer.U, layer.D)]
    expect = norms[0] * norms[1] / (1 - 0.5) + norms[2]
    got = naive_bound(Network([layer]), "l2")
    assert expect * (1 - 1e-12) <= got <= expect * (1 + 1e-9)
    strong = Implicit(-3.0 * np.eye(3), np.ones((3, 2)), None, None, None, activations.relu())
    assert naive_bound(Network([strong]), "l2") is None  # not a contraction: no naive bound


def test_monotone_but_not_contractive_is_bounded():
    # ||W|| = 3 (no contraction), but 2 Lam - Lam W - W^T Lam > 0: well-posed, and LipSDP bounds it.
    rng = np.random.default_rng(3)
    w = -3.0 * np.eye(5) + 0.3 * rng.standard_normal((5, 5))
    net = Network([Implicit(w, rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal((2, 5)),
                            None, activations.relu())])
    for norm, out in (("l2", None), ("linf", 0)):
        r = lipsdp.estimate(net, norm=norm, output=out)
        assert r.certified and r.naive_bound is None
        assert r.lower_bound <= r.bound * (1 + 1e-9)


def test_ill_posed_layer_raises_the_specific_error():
    rng = np.random.default_rng(4)
    layer = Implicit(2.0 * np.eye(4), rng.standard_normal((4, 3)), np.ones(4), None, None, activations.relu())
    net = Network([layer])  # construction only validates shapes
    for call in (lambda: lipsdp.estimate(net), lambda: net(rng.standard_normal((2, 3)))):
        with pytest.raises(NotWellPosedError, match=r"2 Lam - Lam W - W\^T Lam > 0.*t\* = .*-2.*real part < 1"):
            call()


def test_layer_multipliers_that_cannot_certify_say_so():
    imp, _ = triangular_pair(gain=3.0)
    with pytest.raises(InfeasibleSDPError, match="method='neuron'"):
        lipsdp.estimate(imp, method="layer")


def test_bad_shapes_are_named():
    with pytest.raises(InvalidNetworkError, match=r"layer 0 .*U has shape \(3, 2\), expected \(4, 2\)"):
        Network([Implicit(np.zeros((4, 4)), np.zeros((3, 2)), None, None, None, activations.relu())])
    with pytest.raises(InvalidNetworkError, match="needs its activation"):
        Implicit(np.zeros((2, 2)), np.zeros((2, 2)))
    w = np.zeros((2, 2))
    w[0, 0] = np.nan
    with pytest.raises(InvalidNetworkError, match="W has NaN"):
        Network([Implicit(w, np.zeros((2, 2)), None, None, None, activations.relu())])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_interior_point_uses_the_well_posedness_direction(norm):
    imp, _ = triangular_pair(gain=3.0, no=1)
    pair = build_lmis(imp, norm, "neuron")
    y0 = pair.certify.interior_point()
    assert verify_psd(pair.certify.matrix(y0)).ok


def test_implicit_inside_a_larger_network():
    rng = np.random.default_rng(5)
    imp = small_implicit(seed=5, n0=6, n=5, no=6, w_norm=0.7, act="relu")
    branch = Network([imp, Activation(activations.tanh(), 6), Affine(rng.standard_normal((6, 6)) / 3)])
    net = Network([Affine(rng.standard_normal((6, 4))), Residual(branch), Activation(activations.relu(), 6),
                   Affine(rng.standard_normal((2, 6)))])
    r = lipsdp.estimate(net)
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound * (1 + 1e-9)


def test_group_activation_implicit_layer():
    group = pytest.importorskip("lipsdp.network.group", reason="MaxMin (LipSDP-NSR) is not in this build yet")
    rng = np.random.default_rng(6)
    w = rng.standard_normal((6, 6))
    w *= 0.6 / np.linalg.norm(w, 2)
    net = Network([Implicit(w, rng.standard_normal((6, 3)), rng.standard_normal(6), rng.standard_normal((2, 6)),
                            None, group.max_min(6))])
    r = lipsdp.estimate(net)
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound * (1 + 1e-9)
