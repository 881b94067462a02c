"""Interop: export a model or a network to ONNX or safetensors, convert networks to and from
PyTorch.

    xpnet.export(model, "model.onnx")          # an xpnet.Model: raw table rows in, labels out
    xpnet.export(model, "model.safetensors")   # tensors + the model record; load_model reads it
    xpnet.export(net, "model.onnx", scaler=scaler, classes=[0, 1, ...])   # a bare network
    xpnet.export(net, "model.safetensors", scaler=scaler, classes=...)     # tensors + metadata
    net = xpnet.from_torch(torch_sequential, head="softmax")              # torch -> xpnet
    module = xpnet.to_torch(net)                                          # xpnet -> torch (eval)

    python -m xpnet.export runs/mnist.npz runs/mnist.onnx     # a checkpoint of xpnet.train

**ONNX of a Model** (:class:`xpnet.Model`, what ``xpnet.train --save`` and ``Model.save``
write): the graph maps raw rows to answers in the user's terms, as :meth:`Model.predict` and
:meth:`Model.predict_proba` do. Opset 13 plus ``ai.onnx.ml`` opset 2 (only when the schema
needs it: an imputer or a text column), IR version 7. Inputs, each with a dynamic batch
dimension:

* ``input``: float32 ``(batch, n_numeric)``, the number and boolean columns in schema order
  (``model.inputs.numeric_columns``), booleans as 1/0, NaN for a missing cell; present only when
  the schema has such columns (an all-number schema, MNIST's pixels, has only this input);
* one string input ``(batch, 1)`` per text (category) column, in schema order, named by the
  column, made an identifier (``[A-Za-z0-9_]``, not starting with a digit, unique: ``"blood
  type"`` becomes ``blood_type``); the metadata's ``model.onnx_inputs`` maps each graph input to
  its column(s). ``""`` and the other missing-cell markers of :mod:`xpnet.data.frame`
  (``NA``, ``null``, ...) are a missing cell. Give the text as in training: the graph does
  not strip spaces (:func:`xpnet.data.as_frame` does), nor check that a boolean is 1 or 0.

The graph is

    input   -> Imputer (NaN -> each column's fill)   with missing="impute" (the default)
            -> Sub offset -> Div scale               the schema's scaler, float32
    text    -> LabelEncoder (missing -> the fill category, unseen -> "")   with missing="impute"
            -> OneHotEncoder(cats_strings=categories, zeros=1) -> Reshape (batch, n_categories)
    Concat(axis=1) in the network's input order (``model.inputs.input_names``)
    -> the network's layers (as for a bare network, below)
    classification: Softmax -> ``probabilities`` float32 (batch, k), columns in the order of
                    ``model.classes_``; ArgMax -> Gather(classes) -> ``label`` (batch,): int64
                    when every class is an integer, float64 (double) when the classes are
                    numbers and one is fractional (exactly what ``model.predict`` returns),
                    else string (mixed labels as their text, as ``numpy.asarray`` gives them)
    regression:     Mul scale -> Add mean -> ``prediction`` float32 (batch, 1), in the target's
                    units

An unseen category gives a row of zeros in its block, as ``model.predict`` does (which also
refuses a batch where *every* value of a column is unseen; the graph cannot refuse and gives
zeros). With ``missing="error"`` the graph has no imputer: a NaN number propagates, and a
missing text cell makes its one-hot block NaN (LabelEncoder to NaN, added), so the outputs of
that row are NaN where ``model.predict`` would raise; its ``label`` is then meaningless.
Arithmetic is float32 (the input is float32), where ``model.predict`` scales in float64 before
its float32 network: ``probabilities`` agree with ``model.predict_proba`` to float32 rounding
(about 1e-7; tests/test_export_model.py allows 1e-5), ``prediction`` with ``model.predict`` to
about 1e-7 relative (allowed: 1e-5); a number with more than 7 significant digits (a timestamp)
is rounded by the float32 input itself. Anything the graph cannot express
(another output head, class labels no tensor holds, an unknown scaling) is refused with a
``ValueError`` that names it.

**ONNX of a bare network** (opset 13, IR version 7, so older runtimes load it too): one float32
input ``input`` of shape ``(batch, n_features)`` with a dynamic batch dimension, one float32
output ``output`` of shape ``(batch, n_outputs)`` holding what :meth:`Sequential.forward`
returns (softmax or sigmoid probabilities, or the identity output's values). The graph is

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
``onnx.checker.check_model`` (full check) runs on every export.

**ONNX metadata** (``metadata_props``, strings): ``xpnet_version``, ``architecture``,
``config`` (``net.config()`` as JSON); ``scaler`` (``{"method", "offset", "scale"}``) when the
scaling applies to every network input (a bare network's scaler; a model without text
columns); ``classes`` (a JSON list) for a network's labels or a classifier model's; and for a
model ``model``: JSON of the model record, ``{"format", "inputs": {"columns": [{"name",
"kind", "fill", "categories"}], "id", "dropped", "missing", "scaling", "offset", "scale"},
"target": {"task", "name", "classes" | "mean", "scale"}, "input_names", "onnx_inputs"}``
(``offset`` and ``scale`` are numbers or lists, ``input_names`` names each network input,
``onnx_inputs`` maps each graph input to its column, or to the list of columns of ``input``).

**safetensors**: every ``net.state_dict()`` tensor under its ``torch.nn.Sequential`` name, in
the network's dtype (nothing else, so ``torch``'s ``load_state_dict(strict=True)`` takes the
file as it is), with string metadata ``format`` ("xpnet"), ``format_version``,
``xpnet_version``, ``architecture`` ("MLP" or "Sequential"), ``config`` (``net.config()`` as
JSON), ``scaler`` and ``classes`` as for ONNX, and, for a model, ``model`` (the record above
without ``onnx_inputs``; the scaler's statistics are JSON numbers, which keep every digit of
their float64). :func:`load_safetensors` rebuilds the network, ``(net, scaler, classes)``;
:func:`load_model` rebuilds the :class:`~xpnet.Model` of a file written from one. Both check the
tensors the file declares against the network its config describes (names, shapes, and the
:data:`xpnet.checkpoint.MAX_NETWORK_BYTES` cap) before building anything, so a small crafted
file cannot make them allocate a large network. Any safetensors reader gets the tensors.

**Command line**: ``python -m xpnet.export CHECKPOINT OUT`` reads the checkpoint with
:func:`xpnet.model.load`: a model (any ``xpnet.train --save`` or ``Model.save`` file, MNIST's
included: its 784 pixel columns make the one input ``input``) is exported whole, a bare network
(``xpnet.save``) as above with the labels ``0..k-1`` of a softmax head. ``--no-scaler`` exports
the network alone (a model's column handling, scaling and label decoding left out: it takes
the network's inputs and returns ``output``). An output that is the checkpoint itself (by name,
symlink or hard link) is a usage error (exit 2), found before anything is written.

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
import re
import sys
import types
from pathlib import Path

import numpy as np

from .checkpoint import MAX_NETWORK_BYTES, config_shapes
from .cli import EXIT_OK, Failure, Parser, UsageError, check_writable, run, same_file
from .data.frame import MISSING_MARKERS
from .heads import SigmoidBCE, SoftmaxCrossEntropy, SquaredError
from .io import write_bytes_atomic
from .layers import GELU, BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, SiLU, Tanh
from .model import Model
from .network import MLP, Sequential
from .preprocessing import SCALINGS, Scaler

__all__ = ["FORMATS", "ML_OPSET", "ONNX_OPSET", "export", "from_torch", "load_model",
           "load_safetensors", "main", "to_onnx", "to_torch"]

FORMATS = (".onnx", ".safetensors")
ONNX_OPSET = 13
ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 2  # Imputer, OneHotEncoder (1), LabelEncoder's strings (2)
ONNX_IR_VERSION = 7  # the IR of opset 13 (onnx 1.8): runtimes back to onnxruntime 1.6 load it
SAFETENSORS_FORMAT = "xpnet"
SAFETENSORS_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "input", "output"
LABEL_NAME, PROBABILITIES_NAME, PREDICTION_NAME = "label", "probabilities", "prediction"
_RESERVED_NAMES = {INPUT_NAME, OUTPUT_NAME, LABEL_NAME, PROBABILITIES_NAME, PREDICTION_NAME}
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
def _check_net(net, model_too=True):
    if not isinstance(net, Sequential):
        what = "an xpnet Model, Sequential or MLP" if model_too else "an xpnet Sequential or MLP"
        raise TypeError(f"expected {what}; got {type(net).__name__}")


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


def _check_model(model, scaler, classes):
    """Refuse ``scaler=``/``classes=`` with a Model (it carries its own) and any part of the
    model its exported form cannot express, naming it."""
    if scaler is not None or classes is not None:
        raise TypeError("an xpnet.Model carries its own input handling and labels; export it "
                        "without scaler= and classes=")
    net, inputs, target = model.net, model.inputs, model.target
    _check_net(net)
    want = SoftmaxCrossEntropy if target.is_classifier else SquaredError
    if type(net.head) is not want:
        raise ValueError(f"cannot export the model: its {target.task} target needs a "
                         f"{want.__name__} head but the network has {type(net.head).__name__} "
                         f"({net.head.name!r})")
    if inputs.missing not in ("impute", "error"):
        raise ValueError(f"cannot export the model: its missing-value policy "
                         f"{inputs.missing!r:.40} is neither 'impute' nor 'error'")
    scaler = inputs.scaler
    n_numeric = len(inputs.numeric_columns)
    if scaler.method not in SCALINGS or scaler.offset is None:
        raise ValueError(f"cannot export the model: its input scaling {scaler.method!r:.40} is "
                         f"not one of {', '.join(SCALINGS)} or is not fitted")
    for name in ("offset", "scale"):
        a = np.asarray(getattr(scaler, name), dtype=np.float64)
        if a.shape not in ((), (n_numeric,)) or not np.isfinite(a).all():
            raise ValueError(f"cannot export the model: its scaler's {name} has shape "
                             f"{a.shape} (or is not finite) for {n_numeric} number columns")
    for spec in inputs.columns:
        if spec.kind == "category":
            if not spec.categories or not isinstance(spec.fill, str):
                raise ValueError(f"cannot export the model: the text column {spec.name!r} has "
                                 f"no categories or no fill category")
        elif spec.kind not in ("number", "boolean"):
            raise ValueError(f"cannot export the model: column {spec.name!r} is of kind "
                             f"{spec.kind!r:.40}, which the graph does not express")
        elif not math.isfinite(float(spec.fill)):
            raise ValueError(f"cannot export the model: column {spec.name!r} has the fill "
                             f"value {spec.fill!r}, which is not finite")
    if not target.is_classifier and not (math.isfinite(target.mean)
                                         and math.isfinite(target.scale)):
        raise ValueError("cannot export the model: its target statistics are not finite")
    if target.is_classifier:
        _label_array(target.classes)


def _label_array(classes) -> np.ndarray:
    """The class labels as ``model.predict`` returns them (``numpy.asarray``): int64, float64
    or str; ValueError for labels no ONNX tensor holds (integers beyond int64)."""
    labels = np.asarray(classes)
    if labels.dtype.kind == "i":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f":
        return labels.astype(np.float64)
    if labels.dtype.kind == "U":
        return labels
    raise ValueError(f"cannot export the class labels {classes[:3]!r:.60}...: they make a "
                     f"{labels.dtype} array, which no ONNX tensor holds; use integers within "
                     f"int64, numbers or text as labels")


def _plain(a):
    a = np.asarray(a, dtype=np.float64)
    return float(a) if a.ndim == 0 else a.tolist()


def _scaler_json(scaler):
    return {"method": scaler.method, "offset": _plain(scaler.offset),
            "scale": _plain(scaler.scale)}


def _scaler_from_json(d):
    s = Scaler(d["method"])
    s.offset = np.asarray(d["offset"], dtype=np.float64)
    s.scale = np.asarray(d["scale"], dtype=np.float64)
    return s


def _model_record(model, onnx_inputs=None) -> dict:
    """The model's record as JSON (see the module docstring): ``model.state()``'s JSON with
    the scaler's statistics as numbers, the network's input names and, for ONNX, the graph's
    inputs."""
    state = model.state()
    record = json.loads(json.dumps(state["json"]))  # a copy
    record["inputs"]["offset"] = _plain(state["arrays"]["inputs/offset"])
    record["inputs"]["scale"] = _plain(state["arrays"]["inputs/scale"])
    record["input_names"] = list(model.inputs.input_names)
    if onnx_inputs is not None:
        record["onnx_inputs"] = onnx_inputs
    return record


def _model_extras(model):
    """``(scaler, classes)`` for the metadata keys a bare network's export has, where they mean
    the same for the model: the scaler when it scales every network input (no text columns),
    the classifier's labels."""
    scaler = model.inputs.scaler if not model.inputs.category_columns else None
    classes = list(model.target.classes) if model.target.is_classifier else None
    return scaler, classes


