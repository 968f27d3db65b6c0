"""Extract a :class:`~lipsdp.network.Network` from a torch module.

The module is traced with ``torch.fx`` (so ``nn.Sequential`` and general
modules with a static forward are handled alike), shapes are propagated with a
zero input, and every node is lowered by a handler from one of three registries:

* :data:`MODULE_HANDLERS`: module class -> handler (``nn.Linear``, activations, ...);
* :data:`FUNCTION_HANDLERS`: function -> handler (``torch.relu``, ``F.gelu``, ...);
* :data:`METHOD_HANDLERS`: tensor method name -> handler (``x.relu()``, ``x.view(...)``).

A handler receives a :class:`NodeContext` and returns the layers it lowers to
(an empty list for layout-only operations such as ``Flatten``: the description
works on flat C-order vectors, so reshapes are identities). Everything is
converted to float64.

Graphs need not be linear: an addition or subtraction of two tensors (``+``, ``+=``,
``-``, ``torch.add(..., alpha=)``, ``Tensor.add``) whose operands share an earlier tensor
becomes a :class:`~lipsdp.network.residual.Residual` block x -> P x + g(x): the fork is the
nearest tensor every path to both operands passes through, the operand reached from it
through affine layers only (possibly none: P = I) is the skip, the other the branch; two
nonlinear operands are refused (see :func:`_lower_graph`). Multiplication by a constant
number is an affine map.

Errors: a BatchNorm/Dropout module in training mode raises
:class:`~lipsdp.errors.TrainModeError`; any module, function or method without a
handler raises :class:`~lipsdp.errors.UnsupportedLayerError` naming its type and
its position (node index and qualified name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidNetworkError, LipSDPError, TrainModeError, UnsupportedLayerError
from ..network import activations as act
from ..network.layers import Activation, Affine
from ..network.network import Network
from .graph import assemble_dag, dominator, fold_consecutive_affine

__all__ = ["from_torch", "MODULE_HANDLERS", "FUNCTION_HANDLERS", "METHOD_HANDLERS", "NodeContext",
           "register_module_handler"]


@dataclass
class NodeContext:
    """What a handler knows about the node it lowers."""

    node: object  # torch.fx.Node
    target: object  # the module (call_module) or function / method name
    position: int  # index among computing nodes
    qualname: str  # module path or function name
    in_shape: tuple  # per-sample shape of the main input
    out_shape: tuple  # per-sample shape of the output
    args: tuple  # non-tensor arguments, resolved
    kwargs: dict

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def where(self) -> str:
        return f"position {self.position} ('{self.qualname}')"


Handler = Callable[[NodeContext], list]
MODULE_HANDLERS: dict = {}
FUNCTION_HANDLERS: dict = {}
METHOD_HANDLERS: dict = {}


def register_module_handler(cls, handler: Handler) -> None:
    """Teach the extractor a new module type."""
    MODULE_HANDLERS[cls] = handler


def _np(t) -> np.ndarray:
    return t.detach().cpu().to(dtype=__import__("torch").float64).numpy().copy()


def _elementwise(spec_fn) -> Handler:
    def handler(ctx: NodeContext):
        return [Activation(spec_fn(ctx), ctx.in_size, name=ctx.qualname)]

    return handler


def _identity(ctx: NodeContext):
    return []


def _check_eval(ctx: NodeContext):
    mod = ctx.target
    if getattr(mod, "training", False):
        raise TrainModeError(
            f"{type(mod).__name__} at {ctx.where()} is in training mode; call model.eval() before bounding"
        )


def _dropout(ctx: NodeContext):
    _check_eval(ctx)
    return []


def _linear(ctx: NodeContext):
    mod = ctx.target
    if len(ctx.in_shape) != 1:
        raise UnsupportedLayerError(
            f"nn.Linear at {ctx.where()} is applied to a tensor of shape {ctx.in_shape}; only flat inputs are supported"
        )
    w = _np(mod.weight)
    b = _np(mod.bias) if mod.bias is not None else None
    return [Affine(w, b, name=ctx.qualname)]


def _batchnorm(ctx: NodeContext):
    """Eval-mode BatchNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel (dim 0 of the sample)."""
    _check_eval(ctx)
    mod = ctx.target
    if mod.running_mean is None or mod.running_var is None:
        raise UnsupportedLayerError(
            f"{type(mod).__name__} at {ctx.where()} has no running statistics (track_running_stats=False)"
        )
    mean, var = _np(mod.running_mean), _np(mod.running_var)
    scale = 1.0 / np.sqrt(var + float(mod.eps))
    shift = -mean * scale
    if mod.affine:
        g, beta = _np(mod.weight), _np(mod.bias)
        scale, shift = scale * g, shift * g + beta
    channels = ctx.in_shape[0]
    per = ctx.in_size // channels
    diag = np.repeat(scale, per)
    bias = np.repeat(shift, per)
    return [Affine(sp.diags(diag, format="csr"), bias, name=ctx.qualname)]


def _conv(ctx: NodeContext):
    """nn.Conv1d / nn.Conv2d: a sparse matrix (:func:`lipsdp.network.linear_ops.conv_matrix`)."""
    import torch.nn as nn

    from ..network.linear_ops import conv1d_matrix, conv_matrix

    mod = ctx.target
    if mod.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{type(mod).__name__} at {ctx.where()} uses padding_mode='{mod.padding_mode}'; "
                                    "only zero padding is supported")
    k = _np(mod.weight)
    b = _np(mod.bias) if mod.bias is not None else None
    pad = mod.padding
    if isinstance(pad, str):  # 'valid' or 'same' (stride 1): work out the explicit padding
        spatial = ctx.in_shape[1:]
        total = [0] * len(spatial) if pad == "valid" else [d * (kk - 1) for d, kk in zip(mod.dilation, mod.kernel_size)]
        begin = [t // 2 for t in total]
        end = [t - t // 2 for t in total]
    else:
        begin = end = list(pad)
    if isinstance(mod, nn.Conv1d):
        w, bias, _ = conv1d_matrix(k, ctx.in_shape, b, mod.stride[0], (begin[0], end[0]), mod.dilation[0], mod.groups)
    else:
        w, bias, _ = conv_matrix(k, ctx.in_shape, b, mod.stride, (begin[0], begin[1], end[0], end[1]), mod.dilation,
                                 mod.groups)
    return [Affine(w, bias, name=ctx.qualname)]


def _avgpool2d(ctx: NodeContext):
    from ..network.linear_ops import avg_pool_matrix

    mod = ctx.target
    if mod.divisor_override is not None:
        raise UnsupportedLayerError(f"AvgPool2d at {ctx.where()} with divisor_override is not supported")
    w, _ = avg_pool_matrix(ctx.in_shape, mod.kernel_size, mod.stride, mod.padding, mod.count_include_pad,
                           mod.ceil_mode)
    return [Affine(w, name=ctx.qualname)]


def _zeropad(ctx: NodeContext):
    """nn.ZeroPad2d / nn.ConstantPad{1,2}d: (left, right, top, bottom) -> ONNX-style pads on (C, H, W)."""
    from ..network.linear_ops import pad_matrix

    mod = ctx.target
    p = list(mod.padding)
    rank = len(ctx.in_shape)
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(p) // 2):  # torch lists the last axis first
        begins[rank - 1 - i], ends[rank - 1 - i] = p[2 * i], p[2 * i + 1]
    w, b, _ = pad_matrix(ctx.in_shape, begins + ends, float(getattr(mod, "value", 0.0)))
    return [Affine(w, b, name=ctx.qualname)]


def _maxpool(ctx: NodeContext):
    kind = type(ctx.target).__name__ if not isinstance(ctx.target, str) else ctx.qualname
    raise UnsupportedLayerError(
        f"{kind} at {ctx.where()}: max pooling is not slope-restricted per neuron and is unsupported "
        "(planned: a sound quadratic constraint for max); replace it by average pooling or a strided convolution"
    )


def _spec_from_module(mod) -> Callable:
    import torch.nn as nn

    if isinstance(mod, nn.ReLU):
        return lambda ctx: act.relu()
    if isinstance(mod, nn.LeakyReLU):
        return lambda ctx: act.leaky_relu(mod.negative_slope)
    if isinstance(mod, nn.Tanh):
        return lambda ctx: act.tanh()
    if isinstance(mod, nn.Sigmoid):
        return lambda ctx: act.sigmoid()
    if isinstance(mod, nn.ELU):
        return lambda ctx: act.elu(mod.alpha)
    if isinstance(mod, nn.Softplus):
        return lambda ctx: act.softplus(mod.beta)
    if isinstance(mod, nn.SiLU):
        return lambda ctx: act.silu()
    if isinstance(mod, nn.GELU):
        return lambda ctx: act.gelu_tanh() if mod.approximate == "tanh" else act.gelu()
    if isinstance(mod, nn.ReLU6):
        return lambda ctx: act.relu6()
    if isinstance(mod, nn.Hardtanh):
        return lambda ctx: act.hardtanh(mod.min_val, mod.max_val)
    raise KeyError(type(mod))


def _module_activation(ctx: NodeContext):
    return [Activation(_spec_from_module(ctx.target)(ctx), ctx.in_size, name=ctx.qualname)]


def _install_default_handlers() -> None:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    MODULE_HANDLERS.update({
        nn.Linear: _linear,
        nn.Flatten: _identity,
        nn.Identity: _identity,
        nn.Dropout: _dropout,
        nn.AlphaDropout: _dropout,
        nn.BatchNorm1d: _batchnorm,
        nn.BatchNorm2d: _batchnorm,
        nn.Conv1d: _conv,
        nn.Conv2d: _conv,
        nn.AvgPool2d: _avgpool2d,
        nn.ZeroPad2d: _zeropad,
        nn.ConstantPad1d: _zeropad,
        nn.ConstantPad2d: _zeropad,
        nn.MaxPool1d: _maxpool,
        nn.MaxPool2d: _maxpool,
        nn.AdaptiveMaxPool2d: _maxpool,
    })
    FUNCTION_HANDLERS[F.max_pool2d] = _maxpool
    FUNCTION_HANDLERS[F.max_pool1d] = _maxpool
    for cls in (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Softplus, nn.SiLU, nn.GELU,
                nn.ReLU6, nn.Hardtanh):
        MODULE_HANDLERS[cls] = _module_activation

    def gelu_fn(ctx):
        approx = ctx.kwargs.get("approximate", "none")
        return act.gelu_tanh() if approx == "tanh" else act.gelu()

    def leaky_fn(ctx):
        slope = ctx.kwargs.get("negative_slope", ctx.args[0] if ctx.args else 0.01)
        return act.leaky_relu(slope)

    def elu_fn(ctx):
        return act.elu(ctx.kwargs.get("alpha", ctx.args[0] if ctx.args else 1.0))

    def softplus_fn(ctx):
        return act.softplus(ctx.kwargs.get("beta", ctx.args[0] if ctx.args else 1.0))

    def dropout_fn(ctx):
        training = ctx.kwargs.get("training", ctx.args[1] if len(ctx.args) > 1 else True)
        if training:
            raise TrainModeError(f"F.dropout at {ctx.where()} is called with training=True")
        return []

    simple = {
        torch.relu: lambda ctx: act.relu(),
        F.relu: lambda ctx: act.relu(),
        torch.tanh: lambda ctx: act.tanh(),
        F.tanh: lambda ctx: act.tanh(),
        torch.sigmoid: lambda ctx: act.sigmoid(),
        F.sigmoid: lambda ctx: act.sigmoid(),
        F.silu: lambda ctx: act.silu(),
        F.gelu: gelu_fn,
        F.leaky_relu: leaky_fn,
        F.elu: elu_fn,
        F.softplus: softplus_fn,
        F.relu6: lambda ctx: act.relu6(),
    }
    for fn, spec in simple.items():
        FUNCTION_HANDLERS[fn] = _elementwise(spec)
    FUNCTION_HANDLERS[torch.flatten] = _identity  # flat C-order vectors: a reshape is the identity
    _install_scalar_handlers()
    FUNCTION_HANDLERS[F.dropout] = dropout_fn
    FUNCTION_HANDLERS[torch.reshape] = _identity
    METHOD_HANDLERS.update({
        "relu": _elementwise(lambda ctx: act.relu()),
        "tanh": _elementwise(lambda ctx: act.tanh()),
        "sigmoid": _elementwise(lambda ctx: act.sigmoid()),
        "view": _identity,
        "reshape": _identity,
        "flatten": _identity,
        "contiguous": _identity,
    })


def _group_handler(kind_of) -> Handler:
    """Handler for a group activation module; ``kind_of(mod, ctx)`` -> GroupActivation kwargs."""
    from ..network.group import GroupActivation

    def handler(ctx: NodeContext):
        if len(ctx.in_shape) != 1:
            raise UnsupportedLayerError(
                f"{type(ctx.target).__name__} at {ctx.where()} acts on a tensor of shape {ctx.in_shape}; "
                "group activations are supported on flat (N, C) features only")
        kw = kind_of(ctx.target, ctx)
        scale = float(kw.pop("scale", 1.0))
        try:
            layer = GroupActivation(size=ctx.in_size, name=ctx.qualname, **kw)
            layer.check(f"{type(ctx.target).__name__} at {ctx.where()}")
        except LipSDPError:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            raise UnsupportedLayerError(f"{type(ctx.target).__name__} at {ctx.where()}: {exc}") from exc
        out = [layer]
        if scale != 1.0:
            out.append(Affine(sp.identity(ctx.in_size, format="csr") * scale, name=f"{ctx.qualname}.k_coef_lip"))
        return out

    return handler


def _lipsdp_group_kw(mod, ctx):
    from ..nn import HouseholderActivation, MaxMin

    if isinstance(mod, HouseholderActivation):
        return {"kind": "householder", "group_size": mod.group_size, "grouping": mod.grouping, "v": _np(mod.v)}
    kind = "maxmin" if isinstance(mod, MaxMin) else "groupsort"
    return {"kind": kind, "group_size": mod.group_size, "grouping": mod.grouping, "descending": mod.descending}


def _torchlip_scale(mod) -> float:
    return float(getattr(mod, "_coefficient_lip", 1.0))


def _torchlip_groupsort_kw(mod, ctx):
    # deel.torchlip.functional.group_sort: consecutive groups of group_size along dim 1, ascending
    # (group_size None or larger than the input: one group, FullSort); output times k_coef_lip.
    g = mod.group_size if mod.group_size is not None and mod.group_size <= ctx.in_size else ctx.in_size
    return {"kind": "groupsort", "group_size": int(g), "grouping": "consecutive", "descending": False,
            "scale": _torchlip_scale(mod)}


def _torchlip_householder_kw(mod, ctx):
    # deel.torchlip HouseHolder: pairs (x_i, y_i) from the two halves of dim 1; reflected by
    # H = [[cos t, sin t], [sin t, -cos t]] = I - 2 u u^T, u = (sin(t/2), -cos(t/2)), when
    # u^T z > 0 and kept otherwise; i.e. kept when v^T z >= 0 for v = -u (the two agree on
    # v^T z = 0, where H z = z).
    import torch

    theta = mod.theta.detach().to(torch.float64)
    v = torch.stack([-torch.sin(0.5 * theta), torch.cos(0.5 * theta)], dim=1).cpu().numpy()
    return {"kind": "householder", "group_size": 2, "grouping": "halves", "v": v, "scale": _torchlip_scale(mod)}


def _monotonic_groupsort_kw(mod, ctx):
    # monotonicnetworks.GroupSort(n_groups): view (..., n_groups, C / n_groups), sort ascending
    if getattr(mod, "axis", -1) not in (-1, 1):
        raise UnsupportedLayerError(f"monotonicnetworks GroupSort at {ctx.where()} sorts along axis {mod.axis}")
    n_groups = int(mod.n_groups)
    if n_groups <= 0 or ctx.in_size % n_groups:
        raise UnsupportedLayerError(
            f"monotonicnetworks GroupSort at {ctx.where()}: {ctx.in_size} features are not divisible into "
            f"{n_groups} groups")
    return {"kind": "groupsort", "group_size": ctx.in_size // n_groups, "grouping": "consecutive",
            "descending": False}


def _install_group_handlers() -> None:
    """lipsdp.nn modules; deel-torchlip and monotonicnetworks modules when those are installed."""
    from .. import nn as lnn

    for cls in (lnn.MaxMin, lnn.GroupSort, lnn.HouseholderActivation):
        MODULE_HANDLERS[cls] = _group_handler(_lipsdp_group_kw)
    try:
        from deel.torchlip.modules import activation as tl
    except Exception:  # optional dependency (any import failure: not usable)
        tl = None
    if tl is not None:
        MODULE_HANDLERS[tl.GroupSort] = _group_handler(_torchlip_groupsort_kw)  # GroupSort2, FullSort subclass it
        MODULE_HANDLERS[tl.HouseHolder] = _group_handler(_torchlip_householder_kw)
    try:
        import monotonicnetworks as mn
    except Exception:
        mn = None
    if mn is not None:
        MODULE_HANDLERS[mn.GroupSort] = _group_handler(_monotonic_groupsort_kw)


_INSTALLED = False


def _ensure_handlers():
    global _INSTALLED
    if not _INSTALLED:
        _install_default_handlers()
        _install_group_handlers()
        _INSTALLED = True


def _find_handler(table: dict, key):
    if key in table:
        return table[key]
    if isinstance(key, type):
        for cls in key.__mro__[1:]:
            if cls in table:
                return table[cls]
    return None


def _infer_input_shape(model) -> tuple:
    import torch.nn as nn

    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            return (mod.in_features,)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            break
    raise InvalidNetworkError(
        "input_shape is required for this model (its first layer is not nn.Linear); "
        "pass e.g. input_shape=(1, 28, 28) for one sample without the batch dimension"
    )


def _check_modes(model) -> None:
    import torch.nn as nn

    for qual, mod in model.named_modules():
        if isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.AlphaDropout)) and mod.training:
            raise TrainModeError(
                f"{type(mod).__name__} '{qual or type(model).__name__}' is in training mode; "
                "call model.eval() before bounding"
            )


def from_torch(model, input_shape=None, name: str | None = None, fold: bool = True) -> Network:
    """Lower a torch module to a :class:`Network`.

    Args:
        model: a ``torch.nn.Module`` with a traceable forward (single tensor in, single tensor out).
        input_shape: shape of one input without the batch dimension; inferred when the
            first layer is ``nn.Linear``.
        name: label for the network (defaults to the class name).
        fold: merge consecutive affine maps (BatchNorm, padding, normalisation into their neighbours;
            the network computes the same function).

    Raises:
        TrainModeError, UnsupportedLayerError, InvalidNetworkError.
    """
    import torch
    import torch.fx as fx
    from torch.fx.passes.shape_prop import ShapeProp

    _ensure_handlers()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    _check_modes(model)
    if input_shape is None:
        input_shape = _infer_input_shape(model)
    input_shape = tuple(int(s) for s in input_shape)

    class _Tracer(fx.Tracer):  # modules with a handler are leaves, whatever package defines them
        def is_leaf_module(self, m, qualname):
            return _find_handler(MODULE_HANDLERS, type(m)) is not None or super().is_leaf_module(m, qualname)

    root = model
    if _find_handler(MODULE_HANDLERS, type(model)) is not None:  # a bare handled module: trace it as a leaf
        root = torch.nn.Sequential(model)
    try:
        gm = fx.GraphModule(root, _Tracer().trace(root), type(model).__name__)
    except Exception as exc:  # tracing failures come in many types
        raise UnsupportedLayerError(
            f"{type(model).__name__} could not be traced with torch.fx ({type(exc).__name__}: {exc}); "
            "use a static forward (no data-dependent control flow) or describe the network with lipsdp.Network"
        ) from exc
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float32
    example = torch.zeros((1,) + input_shape, dtype=dtype)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, LipSDPError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # e.g. an implicit layer that is not well-posed: its own error
            raise cause from exc
        raise InvalidNetworkError(
            f"running {type(model).__name__} on an input of shape {input_shape} failed: {exc}"
        ) from exc
    layers = _lower_graph(gm, type(model).__name__)
    if fold:
        layers = fold_consecutive_affine(layers)
    if not layers:
        raise InvalidNetworkError(f"{type(model).__name__} has no layers with parameters or activations")
    return Network(layers, input_shape=input_shape, name=name or type(model).__name__)



def _scalar_handler(kind: str) -> Handler:
    """x * c, c * x, x / c, -x with a Python number c: the affine map c I."""

    def handler(ctx: NodeContext):
        import torch.fx as fx

        nums = [a for a in ctx.args if isinstance(a, (int, float))]
        if len(nums) != len(ctx.args) or (kind == "div" and not isinstance(ctx.node.args[0], fx.Node)):
            raise UnsupportedLayerError(f"{kind} at {ctx.where()} is not a multiplication by a constant number")
        c = -1.0 if kind == "neg" else float(np.prod(nums)) if nums else 1.0
        if kind == "div":
            c = 1.0 / c
        return [Affine(sp.identity(ctx.in_size, format="csr") * c, name=ctx.qualname)]

    return handler


def _install_scalar_handlers() -> None:
    import operator

    import torch

    for fn, kind in ((operator.mul, "mul"), (torch.mul, "mul"), (operator.truediv, "div"), (torch.div, "div"),
                     (operator.neg, "neg"), (torch.neg, "neg")):
        FUNCTION_HANDLERS[fn] = _scalar_handler(kind)
    for name, kind in (("mul", "mul"), ("div", "div"), ("neg", "neg")):
        METHOD_HANDLERS[name] = _scalar_handler(kind)


# ---------------------------------------------------------------------------- graph lowering
def _combination(node, tensor_nodes):
    """(a, b, factor) if ``node`` is a + factor * b of two tensors (add/sub, operator or torch), else None."""
    import operator

    import torch
    import torch.fx as fx

    adds = {operator.add: 1.0, operator.iadd: 1.0, torch.add: 1.0, operator.sub: -1.0, operator.isub: -1.0,
            torch.sub: -1.0}
    if node.op == "call_function" and node.target in adds:
        sign = adds[node.target]
    elif node.op == "call_method" and node.target in ("add", "add_", "sub", "sub_"):
        sign = -1.0 if node.target.startswith("sub") else 1.0
    else:
        return None
    args = list(node.args[:2])
    if len(args) != 2 or not all(isinstance(x, fx.Node) and x in tensor_nodes for x in args):
        return None
    alpha = node.kwargs.get("alpha", node.args[2] if len(node.args) > 2 else 1.0)
    return args[0], args[1], sign * float(alpha)


def _lower_graph(gm, model_name: str) -> list:
    """Layers computing the traced graph's output from its input (see :func:`from_torch`).

    Every node with one tensor input is lowered by its handler (in graph order, so the first
    unsupported operation is the one reported). An addition (or subtraction) of two tensors is
    a residual block: its fork is the nearest common dominator of the two operands, the
    operand whose path from the fork is affine (possibly empty) becomes the skip, the other
    the branch; two nonlinear operands are refused.
    """
    import torch.fx as fx

    modules = dict(gm.named_modules())
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedLayerError(f"{model_name} has {len(placeholders)} inputs; exactly one is supported")
    source = placeholders[0]
    tensor_nodes = {source}
    idom = {source: None}  # immediate dominator of each tensor node
    lowered: dict = {}  # node -> layers (single-input nodes)
    combos: dict = {}  # node -> (a, b, factor)
    position = 0
    out = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "get_attr":
            raise UnsupportedLayerError(
                f"node '{node.name}' reads parameter '{node.target}' directly; only modules and functions of the "
                "running tensor are supported"
            )
        if node.op == "output":
            out = node.args[0]
            if not (isinstance(out, fx.Node) and out in tensor_nodes):
                raise UnsupportedLayerError(f"the output of {model_name} is not a single tensor (tuple outputs are "
                                            "not supported)")
            break
        meta = node.meta.get("tensor_meta")
        is_tensor = meta is not None and hasattr(meta, "shape")
        if node.op == "call_method" and node.target in ("size", "dim") or not is_tensor:
            continue  # shape queries
        position += 1
        tensor_args = [a for a in list(node.args) + list(node.kwargs.values())
                       if isinstance(a, fx.Node) and a in tensor_nodes]
        combo = _combination(node, tensor_nodes)
        if combo is not None:
            a, b, _ = combo
            shapes = [tuple(x.meta["tensor_meta"].shape) for x in (a, b, node)]
            if len(set(shapes)) != 1:
                raise UnsupportedLayerError(
                    f"the addition at position {position} ('{node.name}') broadcasts shapes {shapes[0]} and "
                    f"{shapes[1]}; only additions of equally shaped tensors are supported"
                )
            combos[node] = combo
            idom[node] = dominator(a, b, idom)
        elif len(tensor_args) == 1:
            lowered[node] = _lower_node(node, tensor_args[0], position, modules)
            idom[node] = tensor_args[0]
        else:
            kind = str(node.target) if node.op != "call_module" else type(modules[node.target]).__name__
            raise UnsupportedLayerError(
                f"{kind} at position {position} ('{node.name}') combines {len(tensor_args)} tensors; only additions "
                "of two branches (residual connections) are supported"
            )
        tensor_nodes.add(node)
    if out is None:
        raise UnsupportedLayerError(f"{model_name} has no output")

    def size_of(node) -> int:
        return int(math.prod(node.meta["tensor_meta"].shape[1:]))

    return assemble_dag(source, out, idom, lowered, combos, size_of, name_of=lambda n: n.name)


def _lower_node(node, src, position: int, modules: dict) -> list:
    """The handler's layers for a node with the single tensor input ``src``."""
    import torch.fx as fx

    meta = node.meta["tensor_meta"]
    in_shape = tuple(src.meta["tensor_meta"].shape[1:])
    out_shape = tuple(meta.shape[1:])
    other_args = tuple(a for a in node.args if not isinstance(a, fx.Node))
    if node.op == "call_module":
        mod = modules[node.target]
        handler = _find_handler(MODULE_HANDLERS, type(mod))
        ctx = NodeContext(node, mod, position, str(node.target), in_shape, out_shape, other_args, dict(node.kwargs))
        kind = f"{type(mod).__module__}.{type(mod).__name__}"
    elif node.op == "call_function":
        handler = FUNCTION_HANDLERS.get(node.target)
        fname = getattr(node.target, "__name__", str(node.target))
        ctx = NodeContext(node, node.target, position, fname, in_shape, out_shape, other_args, dict(node.kwargs))
        kind = f"function {getattr(node.target, '__module__', '') or ''}.{fname}".replace(" .", " ")
    else:  # call_method
        handler = METHOD_HANDLERS.get(node.target)
        ctx = NodeContext(node, node.target, position, f"Tensor.{node.target}", in_shape, out_shape,
                          other_args, dict(node.kwargs))
        kind = f"method Tensor.{node.target}"
    if handler is None:
        raise UnsupportedLayerError(
            f"unsupported layer at {ctx.where()}: {kind} has no sound Lipschitz description in lipsdp"
        )
    new = handler(ctx)
    lowered = new[-1].out_dim if new else ctx.in_size
    if math.prod(out_shape) != lowered:
        raise InvalidNetworkError(
            f"{kind} at {ctx.where()}: lowered to {lowered} outputs but the module produces shape {out_shape}"
        )
    return new
