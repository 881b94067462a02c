"""Interop: export a network to ONNX or safetensors, convert it to and from PyTorch.

    xpnet.export(net, "model.onnx", scaler=scaler, classes=[0, 1, ...])   # onnxruntime & co.
    xpnet.export(net, "model.safetensors", scaler=scaler, classes=...)     # tensors + metadata
    net = xpnet.from_torch(torch_sequential, head="softmax")              # torch -> xpnet
    module = xpnet.to_torch(net)                                          # xpnet -> torch (eval)

    python -m xpnet.export runs/mnist.npz runs/mnist.onnx     # a checkpoint of xpnet.train

**ONNX** (opset 13, IR version 7, so older runtimes load it too): one float32 input ``input``
of shape ``(batch, n_features)`` with a dynamic batch dimension, one float32 output ``output``
of shape ``(batch, n_outputs)`` holding what :meth:`Sequential.forward` returns (softmax or
sigmoid probabilities, or the identity output's values). The graph is

    [Sub offset -> Div scale]                      the scaler, when one is given
    per layer: Linear         Gemm(x, W, b, transB=1)      (W is (n_out, n_in), as stored)
               BatchNorm1d    folded into the Gemm before it (see below), else
                              BatchNormalization (inference mode, running statistics)
               Dropout        nothing (identity at inference)
               ReLU / Tanh / Sigmoid     Relu / Tanh / Sigmoid
               LeakyReLU      LeakyRelu(alpha=negative_slope)
               GELU (tanh)    0.5 x (1 + tanh(c (x + 0.044715 x^3))) with Mul, Add and Tanh,
                              in xpnet's order of operations (c = sqrt(2/pi))
               SiLU           Mul(x, Sigmoid(x))
    Softmax(axis=1) | Sigmoid | Identity           the output head

With a scaler the model takes *raw* inputs (for MNIST: pixels 0..255 as float32), exactly what
``xpnet.predict`` takes, and computes ``(x - offset) / scale`` in float32 as
:meth:`Scaler.transform` does. The graph is float32 whatever the network's dtype.

Batch norm is folded into the preceding Gemm (``W' = s W``, ``b' = (b - mean) s + beta``,
``s = gamma / sqrt(var + eps)``, computed in float64 and rounded once): the deployed graph is
then Gemm and activations only, which every runtime runs fast, and one pass over the activations
is saved. A batch norm that does not directly follow a Linear (possible in a hand-built
:class:`Sequential`), or ``fold_batch_norm=False``, becomes a BatchNormalization node.
``onnx.checker.check_model`` (full check) runs on every export. The architecture, the config,
the scaler and the class labels are stored as JSON in the model's ``metadata_props``.

**safetensors**: every ``net.state_dict()`` tensor under its ``torch.nn.Sequential`` name, in
the network's dtype, with string metadata ``format`` ("xpnet"), ``format_version``,
``xpnet_version``, ``architecture`` ("MLP" or "Sequential"), ``config`` (``net.config()`` as
JSON), and, when given, ``scaler`` (``{"method", "offset", "scale"}``) and ``classes`` (a JSON
list). :func:`load_safetensors` rebuilds the network; any safetensors reader gets the tensors.

Files are written through :func:`xpnet.io.write_bytes_atomic`. onnx, safetensors and torch are
imported only when needed (``pip install -e '.[export]'``; torch is not a dependency).

Module and function share the name ``export``: ``import xpnet.export`` makes the package
attribute ``xpnet.export`` this module, so the module itself is callable and forwards to
:func:`export`; ``xpnet.export(net, path)`` works however it was reached.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import types
from pathlib import Path

import numpy as np

from .cli import EXIT_OK, Failure, Parser, UsageError, check_writable, run
from .heads import SigmoidBCE, SoftmaxCrossEntropy, SquaredError
from .io import write_bytes_atomic
from .layers import GELU, BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, SiLU, Tanh
from .network import MLP, Sequential
from .preprocessing import Scaler

__all__ = ["FORMATS", "ONNX_OPSET", "export", "from_torch", "load_safetensors", "main",
           "to_onnx", "to_torch"]

FORMATS = (".onnx", ".safetensors")
ONNX_OPSET = 13
ONNX_IR_VERSION = 7  # the IR of opset 13 (onnx 1.8): runtimes back to onnxruntime 1.6 load it
SAFETENSORS_FORMAT = "xpnet"
SAFETENSORS_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "input", "output"
_INSTALL_EXPORT = "pip install -e '.[export]' (or pip install onnx safetensors)"
_SUPPORTED = "Linear, BatchNorm1d, Dropout, ReLU, LeakyReLU, Tanh, Sigmoid, GELU (tanh) and SiLU"
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


# ---------------------------------------------------------------------------- lazy imports
def _import_onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError(f"exporting to ONNX needs the onnx package, which is not installed: "
                          f"{_INSTALL_EXPORT}.") from None
    return onnx, helper, numpy_helper, TensorProto


def _import_safetensors():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"reading and writing .safetensors files needs the safetensors "
                          f"package, which is not installed: {_INSTALL_EXPORT}.") from None
    return safetensors


def _import_torch(what):
    try:
        import torch
    except ImportError:
        raise ImportError(f"xpnet.{what} needs PyTorch, which is not installed: "
                          f"pip install torch.") from None
    return torch


# ---------------------------------------------------------------------------- argument checks
def _check_net(net):
    if not isinstance(net, Sequential):
        raise TypeError(f"expected an xpnet Sequential or MLP; got {type(net).__name__}")


def _check_scaler(scaler, net):
    if scaler is None:
        return None
    if not isinstance(scaler, Scaler):
        raise TypeError(f"scaler must be an xpnet.Scaler or None; got {type(scaler).__name__}")
    if scaler.offset is None:
        raise ValueError("the scaler is not fitted; call scaler.fit(X_train) first")
    n = net.n_features_in
    for name in ("offset", "scale"):
        shape = np.shape(getattr(scaler, name))
        if shape not in ((), (n,)):
            raise ValueError(f"the scaler's {name} has shape {shape}, but the network has {n} "
                             f"inputs; it must be a scalar or have shape ({n},)")
    return scaler


def _check_classes(classes, net):
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)):
        raise ValueError(f"classes must be a list of labels, one per output; got {classes!r}")
    labels = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (numbers.Integral, str)):
            raise ValueError(f"class labels must be integers or strings; got {c!r}")
        labels.append(c if isinstance(c, str) else int(c))
    if len(labels) != net.n_outputs:
        raise ValueError(f"{len(labels)} class labels were given but the network has "
                         f"{net.n_outputs} outputs; give one label per output")
    return labels


def _scaler_json(scaler):
    def plain(a):
        a = np.asarray(a, dtype=np.float64)
        return float(a) if a.ndim == 0 else a.tolist()

    return {"method": scaler.method, "offset": plain(scaler.offset), "scale": plain(scaler.scale)}


def _scaler_from_json(d):
    s = Scaler(d["method"])
    s.offset = np.asarray(d["offset"], dtype=np.float64)
    s.scale = np.asarray(d["scale"], dtype=np.float64)
    return s


def _metadata(net, scaler, classes):
    from . import __version__  # noqa: PLC0415  (late: xpnet/__init__ may import this module)

    meta = {"format": SAFETENSORS_FORMAT, "format_version": str(SAFETENSORS_VERSION),
            "xpnet_version": __version__,
            "architecture": "MLP" if isinstance(net, MLP) else "Sequential",
            "config": json.dumps(net.config())}
    if scaler is not None:
        meta["scaler"] = json.dumps(_scaler_json(scaler))
    if classes is not None:
        meta["classes"] = json.dumps(classes)
    return meta


# ---------------------------------------------------------------------------- export
def export(net, path, scaler=None, classes=None, *, fold_batch_norm=True) -> Path:
    """Write ``net`` to ``path``, in the format its suffix names (``.onnx`` | ``.safetensors``).

    Args:
        net: a :class:`~xpnet.Sequential` or :class:`~xpnet.MLP` (any device, any dtype).
        path: the file to write (atomically); its folder must exist.
        scaler: an optional fitted :class:`~xpnet.Scaler`. ONNX: applied inside the graph, so
            the model takes raw inputs. safetensors: stored in the metadata.
        classes: optional labels, one per output (e.g. ``list(range(10))`` for MNIST), stored in
            the metadata.
        fold_batch_norm: ONNX only: fold each batch norm into the Gemm before it.

    Returns the path. Raises ``ValueError`` for another suffix or a layer or head that cannot be
    exported (naming it), ``ImportError`` (naming the ``pip install``) when the package for the
    format is missing, ``OSError`` when the file cannot be written (the old file is kept).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot export to {path}: the file name must end in .onnx or "
                         f".safetensors")
    if suffix == ".onnx":
        data = to_onnx(net, scaler, classes, fold_batch_norm=fold_batch_norm).SerializeToString()
    else:
        data = _safetensors_bytes(net, scaler, classes)
    write_bytes_atomic(path, data)
    return path