def _metadata(net, scaler, classes, model=None, onnx_inputs=None):
    from . import __version__  # noqa: PLC0415  (late: xpnet/__init__ may import this module)

    meta = {"format": SAFETENSORS_FORMAT, "format_version": str(SAFETENSORS_VERSION),
            "xpnet_version": __version__,
            "architecture": "MLP" if isinstance(net, MLP) else "Sequential",
            "config": json.dumps(net.config())}
    if scaler is not None:
        meta["scaler"] = json.dumps(_scaler_json(scaler))
    if classes is not None:
        meta["classes"] = json.dumps(classes)
    if model is not None:
        meta["model"] = json.dumps(_model_record(model, onnx_inputs))
    return meta


# ---------------------------------------------------------------------------- export
def export(net, path, scaler=None, classes=None, *, fold_batch_norm=True) -> Path:
    """Write ``net`` (a model or a network) to ``path``, in the format its suffix names
    (``.onnx`` | ``.safetensors``).

    Args:
        net: an :class:`~xpnet.Model` (raw rows in, labels or values out: see the module
            docstring), or a :class:`~xpnet.Sequential` or :class:`~xpnet.MLP` (any device, any
            dtype).
        path: the file to write (atomically); its folder must exist.
        scaler: networks only: an optional fitted :class:`~xpnet.Scaler`. ONNX: applied inside
            the graph, so the model takes raw inputs. safetensors: stored in the metadata.
        classes: networks only: optional labels, one per output (e.g. ``list(range(10))`` for
            MNIST), stored in the metadata.
        fold_batch_norm: ONNX only: fold each batch norm into the Gemm before it.

    Returns:
        The :class:`~pathlib.Path` written.

    Raises:
        TypeError: ``scaler=`` or ``classes=`` given with a Model (it carries its own).
        ValueError: another suffix, or anything that cannot be exported (naming it).
        ImportError: the package for the format is missing (naming the ``pip install``).
        OSError: the file cannot be written (an old file is kept).
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
    if isinstance(net, Model):
        _check_model(net, scaler, classes)
        model, net = net, net.net
        meta = _metadata(net, *_model_extras(model), model=model)
    else:
        _check_net(net)
        scaler, classes = _check_scaler(scaler, net), _check_classes(classes, net)
        meta = _metadata(net, scaler, classes)
    st = _import_safetensors()
    tensors = {name: np.ascontiguousarray(a) for name, a in net.state_dict().items()}
    return st.numpy.save(tensors, metadata=meta)


# ---------------------------------------------------------------------------- reading safetensors
def load_safetensors(path, device="auto"):
    """Read a ``.safetensors`` file written by :func:`export`: ``(net, scaler, classes)``, the
    last two None when the file has none (for a file written from a Model, the scaler when
    it scaled every network input and the classifier's labels; :func:`load_model` gives the
    whole model). Raises ``ValueError`` for a file it did not write, or one whose tensors do
    not fit the network its metadata describes."""
    net, meta = _read_safetensors(path, device)
    scaler = classes = None
    try:
        if "scaler" in meta:
            scaler = _scaler_from_json(json.loads(meta["scaler"]))
        if "classes" in meta:
            classes = json.loads(meta["classes"])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path} has damaged scaler or classes metadata ({exc}); re-export "
                         f"it") from None
    return net, scaler, classes


def load_model(path, device="auto") -> Model:
    """The :class:`~xpnet.Model` of a ``.safetensors`` file written by ``export(model, ...)``:
    the same network, input schema and target, so the same predictions. Raises ``ValueError``
    for a file written from a bare network (read it with :func:`load_safetensors`), a damaged
    model record, or a file :func:`load_safetensors` refuses."""
    net, meta = _read_safetensors(path, device)
    if "model" not in meta:
        raise ValueError(f"{path} holds a bare network, not an xpnet.Model (it was exported "
                         f"from a network); read it with xpnet.export.load_safetensors")
    try:
        record = json.loads(meta["model"])
        inputs = dict(record["inputs"])
        offset, scale = inputs.pop("offset"), inputs.pop("scale")
        record = {k: v for k, v in record.items() if k not in ("input_names", "onnx_inputs")}
        record["inputs"] = inputs
        state = {"json": {"model": record},
                 "arrays": {"model/inputs/offset": np.asarray(offset, dtype=np.float64),
                            "model/inputs/scale": np.asarray(scale, dtype=np.float64)}}
        model = Model.from_state(net, state)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise ValueError(f"{path} has a damaged model record ({exc}); re-export it from the "
                         f"model") from None
    return model


def _read_safetensors(path, device):
    """``(net, metadata)`` of an xpnet safetensors file, the tensors checked against the
    config before the network is built."""
    st = _import_safetensors()
    path = Path(path)
    try:
        with st.safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        raise ValueError(f"{path} is not a readable safetensors file "
                         f"({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != SAFETENSORS_FORMAT or "config" not in meta:
        raise ValueError(f"{path} is a safetensors file but was not written by xpnet.export "
                         f"(its metadata has no xpnet config)")
    architecture = meta.get("architecture", "Sequential")
    try:
        config = json.loads(meta["config"])
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path} has a damaged network config in its metadata ({exc}); "
                         f"re-export it") from None
    _check_tensor_shapes(path, architecture, config, shapes)
    try:
        tensors = st.numpy.load_file(str(path))
    except Exception as exc:
        raise ValueError(f"{path} is not a readable safetensors file "
                         f"({type(exc).__name__}: {exc})") from exc
    try:
        if architecture == "MLP":
            net = MLP(**config, device=device)
        else:
            net = Sequential.from_config(config, device=device)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{path} has a damaged network config in its metadata ({exc}); "
                         f"re-export it") from None
    net.load_state_dict(tensors, strict=True)
    return net, meta


def _check_tensor_shapes(path, architecture, config, shapes):
    """Refuse a file whose tensors are not those of the network its config describes (by name
    and shape), or whose network exceeds MAX_NETWORK_BYTES, before anything is built: the
    network's size is then bounded by the file's (safetensors checks that the file holds
    every byte its header declares)."""
    if architecture not in ("MLP", "Sequential"):
        raise ValueError(f"{path} declares the architecture {architecture!r:.40}, which xpnet "
                         f"does not build; re-export it")
    described = config_shapes(architecture, config)
    if described is None:
        raise ValueError(f"{path} has a damaged network config in its metadata; re-export it")
    expected, free = described
    free = {str(i) for i in free}  # as the first part of a tensor's name
    n = sum(math.prod(shape) for shape in expected.values())
    nbytes = n * (8 if config.get("dtype") == "float64" else 4)
    if nbytes > MAX_NETWORK_BYTES:
        raise ValueError(f"{path} describes a network of {n} parameters ({nbytes} bytes), more "
                         f"than the {MAX_NETWORK_BYTES} bytes xpnet loads; the file is damaged "
                         f"or crafted")
    for name, want in expected.items():
        if name not in shapes:
            raise ValueError(f"{path} lacks the tensor {name!r} its network config needs; the "
                             f"file is damaged: re-export it")
        if shapes[name] != tuple(want):
            raise ValueError(f"{path} has the tensor {name!r} of shape {shapes[name]}, but its "
                             f"network config needs {tuple(want)}; the file is damaged: "
                             f"re-export it")
    for name in shapes:
        if name not in expected and name.split(".", 1)[0] not in free:
            raise ValueError(f"{path} has the tensor {name!r}, which its network config does "
                             f"not declare; the file is damaged: re-export it")


# ---------------------------------------------------------------------------- ONNX
class _Graph:
    """Nodes and initializers of the ONNX graph being built."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._scalars = [], [], {}
        self.uses_ml = False

    def tensor(self, name, value):
        """A float32 initializer."""
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float64).astype(np.float32))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def const(self, name, array):
        """An initializer of ``array``'s own type (int64, float64 or str)."""
        array = np.asarray(array)
        if array.dtype.kind == "U":
            array = array.astype(object)
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
        if attrs.get("domain") == ML_DOMAIN:
            self.uses_ml = True
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


def _check_head(net):
    head = _HEAD_OPS.get(type(net.head))
    if head is None:
        raise ValueError(f"cannot export the output head {type(net.head).__name__} "
                         f"({net.head.name!r}) to ONNX: xpnet exports softmax, sigmoid and "
                         f"identity heads")
    return head


def _layer_nodes(g, net, x, fold_batch_norm):
    """The network's layers applied to the tensor ``x``; returns the logits' name."""
    state = net.state_dict()
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
    return x


def _finish(g, onnx, helper, inputs, outputs, doc, props):
    """The checked ModelProto of the graph ``g``."""
    from . import __version__  # noqa: PLC0415

    graph = helper.make_graph(g.nodes, "xpnet", inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", ONNX_OPSET)]
    if g.uses_ml:
        opsets.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ONNX_IR_VERSION,
                              producer_name="xpnet", producer_version=__version__,
                              doc_string=doc)
    helper.set_model_props(model, {k: v for k, v in props.items()
                                   if not k.startswith("format")})
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(net, scaler=None, classes=None, *, fold_batch_norm=True):
    """The ONNX ``ModelProto`` of ``net``, an :class:`~xpnet.Model` (``scaler`` and ``classes``
    must then be None) or a network (see the module docstring), checked by
    ``onnx.checker.check_model``; :func:`export` serialises it."""
    if isinstance(net, Model):
        _check_model(net, scaler, classes)
        return _model_onnx(net, fold_batch_norm)
    _check_net(net)
    scaler, classes = _check_scaler(scaler, net), _check_classes(classes, net)
    op_type, attrs = _check_head(net)
    onnx, helper, numpy_helper, TensorProto = _import_onnx()
    g = _Graph(helper, numpy_helper)
    x = INPUT_NAME
    if scaler is not None and scaler.method != "none":
        x = g.op("Sub", [x, g.tensor("scaler.offset", scaler.offset)], "scaler")
        x = g.op("Div", [x, g.tensor("scaler.scale", scaler.scale)], "scaler")
    x = _layer_nodes(g, net, x, fold_batch_norm)
    g.op(op_type, [x], "head", output=OUTPUT_NAME, **attrs)

    n_in, n_out = net.n_features_in, net.n_outputs
    what = {"softmax": "softmax probabilities", "sigmoid": "sigmoid probabilities",
            "identity": "the network's outputs"}[net.head.name]
    inputs = ("raw features; the graph applies the scaler first, (x - offset) / scale"
              if scaler is not None and scaler.method != "none" else
              "features scaled as during training")
    return _finish(
        g, onnx, helper,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_out])],
        f"{INPUT_NAME}: float32 (batch, {n_in}), {inputs}. "
        f"{OUTPUT_NAME}: float32 (batch, {n_out}), {what}.",
        _metadata(net, scaler, classes))


# ---------------------------------------------------------------------------- ONNX of a Model
def _onnx_input_names(model) -> dict:
    """Column name -> graph input name for each text column: the name made an identifier
    (``[A-Za-z0-9_]``, not starting with a digit), unique, and distinct from the graph's
    other names. A column whose name already is such an identifier keeps it; the others get
    ``_2``, ``_3``... when needed."""
    def usable(name):
        return name not in taken and not re.fullmatch(r"const_\d+", name)

    taken = set(_RESERVED_NAMES)
    columns = [spec.name for spec in model.inputs.category_columns]
    names = {}
    for column in columns:  # names that need no change first, so that they stay as they are
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column) and usable(column):
            names[column] = column
            taken.add(column)
    for column in columns:
        if column in names:
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", column) or "column"
        if base[0].isdigit():
            base = "_" + base
        name, k = base, 2
        while not usable(name):
            name, k = f"{base}_{k}", k + 1
        names[column] = name
        taken.add(name)
    return {column: names[column] for column in columns}


def _label_type(labels) -> str:
    return {"i": "int64", "f": "float64"}.get(labels.dtype.kind, "string")


def _signature(model, names):
    """``(inputs, outputs)`` of a model's graph, each ``[(name, type, dims, what)]``."""
    inputs, target = model.inputs, model.target
    impute = inputs.missing == "impute"
    ins = []
    numeric = inputs.numeric_columns
    if numeric:
        scaled = (f"scaled in the graph ({inputs.scaler.method})"
                  if inputs.scaler.method != "none" else "not scaled")
        columns = ", ".join(c.name for c in numeric) if len(numeric) <= 4 else \
            f"{len(numeric)} number columns"
        booleans = " (booleans 1/0)" if any(c.kind == "boolean" for c in numeric) else ""
        missing = "NaN = missing" if impute else "NaN propagates"
        ins.append((INPUT_NAME, "float32", ["batch", len(numeric)],
                    f"{columns}: raw values{booleans}, {scaled}; {missing}"))
    for spec in inputs.category_columns:
        ins.append((names[spec.name], "string", ["batch", 1],
                    f"column {spec.name!r}, {len(spec.categories)} categories; '' = missing"))
    if target.is_classifier:
        labels = _label_array(target.classes)
        outs = [(LABEL_NAME, _label_type(labels), ["batch"], f"classes {_span(target.classes)}"),
                (PROBABILITIES_NAME, "float32", ["batch", len(labels)],
                 "one column per class, in that order")]
    else:
        what = repr(target.name) if target.name else "the target"
        outs = [(PREDICTION_NAME, "float32", ["batch", 1], f"{what} in its units")]
    return ins, outs


