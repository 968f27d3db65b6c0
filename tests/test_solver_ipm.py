"""The structure-exploiting interior-point solver ("ipm") against cvxpy backends and closed forms."""

import numpy as np
import pytest
import scipy.sparse as sp

import lipsdp
from lipsdp.certify import certify
from lipsdp.network import Affine, Implicit, Network, activations
from lipsdp.sdp import build_lmis
from lipsdp.sdp.lmi import LMI, AtomBlock
from lipsdp.solvers import AUTO_ORDER, available_solvers, resolve_solver, solve
from lipsdp.solvers.ipm import solve_ipm

from .conftest import mlp
from .test_residual import resnet


def _reference_backend():
    for s in ("cvxopt", "clarabel", "sdpa", "mosek"):
        if s in available_solvers():
            return s
    pytest.skip("no accurate cvxpy backend installed")


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


CASES = [
    ("mlp-l2-neuron", lambda: mlp([4, 12, 10, 3], seed=1), "l2", "neuron", None),
    ("mlp-l2-layer", lambda: mlp([4, 12, 10, 3], seed=2), "l2", "layer", None),
    ("mlp-linf-neuron", lambda: mlp([4, 12, 10, 2], seed=3), "linf", "neuron", np.array([[1.0, -1.0]])),
    ("mlp-linf-layer", lambda: mlp([4, 12, 10, 2], seed=4), "linf", "layer", np.array([[1.0, 0.0]])),
    ("tanh-l2-neuron", lambda: mlp([3, 9, 7, 2], act="tanh", seed=5), "l2", "neuron", None),
    ("resnet-l2", lambda: resnet(4, 6, 2, 2, seed=6)[0], "l2", "neuron", None),
    ("resnet-linf", lambda: resnet(4, 6, 2, 1, seed=7)[0], "linf", "neuron", None),
]


@pytest.mark.parametrize("name,make,norm,method,c", CASES, ids=[c[0] for c in CASES])
def test_agrees_with_cvxpy_backend_and_certifies(name, make, norm, method, c):
    ref_backend = _reference_backend()
    lmis = build_lmis(make(), norm, method, c)
    out = solve_ipm(lmis.solve)
    assert out.status == "optimal", out.raw_status
    ref = solve(lmis.solve, ref_backend)
    assert ref.status in ("optimal", "optimal_inaccurate")
    assert _rel(out.objective, ref.objective) <= 1e-6, (out.objective, ref.objective)
    cert = certify(lmis.certify, out.y)
    assert cert.certified
    # certification (exact rho for these multipliers) loses nothing measurable: ipm iterates are
    # strictly feasible; and no certified bound can be below the SDP optimum
    raw = lmis.solve.bound_from_rho(out.objective)
    assert cert.bound <= raw * (1 + 1e-7)
    assert cert.bound >= lmis.solve.bound_from_rho(ref.objective) * (1 - 1e-6)


def test_implicit_layer_agrees():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 6))
    w *= 0.5 / np.linalg.norm(w, 2)
    net = Network([Implicit(w, rng.standard_normal((6, 3)), rng.standard_normal(6), rng.standard_normal((2, 6)),
                            None, activations.tanh())])
    lmis = build_lmis(net, "l2", "neuron")
    out = solve_ipm(lmis.solve)
    ref = solve(lmis.solve, _reference_backend())
    assert out.status == "optimal"
    assert _rel(out.objective, ref.objective) <= 1e-6
    assert certify(lmis.certify, out.y).certified


def test_single_linear_layer_is_spectral_norm():
    w = np.random.default_rng(1).standard_normal((5, 7))
    r = lipsdp.estimate(Network([Affine(w)]), solver="ipm", lower=False)
    s = np.linalg.norm(w, 2)
    assert r.certified and r.status == "optimal" and r.solver == "ipm"
    assert s <= r.bound <= s * (1 + 1e-6)


def test_linf_scalar_linear_map_is_l1_norm():
    c = np.array([[0.3, -1.7, 2.25, 0.0, -0.01]])
    r = lipsdp.estimate(Network([Affine(c)]), norm="linf", solver="ipm", lower=False)
    l1 = np.abs(c).sum()
    assert r.certified and r.status == "optimal"
    assert l1 <= r.bound <= l1 * (1 + 1e-6)