def _safetensors_bytes(net, scaler, classes):
    _check_net(net)
    scaler, classes = _check_scaler(scaler, net), _check_classes(classes, net)
    st = _import_safetensors()
    tensors = {name: np.ascontiguousarray(a) for name, a in net.state_dict().items()}
    return st.numpy.save(tensors, metadata=_metadata(net, scaler, classes))


def load_safetensors(path, device="auto"):
    """Read a ``.safetensors`` file written by :func:`export`: ``(net, scaler, classes)``, the
    last two None when the file has none. Raises ``ValueError`` for a file it did not write."""
    st = _import_safetensors()
    path = Path(path)
    try:
        with st.safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        tensors = st.numpy.load_file(str(path))
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        raise ValueError(f"{path} is not a readable safetensors file "
                         f"({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != SAFETENSORS_FORMAT or "config" not in meta:
        raise ValueError(f"{path} is a safetensors file but was not written by xpnet.export "
                         f"(its metadata has no xpnet config)")
    config = json.loads(meta["config"])
    if meta.get("architecture") == "MLP":
        net = MLP(**config, device=device)
    else:
        net = Sequential.from_config(config, device=device)
    net.load_state_dict(tensors, strict=True)
    scaler = _scaler_from_json(json.loads(meta["scaler"])) if "scaler" in meta else None
    classes = json.loads(meta["classes"]) if "classes" in meta else None
    return net, scaler, classes


# ---------------------------------------------------------------------------- ONNX
class _Graph:
    """Nodes and float32 initializers of the ONNX graph being built."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._scalars = [], [], {}

    def tensor(self, name, value):
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float64).astype(np.float32))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def scalar(self, value):
        value = float(value)
        if value not in self._scalars:
            self._scalars[value] = self.tensor(f"const_{len(self._scalars)}", value)
        return self._scalars[value]

    def op(self, op_type, inputs, scope, output=None, **attrs):
        n = len(self.nodes)
        output = output or f"{scope}/{op_type}_{n}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output],
                                                name=f"{scope}/{op_type}_{n}", **attrs))
        return output


def _fold(W, b, bn_state, eps):
    """The Gemm ``(W', b')`` equal to Linear(W, b) then inference-mode batch norm."""
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    gamma, beta, mean, var = (np.asarray(bn_state[k], np.float64)
                              for k in ("weight", "bias", "running_mean", "running_var"))
    s = gamma / np.sqrt(var + eps)
    return W * s[:, None], (b - mean) * s + beta


def _activation_nodes(g, layer, x, scope):
    kind = type(layer)
    if kind is ReLU:
        return g.op("Relu", [x], scope)
    if kind is Tanh:
        return g.op("Tanh", [x], scope)
    if kind is Sigmoid:
        return g.op("Sigmoid", [x], scope)
    if kind is LeakyReLU:
        if layer.negative_slope <= 1:
            return g.op("LeakyRelu", [x], scope, alpha=layer.negative_slope)
        # xpnet computes max(x, s x), which is leaky ReLU only for s <= 1: mirror it exactly.
        return g.op("Max", [x, g.op("Mul", [x, g.scalar(layer.negative_slope)], scope)], scope)
    if kind is GELU:  # xpnet's order: t = tanh(c (k x^2 + 1) x); y = (t + 1) x 0.5
        t = g.op("Mul", [x, x], scope)
        t = g.op("Mul", [t, g.scalar(_GELU_K)], scope)
        t = g.op("Add", [t, g.scalar(1.0)], scope)
        t = g.op("Mul", [t, x], scope)
        t = g.op("Mul", [t, g.scalar(_GELU_C)], scope)
        t = g.op("Tanh", [t], scope)
        y = g.op("Add", [t, g.scalar(1.0)], scope)
        y = g.op("Mul", [y, x], scope)
        return g.op("Mul", [y, g.scalar(0.5)], scope)
    if kind is SiLU:
        return g.op("Mul", [x, g.op("Sigmoid", [x], scope)], scope)
    return None


_HEAD_OPS = {SoftmaxCrossEntropy: ("Softmax", {"axis": 1}), SigmoidBCE: ("Sigmoid", {}),
             SquaredError: ("Identity", {})}


def to_onnx(net, scaler=None, classes=None, *, fold_batch_norm=True):
    """The ONNX ``ModelProto`` of ``net`` (see the module docstring), checked by
    ``onnx.checker.check_model``; :func:`export` serialises it."""
    from . import __version__  # noqa: PLC0415

    _check_net(net)
    scaler, classes = _check_scaler(scaler, net), _check_classes(classes, net)
    head = _HEAD_OPS.get(type(net.head))
    if head is None:
        raise ValueError(f"cannot export the output head {type(net.head).__name__} "
                         f"({net.head.name!r}) to ONNX: xpnet exports softmax, sigmoid and "
                         f"identity heads")
    onnx, helper, numpy_helper, TensorProto = _import_onnx()
    g = _Graph(helper, numpy_helper)
    state = net.state_dict()
    x = INPUT_NAME
    if scaler is not None and scaler.method != "none":
        x = g.op("Sub", [x, g.tensor("scaler.offset", scaler.offset)], "scaler")
        x = g.op("Div", [x, g.tensor("scaler.scale", scaler.scale)], "scaler")
    layers, i = net.layers, 0
    while i < len(layers):
        layer, kind, scope = layers[i], type(layers[i]), str(i)
        if kind is Linear:
            W, b = state[f"{i}.weight"], state[f"{i}.bias"]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if fold_batch_norm and type(nxt) is BatchNorm1d:
                bn = {k: state[f"{i + 1}.{k}"] for k in
                      ("weight", "bias", "running_mean", "running_var")}
                W, b = _fold(W, b, bn, nxt.eps)
                scope = f"{i}+{i + 1}"
                i += 1
            x = g.op("Gemm", [x, g.tensor(f"{scope}.weight", W), g.tensor(f"{scope}.bias", b)],
                     scope, transB=1)
        elif kind is BatchNorm1d:
            names = [g.tensor(f"{i}.{k}", state[f"{i}.{k}"])
                     for k in ("weight", "bias", "running_mean", "running_var")]
            x = g.op("BatchNormalization", [x, *names], scope, epsilon=layer.eps)
        elif kind is Dropout:
            pass  # the identity at inference
        else:
            y = _activation_nodes(g, layer, x, scope)
            if y is None:
                raise ValueError(f"cannot export layer {i} ({layer!r}) to ONNX: xpnet exports "
                                 f"{_SUPPORTED}; write the model through its state_dict() "
                                 f"(.safetensors) instead")
            x = y
        i += 1
    op_type, attrs = head
    g.op(op_type, [x], "head", output=OUTPUT_NAME, **attrs)

    n_in, n_out = net.n_features_in, net.n_outputs
    what = {"softmax": "softmax probabilities", "sigmoid": "sigmoid probabilities",
            "identity": "the network's outputs"}[net.head.name]
    inputs = ("raw features; the graph applies the scaler first, (x - offset) / scale"
              if scaler is not None and scaler.method != "none" else
              "features scaled as during training")
    graph = helper.make_graph(
        g.nodes, "xpnet",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_out])],
        initializer=g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], ir_version=ONNX_IR_VERSION,
        producer_name="xpnet", producer_version=__version__,
        doc_string=f"{INPUT_NAME}: float32 (batch, {n_in}), {inputs}. "
                   f"{OUTPUT_NAME}: float32 (batch, {n_out}), {what}.")
    helper.set_model_props(model, {k: v for k, v in _metadata(net, scaler, classes).items()
                                   if not k.startswith("format")})
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------- PyTorch
def to_torch(net, include_head=False):
    """The equivalent ``torch.nn.Sequential`` (same layer order and ``state_dict`` names, the
    net's dtype, on the CPU), with every weight and running statistic copied, in eval mode.
    The output head is not part of it unless ``include_head`` (``nn.Softmax(dim=1)`` or
    ``nn.Sigmoid()`` appended; nothing for identity), so by default it returns the logits."""
    _check_net(net)
    torch = _import_torch("to_torch")
    nn = torch.nn
    dtype = torch.float64 if net.dtype == "float64" else torch.float32
    modules = []
    for i, layer in enumerate(net.layers):
        kind = type(layer)
        if kind is Linear:
            m = nn.Linear(layer.in_features, layer.out_features, bias=True, dtype=dtype)
        elif kind is BatchNorm1d:
            m = nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                               dtype=dtype)
        elif kind is Dropout:
            m = nn.Dropout(layer.p)
        elif kind is LeakyReLU and layer.negative_slope <= 1:
            m = nn.LeakyReLU(layer.negative_slope)
        elif kind is GELU:
            m = nn.GELU(approximate="tanh")
        elif kind in (ReLU, Tanh, Sigmoid, SiLU):
            m = getattr(nn, kind.__name__)()
        else:
            raise ValueError(f"cannot convert layer {i} ({layer!r}) to PyTorch: xpnet converts "
                             f"{_SUPPORTED} (LeakyReLU with negative_slope <= 1)")
        modules.append(m)
    if include_head:
        head = {"softmax": lambda: nn.Softmax(dim=1), "sigmoid": nn.Sigmoid}.get(net.head.name)
        if head is not None:
            modules.append(head())
    module = nn.Sequential(*modules)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()},
                           strict=True)
    return module.eval()


def _torch_layer(torch, name, m):
    """The xpnet layer and its ``{name: tensor}`` state for the torch module ``m``."""
    nn = torch.nn
    kind = type(m)
    if kind is nn.Linear:
        bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
        return Linear(m.in_features, m.out_features), {"weight": m.weight, "bias": bias}
    if kind is nn.BatchNorm1d:
        if not m.track_running_stats or m.running_mean is None:
            raise ValueError(f"module {name} (BatchNorm1d with track_running_stats=False) "
                             f"cannot be converted: xpnet's batch norm keeps running statistics")
        if m.momentum is None:
            raise ValueError(f"module {name} (BatchNorm1d with momentum=None, a cumulative "
                             f"average) cannot be converted: xpnet needs a momentum in [0, 1]")
        n = m.num_features
        weight = m.weight if m.affine else torch.ones(n)
        bias = m.bias if m.affine else torch.zeros(n)
        return BatchNorm1d(n, eps=m.eps, momentum=m.momentum), {
            "weight": weight, "bias": bias, "running_mean": m.running_mean,
            "running_var": m.running_var}
    if kind is nn.Dropout:
        return Dropout(m.p), {}
    if kind is nn.LeakyReLU:
        if m.negative_slope > 1:
            raise ValueError(f"module {name} (LeakyReLU with negative_slope "
                             f"{m.negative_slope} > 1) cannot be converted: xpnet supports "
                             f"slopes <= 1")
        return LeakyReLU(m.negative_slope), {}
    if kind is nn.GELU:
        if m.approximate != "tanh":
            raise ValueError(f"module {name} (GELU with approximate={m.approximate!r}, the "
                             f"exact erf form) cannot be converted: xpnet's GELU is the tanh "
                             f"form; use torch.nn.GELU(approximate='tanh')")
        return GELU(), {}
    simple = {nn.ReLU: ReLU, nn.Tanh: Tanh, nn.Sigmoid: Sigmoid, nn.SiLU: SiLU}
    if kind in simple:
        return simple[kind](), {}
    raise ValueError(f"module {name} ({kind.__name__}) cannot be converted: from_torch "
                     f"supports {_SUPPORTED}")


def from_torch(module, head="softmax", device="auto", dtype=None, seed=None):
    """An xpnet :class:`~xpnet.Sequential` equal to the ``torch.nn.Sequential`` ``module``.

    ``module`` holds ``Linear`` (a missing bias becomes zeros), ``BatchNorm1d`` (with running
    statistics and a momentum), ``Dropout`` and the activations ``ReLU``, ``LeakyReLU``,
    ``Tanh``, ``Sigmoid``, ``GELU(approximate="tanh")`` (the exact ``GELU()`` is not supported)
    and ``SiLU``, and ends with the logits: ``head`` (``softmax`` | ``sigmoid`` |
    ``identity``) is applied on top, as by the loss the module was trained with
    (``CrossEntropyLoss`` -> softmax, ``BCEWithLogitsLoss`` -> sigmoid, ``MSELoss`` ->
    identity). Weights and running statistics are copied; ``dtype`` None keeps float64 for a
    float64 module and uses float32 otherwise. Raises ``ValueError`` naming the first module
    it cannot convert.
    """
    torch = _import_torch("from_torch")
    if not isinstance(module, torch.nn.Sequential):
        raise ValueError(f"from_torch needs a torch.nn.Sequential; got {type(module).__name__}")
    if dtype is None:
        floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
        dtype = "float64" if floats and floats[0] == torch.float64 else "float32"
    layers, states = [], {}
    for i, (name, m) in enumerate(module.named_children()):
        layer, state = _torch_layer(torch, name, m)
        layers.append(layer)
        for key, t in state.items():
            states[f"{i}.{key}"] = t.detach().to("cpu", torch.float64).numpy()
    net = Sequential(layers, head=head, dtype=dtype, device=device, seed=seed)
    net.load_state_dict(states, strict=True)
    return net


# ---------------------------------------------------------------------------- command line
PROG = "xpnet.export"


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Export a checkpoint written by xpnet.train --save to "
               "ONNX (with its input scaling in the graph) or safetensors.")
    p.add_argument("checkpoint", help="a .npz written by xpnet.train --save or xpnet.save")
    p.add_argument("output", help="OUT.onnx or OUT.safetensors")
    p.add_argument("--no-scaler", action="store_true",
                   help="leave the saved input scaling out: the model then takes scaled inputs")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _classes(net, state):
    """Class labels: saved ones, else ``0..k-1`` for a softmax classifier (MNIST: digits)."""
    saved = state["json"].get("classes") if state is not None else None
    if isinstance(saved, list) and len(saved) == net.n_outputs:
        return saved
    return list(range(net.n_outputs)) if net.head.name == "softmax" else None


def _span(classes):
    if classes == list(range(len(classes))) and len(classes) > 3:
        return f"0..{len(classes) - 1}"
    return ", ".join(map(str, classes))


def main(argv=None) -> int:
    return run(_main, argv, PROG)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    suffix = Path(args.output).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"the output {args.output!r} must end in .onnx or .safetensors")
    check_writable("output", args.output)
    try:
        _import_onnx() if suffix == ".onnx" else _import_safetensors()
    except ImportError as exc:
        raise Failure(str(exc)) from None
    from .checkpoint import CheckpointError, load_checkpoint, sub_state

    try:
        net, state = load_checkpoint(args.checkpoint, device="cpu")
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    scaler = None
    if not args.no_scaler and state is not None and "scaler" in state["json"]:
        try:
            scaler = Scaler.from_state(sub_state(state, "scaler"))
        except (KeyError, TypeError, ValueError) as exc:
            raise Failure(f"checkpoint {args.checkpoint} has an unreadable input scaler "
                          f"({type(exc).__name__}: {exc}); re-save it, or pass --no-scaler"
                          ) from exc
    classes = _classes(net, state)
    path = export(net, args.output, scaler=scaler, classes=classes)
    scaled = (f"raw values, scaled in the graph ({scaler.method})" if scaler is not None
              and scaler.method != "none" else "scaled values (no scaler in the graph)")
    if suffix == ".onnx":
        what = {"softmax": "softmax probabilities", "sigmoid": "sigmoid probabilities"}.get(
            net.head.name, "outputs")
        labels = "" if classes is None else f" of classes {_span(classes)}"
        print(f"wrote {path} (ONNX opset {ONNX_OPSET}): input {INPUT_NAME!r} float32 "
              f"[batch, {net.n_features_in}] of {scaled}; output {OUTPUT_NAME!r} float32 "
              f"[batch, {net.n_outputs}]: {what}{labels}")
    else:
        print(f"wrote {path} (safetensors): {len(net.state_dict())} tensors; config"
              f"{', scaler' if scaler is not None else ''}"
              f"{', classes' if classes is not None else ''} in the metadata")
    return EXIT_OK


# ---------------------------------------------------------------------------- callable module
class _CallableModule(types.ModuleType):
    """This module, callable: ``xpnet.export(...)`` is :func:`export` even after
    ``import xpnet.export`` has made the package attribute the module."""

    def __call__(self, net, path, scaler=None, classes=None, **kwargs):
        return export(net, path, scaler=scaler, classes=classes, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