def _model_onnx(model, fold_batch_norm):
    net, inputs, target = model.net, model.inputs, model.target
    onnx, helper, numpy_helper, TensorProto = _import_onnx()
    g = _Graph(helper, numpy_helper)
    names = _onnx_input_names(model)
    impute = inputs.missing == "impute"
    blocks = []
    numeric = inputs.numeric_columns
    if numeric:
        x = INPUT_NAME
        if impute:
            x = g.op("Imputer", [x], "inputs", domain=ML_DOMAIN,
                     imputed_value_floats=[float(c.fill) for c in numeric],
                     replaced_value_float=float("nan"))
        if inputs.scaler.method != "none":
            x = g.op("Sub", [x, g.tensor("inputs.offset", inputs.scaler.offset)], "inputs")
            x = g.op("Div", [x, g.tensor("inputs.scale", inputs.scaler.scale)], "inputs")
        blocks.append(x)
    markers = sorted(MISSING_MARKERS)
    for spec in inputs.category_columns:
        name, cats = names[spec.name], list(spec.categories)
        scope = f"inputs/{name}"
        x = name
        if impute:  # a missing cell -> the fill category; a known one -> itself; else unseen
            kept = [c for c in cats if c not in MISSING_MARKERS]
            unseen = next(s for s in ("", *(f"\0{k}" for k in range(len(cats) + 1)))
                          if s not in cats)
            x = g.op("LabelEncoder", [x], scope, domain=ML_DOMAIN,
                     keys_strings=markers + kept,
                     values_strings=[spec.fill] * len(markers) + kept, default_string=unseen)
        x = g.op("OneHotEncoder", [x], scope, domain=ML_DOMAIN, cats_strings=cats, zeros=1)
        x = g.op("Reshape", [x, g.const(f"{scope}.shape", np.array([0, len(cats)], np.int64))],
                 scope)
        if not impute:  # a missing cell makes the block NaN, so that the outputs are NaN
            nan = g.op("LabelEncoder", [name], scope, domain=ML_DOMAIN, keys_strings=markers,
                       values_floats=[float("nan")] * len(markers), default_float=0.0)
            x = g.op("Add", [x, nan], scope)
        blocks.append(x)
    x = blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, "inputs", axis=1)
    x = _layer_nodes(g, net, x, fold_batch_norm)
    if target.is_classifier:
        proba = g.op("Softmax", [x], "head", output=PROBABILITIES_NAME, axis=1)
        index = g.op("ArgMax", [proba], "head", axis=1, keepdims=0)
        labels = g.const("classes", _label_array(target.classes))
        g.op("Gather", [labels, index], "head", output=LABEL_NAME, axis=0)
    else:
        y = g.op("Mul", [x, g.tensor("target.scale", target.scale)], "head")
        g.op("Add", [y, g.tensor("target.mean", target.mean)], "head", output=PREDICTION_NAME)

    ins, outs = _signature(model, names)
    types_ = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
              "int64": TensorProto.INT64, "string": TensorProto.STRING}
    info = helper.make_tensor_value_info
    onnx_inputs = {}
    if numeric:
        onnx_inputs[INPUT_NAME] = [c.name for c in numeric]
    onnx_inputs.update({graph: column for column, graph in names.items()})
    doc = " ".join(f"{n}: {t} ({', '.join(map(str, d))}), {w}." for n, t, d, w in ins + outs)
    return _finish(g, onnx, helper, [info(n, types_[t], d) for n, t, d, _ in ins],
                   [info(n, types_[t], d) for n, t, d, _ in outs], doc,
                   _metadata(net, *_model_extras(model), model=model, onnx_inputs=onnx_inputs))


