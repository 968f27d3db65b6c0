"""Real residual networks: the paper's residual MaxMin nets (../shared/paper-weights) and resnet_2b.onnx."""

import importlib.util

import numpy as np
import pytest

import lipsdp
from lipsdp.bounds.naive import naive_bound
from lipsdp.network import Affine, Network, Residual

from .conftest import shared_path


def _maxmin():
    return pytest.importorskip("lipsdp.network.group", reason="the MaxMin layer (LipSDP-NSR, issue 4) is not in "
                               "this build yet").max_min


def _resweights(width: int):
    import scipy.io as sio

    cells = sio.loadmat(shared_path("paper-weights", f"resweights_5_{width}.mat"))["W"].ravel(order="F")
    return [np.asarray(w, dtype=np.float64) for w in cells]


def _blocks(ws, max_min):
    """x_{k+1} = x_k + MaxMin(W_k x_k) (MaxMin on consecutive pairs)."""
    return [Residual(Network([Affine(w), max_min(w.shape[0])])) for w in ws]


def test_resweights_5_32_paper_formulation_and_naive():
    # The paper's LMI keeps W_first and W_last outside: L = sqrt(rho) ||W_first|| ||W_last|| with the
    # residual blocks alone inside; reference 33.0425 (S = P = 0), matrix-norm product 55.6488.
    max_min = _maxmin()
    ws = _resweights(32)
    inner = Network(_blocks(ws[1:-1], max_min))
    r = lipsdp.estimate(inner, lower=False)
    assert r.certified
    outer = np.linalg.norm(ws[0], 2) * np.linalg.norm(ws[-1], 2)
    assert r.bound * outer == pytest.approx(33.0425, rel=1e-3)
    full = Network([Affine(ws[0])] + _blocks(ws[1:-1], max_min) + [Affine(ws[-1])])
    assert naive_bound(full, "l2") == pytest.approx(55.6488, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("width", [32, 64])
def test_resweights_whole_network_in_one_lmi(width):
    # With W_first and W_last inside the LMI the bound can only improve on the paper's product form
    # (23.18 against 33.04 for width 32, measured), and it must stay above the empirical lower bound.
    max_min = _maxmin()
    ws = _resweights(width)
    full = Network([Affine(ws[0])] + _blocks(ws[1:-1], max_min) + [Affine(ws[-1])])
    r = lipsdp.estimate(full)
    paper = lipsdp.estimate(Network(_blocks(ws[1:-1], max_min)), lower=False)
    assert r.certified and paper.certified
    assert r.lower_bound <= r.bound <= paper.bound * np.linalg.norm(ws[0], 2) * np.linalg.norm(ws[-1], 2) * (1 + 1e-6)
    assert r.bound <= r.naive_bound


def _onnx_net():
    if importlib.util.find_spec("lipsdp.extract.onnx") is None:
        pytest.skip("the ONNX extractor (issue 3) is not in this build yet")
    pytest.importorskip("onnx")
    path = shared_path("nets", "resnet_2b.onnx")
    return path, lipsdp.extract(str(path))


def test_resnet_2b_extracts_residual_blocks_and_matches_onnx():
    import onnx
    from onnx.reference import ReferenceEvaluator

    path, net = _onnx_net()
    assert sum(isinstance(layer, Residual) for layer in net.layers) == 2
    model = onnx.load(str(path))
    ref = ReferenceEvaluator(model)
    name = model.graph.input[0].name
    x = np.random.default_rng(0).uniform(0, 1, size=(3, 3, 32, 32)).astype(np.float32)
    want = np.concatenate([np.asarray(ref.run(None, {name: x[i:i + 1]})[0]).reshape(1, -1) for i in range(3)])
    assert np.allclose(net(x.reshape(3, -1).astype(np.float64)), want, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_resnet_2b_bound_or_size_guard():
    _, net = _onnx_net()
    try:
        r = lipsdp.estimate(net, output=0, norm="linf")
    except lipsdp.ProblemTooLargeError as exc:
        assert "memory" in str(exc).lower() or "size" in str(exc).lower()
        return
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound
