"""Interop (xpnet/export.py) against independent oracles: PyTorch and onnxruntime.

* ``state_dict()`` loads into a ``torch.nn.Sequential`` built here layer for layer (strictly,
  with or without ``num_batches_tracked``), and the two compute the same outputs;
* ``to_torch`` / ``from_torch`` round trips, the torch side trained a few Adam steps first;
* ``export(.onnx)`` run by onnxruntime, with and without batch-norm folding and a scaler;
* ``export(.safetensors)`` read back with ``safetensors.numpy.load_file`` and its metadata.

Every network is plain, batch-normalised, with dropout, or both, for every activation and
every head; batch-norm parameters and running statistics are randomised so they matter. Outputs
are compared in float32 at rtol = atol = 1e-5 (measured worst: about 3e-6). Each oracle skips,
saying why, when its package is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import xpnet
import xpnet.export as export_module
from xpnet import MLP, Scaler, Sequential
from xpnet.layers import ACTIVATIONS, GELU, BatchNorm1d, Dropout, Layer, LeakyReLU, Linear, ReLU

TOL = {"rtol": 1e-5, "atol": 1e-5}
SIZES = [12, 16, 8, 5]
VARIANTS = {"plain": {}, "batch_norm": {"batch_norm": True}, "dropout": {"dropout": 0.3},
            "bn_dropout": {"batch_norm": True, "dropout": 0.3}}
HEADS = ["softmax", "sigmoid", "identity"]


def _need(name, why, install="pip install -e '.[test]'"):
    try:
        return __import__(name)
    except ImportError:
        pytest.skip(f"{name} is not installed; {why} (`{install}`)")


def need_torch():
    return _need("torch", "PyTorch is the oracle of the state_dict and torch conversions",
                 "make test installs it; or pip install torch")


def need_ort():
    _need("onnx", "ONNX export needs it")
    return _need("onnxruntime", "onnxruntime runs the exported ONNX models")


def need_safetensors():
    _need("safetensors", "the .safetensors export needs it")
    import safetensors.numpy

    return safetensors


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These networks are tiny: one torch thread. Two threads that spin while waiting made 25
    Adam steps take 6 s instead of 0.07 s on the busy 2-core machine."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_net(activation="relu", head="softmax", variant="plain", dtype="float32", seed=0,
             sizes=SIZES):
    """An MLP with random biases and random batch-norm parameters and running statistics."""
    net = MLP(sizes, activation=activation, output=head, dtype=dtype, device="cpu", seed=seed,
              **VARIANTS[variant])
    randomize(net, seed)
    return net


def randomize(net, seed):
    rng = np.random.default_rng(seed + 100)
    state = net.state_dict()
    bn = {f"{i}." for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm1d)}
    for name, a in state.items():
        prefix, key = name.rsplit(".", 1)[0] + ".", name.rsplit(".", 1)[1]
        if key == "running_var":
            state[name] = rng.uniform(0.3, 2.0, a.shape)
        elif key == "running_mean" or key == "bias":
            state[name] = rng.normal(0.0, 0.5, a.shape)
        elif key == "weight" and prefix in bn:
            state[name] = rng.uniform(0.5, 1.5, a.shape)
    net.load_state_dict(state)


def inputs(n_rows=37, n_features=SIZES[0], seed=1):
    return (np.random.default_rng(seed).standard_normal((n_rows, n_features)) * 2).astype(
        np.float32)


def xpnet_out(net, X):
    return np.asarray(net.forward(X))


def cases():
    return [pytest.param(a, h, v, id=f"{a}-{h}-{v}") for a in ACTIVATIONS for h in HEADS
            for v in VARIANTS]


# ================================================================================ PyTorch
def torch_twin(net):
    """The ``torch.nn.Sequential`` equivalent to ``net``, built here (not by to_torch)."""
    torch = need_torch()
    nn = torch.nn
    dtype = getattr(torch, net.dtype)
    mods = []
    for layer in net.layers:
        if isinstance(layer, Linear):
            mods.append(nn.Linear(layer.in_features, layer.out_features, dtype=dtype))
        elif isinstance(layer, BatchNorm1d):
            mods.append(nn.BatchNorm1d(layer.num_features, eps=layer.eps,
                                       momentum=layer.momentum, dtype=dtype))
        elif isinstance(layer, Dropout):
            mods.append(nn.Dropout(layer.p))
        elif isinstance(layer, LeakyReLU):
            mods.append(nn.LeakyReLU(layer.negative_slope))
        elif isinstance(layer, GELU):
            mods.append(nn.GELU(approximate="tanh"))
        else:
            mods.append(getattr(nn, type(layer).__name__)())
    return nn.Sequential(*mods)


def torch_head(torch, head, Z):
    return {"softmax": lambda: torch.softmax(Z, dim=1), "sigmoid": lambda: torch.sigmoid(Z),
            "identity": lambda: Z}[head]()


def torch_out(module, X, head):
    torch = need_torch()
    module.eval()
    with torch.no_grad():
        return torch_head(torch, head, module(torch.from_numpy(X))).numpy()


@pytest.mark.parametrize("activation, head, variant", cases())
def test_state_dict_loads_into_torch_sequential(activation, head, variant):
    torch = need_torch()
    net = make_net(activation, head, variant)
    twin = torch_twin(net)
    state = {k: torch.from_numpy(v) for k, v in net.state_dict().items()}
    assert list(state) == list(k for k in twin.state_dict() if "num_batches" not in k)
    twin.load_state_dict(state, strict=True)  # no num_batches_tracked: torch fills it in
    with_count = dict(state)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, BatchNorm1d):
            with_count[f"{i}.num_batches_tracked"] = torch.tensor(7)
    twin.load_state_dict(with_count, strict=True)
    X = inputs()
    np.testing.assert_allclose(torch_out(twin, X, head), xpnet_out(net, X), **TOL)
    # ...and back: a torch state_dict (num_batches_tracked included) loads into xpnet.
    other = make_net(activation, head, variant, seed=5)
    other.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    np.testing.assert_allclose(xpnet_out(other, X), xpnet_out(net, X), rtol=0, atol=0)


@pytest.mark.parametrize("activation, head, variant", cases())
def test_to_torch_computes_the_same_outputs(activation, head, variant):
    torch = need_torch()
    net = make_net(activation, head, variant)
    module = xpnet.to_torch(net)
    assert isinstance(module, torch.nn.Sequential) and not module.training
    assert [type(m).__name__ for m in module] == [type(layer).__name__ for layer in net.layers]
    X = inputs()
    np.testing.assert_allclose(torch_out(module, X, head), xpnet_out(net, X), **TOL)
    with_head = xpnet.to_torch(net, include_head=True)
    with torch.no_grad():
        np.testing.assert_allclose(with_head(torch.from_numpy(X)).numpy(), xpnet_out(net, X),
                                   **TOL)
    for name, t in module.state_dict().items():
        if "num_batches" not in name:
            np.testing.assert_array_equal(t.numpy(), net.state_dict()[name])


def test_to_torch_float64_and_settings():
    torch = need_torch()
    net = Sequential([Linear(6, 5), BatchNorm1d(5, eps=1e-3, momentum=0.3), LeakyReLU(0.2),
                      Dropout(0.25), Linear(5, 3)], head="identity", dtype="float64",
                     device="cpu", seed=0)
    randomize(net, 0)
    module = xpnet.to_torch(net)
    assert module[0].weight.dtype == torch.float64
    assert (module[1].eps, module[1].momentum) == (1e-3, 0.3)
    assert module[2].negative_slope == 0.2 and module[3].p == 0.25
    X = inputs(n_features=6).astype(np.float64)
    np.testing.assert_allclose(torch_out(module, X, "identity"), xpnet_out(net, X), rtol=1e-12,
                               atol=1e-14)


def train_torch(module, X, y, loss_fn, steps=25, seed=0):
    """A few Adam steps in training mode (batch statistics, dropout), so the weights and the
    running statistics are far from their initial values."""
    torch = need_torch()
    torch.manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    Xt = torch.from_numpy(X)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(module(Xt), y)
        loss.backward()
        opt.step()
    return module.eval()


def torch_mlp(nn, activation, variant, dtype, sizes=SIZES):
    act = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.05), "tanh": nn.Tanh,
           "sigmoid": nn.Sigmoid, "gelu": lambda: nn.GELU(approximate="tanh"),
           "silu": nn.SiLU}[activation]
    opts = VARIANTS[variant]
    mods = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        mods.append(nn.Linear(n_in, n_out, dtype=dtype))
        if opts.get("batch_norm"):
            mods.append(nn.BatchNorm1d(n_out, dtype=dtype))
        mods.append(act())
        if opts.get("dropout"):
            mods.append(nn.Dropout(opts["dropout"]))
    mods.append(nn.Linear(sizes[-2], sizes[-1], dtype=dtype))
    return nn.Sequential(*mods)


def _targets(torch, head, rng, m):
    if head == "softmax":
        y = rng.integers(0, SIZES[-1], m)
        return torch.from_numpy(y), torch.nn.CrossEntropyLoss()
    if head == "sigmoid":
        y = rng.integers(0, 2, (m, SIZES[-1])).astype(np.float32)
        return torch.from_numpy(y), torch.nn.BCEWithLogitsLoss()
    return torch.from_numpy(rng.standard_normal((m, SIZES[-1])).astype(np.float32)), \
        torch.nn.MSELoss()


@pytest.mark.parametrize("activation, head, variant", cases())
def test_from_torch_trained_module(activation, head, variant):
    torch = need_torch()
    torch.manual_seed(3)
    module = torch_mlp(torch.nn, activation, variant, torch.float32)
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    rng = np.random.default_rng(4)
    X = inputs(64, seed=4)
    y, loss_fn = _targets(torch, head, rng, len(X))
    train_torch(module, X, y, loss_fn)
    moved = max(float((module.state_dict()[k].double() - v.double()).abs().max())
                for k, v in initial.items())
    assert moved > 0.05  # the weights are not the initial ones
    net = xpnet.from_torch(module, head=head, device="cpu")
    assert isinstance(net, Sequential) and net.dtype == "float32" and net.head.name == head
    X_new = inputs(29, seed=8)
    np.testing.assert_allclose(xpnet_out(net, X_new), torch_out(module, X_new, head), **TOL)
    # ...and back to torch: the same tensors under the same names.
    back = xpnet.to_torch(net)
    for name, t in module.state_dict().items():
        if "num_batches" not in name:
            np.testing.assert_array_equal(back.state_dict()[name].numpy(), t.numpy())


def test_from_torch_details():
    torch = need_torch()
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(6, 5, bias=False, dtype=torch.float64),
                           nn.BatchNorm1d(5, affine=False, eps=1e-4, momentum=0.2,
                                          dtype=torch.float64),
                           nn.GELU(approximate="tanh"), nn.Linear(5, 2, dtype=torch.float64))
    X = inputs(40, 6).astype(np.float64)
    train_torch(module, X, torch.from_numpy(X[:, :2] - 0.3), nn.MSELoss(), steps=5)
    net = xpnet.from_torch(module, head="identity", device="cpu")
    assert net.dtype == "float64"  # dtype=None keeps a float64 module's precision
    assert (net.layers[1].eps, net.layers[1].momentum) == (1e-4, 0.2)
    np.testing.assert_array_equal(net.state_dict()["0.bias"], np.zeros(5))
    np.testing.assert_allclose(xpnet_out(net, X), torch_out(module, X, "identity"), rtol=1e-12,
                               atol=1e-14)
    net32 = xpnet.from_torch(module, head="identity", device="cpu", dtype="float32")
    assert net32.dtype == "float32"
    np.testing.assert_allclose(xpnet_out(net32, X.astype(np.float32)),
                               torch_out(module, X, "identity"), **TOL)
    assert xpnet.from_torch(nn.Sequential(nn.Linear(3, 2)), device="cpu").head.name == "softmax"


def _torch_errors(nn):
    return [
        (nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 2)),
         ["module 1", "approximate='none'", "tanh", "GELU(approximate='tanh')"]),
        (nn.Sequential(nn.Linear(4, 3), nn.Conv1d(1, 1, 1)), ["module 1", "Conv1d", "supports"]),
        (nn.Sequential(nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 2)), ["Softplus"]),
        (nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU())), ["module 1", "Sequential"]),
        (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False)),
         ["track_running_stats=False"]),
        (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=None)), ["momentum=None"]),
        (nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(2.0)), ["negative_slope", "> 1"]),
        (nn.Linear(4, 3), ["torch.nn.Sequential", "Linear"]),
        (nn.Sequential(nn.ReLU()), ["at least one Linear"]),
    ]


def test_from_torch_rejects_what_it_cannot_convert():
    torch = need_torch()
    for module, words in _torch_errors(torch.nn):
        with pytest.raises(ValueError) as err:
            xpnet.from_torch(module, device="cpu")
        for word in words:
            assert word in str(err.value), (word, str(err.value))
    named = torch.nn.Sequential()
    named.add_module("fc", torch.nn.Linear(4, 3))
    named.add_module("act", torch.nn.Hardswish())
    with pytest.raises(ValueError, match=r"module act \(Hardswish\)"):
        xpnet.from_torch(named, device="cpu")


class Square(Layer):
    """A user's layer: exportable through its state_dict, not to ONNX or torch."""

    def forward(self, x, training=False):
        return x * x


