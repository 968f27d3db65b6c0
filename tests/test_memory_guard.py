"""Size and memory guard: the structural LMI estimate against the LMI actually built; clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

import lipsdp
from lipsdp.errors import ProblemTooLargeError
from lipsdp.sdp import build_lmis
from lipsdp.solvers.memory import available_memory, check_fits, estimate_memory, lmi_dimensions

from .conftest import mlp, shared_path


@pytest.mark.parametrize("dims,norm,method", [([6, 20, 20, 3], "l2", "neuron"), ([30, 10, 12, 2], "l2", "neuron"),
                                              ([6, 20, 20, 3], "l2", "layer"), ([5, 8, 7, 1], "linf", "neuron")])
def test_dimensions_match_the_built_lmi(dims, norm, method):
    net = mlp(dims, seed=1)
    d = lmi_dimensions(net, norm, method)
    pair = build_lmis(net, norm, method, None if norm == "l2" else np.eye(dims[-1])[:1])
    assert d.n_solve == pair.solve.size
    assert d.n_certify == pair.certify.size
    assert d.n_vars == pair.solve.n_vars
    f, _ = pair.solve.basis()
    assert 0.25 <= d.nnz / f.nnz <= 4.0  # nonzeros right within a small factor


def test_refusal_names_size_estimate_and_options():
    net = mlp([20, 30, 30, 4], seed=0)
    with pytest.raises(ProblemTooLargeError) as err:
        lipsdp.estimate(net, solver="cvxopt", memory_limit=1e6, lower=False)
    msg = str(err.value)
    assert "order N = 80" in msg and "GiB" in msg and "Options:" in msg and "split" in msg
    info = check_fits(net, "l2", "neuron", "cvxopt", limit=float("inf"))
    assert info["n_solve"] == 80 and info["estimate_bytes"] == estimate_memory(lmi_dimensions(net), "cvxopt")


def test_available_memory_is_positive():
    assert available_memory() > 0


@pytest.mark.parametrize("fname", ["Convnet_avgpool.onnx", "resnet_2b.onnx", "cifar10_small.onnx"])
def test_big_shared_nets_are_refused_not_killed(fname):
    pytest.importorskip("onnx")
    path = shared_path("nets", fname)
    with pytest.raises(ProblemTooLargeError, match="order N = "):
        lipsdp.estimate(str(path), solver="cvxopt", memory_limit=24 * 2**30, lower=False)


def test_auto_moves_to_a_backend_that_fits():
    net = mlp([20, 30, 30, 4], seed=0)
    d = lmi_dimensions(net)
    est = {s: estimate_memory(d, s) for s in lipsdp.available_solvers()}
    first = lipsdp.available_solvers()[0]
    smaller = [s for s in lipsdp.available_solvers() if est[s] < est[first]]
    if not smaller:
        pytest.skip("no backend with a smaller estimate than the auto choice")
    limit = max(est[s] for s in smaller)
    info = check_fits(net, "l2", "neuron", first, limit=limit, auto=True)
    assert info["solver"] != first and est[info["solver"]] <= limit
    with pytest.raises(ProblemTooLargeError, match=f"solver='{info['solver']}'"):
        check_fits(net, "l2", "neuron", first, limit=limit)  # an explicit choice is not overridden
