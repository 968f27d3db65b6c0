"""torch extraction of convolutions, pooling, padding and BatchNorm (folded); max pooling refused."""

from __future__ import annotations

import numpy as np
import pytest

from lipsdp.errors import UnsupportedLayerError
from lipsdp.network import Activation, Affine

torch = pytest.importorskip("torch")
nn = torch.nn

from lipsdp.extract.torch import from_torch  # noqa: E402


def _bn(c, seed):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(c, generator=g))
        bn.bias.copy_(torch.randn(c, generator=g))
    return bn


def _compare(model, shape, n=4):
    model = model.double().eval()
    net = from_torch(model, input_shape=shape)
    x = torch.randn((n,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).reshape(n, -1).numpy()
    got = net.forward(x.reshape(n, -1).numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    return net


def test_conv_bn_pool_pad_folded_equals_original():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3), _bn(6, 1), nn.ReLU(),
        nn.Conv2d(6, 4, (2, 3), dilation=(2, 1), padding="same"), nn.AvgPool2d(2, padding=1, count_include_pad=False),
        nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 3, 5))
    net = _compare(model, (3, 9, 8))
    # pad + conv + BN fold into one affine map, conv + pool into another, then the Linear
    assert [type(layer) for layer in net.layers] == [Affine, Activation, Affine, Activation, Affine]
    unfolded = from_torch(model, input_shape=(3, 9, 8), fold=False)
    assert len(unfolded.layers) == 8


def test_conv1d_and_batchnorm_after_linear_chain():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))
    _compare(model, (2, 11))


def test_maxpool_is_refused_with_a_named_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    with pytest.raises(UnsupportedLayerError, match=r"MaxPool2d at position 3 \('2'\).*planned"):
        from_torch(model.eval(), input_shape=(1, 8, 8))