def user_net():
    return Sequential([Linear(4, 3), Square(), Linear(3, 2)], device="cpu", seed=0)


def test_to_torch_rejects_user_layers():
    need_torch()
    with pytest.raises(ValueError, match=r"layer 1 \(Square\(\)\).*PyTorch"):
        xpnet.to_torch(user_net())
    with pytest.raises(ValueError, match="negative_slope <= 1"):
        xpnet.to_torch(Sequential([Linear(4, 3), LeakyReLU(1.5), Linear(3, 2)], device="cpu"))


# ================================================================================ ONNX
def ort_session(model):
    ort = need_ort()
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def ort_run(session, X):
    (out,) = session.run(None, {"input": np.asarray(X, dtype=np.float32)})
    return out


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "bn_node"])
@pytest.mark.parametrize("activation, head, variant", cases())
def test_onnx_matches_xpnet(activation, head, variant, fold, tmp_path):
    need_ort()
    net = make_net(activation, head, variant)
    path = xpnet.export(net, tmp_path / "model.onnx", fold_batch_norm=fold)
    session = ort_session(str(path))
    for rows in (1, 37, 256):  # a dynamic batch dimension
        X = inputs(rows, seed=rows)
        out = ort_run(session, X)
        assert out.dtype == np.float32 and out.shape == (rows, SIZES[-1])
        np.testing.assert_allclose(out, xpnet_out(net, X), **TOL)
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "Dropout" not in ops
    assert ops.count("Gemm") == 3
    assert ops.count("BatchNormalization") == (2 if "batch_norm" in VARIANTS[variant] and not fold
                                               else 0)
    assert all(a.i == 1 for n in model.graph.node if n.op_type == "Gemm"
               for a in n.attribute if a.name == "transB")
    assert ops[-1] == {"softmax": "Softmax", "sigmoid": "Sigmoid", "identity": "Identity"}[head]
    allowed = {"Gemm", "BatchNormalization", "Relu", "LeakyRelu", "Tanh", "Sigmoid", "Mul",
               "Add", "Softmax", "Identity"}
    assert set(ops) <= allowed
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13


def test_onnx_model_description(tmp_path):
    onnx = _need("onnx", "ONNX export needs it")
    net = make_net("gelu", variant="batch_norm")
    scaler = Scaler("unit").fit(np.array([0, 255], dtype=np.uint8))
    model = export_module.to_onnx(net, scaler=scaler, classes=list("abcde"))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == SIZES[0]
    assert out.name == "output" and out.type.tensor_type.shape.dim[1].dim_value == SIZES[-1]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["architecture"] == "MLP"
    assert json.loads(props["config"]) == net.config()
    assert json.loads(props["classes"]) == ["a", "b", "c", "d", "e"]
    assert json.loads(props["scaler"]) == {"method": "unit", "offset": 0.0, "scale": 255.0}
    assert model.producer_name == "xpnet" and "raw" in model.doc_string
    ops = [n.op_type for n in model.graph.node]
    assert ops[:2] == ["Sub", "Div"]
    assert ops.count("Tanh") == 2 and "Gelu" not in ops  # GELU from standard ops


@pytest.mark.parametrize("method", ["unit", "standard", "none"])
def test_onnx_with_scaler_takes_raw_inputs(method):
    need_ort()
    rng = np.random.default_rng(7)
    raw_train = rng.integers(0, 256, (200, SIZES[0])).astype(np.uint8)
    raw_train[:, 3] = 9  # a constant feature: standard scaling divides it by 1
    scaler = Scaler(method).fit(raw_train)
    net = make_net("relu", variant="bn_dropout")
    session = ort_session(export_module.to_onnx(net, scaler=scaler))
    raw = rng.integers(0, 256, (50, SIZES[0])).astype(np.uint8)
    expected = xpnet_out(net, scaler.transform(raw, net.dtype))
    np.testing.assert_allclose(ort_run(session, raw.astype(np.float32)), expected, **TOL)


def test_onnx_float64_net_and_hand_built_sequential():
    need_ort()
    net = make_net("silu", "identity", "batch_norm", dtype="float64")
    X = inputs()
    np.testing.assert_allclose(ort_run(ort_session(export_module.to_onnx(net)), X),
                               xpnet_out(net, X.astype(np.float64)), **TOL)
    # A batch norm that follows no Linear stays a BatchNormalization node; leaky slope > 1
    # (xpnet computes max(x, s x)) is mirrored with Max; dropout at the end is dropped.
    net = Sequential([BatchNorm1d(12), Linear(12, 9), LeakyReLU(1.5), BatchNorm1d(9),
                      ReLU(), Linear(9, 4), Dropout(0.5)], head="sigmoid", device="cpu", seed=2)
    randomize(net, 2)
    model = export_module.to_onnx(net)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("BatchNormalization") == 2 and "Max" in ops
    np.testing.assert_allclose(ort_run(ort_session(model), X), xpnet_out(net, X), **TOL)


def test_onnx_rejects_user_layers_and_heads():
    _need("onnx", "ONNX export needs it")
    with pytest.raises(ValueError, match=r"cannot export layer 1 \(Square\(\)\) to ONNX"):
        export_module.to_onnx(user_net())
    from xpnet.heads import SquaredError

    class Huber(SquaredError):
        name = "huber"

    net = Sequential([Linear(4, 2)], head=Huber(), device="cpu")
    with pytest.raises(ValueError, match=r"output head Huber \('huber'\)"):
        export_module.to_onnx(net)


