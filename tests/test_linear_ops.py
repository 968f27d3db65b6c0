"""Sparse conv / pool / pad / transpose matrices against torch's own operators (1e-10)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lipsdp.errors import UnsupportedLayerError
from lipsdp.network.linear_ops import (avg_pool_matrix, conv1d_matrix, conv_matrix, fold_affine, pad_matrix,
                                       transpose_matrix)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _apply(w, b, x):
    return np.asarray(w @ x.ravel()).ravel() + (0.0 if b is None else b)


CONV_CASES = [
    dict(cin=1, cout=4, h=7, w=6, k=(3, 3), stride=1, padding=0, dilation=1, groups=1),
    dict(cin=3, cout=8, h=9, w=8, k=(4, 4), stride=2, padding=1, dilation=1, groups=1),
    dict(cin=4, cout=6, h=10, w=7, k=(3, 2), stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2),
    dict(cin=6, cout=6, h=5, w=5, k=(3, 3), stride=1, padding=1, dilation=1, groups=6),
    dict(cin=2, cout=3, h=8, w=8, k=(2, 3), stride=3, padding=(0, 2), dilation=2, groups=1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case):
    rng = np.random.default_rng(0)
    kern = rng.standard_normal((case["cout"], case["cin"] // case["groups"]) + case["k"])
    bias = rng.standard_normal(case["cout"])
    x = rng.standard_normal((case["cin"], case["h"], case["w"]))
    w, b, out_shape = conv_matrix(kern, x.shape, bias, case["stride"], case["padding"], case["dilation"],
                                  case["groups"])
    assert sp.issparse(w)
    ref = F.conv2d(torch.tensor(x[None]), torch.tensor(kern), torch.tensor(bias), stride=case["stride"],
                   padding=case["padding"], dilation=case["dilation"], groups=case["groups"])[0].numpy()
    assert ref.shape == out_shape
    np.testing.assert_allclose(_apply(w, b, x), ref.ravel(), rtol=0, atol=1e-10)


def test_conv2d_asymmetric_onnx_pads():
    rng = np.random.default_rng(1)
    kern, x = rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((3, 6, 5))
    w, b, shape = conv_matrix(kern, x.shape, None, 1, (1, 0, 2, 1))  # top, left, bottom, right
    xp = np.pad(x, ((0, 0), (1, 2), (0, 1)))
    ref = F.conv2d(torch.tensor(xp[None]), torch.tensor(kern))[0].numpy()
    assert ref.shape == shape
    np.testing.assert_allclose(_apply(w, b, x), ref.ravel(), atol=1e-10)


def test_conv1d_matches_torch():
    rng = np.random.default_rng(2)
    kern, bias, x = rng.standard_normal((6, 2, 3)), rng.standard_normal(6), rng.standard_normal((4, 11))
    w, b, shape = conv1d_matrix(kern, x.shape, bias, stride=2, padding=1, dilation=2, groups=2)
    ref = F.conv1d(torch.tensor(x[None]), torch.tensor(kern), torch.tensor(bias), stride=2, padding=1,
                   dilation=2, groups=2)[0].numpy()
    assert ref.shape == shape
    np.testing.assert_allclose(_apply(w, b, x), ref.ravel(), atol=1e-10)


@pytest.mark.parametrize("kernel,stride,padding,include", [
    (2, None, 0, True), (4, 4, 0, True), ((3, 2), (2, 1), (1, 1), True), ((3, 3), 2, 1, False), (3, 1, 1, True),
])
def test_avg_pool_matches_torch(kernel, stride, padding, include):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 8))
    w, shape = avg_pool_matrix(x.shape, kernel, stride, padding, count_include_pad=include)
    ref = F.avg_pool2d(torch.tensor(x[None]), kernel, stride, padding, count_include_pad=include)[0].numpy()
    assert ref.shape == shape
    np.testing.assert_allclose(_apply(w, None, x), ref.ravel(), atol=1e-10)


def test_avg_pool_ceil_mode_refused():
    with pytest.raises(UnsupportedLayerError, match="ceil_mode"):
        avg_pool_matrix((1, 5, 5), 2, ceil_mode=True)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_constant_pad_matches_torch(value):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 5))
    w, b, shape = pad_matrix(x.shape, [0, 1, 2, 0, 3, 1], value)  # begins then ends per axis
    ref = F.pad(torch.tensor(x), (2, 1, 1, 3, 0, 0), value=value).numpy()
    assert ref.shape == shape
    np.testing.assert_allclose(_apply(w, b, x), ref.ravel(), atol=1e-12)


@pytest.mark.parametrize("perm", [(1, 2, 0), (2, 0, 1), (0, 2, 1)])
def test_transpose(perm):
    x = np.random.default_rng(5).standard_normal((3, 4, 5))
    w, shape = transpose_matrix(x.shape, perm)
    np.testing.assert_array_equal(_apply(w, None, x), x.transpose(perm).ravel())
    assert shape == x.transpose(perm).shape


def test_fold_affine_keeps_sparsity_and_matches():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 8, 8))
    w1, b1, s1 = conv_matrix(rng.standard_normal((4, 3, 3, 3)), x.shape, rng.standard_normal(4), padding=1)
    w2, s2 = avg_pool_matrix(s1, 2)
    w, b = fold_affine(w2, np.zeros(w2.shape[0]), w1, b1)
    assert sp.issparse(w)
    np.testing.assert_allclose(_apply(w, b, x), _apply(w2, None, _apply(w1, b1, x)), atol=1e-12)
    dense = rng.standard_normal((5, w.shape[0]))
    wd, bd = fold_affine(dense, np.ones(5), w, b)
    assert isinstance(wd, np.ndarray)
    np.testing.assert_allclose(_apply(wd, bd, x), dense @ _apply(w, b, x) + 1, atol=1e-10)
