"""Torch extraction of residual additions and implicit layers: same function, named errors, bounds."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import lipsdp  # noqa: E402
from lipsdp.errors import NotWellPosedError, UnsupportedLayerError  # noqa: E402
from lipsdp.extract.torch import from_torch  # noqa: E402
from lipsdp.network import Implicit, Residual  # noqa: E402
from lipsdp.nn_implicit import ImplicitLayer  # noqa: E402


class Block(nn.Module):
    def __init__(self, n, h, out=None):
        super().__init__()
        self.f1, self.f2 = nn.Linear(n, h), nn.Linear(h, out or n)
        self.proj = nn.Sequential(nn.Linear(n, out, bias=False), nn.BatchNorm1d(out)) if out else None

    def forward(self, x):
        y = self.f2(torch.relu(self.f1(x)))
        y += x if self.proj is None else self.proj(x)  # in-place add, as in torchvision's BasicBlock
        return torch.tanh(y)


class ResMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.b1, self.b2, self.out = nn.Linear(4, 6), Block(6, 8), Block(6, 5, out=3), nn.Linear(3, 2)
        self.inner = Block(6, 4)

    def forward(self, x):
        x = self.b1(self.inp(x))
        x = x - 0.5 * torch.relu(x)  # subtraction with a scaled branch
        x = torch.add(x, self.inner(x), alpha=0.25)  # nested: the branch is itself residual
        return self.out(self.b2(x))


def _model(cls, seed=0):
    torch.manual_seed(seed)
    m = cls().double()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return m.eval()


def test_residual_mlp_matches_torch_and_is_bounded():
    m = _model(ResMLP)
    net = from_torch(m)
    x = np.random.default_rng(0).standard_normal((16, 4))
    assert np.allclose(net(x), m(torch.tensor(x)).detach().numpy(), atol=1e-12)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Residual") == 4
    projected = [layer for layer in net.layers if isinstance(layer, Residual) and layer.skip is not None]
    assert len(projected) == 1 and projected[0].skip.weight.shape == (3, 6)
    for norm in ("l2", "linf"):
        r = lipsdp.estimate(m, norm=norm)
        assert r.certified and r.lower_bound <= r.bound <= r.naive_bound * (1 + 1e-9)


class TwoNonlinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x):
        return torch.relu(self.a(x)) + torch.tanh(self.b(x))


class Broadcast(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 1)

    def forward(self, x):
        return torch.relu(self.a(x)) + self.b(x)


def test_unsupported_additions_are_named():
    with pytest.raises(UnsupportedLayerError, match="'add' adds two nonlinear branches"):
        from_torch(TwoNonlinear())
    with pytest.raises(UnsupportedLayerError, match=r"addition at position \d \('add'\) broadcasts"):
        from_torch(Broadcast())


class LinearSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        return self.a(x) - self.b(x)


def test_sum_of_linear_paths_is_one_affine_map():
    m = _model(LinearSum)
    net = from_torch(m)
    assert [type(layer).__name__ for layer in net.layers] == ["Affine"]
    w = (m.a.weight - m.b.weight).detach().numpy()
    assert np.allclose(net.layers[0].weight, w, atol=1e-15)


def test_implicit_layer_module_extracts_and_trains():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), ImplicitLayer(6, 8, 3, monotone=0.2)).double().eval()
    net = lipsdp.extract(m)
    assert isinstance(net.layers[-1], Implicit)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = m(x)
    assert np.allclose(net(x.detach().numpy()), y.detach().numpy(), atol=1e-12)
    g = torch.randn(4, 3, dtype=torch.float64)
    (y * g).sum().backward()  # implicit-function-theorem gradients ...
    assert np.allclose(x.grad.numpy(), net.vjp(x.detach().numpy(), g.numpy()), atol=1e-10)  # ... = lipsdp's
    assert torch.autograd.gradcheck(m, (torch.randn(2, 5, dtype=torch.float64, requires_grad=True),))
    r = lipsdp.estimate(m)
    assert r.certified and r.lower_bound <= r.bound


def test_bare_ill_posed_implicit_module_gets_the_specific_error():
    m = ImplicitLayer(4, 5, 2).double()
    with torch.no_grad():
        m.W_raw.copy_(2.0 * torch.eye(5))
    with pytest.raises(NotWellPosedError, match="not well-posed"):
        lipsdp.estimate(m)
