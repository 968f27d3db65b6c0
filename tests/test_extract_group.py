"""Extraction of group activations: lipsdp.nn modules, deel-torchlip and monotonicnetworks (when installed)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lipsdp  # noqa: E402
from lipsdp.errors import UnsupportedLayerError  # noqa: E402
from lipsdp.network import GroupActivation  # noqa: E402
from lipsdp.nn import GroupSort, HouseholderActivation, ImplicitLayer, MaxMin  # noqa: E402


def _same_description(a, b):
    la, lb = a.layers, b.layers
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert type(x) is type(y)
        if isinstance(x, GroupActivation):
            assert (x.kind == y.kind or {x.kind, y.kind} <= {"maxmin", "groupsort"})
            assert (x.size, x.group_size, x.grouping, x.descending) == (y.size, y.group_size, y.grouping, y.descending)
            assert np.array_equal(x.groups(), y.groups())
            if x.kind == "householder":
                assert np.allclose(x.vectors(), y.vectors(), rtol=1e-6)
        else:
            assert np.allclose(x.dense_weight(), y.dense_weight())


def _check(model, n=8):
    model = model.double().eval()
    net = lipsdp.extract(model)
    x = torch.randn(6, n, dtype=torch.float64)
    with torch.no_grad():
        want = model(x).numpy()
    assert np.allclose(net(x.numpy()), want, atol=1e-7)
    return net


@pytest.mark.parametrize("mod", [MaxMin(), MaxMin("halves"), MaxMin(descending=False), GroupSort(4),
                                 GroupSort(2, "halves", descending=True),
                                 HouseholderActivation([0.6, -0.8]), HouseholderActivation(torch.randn(4, 2), "halves")],
                         ids=repr)
def test_lipsdp_nn_modules_extract_exactly(mod):
    torch.manual_seed(0)
    net = _check(torch.nn.Sequential(torch.nn.Linear(8, 8), mod, torch.nn.Linear(8, 3)))
    assert isinstance(net.layers[1], GroupActivation)


def test_implicit_layer_still_importable_from_nn():
    assert ImplicitLayer.__module__ == "lipsdp.nn_implicit"


def test_group_module_on_images_refused():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act = torch.nn.Linear(8, 8), GroupSort(2)

        def forward(self, x):
            return self.act(self.lin(x).view(-1, 2, 4))

    with pytest.raises(UnsupportedLayerError, match="flat"):
        lipsdp.extract(Net())


def test_deel_torchlip_modules():
    tl = pytest.importorskip("deel.torchlip")
    torch.manual_seed(1)
    lin = tl.SpectralLinear(8, 8)
    model = torch.nn.Sequential(lin, tl.GroupSort2(), tl.SpectralLinear(8, 8), tl.GroupSort(4),
                                tl.FrobeniusLinear(8, 8), tl.HouseHolder(8, theta_initializer="normal"),
                                torch.nn.Linear(8, 2))
    net = _check(model)
    # effective (normalised) weights, not the raw parameters
    w_eff = lin.weight.detach().double().numpy()
    assert np.allclose(net.layers[0].dense_weight(), w_eff)
    assert np.linalg.norm(w_eff, 2) == pytest.approx(1.0, abs=1e-3)
    # the same description as the equivalent lipsdp.nn network
    theta = model[5].theta.detach().double()
    v = torch.stack([-torch.sin(theta / 2), torch.cos(theta / 2)], 1)
    ours = torch.nn.Sequential(torch.nn.Linear(8, 8), GroupSort(2), torch.nn.Linear(8, 8), GroupSort(4),
                               torch.nn.Linear(8, 8), HouseholderActivation(v, "halves"), torch.nn.Linear(8, 2)).double()
    with torch.no_grad():
        for i in (0, 2, 4, 6):
            ours[i].weight.copy_(model[i].weight.double())
            ours[i].bias.copy_(model[i].bias.double())
    _same_description(net, lipsdp.extract(ours))
    r = lipsdp.estimate(net)
    assert r.certified and r.lower_bound <= r.bound <= r.naive_bound


def test_monotonicnetworks_groupsort():
    mn = pytest.importorskip("monotonicnetworks")
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), mn.GroupSort(2), torch.nn.Linear(8, 1))
    net = _check(model)
    ours = torch.nn.Sequential(model[0], GroupSort(4), model[2])
    _same_description(net, lipsdp.extract(ours))
