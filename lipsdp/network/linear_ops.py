"""Linear layers as sparse matrices acting on flattened (C-order) tensors.

Every function returns ``(W, b, out_shape)`` or ``W`` with ``W`` a ``scipy.sparse`` CSR
matrix, float64, such that for one sample ``x`` of shape ``in_shape`` (no batch axis)

    y.ravel() = W @ x.ravel() + b,     y of shape out_shape.

Nothing is materialised densely: a 3x32x32 convolution is a matrix with
``C_out * H_out * W_out * C_in/groups * k_h * k_w`` nonzeros at most. The formulas are the
usual cross-correlation ones (torch / ONNX conventions):

* convolution: ``y[co, i, j] = bias[co] + sum_{ci in group(co), p, q}
  K[co, ci - g0, p, q] * xpad[ci, i*s_h + p*d_h, j*s_w + q*d_w]`` with ``xpad`` the input padded
  by zeros (``pads = (top, left, bottom, right)``) and output size
  ``floor((H + top + bottom - d_h (k_h - 1) - 1) / s_h) + 1``;
* average pooling: the same with one channel-diagonal all-ones kernel divided by ``k_h k_w``
  (``count_include_pad``) or by the number of window cells inside the unpadded input;
* constant padding: a 0/1 selection matrix plus a bias equal to the pad value on the
  new cells (an affine map, not linear, when the value is nonzero);
* transposes (e.g. NHWC <-> NCHW): permutation matrices.

:func:`fold_affine` composes consecutive affine maps, keeping the product sparse when both
factors are sparse and the product stays sparse (else dense).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidNetworkError, UnsupportedLayerError

__all__ = ["conv_matrix", "avg_pool_matrix", "pad_matrix", "transpose_matrix", "fold_affine", "conv_output_size"]


def _pair(v, n: int = 2) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(x) for x in v)
    if len(v) == 1:
        return v * n
    return v


def conv_output_size(size: int, k: int, s: int, p0: int, p1: int, d: int = 1) -> int:
    """floor((size + p0 + p1 - d (k - 1) - 1) / s) + 1."""
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _pads4(padding) -> tuple:
    """(top, left, bottom, right) from an int, a (ph, pw) pair or an ONNX-style 4-tuple."""
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    p = tuple(int(x) for x in padding)
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    if len(p) == 4:
        return p
    raise InvalidNetworkError(f"padding must be an int, a pair or (top, left, bottom, right); got {padding}")


def _windows(in_shape, kernel, stride, pads, dilation):
    """Index arrays of every (output position, kernel offset) pair, with validity masks."""
    c, h, w = in_shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    pt, pl, pb, pr = pads
    ho = conv_output_size(h, kh, sh, pt, pb, dh)
    wo = conv_output_size(w, kw, sw, pl, pr, dw)
    if ho <= 0 or wo <= 0:
        raise InvalidNetworkError(f"kernel {kernel} with padding {pads} does not fit an input of shape {in_shape}")
    ih = (np.arange(ho) * sh - pt)[:, None] + (np.arange(kh) * dh)[None, :]  # (ho, kh)
    iw = (np.arange(wo) * sw - pl)[:, None] + (np.arange(kw) * dw)[None, :]  # (wo, kw)
    return ho, wo, ih, iw


def conv_matrix(weight, in_shape, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """Sparse matrix of a 2-D convolution (see module docstring); returns (W, b, out_shape).

    ``weight`` has shape (C_out, C_in / groups, k_h, k_w); ``in_shape`` is (C_in, H, W).
    A 1-D convolution is the case H = k_h = 1 (see :func:`conv1d_matrix`).
    """
    k = np.asarray(weight, dtype=np.float64)
    if k.ndim != 4:
        raise InvalidNetworkError(f"conv weight must have shape (C_out, C_in/groups, kh, kw), got {k.shape}")
    c, h, w = (int(s) for s in in_shape)
    co, cig, kh, kw = k.shape
    if c != cig * groups or co % groups:
        raise InvalidNetworkError(
            f"conv weight {k.shape} with groups={groups} does not match {c} input channels")
    stride, dilation, pads = _pair(stride), _pair(dilation), _pads4(padding)
    ho, wo, ih, iw = _windows((c, h, w), (kh, kw), stride, pads, dilation)
    cog = co // groups
    # broadcast to (co, cig, ho, kh, wo, kw)
    o_c = np.arange(co)[:, None, None, None, None, None]
    i_c = (o_c // cog) * cig + np.arange(cig)[None, :, None, None, None, None]
    i_h = ih[None, None, :, :, None, None]
    i_w = iw[None, None, None, None, :, :]
    o_h = np.arange(ho)[None, None, :, None, None, None]
    o_w = np.arange(wo)[None, None, None, None, :, None]
    shape = (co, cig, ho, kh, wo, kw)
    vals = np.broadcast_to(k[:, :, None, :, None, :], shape)
    valid = np.broadcast_to((i_h >= 0) & (i_h < h) & (i_w >= 0) & (i_w < w), shape)
    rows = np.broadcast_to((o_c * ho + o_h) * wo + o_w, shape)[valid]
    cols = np.broadcast_to((i_c * h + i_h) * w + i_w, shape)[valid]
    data = vals[valid]
    keep = data != 0
    mat = sp.csr_matrix((data[keep], (rows[keep], cols[keep])), shape=(co * ho * wo, c * h * w))
    mat.sum_duplicates()
    b = np.zeros(co * ho * wo) if bias is None else np.repeat(np.asarray(bias, dtype=np.float64).ravel(), ho * wo)
    return mat, b, (co, ho, wo)


def conv1d_matrix(weight, in_shape, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution: weight (C_out, C_in/groups, k), in_shape (C_in, L); returns (W, b, (C_out, L_out))."""
    k = np.asarray(weight, dtype=np.float64)
    c, length = (int(s) for s in in_shape)
    p = _pair(padding, 2) if not isinstance(padding, (int, np.integer)) else (int(padding), int(padding))
    mat, b, (co, _, lo) = conv_matrix(k[:, :, None, :], (c, 1, length), bias, (1, _pair(stride, 1)[0]),
                                      (0, p[0], 0, p[1]), (1, _pair(dilation, 1)[0]), groups)
    return mat, b, (co, lo)


