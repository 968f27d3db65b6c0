"""User-declared activations: lipsdp.register_activation (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest

import lipsdp
from lipsdp.errors import SlopeRefutedError

torch = pytest.importorskip("torch")
nn = torch.nn


class MyReLU(nn.Module):
    def forward(self, x):
        return torch.clamp(x, min=0.0)


class HalfReLU(nn.Module):  # a ReLU, wrongly declared with slope <= 0.5 below
    def forward(self, x):
        return torch.clamp(x, min=0.0)


class ScaledTanh(nn.Module):
    """A learned per-neuron activation s_j tanh(x_j): slope interval [0, s_j] per neuron."""

    def __init__(self, n):
        super().__init__()
        self.s = nn.Parameter(torch.linspace(0.5, 2.0, n))

    def forward(self, x):
        return self.s * torch.tanh(x)


def _net(act_a, act_b, seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(4, 8), act_a, nn.Linear(8, 6), act_b, nn.Linear(6, 2)).double().eval()
    return m


@pytest.fixture
def registered():
    lipsdp.register_activation(MyReLU, slope=(0.0, 1.0))
    lipsdp.register_activation(HalfReLU, slope=(0.0, 0.5))
    lipsdp.register_activation(ScaledTanh, slope=lambda mod: np.stack(
        [np.zeros(mod.s.numel()), mod.s.detach().double().numpy()], axis=1))
    yield
    for cls in (MyReLU, HalfReLU, ScaledTanh):
        lipsdp.unregister_activation(cls)


def test_custom_relu_bounded_like_builtin(registered):
    ref = _net(nn.ReLU(), nn.ReLU())
    custom = _net(MyReLU(), MyReLU())
    custom.load_state_dict(ref.state_dict())
    a = lipsdp.estimate(ref, "l2", lower=False)
    b = lipsdp.estimate(custom, "l2", lower=False)
    assert a.certified and b.certified
    assert b.bound == pytest.approx(a.bound, rel=1e-9)
    x = np.random.default_rng(0).standard_normal((5, 4))
    net = lipsdp.extract(custom)
    assert np.allclose(net.forward(x), custom(torch.from_numpy(x)).detach().numpy())


def test_wrong_declared_interval_refused(registered):
    m = _net(nn.ReLU(), HalfReLU())
    with pytest.raises(SlopeRefutedError, match=r"HalfReLU at position \d+ .*\[0, 0.5\].*refuted"):
        lipsdp.estimate(m, "l2", lower=False)


def test_per_neuron_callable(registered):
    m = _net(ScaledTanh(8), nn.Tanh(), seed=1)
    net = lipsdp.extract(m)
    act = net.layers[1]
    a, b = act.slope_arrays()
    assert np.all(a == 0) and b[0] == pytest.approx(0.5, rel=1e-5) and b[-1] == pytest.approx(2.0, rel=1e-5)
    res = lipsdp.estimate(m, "l2")
    assert res.certified and res.lower_bound <= res.bound


def test_per_neuron_callable_refuted():
    class Bad(ScaledTanh):
        pass

    lipsdp.register_activation(Bad, slope=lambda mod: np.stack([np.zeros(8), np.full(8, 1.0)], axis=1))
    try:
        with pytest.raises(SlopeRefutedError, match="neuron 7"):
            lipsdp.extract(_net(Bad(8), nn.Tanh()))
    finally:
        lipsdp.unregister_activation(Bad)


def test_malformed_declarations():
    with pytest.raises(ValueError, match="empty"):
        lipsdp.register_activation(MyReLU, slope=(1.0, 0.0))
    with pytest.raises(ValueError, match="finite"):
        lipsdp.register_activation(MyReLU, slope=(0.0, np.inf))
    with pytest.raises(TypeError, match="module class"):
        lipsdp.register_activation(MyReLU(), slope=(0.0, 1.0))


def test_unregistered_module_still_refused():
    m = _net(nn.ReLU(), MyReLU())
    with pytest.raises(lipsdp.UnsupportedLayerError, match="clamp|MyReLU"):
        lipsdp.extract(m)
