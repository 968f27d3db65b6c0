"""Torch extraction: outputs match torch to 1e-10; train-mode and unsupported layers give named errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lipsdp.errors import InvalidNetworkError, TrainModeError, UnsupportedLayerError  # noqa: E402
from lipsdp.extract.torch import from_torch  # noqa: E402


def _check_same(model, in_shape, n=16):
    net = from_torch(model, input_shape=in_shape if len(in_shape) > 1 else None)
    x = torch.randn((n,) + tuple(in_shape), dtype=torch.float64)
    with torch.no_grad():
        ref = model.double()(x).reshape(n, -1).numpy()
    out = net.forward(x.reshape(n, -1).numpy())
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    return net


ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.Tanh(), nn.Sigmoid(), nn.ELU(0.7), nn.Softplus(2.0), nn.SiLU(),
               nn.GELU(), nn.GELU(approximate="tanh"), nn.ReLU6(), nn.Hardtanh()]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda m: repr(m))
def test_sequential_with_each_activation(act):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), act, nn.Dropout(0.5), nn.Linear(7, 3)).eval()
    net = _check_same(model, (5,))
    assert net.chain().depth == 1


def test_general_module_with_functional_calls_and_batchnorm():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(12, 9)
            self.bn = nn.BatchNorm1d(9)
            self.fc2 = nn.Linear(9, 4)

        def forward(self, x):
            x = torch.flatten(x, 1)
            x = F.gelu(self.bn(self.fc1(x)))
            x = F.leaky_relu(x, negative_slope=0.05)
            return self.fc2(x).tanh()

    torch.manual_seed(1)
    model = Net()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.3, 0.3)
    model.eval()
    net = _check_same(model, (3, 4))
    # BatchNorm folded: fc1 and bn merge into one affine map in the canonical chain
    assert net.chain().depth == 3 and len(net.chain().weights) == 4


def test_nested_sequential_and_view():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Sequential(nn.Linear(6, 6), nn.ReLU()), nn.Linear(6, 2))

        def forward(self, x):
            return self.body(x.view(x.size(0), -1))

    _check_same(Net().eval(), (2, 3))


def test_train_mode_is_refused():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    with pytest.raises(TrainModeError, match=r"BatchNorm1d '1' is in training mode"):
        from_torch(model)
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(), nn.Linear(3, 1))
    with pytest.raises(TrainModeError, match="Dropout"):
        from_torch(model)


def test_unsupported_layer_names_type_and_position():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Softmax(dim=1), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedLayerError, match=r"position 3 \('2'\): torch.nn.modules.activation.Softmax"):
        from_torch(model)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.exp(self.fc(x))

    with pytest.raises(UnsupportedLayerError, match=r"position 2 \('exp'\).*exp"):
        from_torch(Net())


def test_untraceable_and_missing_shape():
    class Dyn(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(UnsupportedLayerError, match="could not be traced"):
        from_torch(Dyn())
    with pytest.raises(InvalidNetworkError, match="input_shape is required"):
        from_torch(nn.Sequential(nn.Flatten(), nn.ReLU()))


def test_nan_weights_refused():
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(InvalidNetworkError, match="NaN"):
        from_torch(model)
