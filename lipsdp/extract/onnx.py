"""Extract a :class:`~lipsdp.network.Network` from an ONNX model (needs the ``onnx`` extra).

The graph is walked in its (topological) node order. Every tensor is either a
**constant** (initializers, ``Constant`` nodes and anything computed from constants only,
folded with ``onnx.reference``) or **dynamic** (depends on the graph input). Dynamic
tensors carry a leading batch axis (size N, symbolic or 1); the per-sample shape is
the rest, and the description works on its flat C-order vector, so

* layout ops (Flatten, Reshape, Identity, Dropout) are identities, Transpose is a
  permutation matrix (the batch axis must stay first);
* MatMul / Gemm with a constant weight, Add/Sub/Mul/Div with a constant (input
  normalisation), Conv, AveragePool, constant Pad and BatchNormalization (inference
  form ``scale * (x - mean) / sqrt(var + eps) + B``) are affine maps
  ``W x + b`` with W sparse where the op is (see :mod:`lipsdp.network.linear_ops`);
* Relu, Sigmoid, Tanh, LeakyRelu are slope-restricted activations;
* Add/Sub of two dynamic tensors is a residual block (lowered by
  :func:`lipsdp.extract.graph.assemble_dag`, shared with the torch extractor).

Consecutive affine maps are then folded into one (:func:`~lipsdp.extract.graph.fold_consecutive_affine`).
MaxPool (no sound per-neuron slope constraint yet; planned) and every other op raise
:class:`~lipsdp.errors.UnsupportedLayerError` naming the op type and node.
"""

from __future__ import annotations

import math
import os

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidNetworkError, UnsupportedLayerError
from ..network import activations as act
from ..network.layers import Activation, Affine
from ..network.linear_ops import (avg_pool_matrix, conv1d_matrix, conv_matrix, conv_output_size, pad_matrix,
                                  transpose_matrix)
from ..network.network import Network
from .graph import assemble_dag, dominator, fold_consecutive_affine

__all__ = ["from_onnx", "ONNX_HANDLERS"]


class _Dyn:
    """A dynamic tensor: its name and per-sample shape (batch axis removed)."""

    def __init__(self, name: str, shape: tuple):
        self.name = name
        self.shape = tuple(int(s) for s in shape)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"_Dyn({self.name}, {self.shape})"


class _Ctx:
    """What an op handler sees: the node, its attributes, its inputs (constants or one dynamic)."""

    def __init__(self, node, position: int, inputs: list, attrs: dict, opset: int):
        self.node = node
        self.position = position
        self.inputs = inputs  # np.ndarray (constant), _Dyn, or None (omitted optional input)
        self.attrs = attrs
        self.opset = opset

    @property
    def op(self) -> str:
        return self.node.op_type

    def where(self) -> str:
        return f"{self.op} node '{self.node.name or self.node.output[0]}' (position {self.position})"

    @property
    def x(self) -> _Dyn:
        """The (single) input-dependent operand."""
        return next(v for v in self.inputs if isinstance(v, _Dyn))

    def const(self, i: int, what: str):
        v = self.inputs[i] if i < len(self.inputs) else None
        if isinstance(v, _Dyn):
            raise UnsupportedLayerError(f"{self.where()}: its {what} depends on the input; only constant "
                                        f"{what}s are supported")
        return v

    def unsupported(self, why: str):
        return UnsupportedLayerError(f"{self.where()}: {why}")


# --------------------------------------------------------------------------- handlers
# A handler returns (layers, out_shape) for a node whose first input is dynamic.


def _elementwise(spec_fn):
    def handler(ctx: _Ctx):
        return [Activation(spec_fn(ctx), ctx.x.size, name=ctx.node.name)], ctx.x.shape

    return handler


def _layout(ctx: _Ctx):
    if ctx.op == "Flatten":
        axis = int(ctx.attrs.get("axis", 1))
        if axis not in (0, 1):
            raise ctx.unsupported(f"Flatten with axis={axis} mixes the batch axis into the features")
        return [], (ctx.x.size,)
    if ctx.op == "Dropout" and len(ctx.node.input) > 2 and ctx.node.input[2]:
        mode = ctx.const(2, "training_mode")
        if mode is not None and bool(np.asarray(mode)):
            raise ctx.unsupported("Dropout in training mode")
    return [], ctx.x.shape


