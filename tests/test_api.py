"""The public API: result object, errors, output selection, solver selection."""

import json

import numpy as np
import pytest

import lipsdp
from lipsdp.errors import SolverLicenseError, SolverUnavailableError, UnsupportedNormError
from lipsdp.network import Affine, Network
from lipsdp.solvers import mosek_license_status

from .conftest import mlp


def test_result_fields_and_json():
    r = lipsdp.estimate(mlp([3, 8, 2], seed=0))
    for key in ("bound", "certified", "raw_bound", "naive_bound", "lower_bound", "norm", "method", "solver",
                "status", "time", "multipliers"):
        assert hasattr(r, key)
    assert r.certified and r.status in lipsdp.STATUSES
    assert set(r.time) >= {"build", "solve", "certify", "naive", "lower", "total"}
    d = json.loads(r.to_json())
    assert d["bound"] == r.bound and d["certified"] is True
    assert isinstance(d["multipliers"]["layer 1 (relu(8))"], list)
    assert "certified upper bound" in r.summary() and "certified=True" in repr(r)


def test_multipliers_prove_the_bound_in_original_units():
    # the reported multipliers are those of the unscaled network's LMI: check with an independent assembly
    net = mlp([2, 6, 1], seed=2, scale=37.0)
    r = lipsdp.estimate(net, lower=False)
    lam = r.multipliers["layer 1 (relu(6))"]
    rho = r.multipliers["rho"]
    w0, w1 = net.layers[0].weight, net.layers[2].weight
    t = np.diag(lam)
    m = np.block([[-rho * np.eye(2), w0.T @ t], [t @ w0, -2 * t + w1.T @ w1]])
    assert np.linalg.eigvalsh(m).max() <= 1e-9 * rho
    assert abs(np.sqrt(rho) - r.bound) <= 1e-12 * r.bound


def test_output_selection():
    net = mlp([4, 10, 3], seed=3)
    full = lipsdp.estimate(net, lower=False).bound
    one = lipsdp.estimate(net, output=1, lower=False)
    diff = lipsdp.estimate(net, output=[[1.0, -1.0, 0.0]], lower=False)
    assert one.bound <= full * (1 + 1e-6)
    assert diff.bound <= 2 * full
    assert one.output == "output 1"
    with pytest.raises(ValueError, match="out of range"):
        lipsdp.estimate(net, output=5)
    with pytest.raises(ValueError, match="columns"):
        lipsdp.estimate(net, output=np.ones((1, 2)))


def test_bad_arguments():
    net = Network([Affine(np.eye(2))])
    with pytest.raises(UnsupportedNormError, match="l1"):
        lipsdp.estimate(net, norm="l1")
    with pytest.raises(ValueError, match="unknown method"):
        lipsdp.estimate(net, method="network")
    with pytest.raises(SolverUnavailableError, match="unknown solver"):
        lipsdp.estimate(net, solver="gurobi")
    with pytest.raises(lipsdp.InvalidNetworkError, match="cannot extract"):
        lipsdp.estimate([np.eye(2)])
    with pytest.raises(FileNotFoundError):
        lipsdp.estimate("/nonexistent/net.onnx")


def test_mosek_without_license_is_a_clear_error():
    why = mosek_license_status()
    if why is None:
        pytest.skip("MOSEK is licensed on this machine")
    with pytest.raises(SolverUnavailableError) as exc:
        lipsdp.estimate(Network([Affine(np.eye(2))]), solver="mosek")
    if "not installed" not in str(exc.value):
        assert isinstance(exc.value, SolverLicenseError) and "license" in str(exc.value)
    assert "mosek" not in lipsdp.available_solvers()


def test_solver_failure_falls_back_to_certified_interior_point(monkeypatch):
    from lipsdp import api
    from lipsdp.solvers import SolveOutput

    monkeypatch.setattr(api, "solve", lambda lmi, name, verbose=False, **kw: SolveOutput(None, "infeasible", None, 0.0, name, "infeasible"))
    net = mlp([3, 6, 2], seed=4)
    r = lipsdp.estimate(net)
    assert r.status == "fallback" and r.certified
    good = lipsdp.estimate(net, lower=False)
    monkeypatch.undo()
    # any certified feasible point bounds from above the SDP optimum, which bounds the truth
    assert r.lower_bound <= good.bound <= r.bound * (1 + 1e-7)


def test_naive_bound_returned_when_the_sdp_certificate_is_looser(monkeypatch):
    """A certified SDP bound above the (proved) naive bound is never reported: status 'naive'."""
    from lipsdp import api

    net = mlp([4, 8, 8, 3], seed=5)
    honest = lipsdp.estimate(net, lower=False)
    assert honest.status in ("optimal", "inaccurate") and honest.bound <= honest.naive_bound
    real = api._solve_and_certify

    def inflated(*args, **kwargs):  # a certificate that is valid but far too loose (as after a big repair)
        run = real(*args, **kwargs)
        run["cert"].bound *= 1e3
        return run

    monkeypatch.setattr(api, "_solve_and_certify", inflated)
    r = lipsdp.estimate(net, lower=False)
    assert r.status == "naive" and r.certified and r.bound == r.naive_bound
    assert r.details["sdp_bound"] == pytest.approx(1e3 * honest.bound, rel=1e-6)
    assert "product-of-norms" in r.message and r.status in lipsdp.STATUSES


def test_verbose_accepted_in_solver_options(capsys):
    # solver_options={"verbose": True} used to clash with estimate's own verbose argument
    net = mlp([3, 8, 2], seed=0)
    quiet = lipsdp.estimate(net, solver="ipm", lower=False)
    loud = lipsdp.estimate(net, solver="ipm", lower=False, solver_options={"verbose": True})
    assert "ipm" in capsys.readouterr().out
    assert loud.bound == quiet.bound
