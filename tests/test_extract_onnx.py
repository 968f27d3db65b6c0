"""ONNX extraction: every op against onnx.reference.ReferenceEvaluator; the shared VNN-COMP nets; errors."""

from __future__ import annotations

import numpy as np
import pytest

from lipsdp.errors import InvalidNetworkError, UnsupportedLayerError
from lipsdp.network import Affine
from lipsdp.network.residual import Residual

from .conftest import shared_path

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from lipsdp.extract.onnx import from_onnx  # noqa: E402

NETS = ["ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_2_1_batch_2000.onnx", "mnist-net_256x2.onnx",
        "ffnnSIGMOID__Point_6x200.onnx", "Convnet_avgpool.onnx", "cifar10_small.onnx", "resnet_2b.onnx"]


def _model(nodes, in_shape, inits, opset=13, dtype=TensorProto.DOUBLE):
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", dtype, in_shape)],
        [helper.make_tensor_value_info(nodes[-1].output[0], dtype, None)],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, batch=2, tol=1e-10):
    net = from_onnx(model)
    dims = [d.dim_value if d.HasField("dim_value") else batch for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(dims)
    ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = net.forward(x.reshape(dims[0], -1))
    np.testing.assert_allclose(got, ref.reshape(dims[0], -1), rtol=tol, atol=tol * np.max(np.abs(ref)))
    return net


R = np.random.default_rng(1)


def test_gemm_trans_alpha_beta_and_normalisation():
    nodes = [helper.make_node("Sub", ["x", "mu"], ["a"]), helper.make_node("Div", ["a", "sd"], ["b"]),
             helper.make_node("Mul", ["s", "b"], ["c"]),
             helper.make_node("Gemm", ["c", "W", "B"], ["d"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("LeakyRelu", ["d"], ["e"], alpha=0.1),
             helper.make_node("Gemm", ["e", "W2"], ["f"]), helper.make_node("Tanh", ["f"], ["g"]),
             helper.make_node("Sub", ["one", "g"], ["h"])]
    inits = {"mu": R.standard_normal(4), "sd": R.uniform(0.5, 2, 4), "s": R.standard_normal((1, 4)),
             "W": R.standard_normal((6, 4)), "B": R.standard_normal(6), "W2": R.standard_normal((6, 3)),
             "one": np.ones(3)}
    net = _check(_model(nodes, ["N", 4], inits))
    # normalisation folded into the first Gemm, the final 1 - g into the second: affine, act, affine, act, affine
    assert [isinstance(layer, Affine) for layer in net.layers] == [True, False, True, False, True]


def test_conv_bn_pad_avgpool_transpose_reshape():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "K", "kb"], ["c"], strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2],
                              group=1),
             helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("Pad", ["r", "pads", "pv"], ["p"], mode="constant"),
             helper.make_node("AveragePool", ["p"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0],
                              count_include_pad=0),
             helper.make_node("Conv", ["ap", "K2"], ["c2"], group=2, auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
             helper.make_node("Sigmoid", ["c2"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "W"], ["y"])]
    inits = {"K": R.standard_normal((4, 3, 3, 2)), "kb": R.standard_normal(4), "g": R.standard_normal(4),
             "be": R.standard_normal(4), "m": R.standard_normal(4), "v": R.uniform(0.5, 2, 4),
             "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], dtype=np.int64), "pv": np.array(0.7),
             "K2": R.standard_normal((4, 2, 3, 3)), "shape": np.array([-1, 4 * 3 * 3], dtype=np.int64)}
    # spatial sizes: 9x8 -> conv (9+3-3)//2+1=5 x (8+1-3)//1+1=7 -> pad -> 6x9 -> pool pads(1,1): 3x5 -> same: 3x5
    inits["shape"] = np.array([-1, 4 * 3 * 5], dtype=np.int64)
    inits["W"] = R.standard_normal((60, 5))
    # opset 15: onnx.reference's BatchNormalization_9 (opsets 9-13) applies batch statistics
    net = _check(_model(nodes, ["N", 9, 8, 3], inits, opset=15))
    assert net.input_shape == (9, 8, 3)