def _reshape(ctx: _Ctx):
    if ctx.opset < 5 or "shape" in ctx.attrs:
        target = list(ctx.attrs["shape"])
    else:
        target = [int(v) for v in np.asarray(ctx.const(1, "target shape")).ravel()]
    full = (1,) + ctx.x.shape
    allowzero = int(ctx.attrs.get("allowzero", 0))
    dims = [full[i] if (v == 0 and not allowzero) else v for i, v in enumerate(target)]
    if dims.count(-1) > 1:
        raise ctx.unsupported(f"target shape {target} has more than one -1")
    known = math.prod(d for d in dims if d != -1)
    total = math.prod(full)
    if -1 in dims:
        if known == 0 or total % known:
            raise InvalidNetworkError(f"{ctx.where()}: cannot reshape {ctx.x.shape} to {target}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total or not dims or dims[0] != 1:
        raise ctx.unsupported(f"reshape of a sample of shape {ctx.x.shape} to {target} does not keep the batch axis "
                              "first")
    return [], tuple(dims[1:])


def _transpose(ctx: _Ctx):
    rank = len(ctx.x.shape) + 1
    perm = list(ctx.attrs.get("perm", list(range(rank))[::-1]))
    if perm[0] != 0:
        raise ctx.unsupported(f"Transpose with perm={perm} moves the batch axis")
    w, out = transpose_matrix(ctx.x.shape, [p - 1 for p in perm[1:]])
    return [Affine(w, name=ctx.node.name)], out


def _matmul(ctx: _Ctx):
    if isinstance(ctx.inputs[1], _Dyn):
        raise ctx.unsupported("both factors depend on the input; only multiplication by a constant is supported")
    w = np.asarray(ctx.inputs[1], dtype=np.float64)
    shape = ctx.x.shape
    if w.ndim != 2 or not shape or shape[-1] != w.shape[0]:
        raise ctx.unsupported(f"matrix product of a sample of shape {shape} with a constant of shape {w.shape}")
    reps = int(math.prod(shape[:-1]))
    mat = w.T if reps == 1 else sp.kron(sp.identity(reps, format="csr"), sp.csr_matrix(w.T), format="csr")
    return [Affine(mat, name=ctx.node.name)], shape[:-1] + (w.shape[1],)


def _gemm(ctx: _Ctx):
    if int(ctx.attrs.get("transA", 0)):
        raise ctx.unsupported("Gemm with transA=1 on the input transposes the batch axis")
    if len(ctx.x.shape) != 1:
        raise ctx.unsupported(f"Gemm on a sample of shape {ctx.x.shape} (expected a flat vector)")
    b = np.asarray(ctx.const(1, "weight"), dtype=np.float64)
    if int(ctx.attrs.get("transB", 0)):
        b = b.T
    alpha, beta = float(ctx.attrs.get("alpha", 1.0)), float(ctx.attrs.get("beta", 1.0))
    w = alpha * b.T
    c = ctx.const(2, "bias") if len(ctx.inputs) > 2 else None
    bias = np.zeros(w.shape[0])
    if c is not None:
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 2 and c.shape[0] != 1:
            raise ctx.unsupported(f"Gemm bias of shape {c.shape} varies over the batch")
        bias = beta * np.broadcast_to(c.reshape(-1) if c.ndim else c, (w.shape[0],))
    return [Affine(w, bias, name=ctx.node.name)], (w.shape[0],)


def _broadcast_const(ctx: _Ctx, c) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    full = (1,) + ctx.x.shape
    if c.ndim > len(full):
        raise ctx.unsupported(f"a constant of shape {c.shape} broadcasts the sample of shape {ctx.x.shape}")
    try:
        out = np.broadcast_shapes(full, c.shape)
    except ValueError as exc:
        raise InvalidNetworkError(f"{ctx.where()}: shapes {ctx.x.shape} and {c.shape} do not broadcast") from exc
    if tuple(out) != full:
        raise ctx.unsupported(f"a constant of shape {c.shape} enlarges the sample of shape {ctx.x.shape}")
    return np.broadcast_to(c, full)[0].ravel().copy()


def _arith(ctx: _Ctx):
    """x op c or c op x with a constant c (the dynamic-dynamic case is handled in the walk)."""
    dyn_first = isinstance(ctx.inputs[0], _Dyn)
    c = _broadcast_const(ctx, ctx.inputs[1] if dyn_first else ctx.inputs[0])
    n = ctx.x.size
    op = ctx.op
    eye = sp.identity(n, format="csr")
    if op == "Add":
        w, b = eye, c
    elif op == "Sub":
        w, b = (eye, -c) if dyn_first else (-eye, c)
    elif op == "Mul":
        w, b = sp.diags(c, format="csr"), None
    elif op == "Div":
        if not dyn_first:
            raise ctx.unsupported("division of a constant by the input is not affine")
        if np.any(c == 0):
            raise InvalidNetworkError(f"{ctx.where()}: division by zero")
        w, b = sp.diags(1.0 / c, format="csr"), None
    else:  # pragma: no cover
        raise ctx.unsupported("not an arithmetic op")
    return [Affine(w, b, name=ctx.node.name)], ctx.x.shape


def _same_pads(size, k, s, d, upper: bool):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def _spatial_pads(ctx: _Ctx, spatial: tuple, kernel, strides, dilations):
    auto = ctx.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    r = len(spatial)
    if auto in ("NOTSET", ""):
        pads = list(ctx.attrs.get("pads", [0] * (2 * r)))
        return pads[:r], pads[r:]
    if auto == "VALID":
        return [0] * r, [0] * r
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pp = [_same_pads(spatial[i], kernel[i], strides[i], dilations[i], auto == "SAME_UPPER") for i in range(r)]
        return [p[0] for p in pp], [p[1] for p in pp]
    raise ctx.unsupported(f"auto_pad={auto}")


def _conv(ctx: _Ctx):
    k = np.asarray(ctx.const(1, "weight"), dtype=np.float64)
    bias = ctx.const(2, "bias") if len(ctx.inputs) > 2 else None
    spatial = ctx.x.shape[1:]
    r = len(spatial)
    if r not in (1, 2) or k.ndim != r + 2:
        raise ctx.unsupported(f"{r}-d convolution (only 1-d and 2-d are supported)")
    kernel = list(ctx.attrs.get("kernel_shape", k.shape[2:]))
    strides = list(ctx.attrs.get("strides", [1] * r))
    dil = list(ctx.attrs.get("dilations", [1] * r))
    groups = int(ctx.attrs.get("group", 1))
    begin, end = _spatial_pads(ctx, spatial, kernel, strides, dil)
    if r == 1:
        w, b, out = conv1d_matrix(k, ctx.x.shape, bias, strides[0], (begin[0], end[0]), dil[0], groups)
    else:
        w, b, out = conv_matrix(k, ctx.x.shape, bias, strides, (begin[0], begin[1], end[0], end[1]), dil, groups)
    return [Affine(w, b, name=ctx.node.name)], out


def _avgpool(ctx: _Ctx):
    spatial = ctx.x.shape[1:]
    if len(spatial) != 2:
        raise ctx.unsupported(f"average pooling over {len(spatial)} axes (only 2-d is supported)")
    kernel = list(ctx.attrs["kernel_shape"])
    strides = list(ctx.attrs.get("strides", [1, 1]))
    begin, end = _spatial_pads(ctx, spatial, kernel, strides, [1, 1])
    include = bool(int(ctx.attrs.get("count_include_pad", 0)))
    if int(ctx.attrs.get("ceil_mode", 0)):
        raise ctx.unsupported("ceil_mode=1 is not supported")
    w, out = avg_pool_matrix(ctx.x.shape, kernel, strides, (begin[0], begin[1], end[0], end[1]), include)
    return [Affine(w, name=ctx.node.name)], out


def _pad(ctx: _Ctx):
    mode = ctx.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        raise ctx.unsupported(f"Pad mode '{mode}' (only constant padding is supported)")
    rank = len(ctx.x.shape) + 1
    if ctx.opset < 11:
        pads = list(ctx.attrs.get("pads", []))
        value = float(ctx.attrs.get("value", 0.0))
    else:
        pads = [int(v) for v in np.asarray(ctx.const(1, "pads")).ravel()]
        cv = ctx.const(2, "constant value") if len(ctx.inputs) > 2 else None
        value = 0.0 if cv is None or np.asarray(cv).size == 0 else float(np.asarray(cv).ravel()[0])
        axes = ctx.const(3, "axes") if len(ctx.inputs) > 3 else None
        if axes is not None:
            axes = [int(a) % rank for a in np.asarray(axes).ravel()]
            full = [0] * (2 * rank)
            for i, a in enumerate(axes):
                full[a], full[rank + a] = pads[i], pads[len(axes) + i]
            pads = full
    if len(pads) != 2 * rank:
        raise InvalidNetworkError(f"{ctx.where()}: pads {pads} do not match a tensor of rank {rank}")
    if pads[0] or pads[rank]:
        raise ctx.unsupported("padding the batch axis")
    w, b, out = pad_matrix(ctx.x.shape, pads[1:rank] + pads[rank + 1:], value)
    return [Affine(w, b, name=ctx.node.name)], tuple(out)


def _batchnorm(ctx: _Ctx):
    if int(ctx.attrs.get("training_mode", 0)):
        raise ctx.unsupported("BatchNormalization in training mode")
    scale, shift, mean, var = (np.asarray(ctx.const(i, n), dtype=np.float64).ravel()
                               for i, n in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    eps = float(ctx.attrs.get("epsilon", 1e-5))
    a = scale / np.sqrt(var + eps)
    c = shift - mean * a
    channels = ctx.x.shape[0] if ctx.x.shape else 1
    per = ctx.x.size // channels
    return [Affine(sp.diags(np.repeat(a, per), format="csr"), np.repeat(c, per), name=ctx.node.name)], ctx.x.shape


def _maxpool(ctx: _Ctx):
    raise ctx.unsupported("max pooling is not slope-restricted per neuron and is unsupported (planned: a sound "
                          "quadratic constraint for max); replace it by average pooling or strided convolution")


ONNX_HANDLERS: dict = {
    "Relu": _elementwise(lambda ctx: act.relu()),
    "Sigmoid": _elementwise(lambda ctx: act.sigmoid()),
    "Tanh": _elementwise(lambda ctx: act.tanh()),
    "LeakyRelu": _elementwise(lambda ctx: act.leaky_relu(float(ctx.attrs.get("alpha", 0.01)))),
    "Flatten": _layout,
    "Identity": _layout,
    "Dropout": _layout,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Add": _arith,
    "Sub": _arith,
    "Mul": _arith,
    "Div": _arith,
    "Conv": _conv,
    "AveragePool": _avgpool,
    "Pad": _pad,
    "BatchNormalization": _batchnorm,
    "MaxPool": _maxpool,
    "GlobalMaxPool": _maxpool,
}


# --------------------------------------------------------------------------- constant folding
def _fold_constant_node(node, values: list, opset_imports):
    """Evaluate a node whose inputs are all constants with onnx.reference."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "Constant":
        attr = node.attribute[0]
        if attr.name == "value":
            return [onnx.numpy_helper.to_array(attr.t)]
        return [np.asarray(helper.get_attribute_value(attr))]
    names = [f"in{i}" for i in range(len(values))]
    ins = [n if node.input[i] else "" for i, n in enumerate(names)]
    new = helper.make_node(node.op_type, ins, list(node.output), domain=node.domain, **{
        a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph([new], "fold",
                              [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                               for n, v in zip(names, values) if v is not None],
                              [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                               for o in node.output])
    model = helper.make_model(graph, opset_imports=list(opset_imports))
    feeds = {n: v for n, v in zip(names, values) if v is not None}
    return ReferenceEvaluator(model).run(None, feeds)


# --------------------------------------------------------------------------- walk
def _load(model):
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the dispatcher checks too
        raise UnsupportedLayerError("ONNX models need the onnx extra: pip install 'lipsdp[onnx]'") from exc
    if isinstance(model, onnx.ModelProto):
        return model, getattr(model.graph, "name", "") or "onnx model"
    path = os.fspath(model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        m = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise InvalidNetworkError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not m.graph.node:
        raise InvalidNetworkError(f"{path} is not a readable ONNX model (its graph has no nodes)")
    return m, os.path.splitext(os.path.basename(path))[0]


def from_onnx(model, name: str | None = None, fold: bool = True) -> Network:
    """Lower an ONNX model (path or ``onnx.ModelProto``) to a :class:`Network` (see module docstring).

    The single graph input's first axis is the batch axis (any size, symbolic or fixed);
    ``input_shape`` of the result is the per-sample shape. With ``fold`` (default)
    consecutive affine maps are merged.

    Raises:
        FileNotFoundError, InvalidNetworkError (unreadable/corrupt file, inconsistent shapes),
        UnsupportedLayerError (an op without a sound description; names op type and node).
    """
    from onnx import numpy_helper

    m, label = _load(model)
    g = m.graph
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=13)
    consts: dict = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{label} has {len(inputs)} graph inputs; exactly one is supported")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) < 2:
        raise UnsupportedLayerError(f"{label}: input '{inputs[0].name}' has rank {len(dims)}; a leading batch axis "
                                    "and at least one feature axis are expected")
    shape = []
    for d in dims[1:]:
        if not d.HasField("dim_value"):
            raise UnsupportedLayerError(f"{label}: input '{inputs[0].name}' has a symbolic feature dimension "
                                        f"'{d.dim_param}'")
        shape.append(int(d.dim_value))
    source = _Dyn(inputs[0].name, shape)
    dyn: dict = {source.name: source}
    idom = {source: None}
    lowered: dict = {}
    combos: dict = {}
    position = 0
    for node in g.node:
        vals = [None if not nm else dyn.get(nm, consts.get(nm)) for nm in node.input]
        for nm, v in zip(node.input, vals):
            if nm and v is None:
                raise InvalidNetworkError(f"{label}: {node.op_type} node '{node.name}' reads undefined tensor '{nm}'")
        dyn_in = [v for v in vals if isinstance(v, _Dyn)]
        if not dyn_in:  # constant folding
            try:
                outs = _fold_constant_node(node, vals, m.opset_import)
            except Exception as exc:
                raise UnsupportedLayerError(f"{node.op_type} node '{node.name}': constant folding failed "
                                            f"({type(exc).__name__}: {exc})") from exc
            for o, v in zip(node.output, outs):
                consts[o] = np.asarray(v)
            continue
        position += 1
        if node.op_type == "Shape":
            consts[node.output[0]] = np.asarray((1,) + dyn_in[0].shape, dtype=np.int64)
            continue
        attrs = {a.name: _attr(a) for a in node.attribute}
        if node.op_type in ("Add", "Sub") and len(dyn_in) == 2:
            a, b = dyn_in
            if a.shape != b.shape:
                raise UnsupportedLayerError(f"{node.op_type} node '{node.name}' (position {position}) broadcasts "
                                            f"shapes {a.shape} and {b.shape}; only equal shapes are supported")
            out = _Dyn(node.output[0], a.shape)
            combos[out] = (a, b, 1.0 if node.op_type == "Add" else -1.0)
            idom[out] = dominator(a, b, idom)
        else:
            if len(dyn_in) != 1 or (node.op_type not in ("Add", "Sub", "Mul", "Div") and vals[0] is not dyn_in[0]):
                raise UnsupportedLayerError(
                    f"{node.op_type} node '{node.name}' (position {position}) combines {len(dyn_in)} input-dependent "
                    "tensors in an unsupported way")
            handler = ONNX_HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            ctx = _Ctx(node, position, vals, attrs, opset)
            if handler is None:
                raise ctx.unsupported(f"op type '{node.op_type}'{' (domain ' + node.domain + ')' if node.domain else ''}"
                                      " has no sound Lipschitz description in lipsdp")
            layers, out_shape = handler(ctx)
            out = _Dyn(node.output[0], out_shape)
            lowered[out] = layers
            idom[out] = dyn_in[0]
        dyn[out.name] = out
        for extra in node.output[1:]:  # e.g. Dropout's mask: unused
            if extra:
                consts.setdefault(extra, np.zeros(0))
    outputs = list(g.output)
    if len(outputs) != 1:
        raise UnsupportedLayerError(f"{label} has {len(outputs)} outputs; exactly one is supported")
    if outputs[0].name not in dyn:
        raise UnsupportedLayerError(f"{label}: the output '{outputs[0].name}' does not depend on the input")
    out = dyn[outputs[0].name]
    layers = assemble_dag(source, out, idom, lowered, combos, lambda n: n.size, name_of=lambda n: n.name)
    if fold:
        layers = fold_consecutive_affine(layers)
    if not layers:
        n = source.size
        layers = [Affine(sp.identity(n, format="csr"), name="identity")]
    return Network(layers, input_shape=tuple(shape), name=name or label)


def _attr(a):
    from onnx import helper

    v = helper.get_attribute_value(a)
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v