def test_auto_picks_ipm_and_certifies():
    assert AUTO_ORDER[0] == "ipm" and available_solvers()[0] == "ipm"
    net = mlp([3, 10, 8, 2], seed=11)
    r = lipsdp.estimate(net)
    assert r.solver == "ipm" and r.status == "optimal" and r.certified
    assert r.lower_bound <= r.bound <= r.naive_bound


def test_deterministic():
    lmi = build_lmis(mlp([5, 14, 9, 2], seed=8), "l2", "neuron").solve
    a, b = solve_ipm(lmi), solve_ipm(lmi)
    assert a.status == "optimal"
    assert np.array_equal(a.y, b.y)


def _bad_lmi():
    """Z(y) = [[rho, 0], [0, -1]]: no y makes Z positive semidefinite."""
    g = sp.identity(2, format="csr")
    return LMI(G=g, blocks=[(0, 1), (1, 2)], block_names=["x0", "x1"],
               atoms=[AtomBlock([[0]], [[[1.0]]])], constant_atoms=[AtomBlock([[1]], [[[-1.0]]])],
               tying=sp.csr_matrix(np.ones((1, 1))), nonneg=np.array([True]), owner=np.array([0]),
               interior_dir=np.array([0.0]), rho_coeff=1.0, bound_kind="sqrt")


def test_infeasible_problem_has_a_clear_status():
    out = solve_ipm(_bad_lmi())
    assert out.status == "infeasible" and out.y is None
    assert "feasible" in out.raw_status


def test_auto_falls_back_to_cvxpy_when_ipm_fails(monkeypatch):
    from lipsdp import solvers
    from lipsdp.solvers import SolveOutput

    lmi = build_lmis(mlp([3, 6, 2], seed=4), "l2", "neuron").solve
    broken = solvers.BACKENDS["ipm"]
    monkeypatch.setattr(broken, "solve", lambda lmi, verbose=False, **kw: SolveOutput(None, "max_iter", None, 0.0, "ipm",
                                                                                     "iteration limit"))
    out = solve(lmi, "auto")
    assert out.solver != "ipm" and out.status in ("optimal", "optimal_inaccurate")
    assert out.info["fallback_from"][0][0] == "ipm"


def test_options_for_other_backends_skip_ipm_under_auto():
    assert resolve_solver("ipm") == "ipm"
    lmi = build_lmis(mlp([3, 6, 2], seed=4), "l2", "neuron").solve
    if "scs" not in available_solvers():
        pytest.skip("scs not installed")
    out = solve(lmi, "auto", eps_abs=1e-6) if available_solvers()[1] == "scs" else None
    if out is not None:
        assert out.solver == "scs"
    with pytest.raises(ValueError):
        solve_ipm(lmi, eps_abs=1e-6)


def test_trained_maxmin_net_ipm_agrees_with_cvxopt():
    """Regression: a MaxMin MLP trained on 14x14 MNIST digits (the conservativeness notebook's depth-3
    net). The centred start X = mu Z^-1 violated the primal equations by 6.7e14 there, the ipm stalled
    and reported 'optimal_inaccurate' at a useless point; now the plain start is kept and it converges."""
    from pathlib import Path

    from lipsdp.network.group import max_min
    from lipsdp.solvers.cvxpy_backend import installed_cvxpy_backends

    data = np.load(Path(__file__).parent / "data" / "maxmin_196_32x3_10.npz")
    layers = []
    for k in range(4):
        layers.append(Affine(data[f"W{k}"], data[f"b{k}"]))
        if k < 3:
            layers.append(max_min(32))
    net = Network(layers)
    r = lipsdp.estimate(net, solver="ipm", lower=False)
    assert r.status == "optimal" and r.solver == "ipm"
    assert r.bound < 0.75 * r.naive_bound  # measured 46.28 vs naive 66.82
    if "cvxopt" in installed_cvxpy_backends():
        ref = lipsdp.estimate(net, solver="cvxopt", lower=False)
        assert r.bound == pytest.approx(ref.bound, rel=1e-5)