def _span(classes):
    classes = list(classes)
    if classes == list(range(len(classes))) and len(classes) > 3:
        return f"0..{len(classes) - 1}"
    return _listed(classes, 6)


def _listed(items, shown=8) -> str:
    items = [str(i) for i in items]
    text = ", ".join(items[:shown])
    return text + (f", ... ({len(items)} in all)" if len(items) > shown else "")


# ---------------------------------------------------------------------------- PyTorch
def to_torch(net, include_head=False):
    """The equivalent ``torch.nn.Sequential`` (same layer order and ``state_dict`` names, the
    net's dtype, on the CPU), with every weight and running statistic copied, in eval mode.
    The output head is not part of it unless ``include_head`` (``nn.Softmax(dim=1)`` or
    ``nn.Sigmoid()`` appended; nothing for identity), so by default it returns the logits.

    Args:
        net: a :class:`~xpnet.Sequential` or :class:`~xpnet.MLP`, on any device.
        include_head: append the output activation.

    Returns:
        A ``torch.nn.Sequential`` in eval mode, on the CPU.

    Raises:
        TypeError: ``net`` is not an xpnet network.
        ImportError: PyTorch is not installed.
        ValueError: a layer has no PyTorch equivalent (naming it).
    """
    _check_net(net, model_too=False)
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
    float64 module and uses float32 otherwise.

    Args:
        module: a ``torch.nn.Sequential`` of the modules above.
        head: ``"softmax"`` | ``"sigmoid"`` | ``"identity"``.
        device: where the new network lives (``"auto"`` | ``"cpu"`` | ``"cuda[:N]"``).
        dtype: ``"float32"`` | ``"float64"`` | None (see above).
        seed: seeds the network's dropout stream.

    Returns:
        An xpnet :class:`~xpnet.Sequential` whose ``state_dict()`` equals the module's.

    Raises:
        ImportError: PyTorch is not installed.
        ValueError: the first module it cannot convert (naming it).
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
    p = Parser(prog=PROG, description="Export a checkpoint written by xpnet.train --save (or "
               "Model.save, or xpnet.save) to ONNX or safetensors. A model exports whole: raw "
               "rows in (numbers as one float32 input, each text column as a string input), "
               "labels and probabilities (or values in the target's units) out.")
    p.add_argument("checkpoint", help="a .npz written by xpnet.train --save, Model.save or "
                   "xpnet.save")
    p.add_argument("output", help="OUT.onnx or OUT.safetensors")
    p.add_argument("--no-scaler", action="store_true",
                   help="export the network alone, without the input scaling (and a model's "
                        "column handling and label decoding): it then takes inputs prepared "
                        "as in training and returns the network's outputs")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    return run(_main, argv, PROG)


def _written(output, write):
    """``write()``, its OS error (a full disk, a folder without write permission) a one-line
    failure that names the file and says the old one, if any, is untouched."""
    try:
        return write()
    except OSError as exc:
        raise Failure(f"cannot write {output} ({exc.strerror or exc}); the file there, if any, "
                      f"was left as it was: free some space or choose another folder") from None


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    suffix = Path(args.output).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"the output {args.output!r} must end in .onnx or .safetensors")
    if same_file(args.checkpoint, args.output):
        raise UsageError(f"the output {args.output} is the checkpoint itself; write the export "
                         f"to another file")
    check_writable("output", args.output)
    try:
        _import_onnx() if suffix == ".onnx" else _import_safetensors()
    except ImportError as exc:
        raise Failure(str(exc)) from None
    from .checkpoint import CheckpointError
    from .model import load

    try:
        loaded = load(args.checkpoint, device="cpu")
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    if isinstance(loaded, Model) and not args.no_scaler:
        path = _written(args.output, lambda: export(loaded, args.output))
        print(_model_summary(path, loaded, suffix))
        return EXIT_OK
    net = loaded.net if isinstance(loaded, Model) else loaded
    scaler, classes = None, _bare_classes(loaded)
    path = _written(args.output, lambda: export(net, args.output, scaler=scaler,
                                                classes=classes))
    if suffix == ".onnx":
        what = {"softmax": "softmax probabilities", "sigmoid": "sigmoid probabilities"}.get(
            net.head.name, "outputs")
        labels = "" if classes is None else f" of classes {_span(classes)}"
        print(f"wrote {path} (ONNX opset {ONNX_OPSET}): input {INPUT_NAME!r} float32 "
              f"[batch, {net.n_features_in}] of scaled values (no scaler in the graph); output "
              f"{OUTPUT_NAME!r} float32 [batch, {net.n_outputs}]: {what}{labels}")
    else:
        print(f"wrote {path} (safetensors): {len(net.state_dict())} tensors; config"
              f"{', classes' if classes is not None else ''} in the metadata")
    return EXIT_OK


def _bare_classes(loaded):
    """Labels of a network exported alone: a classifier model's (when they are integers or
    text), else ``0..k-1`` for a softmax network (MNIST: digits), else None."""
    if isinstance(loaded, Model):
        target = loaded.target
        if target.is_classifier and all(isinstance(c, (int, str)) for c in target.classes):
            return list(target.classes)
        return None
    return list(range(loaded.n_outputs)) if loaded.head.name == "softmax" else None


def _model_summary(path, model, suffix) -> str:
    if suffix == ".safetensors":
        meta = ["config", *[k for k, v in zip(("scaler", "classes"), _model_extras(model))
                            if v is not None], "model"]
        return (f"wrote {path} (safetensors): {len(model.net.state_dict())} tensors; "
                f"{', '.join(meta)} in the metadata (xpnet.export.load_model reads the model)")
    ins, outs = _signature(model, _onnx_input_names(model))
    uses_ml = model.inputs.missing == "impute" and model.inputs.numeric_columns \
        or model.inputs.category_columns
    opsets = f"ONNX opset {ONNX_OPSET}" + (f", {ML_DOMAIN} {ML_OPSET}" if uses_ml else "")

    def side(items):
        return ", ".join(f"{n!r} {t} [{', '.join(map(str, d))}] ({w})" for n, t, d, w in items)

    return (f"wrote {path} ({opsets}): input{'s' if len(ins) > 1 else ''} {side(ins)}; "
            f"outputs {side(outs)}")


# ---------------------------------------------------------------------------- callable module
class _CallableModule(types.ModuleType):
    """This module, callable: ``xpnet.export(...)`` is :func:`export` even after
    ``import xpnet.export`` has made the package attribute the module."""

    def __call__(self, net, path, scaler=None, classes=None, **kwargs):
        return export(net, path, scaler=scaler, classes=classes, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