def test_export_argument_errors(tmp_path):
    net = make_net()
    with pytest.raises(ValueError, match=r"must end in \.onnx or \.safetensors"):
        xpnet.export(net, tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
    with pytest.raises(TypeError, match="Sequential or MLP"):
        xpnet.export("net", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="3 class labels .* 5 outputs"):
        xpnet.export(net, tmp_path / "m.safetensors", classes=[0, 1, 2])
    with pytest.raises(ValueError, match="integers or strings"):
        xpnet.export(net, tmp_path / "m.safetensors", classes=[0.5] * 5)
    with pytest.raises(ValueError, match="not fitted"):
        xpnet.export(net, tmp_path / "m.onnx", scaler=Scaler("unit"))
    wrong = Scaler("standard").fit(np.ones((3, 7)))
    with pytest.raises(ValueError, match=r"shape \(7,\).*12 inputs"):
        xpnet.export(net, tmp_path / "m.onnx", scaler=wrong)
    assert list(tmp_path.iterdir()) == []


def test_export_is_atomic(tmp_path, monkeypatch):
    need_ort()
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous model")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        xpnet.export(make_net(), path)
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp file left
    monkeypatch.undo()
    xpnet.export(make_net(), path)
    X = inputs()
    np.testing.assert_allclose(ort_run(ort_session(str(path)), X), xpnet_out(make_net(), X),
                               **TOL)


# ================================================================================ safetensors
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_safetensors_round_trip(variant, dtype, tmp_path):
    st = need_safetensors()
    net = make_net("tanh", "softmax", variant, dtype=dtype)
    scaler = Scaler("standard").fit(np.random.default_rng(0).normal(3, 2, (50, SIZES[0])))
    path = xpnet.export(net, tmp_path / "model.safetensors", scaler=scaler,
                        classes=np.arange(5))
    # Any safetensors reader: the tensors under the state_dict names, the rest in metadata.
    tensors = st.numpy.load_file(str(path))
    with st.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    state = net.state_dict()
    assert set(tensors) == set(state)
    for name, a in state.items():
        assert tensors[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(tensors[name], a)
    assert meta["format"] == "xpnet" and meta["architecture"] == "MLP"
    assert json.loads(meta["classes"]) == [0, 1, 2, 3, 4]
    rebuilt = MLP(**json.loads(meta["config"]), device="cpu")
    rebuilt.load_state_dict(tensors)
    s = json.loads(meta["scaler"])
    assert s["method"] == "standard"
    np.testing.assert_array_equal(s["offset"], scaler.offset)
    X = inputs()
    np.testing.assert_array_equal(xpnet_out(rebuilt, X), xpnet_out(net, X))
    # The helper does the same.
    net2, scaler2, classes2 = export_module.load_safetensors(path, device="cpu")
    assert classes2 == [0, 1, 2, 3, 4] and isinstance(net2, MLP)
    np.testing.assert_array_equal(scaler2.transform(X), scaler.transform(X))
    np.testing.assert_array_equal(xpnet_out(net2, X), xpnet_out(net, X))


def test_safetensors_sequential_user_layer_and_torch(tmp_path):
    need_safetensors()
    net = Sequential([Linear(12, 7), BatchNorm1d(7), GELU(), Dropout(0.1), Linear(7, 3)],
                     head="sigmoid", device="cpu", seed=4)
    randomize(net, 4)
    path = xpnet.export(net, tmp_path / "seq.safetensors")
    net2, scaler, classes = export_module.load_safetensors(path, device="cpu")
    assert scaler is None and classes is None and type(net2) is Sequential
    X = inputs()
    np.testing.assert_array_equal(xpnet_out(net2, X), xpnet_out(net, X))
    # A user layer's tensors are written too (no config-free rebuild needed to read them).
    xpnet.export(user_net(), tmp_path / "user.safetensors")
    import safetensors.numpy

    assert set(safetensors.numpy.load_file(str(tmp_path / "user.safetensors"))) == \
        {"0.weight", "0.bias", "2.weight", "2.bias"}
    if not _has("torch"):
        return
    from safetensors.torch import load_file

    module = torch_twin(net)
    module.load_state_dict(load_file(str(path)), strict=True)  # straight into torch
    np.testing.assert_allclose(torch_out(module, X, "sigmoid"), xpnet_out(net, X), **TOL)


def test_load_safetensors_rejects_foreign_files(tmp_path):
    st = need_safetensors()
    (tmp_path / "other.safetensors").write_bytes(
        st.numpy.save({"w": np.zeros(3, np.float32)}, metadata={"format": "pt"}))
    with pytest.raises(ValueError, match="not written by xpnet.export"):
        export_module.load_safetensors(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{xx")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        export_module.load_safetensors(tmp_path / "junk.safetensors")


# ================================================================================ packaging
@pytest.mark.parametrize("package, call", [
    ("onnx", lambda tmp: xpnet.export(make_net(), tmp / "m.onnx")),
    ("safetensors", lambda tmp: xpnet.export(make_net(), tmp / "m.safetensors")),
    ("torch", lambda tmp: xpnet.to_torch(make_net())),
    ("torch", lambda tmp: xpnet.from_torch(object())),
], ids=["onnx", "safetensors", "to_torch", "from_torch"])
def test_missing_package_is_one_sentence(package, call, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == package or name.startswith(package + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # import raises ImportError
    with pytest.raises(ImportError) as err:
        call(tmp_path)
    message = str(err.value)
    want = "pip install torch" if package == "torch" else "pip install -e '.[export]'"
    assert want in message and message.count(". ") == 0 and "\n" not in message, message
    assert list(tmp_path.iterdir()) == []


def test_module_is_callable_and_import_stays_light(tmp_path):
    assert xpnet.export is export_module and callable(export_module)
    path = export_module(make_net(), tmp_path / "m.safetensors") if _has("safetensors") \
        else None
    assert path is None or path.exists()
    code = ("import sys, xpnet; heavy = ('onnx', 'onnxruntime', 'safetensors', 'torch', "
            "'xpnet.export'); print([m for m in heavy if m in sys.modules]); "
            "xpnet.from_torch; print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["[]", "['xpnet.export']"]


def _has(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True