@pytest.mark.parametrize("kind", ["runs", "permutation", "repeated"])
def test_gather_matches_fancy_indexing(kind):
    # the slice-based gathers of the ipm (K~ products, selection tiles) against plain numpy indexing
    from lipsdp.solvers.ipm import _Gather

    rng = np.random.default_rng(3)
    n = 300
    if kind == "runs":  # a few contiguous runs, as the expanded-signal ordering produces
        idx = np.concatenate([np.arange(200, 300), np.arange(0, 150), np.arange(150, 200)])
    elif kind == "permutation":  # too many runs: the fancy-indexing path
        idx = rng.permutation(n)
    else:
        idx = np.concatenate([np.arange(0, 150), np.arange(100, 250)])
    g = _Gather(idx)
    assert (g.runs is not None) == (kind != "permutation")
    h = rng.standard_normal((n, n))
    scale = rng.standard_normal(idx.size)
    np.testing.assert_allclose(g.rows(h, scale), scale[:, None] * h[idx], rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.cols(h, scale), scale[None, :] * h[:, idx], rtol=0, atol=1e-15)
    base = rng.standard_normal((idx.size, n))
    out = base.copy()
    g.rows(h, scale, out=out)
    np.testing.assert_allclose(out, base + scale[:, None] * h[idx], atol=1e-14)
    b = rng.standard_normal((idx.size, 7))
    acc = np.zeros((n, 7))
    g.scatter_add(acc, b, scale)
    ref = np.zeros((n, 7))
    np.add.at(ref, idx, scale[:, None] * b)
    np.testing.assert_allclose(acc, ref, atol=1e-14)


@pytest.mark.parametrize("pieces", ["dense", "csr"])
def test_operator_matches_lmi_matrix(pieces):
    # A(y) = G_e^T diag(Q y) (K~ G_e), assembled tile by tile, against the LMI's own sparse assembly
    import scipy.sparse as sparse

    from lipsdp.solvers.ipm import _Structure

    lmi = build_lmis(mlp([6, 20, 15, 3], seed=11), "l2", "neuron").solve
    st = _Structure(lmi)
    if pieces == "csr":  # the large-problem form (pieces made dense one at a time)
        st._kg_pieces = [p and (p[0], p[1], sparse.csr_matrix(p[2])) for p in st._kg_pieces]
    y = np.random.default_rng(0).uniform(0.1, 2.0, lmi.n_vars)
    ref = lmi.matrix(y, constant=False)
    np.testing.assert_allclose(st.op(y), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_inverse_and_step_length_kernels():
    from lipsdp.solvers.ipm import _chol, _inv_from_chol, _min_eig_scaled

    rng = np.random.default_rng(5)
    n = 150
    a = rng.standard_normal((n, n))
    x = a @ a.T / n + 0.1 * np.eye(n)
    lx = _chol(x)
    np.testing.assert_allclose(_inv_from_chol(lx), np.linalg.inv(x), rtol=1e-9, atol=1e-9)
    d = rng.standard_normal((n, n))
    d = d + d.T
    li = np.linalg.inv(lx)
    lam_ref = np.linalg.eigvalsh(li @ d @ li.T)[0]
    # Lanczos (ARPACK tol 1e-2): a Ritz value, never below the true minimum, within 1 % of it
    lam = _min_eig_scaled(lx, d, n, tol=1e-2)
    assert lam_ref - 1e-9 * abs(lam_ref) <= lam <= lam_ref + 1e-2 * abs(lam_ref)
    assert _min_eig_scaled(lx, lambda v: d @ v, n, tol=1e-2) == pytest.approx(lam, rel=1e-12)
    small = 20  # the dense path
    assert _min_eig_scaled(lx[:small, :small], d[:small, :small], small) == pytest.approx(
        np.linalg.eigvalsh(li[:small, :small] @ d[:small, :small] @ li[:small, :small].T)[0], rel=1e-10)


def test_thread_option_is_applied_and_does_not_change_the_result(monkeypatch):
    from threadpoolctl import threadpool_info

    import lipsdp.solvers.ipm as ipm

    lmi = build_lmis(mlp([5, 14, 9, 2], seed=8), "l2", "neuron").solve
    seen = []
    orig = ipm._solve

    def spy(*args):
        seen.append(max(d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"))
        return orig(*args)

    monkeypatch.setattr(ipm, "_solve", spy)
    a = solve_ipm(lmi)  # N = 28 < SINGLE_THREAD_BELOW_N: one BLAS thread
    b = solve_ipm(lmi, threads=1)
    assert seen == [1, 1]
    assert np.array_equal(a.y, b.y)