def test_residual_add_and_constant_node():
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(R.standard_normal((5, 5)))),
             helper.make_node("MatMul", ["x", "k"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "W"], ["c"]), helper.make_node("Add", ["c", "x"], ["d"]),
             helper.make_node("Identity", ["d"], ["e"]), helper.make_node("Relu", ["e"], ["y"])]
    net = _check(_model(nodes, [1, 5], {"W": R.standard_normal((5, 5))}))
    assert isinstance(net.layers[0], Residual) and net.layers[0].skip is None


def test_unsupported_ops_are_named():
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], name="pool1")]
    with pytest.raises(UnsupportedLayerError, match=r"MaxPool node 'pool1'.*planned"):
        from_onnx(_model(nodes, [1, 1, 4, 4], {}))
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Softmax", ["a"], ["y"], name="sm")]
    with pytest.raises(UnsupportedLayerError, match=r"Softmax node 'sm'.*op type 'Softmax'"):
        from_onnx(_model(nodes, [1, 4], {}))
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="sq")]
    with pytest.raises(UnsupportedLayerError, match="sq"):
        from_onnx(_model(nodes, [1, 4], {}))
    nodes = [helper.make_node("Div", ["one", "x"], ["y"], name="inv")]
    with pytest.raises(UnsupportedLayerError, match="not affine"):
        from_onnx(_model(nodes, [1, 4], {"one": np.ones(4)}))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        from_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all\xff" * 10)
    with pytest.raises(InvalidNetworkError, match="not a readable ONNX model"):
        from_onnx(bad)


def _to_double(model):
    """A float64 copy of a float32 model, so the reference evaluator is accurate to ~1e-15."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in m.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for node in m.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64)))
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m


@pytest.mark.parametrize("fname", NETS)
def test_shared_nets_match_reference(fname):
    """The description's forward pass equals the ONNX graph (reference evaluator, in float64) to 1e-6 relative."""
    path = shared_path("nets", fname)
    model = _to_double(onnx.load(path))
    net = from_onnx(path)
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    dims = [d.dim_value if d.HasField("dim_value") else 3 for d in inp.type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    ev = ReferenceEvaluator(model)
    for _ in range(2):
        x = rng.standard_normal(dims)
        ref = ev.run(None, {inp.name: x})[0].reshape(dims[0], -1)
        got = net.forward(x.reshape(dims[0], -1))
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


def test_residual_onnx_is_bounded():
    import lipsdp

    r = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["x", "k"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "W"], ["c"]), helper.make_node("Add", ["x", "c"], ["d"]),
             helper.make_node("Relu", ["d"], ["e"]), helper.make_node("MatMul", ["e", "V"], ["y"])]
    model = _model(nodes, [1, 4], {"k": r.standard_normal((4, 6)) / 2, "W": r.standard_normal((6, 4)) / 2,
                                   "V": r.standard_normal((4, 2))})
    res = lipsdp.estimate(from_onnx(model), lower=True)
    assert res.certified
    assert res.lower_bound <= res.bound <= res.naive_bound * (1 + 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("fname,method", [("ACASXU_run2a_1_1_batch_2000.onnx", "neuron"),
                                          ("ACASXU_run2a_2_1_batch_2000.onnx", "neuron"),
                                          ("mnist-net_256x2.onnx", "layer")])
def test_shared_net_bounds_certified(fname, method):
    """Certified, and lower <= bound <= naive (ACAS Xu reference for the weight chain: 88263.2 with SDPA)."""
    import lipsdp

    res = lipsdp.estimate(str(shared_path("nets", fname)), method=method)
    assert res.certified
    assert res.lower_bound <= res.bound <= res.naive_bound