def avg_pool_matrix(in_shape, kernel, stride=None, padding=0, count_include_pad: bool = True,
                    ceil_mode: bool = False):
    """Sparse matrix of 2-D average pooling on (C, H, W); returns (W, out_shape)."""
    if ceil_mode:
        raise UnsupportedLayerError("average pooling with ceil_mode=True is not supported")
    c, h, w = (int(s) for s in in_shape)
    kh, kw = _pair(kernel)
    stride = _pair(stride if stride is not None else (kh, kw))
    pads = _pads4(padding)
    ho, wo, ih, iw = _windows((c, h, w), (kh, kw), stride, pads, (1, 1))
    shape = (c, ho, kh, wo, kw)
    o_c = np.arange(c)[:, None, None, None, None]
    i_h = ih[None, :, :, None, None]
    i_w = iw[None, None, None, :, :]
    o_h = np.arange(ho)[None, :, None, None, None]
    o_w = np.arange(wo)[None, None, None, :, None]
    inside = (i_h >= 0) & (i_h < h) & (i_w >= 0) & (i_w < w)  # (1, ho, kh, wo, kw)
    if count_include_pad:
        # torch/ONNX: padded cells count, but cells past the padded input do not
        in_pad = (i_h >= -pads[0]) & (i_h < h + pads[2]) & (i_w >= -pads[1]) & (i_w < w + pads[3])
        count = in_pad.sum(axis=(2, 4), keepdims=True)
    else:
        count = inside.sum(axis=(2, 4), keepdims=True)
    vals = np.broadcast_to(1.0 / count, shape)
    valid = np.broadcast_to(inside, shape)
    rows = np.broadcast_to((o_c * ho + o_h) * wo + o_w, shape)[valid]
    cols = np.broadcast_to((o_c * h + i_h) * w + i_w, shape)[valid]
    mat = sp.csr_matrix((vals[valid], (rows, cols)), shape=(c * ho * wo, c * h * w))
    mat.sum_duplicates()
    return mat, (c, ho, wo)


def pad_matrix(in_shape, pads, value: float = 0.0):
    """Constant padding of a tensor of ``in_shape``; ``pads`` is ONNX-style
    (begin_0, ..., begin_{r-1}, end_0, ..., end_{r-1}), nonnegative. Returns (W, b, out_shape)."""
    shape = tuple(int(s) for s in in_shape)
    r = len(shape)
    pads = [int(p) for p in pads]
    if len(pads) != 2 * r:
        raise InvalidNetworkError(f"pads {pads} do not match a tensor of rank {r}")
    if any(p < 0 for p in pads):
        raise UnsupportedLayerError(f"negative pads (cropping) {pads} are not supported")
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    padded = np.pad(idx, [(pads[i], pads[r + i]) for i in range(r)], constant_values=-1)
    flat = padded.ravel()
    rows = np.nonzero(flat >= 0)[0]
    mat = sp.csr_matrix((np.ones(rows.size), (rows, flat[rows])), shape=(flat.size, n))
    b = np.where(flat < 0, float(value), 0.0)
    return mat, b, padded.shape


def transpose_matrix(in_shape, perm):
    """Permutation matrix of ``x.transpose(perm)`` for x of ``in_shape``; returns (P, out_shape)."""
    shape = tuple(int(s) for s in in_shape)
    if sorted(perm) != list(range(len(shape))):
        raise InvalidNetworkError(f"perm {perm} is not a permutation of the {len(shape)} axes")
    n = int(np.prod(shape))
    src = np.arange(n).reshape(shape).transpose(perm).ravel()
    mat = sp.csr_matrix((np.ones(n), (np.arange(n), src)), shape=(n, n))
    return mat, tuple(shape[p] for p in perm)


def fold_affine(w2, b2, w1, b1, dense_fraction: float = 0.25):
    """(W2 W1, W2 b1 + b2): the composition x -> W2 (W1 x + b1) + b2.

    The product stays sparse when both factors are sparse and it has at most
    ``dense_fraction`` of its entries nonzero; otherwise it is returned dense.
    """
    if sp.issparse(w1) and sp.issparse(w2):
        w = sp.csr_matrix(w2 @ w1)
        if w.nnz > dense_fraction * w.shape[0] * w.shape[1]:
            w = w.toarray()
    elif sp.issparse(w2):
        w = np.asarray(w2 @ w1)
    elif sp.issparse(w1):
        w = np.asarray((w1.T @ w2.T).T)
    else:
        w = w2 @ w1
    b = np.asarray(w2 @ np.asarray(b1, dtype=np.float64)).ravel() + np.asarray(b2, dtype=np.float64)
    return w, b
