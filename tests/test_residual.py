"""Residual networks: the whole network in one LMI, against closed forms, feedforward rewrites and patterns."""

import itertools

import numpy as np
import pytest

import lipsdp
from lipsdp.bounds.naive import naive_bound
from lipsdp.certify import certify
from lipsdp.certify.psd import verify_psd
from lipsdp.network import Activation, Affine, Network, Residual, activations
from lipsdp.sdp import build_dag, build_lmis
from lipsdp.sdp.dag import lower
from lipsdp.solvers import solve


def block(n, h, rng, act="relu", scale=1.0, skip=None, bias=0.1):
    w1 = scale * rng.standard_normal((h, n)) / np.sqrt(n)
    w2 = scale * rng.standard_normal((skip.out_dim if skip is not None else n, h)) / np.sqrt(h)
    branch = Network([Affine(w1, bias * rng.standard_normal(h)), Activation(getattr(activations, act)(), h),
                      Affine(w2, bias * rng.standard_normal(w2.shape[0]))])
    return Residual(branch, skip), (w1, w2)


def resnet(n0, h, nblocks, nout, seed, act="relu", scale=1.0):
    rng = np.random.default_rng(seed)
    layers, mats = [], []
    for _ in range(nblocks):
        b, m = block(n0, h, rng, act, scale)
        layers.append(b)
        mats.append(m)
    wo = rng.standard_normal((nout, n0))
    layers.append(Affine(wo))
    return Network(layers), mats, wo


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_zero_inner_weights_bound_is_skip_norm(norm):
    rng = np.random.default_rng(0)
    n, h = 5, 7
    zero_branch = Network([Affine(np.zeros((h, n)), rng.standard_normal(h)), Activation(activations.relu(), h),
                           Affine(np.zeros((n, h)))])
    p = rng.standard_normal((n, n))
    out = 0 if norm == "linf" else None
    for skip, truth in ((None, 1.0), (Affine(p), np.linalg.norm(p, 2) if norm == "l2" else np.abs(p[0]).sum())):
        net = Network([Residual(zero_branch, skip)])
        r = lipsdp.estimate(net, norm=norm, output=out, lower=False)
        assert r.certified
        assert truth * (1 - 1e-12) <= r.bound <= truth * (1 + 1e-6)
        assert r.naive_bound >= truth * (1 - 1e-12)


def _relu_trick_feedforward(mats, wo, n0):
    """The same function as the residual net, as one ReLU net: x is carried as relu(x) - relu(-x)."""
    layers, cur = [], np.eye(n0)
    for w1, w2 in mats:
        layers += [Affine(np.vstack([w1 @ cur, cur, -cur])), Activation(activations.relu(), w1.shape[0] + 2 * n0)]
        cur = np.hstack([w2, np.eye(n0), -np.eye(n0)])
    layers.append(Affine(wo @ cur))
    return Network(layers)


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("seed", [0, 1])
def test_residual_improves_on_feedforward_rewrite_and_stays_above_lower_bounds(norm, seed):
    rng = np.random.default_rng(seed)
    n0, h = 4, 6
    mats = [(rng.standard_normal((h, n0)) / 2, rng.standard_normal((n0, h)) / 2) for _ in range(2)]
    wo = rng.standard_normal((3, n0))
    res = Network([Residual(Network([Affine(a), Activation(activations.relu(), h), Affine(b)])) for a, b in mats]
                  + [Affine(wo)])
    ff = _relu_trick_feedforward(mats, wo, n0)
    x = rng.standard_normal((20, n0))
    assert np.allclose(res(x), ff(x), atol=1e-12)  # the same function
    out = 0 if norm == "linf" else None
    r = lipsdp.estimate(res, norm=norm, output=out)
    f = lipsdp.estimate(ff, norm=norm, output=out)
    assert r.certified and f.certified
    assert r.bound <= f.bound * (1 + 1e-6)
    assert r.bound >= max(r.lower_bound, f.lower_bound) * (1 - 1e-9)
    assert r.bound <= r.naive_bound * (1 + 1e-9)


def test_residual_agrees_with_linear_neuron_feedforward_form():
    # Carrying x through neurons with slope [1, 1] (free multipliers) is the same LMI family in
    # the limit of large multipliers: the residual LMI must be at most, and close to, its value.
    net, mats, wo = resnet(4, 6, 2, 3, seed=0)
    n0 = 4
    layers, cur = [], np.eye(n0)
    for w1, w2 in mats:
        h = w1.shape[0]
        slopes = np.vstack([np.tile([0.0, 1.0], (h, 1)), np.tile([1.0, 1.0], (n0, 1))])
        layers += [Affine(np.vstack([w1 @ cur, cur])), Activation(activations.relu(), h + n0, slopes=slopes)]
        cur = np.hstack([w2, np.eye(n0)])
    layers.append(Affine(wo @ cur))
    ff = Network(layers)
    r = lipsdp.estimate(net, solver="clarabel", lower=False)
    f = lipsdp.estimate(ff, solver="clarabel", lower=False)
    assert r.certified and f.certified
    assert r.bound <= f.bound * (1 + 1e-6)
    assert f.bound <= r.bound * (1 + 2e-3)


def test_covers_every_activation_pattern():
    # Every D in {0,1}^n satisfies the ReLU slope QC, so the bound must dominate ||J(D)|| for all of them.
    net, mats, wo = resnet(3, 4, 2, 2, seed=3)
    r = lipsdp.estimate(net, lower=False)
    worst = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=8):
        j = np.eye(3)
        for (w1, w2), d in zip(mats, (bits[:4], bits[4:])):
            j = (np.eye(3) + w2 @ (np.array(d)[:, None] * w1)) @ j
        worst = max(worst, np.linalg.norm(wo @ j, 2))
    assert r.certified and r.bound >= worst * (1 - 1e-9)
    assert r.bound <= worst * 1.5  # and it is not vacuous on this small net


def test_lowering_reproduces_the_function():
    # With zero biases, evaluating the lowered maps (sites in order, then the output map) is f itself;
    # covers nested residuals, projection skips, sparse weights and affine-only stretches.
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    inner, _ = block(5, 4, rng, act="tanh", bias=0.0)
    nested = Residual(Network([Affine(sp.random(5, 5, density=0.5, random_state=1)), inner,
                               Activation(activations.elu(), 5)]))
    proj, _ = block(5, 6, rng, act="softplus", skip=Affine(rng.standard_normal((3, 5))), bias=0.0)
    net = Network([Affine(rng.standard_normal((5, 4))), nested, Affine(np.eye(5) * 2), proj,
                   Activation(activations.relu(), 3), Affine(rng.standard_normal((2, 3)))])
    low = lower(net)
    x = rng.standard_normal((7, 4))
    xi = [x]
    for s in low.sites:
        v = sum(np.asarray(m @ xi[b].T).T for b, m in s.pre.items())
        xi.append(s.layer.forward(v))
    y = sum(np.asarray(m @ xi[b].T).T for b, m in low.out.items())
    assert np.allclose(y, net(x), atol=1e-12)
    assert [s.layer.size for s in low.sites] == [4, 5, 6, 3]


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_scaling_is_an_exact_change_of_variables(norm):
    # Big weights make the per-block scales nontrivial. With the multipliers mapped by var_scale,
    # the unscaled LMI must be exactly K * S Z_scaled S (S = diag(1 / sigma_b), K = sigma_out^2 for
    # l2, sigma_out for l-inf): a congruence, so both certify the same bound.
    net, _, _ = resnet(3, 5, 2, 1, seed=5, scale=40.0)
    scaled = build_dag(net, norm=norm)
    plain = build_dag(net, norm=norm, scale=False)
    lmi = scaled.certify
    sig, s_out = lmi.meta["block_scales"], lmi.meta["output_scale"]
    assert max(sig) > 1.0 and s_out > 1.0
    y = solve(scaled.solve, "cvxopt").y
    first = lmi.meta["first_xi_block"]
    d = np.concatenate([np.ones(first)] + [np.full(hi - lo, 1.0 / sig[k])
                                           for k, (lo, hi) in enumerate(lmi.blocks[first:])])
    k_fac = s_out ** 2 if norm == "l2" else s_out
    assert np.array_equal(plain.certify.matrix(y * lmi.var_scale), k_fac * (d[:, None] * lmi.matrix(y) * d[None, :]))
    c_scaled, c_plain = certify(lmi, y), certify(plain.certify, y * lmi.var_scale)
    assert c_scaled.certified and c_plain.certified
    # the unscaled matrix spans 1e13: its rounding margins cost more, which is why we scale
    assert abs(c_scaled.bound - c_plain.bound) <= 1e-3 * c_plain.bound


def test_l2_input_reduction_is_exact():
    net = Network([Affine(np.random.default_rng(6).standard_normal((3, 12))), *resnet(3, 4, 2, 2, seed=6)[0].layers])
    pair = build_dag(net, norm="l2")
    assert pair.solve.size < pair.certify.size  # 12 inputs read only through a rank-3 map
    full = build_dag(net, norm="l2", reduce_input=False)
    a = certify(pair.certify, solve(pair.solve, "cvxopt").y)
    b = certify(full.certify, solve(full.solve, "cvxopt").y)
    assert a.certified and b.certified and abs(a.bound - b.bound) <= 1e-6 * b.bound


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_interior_point_is_strictly_feasible(norm):
    net, _, _ = resnet(3, 5, 2, 1, seed=7, act="gelu")
    pair = build_lmis(net, norm, "neuron")
    y0 = pair.certify.interior_point()
    assert verify_psd(pair.certify.matrix(y0)).ok


def test_dispatch_and_naive_bound():
    net, mats, wo = resnet(4, 5, 3, 2, seed=8)
    assert build_lmis(net, "l2", "neuron").certify.meta["block_scales"] is not None
    naive = naive_bound(net, "l2")
    expect = np.prod([1 + np.linalg.norm(w1, 2) * np.linalg.norm(w2, 2) for w1, w2 in mats]) * np.linalg.norm(wo, 2)
    assert expect * (1 - 1e-12) <= naive <= expect * (1 + 1e-9)
