"""The rigorous PSD test and the certifier: they must reject what is not proved."""

import numpy as np
import pytest

from lipsdp.certify import certify, exact_rho, verify_psd
from lipsdp.sdp import build_feedforward
from lipsdp.solvers import solve

from .conftest import mlp


def test_verify_psd_accepts_definite_rejects_indefinite():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    ev = np.linspace(1e-3, 2.0, 50)
    assert verify_psd((q * ev) @ q.T).ok
    ev[0] = -1e-9  # barely indefinite: must be rejected
    assert not verify_psd((q * ev) @ q.T).ok
    # a singular PSD matrix cannot be proved (rounding could hide a negative eigenvalue)
    ev[0] = 0.0
    assert not verify_psd((q * ev) @ q.T).ok
    # a formation error larger than the smallest eigenvalue defeats the proof
    ev[0] = 1e-3
    assert not verify_psd((q * ev) @ q.T, formation_error=2e-3).ok
    assert not verify_psd(np.array([[1.0, np.nan], [np.nan, 1.0]])).ok


@pytest.mark.parametrize("power", [1.0, 0.5, 0.0])
def test_weighted_rounding_bound_still_rejects_what_is_not_psd(power):
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    d = np.diag(10.0 ** rng.uniform(-6, 6, size=40))  # badly scaled congruence
    for lam0 in (-1e-12, 0.0):  # (barely) indefinite or singular: never proved
        ev = np.linspace(1e-2, 1.0, 40)
        ev[0] = lam0
        z = d @ ((q * ev) @ q.T) @ d
        assert not verify_psd(z, power=power).ok
    ev = np.linspace(1e-2, 1.0, 40)
    assert verify_psd(d @ ((q * ev) @ q.T) @ d, power=power).ok or power == 1.0


def test_weighted_rounding_bound_proves_badly_scaled_matrices_the_uniform_one_cannot():
    # diag(1e5, 1e-5) congruence of a well-conditioned matrix: its smallest eigenvalue (~1e-11)
    # is far below gamma' * trace (~1e-4), but the diagonally weighted bound is ~1e-23 there
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    d = np.diag(np.r_[np.full(15, 1e5), np.full(15, 1e-5)])
    z = d @ ((q * np.linspace(0.1, 1.0, 30)) @ q.T) @ d
    dinv = np.diag(1.0 / np.diag(d))
    assert np.linalg.eigvalsh(dinv @ z @ dinv)[0] > 0.05  # PD (an eigensolver on z itself cannot tell)
    assert not verify_psd(z, power=1.0).ok
    assert verify_psd(z, power=0.0).ok


def test_exact_rho_one_layer_is_spectral_norm_squared():
    net = mlp([6, 4], seed=1)
    w = net.layers[0].weight
    lmis = build_feedforward(net.chain(), scale=False)
    rho, _ = exact_rho(lmis.certify, np.zeros(lmis.certify.n_vars))
    assert abs(rho - np.linalg.norm(w, 2) ** 2) < 1e-12 * rho


def test_perturbed_multipliers_are_caught():
    net = mlp([3, 8, 6, 2], seed=4)
    lmis = build_feedforward(net.chain())
    out = solve(lmis.solve, "cvxopt")
    good = certify(lmis.certify, out.y)
    assert good.certified
    # shrink one hidden layer's multipliers: the claimed rho no longer satisfies the LMI
    bad = out.y.copy()
    bad[1:9] *= 0.5
    z = lmis.certify.matrix(np.r_[out.y[0], bad[1:]])
    assert not verify_psd(z).ok  # the solver's claim with perturbed multipliers is refused
    cert_bad = certify(lmis.certify, bad)
    assert cert_bad.certified  # ... but the exact rho for those multipliers is still a valid, larger bound
    assert cert_bad.bound > good.bound * (1 + 1e-3)
    # negative multipliers are projected to zero, never used
    neg = out.y.copy()
    neg[1:] = -1.0
    c = certify(lmis.certify, neg)
    assert c.y is None or np.all(c.y[1:] >= 0)


def test_certified_bound_never_below_raw_truth_on_tight_case():
    # one hidden ReLU layer with nonnegative weights: J = W1 W0 on the all-active region is attained,
    # LipSDP is tight, so every certified value must be >= the true constant.
    rng = np.random.default_rng(5)
    from lipsdp.network import Activation, Affine, Network, activations

    w0, w1 = np.abs(rng.normal(size=(8, 3))), np.abs(rng.normal(size=(2, 8)))
    net = Network([Affine(w0), Activation(activations.relu(), 8), Affine(w1)])
    truth = np.linalg.norm(w1 @ w0, 2)
    lmis = build_feedforward(net.chain())
    for s in ("scs", "cvxopt", "sdpa"):
        out = solve(lmis.solve, s)
        c = certify(lmis.certify, out.y)
        assert c.certified and c.bound >= truth
        assert c.bound <= truth * (1 + 1e-4)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_interior_point_is_strictly_feasible(norm):
    net = mlp([4, 10, 7, 1], act="gelu", seed=6)
    lmis = build_feedforward(net.chain(), norm=norm)
    y0 = lmis.certify.interior_point()
    assert verify_psd(lmis.certify.matrix(y0)).ok
