"""Networks: :class:`Sequential` chains layers into an output head; :class:`MLP` builds one.

Notation for a batch of ``m`` samples (samples first, as in PyTorch and scikit-learn):

    forward:   x_0 = X (m, n_0),   x_{i+1} = layer_i.forward(x_i),   Z = x_L   (the logits)
    loss:      L = head.loss(Z, y) + l2 / (2 m) * sum over Linear layers of ||W||^2
    backward:  dZ = head gradient,  dx_i = layer_i.backward(dx_{i+1}),  then dW += (l2 / m) W

All parameters live in one flat device buffer (:class:`~xpnet.parameters.FlatParameters`),
each layer's arrays being views into it, and all gradients in a second one; names follow
``torch.nn.Sequential`` (``0.weight``, ``0.bias``, ``1.running_mean``, ...), so
:meth:`Sequential.state_dict` loads into the equivalent PyTorch module.

:class:`MLP` is the tutorials' front door: from ``layer_sizes`` it builds, for each hidden
layer, ``Linear -> BatchNorm1d (if batch_norm) -> activation -> Dropout (if dropout > 0)``,
then the output ``Linear``, in PyTorch's order.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from .backend import Device, all_finite, as_array, get_device, is_device_array
from .heads import HEADS, Head
from .initializers import check_init
from .layers import ACTIVATIONS, LAYERS, BatchNorm1d, Dropout, Layer, Linear
from .parameters import FlatParameters

__all__ = ["ACTIVATIONS", "HEADS", "MLP", "OUTPUTS", "Sequential"]

OUTPUTS = tuple(HEADS)  # the built-in heads; MLP checks against HEADS itself, so added ones count
DTYPES = ("float32", "float64")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(map(repr, allowed))}")
    return value


def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name if dtype is not None else None
    except TypeError:
        name = dtype
    return _choice("dtype", name, DTYPES)


def check_seed(seed):
    """``seed`` as a plain ``int`` (NumPy integers included, so configs stay JSON), or None."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0 or None; got {seed!r}")
    return int(seed)


def _positive_batch(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1; got {batch_size!r}")
    return int(batch_size)


class Sequential:
    """Layers applied in order, then an output head.

    Args:
        layers: :class:`~xpnet.layers.Layer` instances; their parameters are allocated here.
        head: an output head or its name: ``softmax`` | ``sigmoid`` | ``identity``.
        l2: L2 strength on every ``Linear`` weight (``l2 / (2 m) * sum ||W||^2``).
        dtype: ``float32`` (default, fast) or ``float64`` (gradient checks).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` or a :class:`~xpnet.backend.Device`.
        seed: seeds the initial weights (drawn on the host in layer order, so equal on every
            device) and the dropout stream.
    """

    def __init__(self, layers, head="softmax", l2=0.0, dtype="float32", device="auto",
                 seed=None):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise ValueError("layers must be a non-empty list of xpnet.layers.Layer instances")
        if isinstance(head, str):
            head = HEADS[_choice("output", head, tuple(HEADS))]()
        if not isinstance(head, Head):
            raise ValueError(f"head must be an xpnet.heads.Head or one of {list(HEADS)}; "
                             f"got {head!r}")
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not np.isfinite(l2) \
                or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        self.layers, self.head, self.l2 = layers, head, float(l2)
        self.dtype = _dtype_name(dtype)
        self.seed = check_seed(seed)
        self.device: Device = get_device(device)
        self.xp = self.device.xp
        self.linears = [layer for layer in layers if isinstance(layer, Linear)]
        if not self.linears:
            raise ValueError("a Sequential needs at least one Linear layer")
        self.n_features_in = self.linears[0].in_features
        self.n_outputs = self.linears[-1].out_features
        width = self.n_features_in
        for i, layer in enumerate(layers):
            need = layer.input_features()
            if need is not None and need != width:
                raise ValueError(f"layer {i} ({layer!r}) takes {need} features, but the layer "
                                 f"before it gives {width}; make each layer's input size the "
                                 f"output size of the one before")
            width = layer.output_features(width)
        host_rng = np.random.default_rng(self.seed)
        self._allocate(host_rng)
        layers[0].needs_input_grad = False  # dX of the data is never needed
        for prev, layer in zip([None, *layers[:-1]], layers):
            # In place only on a buffer the previous layer owns and will not read again: never
            # on the caller's data, a pass-through's input, or an output kept for backward.
            if getattr(layer, "inplace", False) and not (prev and prev.output_reusable):
                layer.inplace = False
        self.reseed_dropout(host_rng.integers(2**63))

    def _allocate(self, host_rng):
        shapes, no_decay, initial = {}, [], {}
        for i, layer in enumerate(self.layers):
            for name, shape in layer.parameter_shapes().items():
                shapes[f"{i}.{name}"] = shape
            no_decay += [f"{i}.{name}" for name in layer.no_decay()]
            for name, value in layer.initial_parameters(host_rng).items():
                initial[f"{i}.{name}"] = value
        xp = self.xp
        with self.device.activate():
            self.flat = FlatParameters(shapes, xp, self.dtype, no_decay)
            host = np.zeros(self.flat.size)
            for name, s in self.flat.slices.items():
                host[s] = np.asarray(initial[name]).ravel()
            self.flat.data[...] = self.device.send(host, self.dtype)  # one host-to-device copy
            for i, layer in enumerate(self.layers):
                mine = {n.partition(".")[2]: n for n in shapes if n.split(".")[0] == str(i)}
                layer.bind({k: self.flat.params[n] for k, n in mine.items()},
                           {k: self.flat.grads[n] for k, n in mine.items()}, xp, self.dtype)
        self.head.xp = xp
        # Stable lists of views (``net.grads is net.grads``), built once.
        self._param_pairs = [(lin.params["weight"], lin.params["bias"]) for lin in self.linears]
        self._grad_pairs = [(lin.grads["weight"], lin.grads["bias"]) for lin in self.linears]

    # ------------------------------------------------------------------ named state
    def named_parameters(self):
        """``[(name, array), ...]`` in buffer order; the arrays are views into :attr:`flat`."""
        return list(self.flat.params.items())

    def named_buffers(self):
        """``[(name, array), ...]`` of non-trainable state (batch-norm running statistics)."""
        return [(f"{i}.{name}", a) for i, layer in enumerate(self.layers)
                for name, a in layer.buffers.items()]

    def parameters(self):
        """Every trainable array, in buffer order (views into ``flat.data``)."""
        return list(self.flat.params.values())

    def gradients(self):
        """Gradient arrays matching :meth:`parameters` (views into ``flat.grad``)."""
        return list(self.flat.grads.values())

    def buffers(self):
        return [a for _, a in self.named_buffers()]

    def state_dict(self) -> dict:
        """``{name: host NumPy copy}`` of every parameter and buffer, in PyTorch's order (each
        layer's parameters, then its buffers) and with ``torch.nn.Sequential``'s names.

        Returns:
            A dict such as ``{"0.weight": (n_1, n_0), "0.bias": (n_1,), "1.running_mean":
            ..., ...}``; ``torch.nn.Sequential.load_state_dict`` accepts it after
            ``torch.from_numpy``.
        """
        out = {}
        to_numpy = self.device.to_numpy
        for i, layer in enumerate(self.layers):
            for name, a in list(layer.params.items()) + list(layer.buffers.items()):
                out[f"{i}.{name}"] = np.array(to_numpy(a), copy=True)
        return out

    def load_state_dict(self, state, strict=True) -> None:
        """Copy ``{name: array}`` (host or device, e.g. from :meth:`state_dict` or a PyTorch
        ``state_dict`` converted with ``.numpy()``) into this net in place. With ``strict``,
        missing or unexpected names raise ``ValueError``; shapes must always match. PyTorch's
        ``num_batches_tracked`` entries are ignored.

        Args:
            state: ``{name: array}``.
            strict: refuse missing and unexpected names.

        Raises:
            ValueError: a name is missing or unexpected (with ``strict``), or a shape differs.
        """
        targets = dict(self.named_parameters()) | dict(self.named_buffers())
        given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing, unexpected = sorted(set(targets) - set(given)), sorted(set(given) - set(targets))
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match the network: missing {missing}, "
                             f"unexpected {unexpected}")
        given = {name: given[name] for name in targets.keys() & given.keys()}
        for name, src in given.items():
            if not is_device_array(src):
                given[name] = src = as_array(src, f"state_dict entry {name!r}")
            dst = targets[name]
            if tuple(src.shape) != dst.shape:
                raise ValueError(f"state_dict entry {name!r} has shape "
                                 f"{tuple(src.shape)}, the network needs {dst.shape}")
            if np.dtype(src.dtype).kind not in "biuf":
                raise ValueError(f"state_dict entry {name!r} must hold numbers; got dtype "
                                 f"{src.dtype}")
        with self.device.activate():
            for name, src in given.items():
                targets[name][...] = self.device.send(src, self.dtype)

    @property
    def params(self):
        """``[(W, b), ...]`` of every :class:`~xpnet.layers.Linear`, in order."""
        return self._param_pairs

    @property
    def grads(self):
        """``[(dW, db), ...]`` matching :attr:`params`, written by the last backward pass."""
        return self._grad_pairs

    @property
    def n_layers(self) -> int:
        """The number of Linear layers (weight matrices)."""
        return len(self.linears)

    def set_params(self, params):
        """Copy ``[(W, b), ...]`` (host or device arrays) into the Linear layers in place."""
        if len(params) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} (W, b) pairs, got {len(params)}")
        for (W, b), (W_new, b_new) in zip(self.params, params):
            for dst, src, name in ((W, W_new, "W"), (b, b_new, "b")):
                src = src if is_device_array(src) else as_array(src, name)
                if tuple(src.shape) != dst.shape:
                    raise ValueError(f"{name} has shape {tuple(src.shape)}, expected {dst.shape}")
                dst[...] = self.device.send(src, self.dtype)

    def reseed_dropout(self, seed) -> None:
        """Restart the random stream of the layers that draw in training (``Layer.random``:
        dropout; the trainer does this each epoch, for exact resume). They share one
        generator, drawing in layer order."""
        rng = self.device.rng(seed)
        for layer in self.layers:
            if layer.random:
                layer.rng = rng

    def config(self) -> dict:
        """Everything needed to rebuild this network (JSON-serialisable)."""
        return {"layers": [{"type": type(layer).__name__, **layer.config()}
                           for layer in self.layers],
                "head": self.head.name, "l2": self.l2, "dtype": self.dtype, "seed": self.seed}

    @classmethod
    def from_config(cls, config, device="auto"):
        """Rebuild a network from :meth:`config` (built-in layers only)."""
        known = LAYERS | {cls.__name__: cls for cls in ACTIVATIONS.values()}  # + registered ones
        layers = []
        for spec in config["layers"]:
            spec = dict(spec)
            kind = spec.pop("type")
            if kind not in known:
                raise ValueError(f"unknown layer type {kind!r}: xpnet knows {sorted(known)}")
            layers.append(known[kind](**spec))
        return cls(layers, head=config["head"], l2=config.get("l2", 0.0),
                   dtype=config.get("dtype", "float32"), device=device, seed=config.get("seed"))

    def __reduce__(self):
        """Pickling (and ``copy.deepcopy``) keeps what a checkpoint keeps: the configuration,
        the named state as host arrays, the device's name and the training history. The copy
        is rebuilt on that device, or on the CPU, with a warning, where that device is missing
        (a pickle moved to a machine without the GPU). Like checkpoints, only built-in and
        registered layer types can be rebuilt."""
        extra = {k: v for k, v in self.__dict__.items() if k == "history_"}
        return (_unpickle, (type(self), self.config(), self.state_dict(), self.device.name,
                            extra))

    def __repr__(self) -> str:
        body = ", ".join(map(repr, self.layers))
        return f"Sequential([{body}], head={self.head.name!r}, device={self.device.name!r})"

    # ------------------------------------------------------------------ input checks
    def check_X(self, X, name="X"):
        """Validate and send ``X`` (m, n_0); raise ``ValueError`` naming the problem."""
        X = as_array(X, name)
        shape = X.shape
        if len(shape) != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features); got shape {tuple(shape)}. "
                f"Reshape it, e.g. {name}.reshape(len({name}), -1)."
            )
        if shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples); pass at least one sample.")
        if shape[1] != self.n_features_in:
            n = self.n_features_in
            fix = (f"{name} looks transposed (the tutorials' (features, samples) layout): "
                   f"pass {name}.T" if shape[0] == n else f"fix {name} or layer_sizes[0]")
            raise ValueError(
                f"{name} has {shape[1]} features but the network's input layer has {n}; {fix}."
            )
        kind = np.dtype(X.dtype).kind
        if kind not in "biuf":
            raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}.")
        Xd = self.device.send(X, self.dtype)
        if not all_finite(self.xp, Xd):
            raise ValueError(
                f"{name} contains NaN or infinity (or values too large for {self.dtype}); "
                f"clean, impute or rescale the data first."
            )
        return Xd

    def check_sample_weight(self, sample_weight, m, name="sample_weight"):
        """Validate and send per-sample weights for ``m`` samples: ``(m,)`` finite numbers
        ``>= 0`` with a positive sum (scikit-learn's rule), in the network's dtype. A weight of
        ``c`` counts its row ``c`` times; weights that all scale by the same factor change
        nothing."""
        w = as_array(sample_weight, name)
        if w.ndim != 1 or w.shape[0] != m:
            raise ValueError(f"{name} must be 1-D with one weight per sample ({m}); got shape "
                             f"{tuple(w.shape)}.")
        if np.dtype(w.dtype).kind not in "biuf":
            raise ValueError(f"{name} must hold numbers; got dtype {w.dtype}.")
        wd = self.device.send(w, self.dtype)
        # One read back: all finite (1.0 or 0.0), the smallest weight and the sum.
        finite, low, total = self.xp.stack(
            [self.xp.isfinite(wd).all(), wd.min(), wd.sum()]).tolist()
        if not finite:
            raise ValueError(f"{name} contains NaN or infinity; pass finite weights.")
        if low < 0 or total <= 0:
            raise ValueError(f"{name} must be >= 0 with a positive sum; got a minimum of "
                             f"{low:g} and a sum of {total:g}.")
        return wd

    def check_y(self, y, m, name="y"):
        """Validate and send the targets for ``m`` samples, in the form the head needs."""
        y = as_array(y, name)
        return self.head.check_targets(y, m, self.n_outputs, self.device, self.dtype, name)

    # ------------------------------------------------------------------ forward and backward
    def logits(self, X, training=False):
        """The last layer's output for a device array ``X`` already checked by :meth:`check_X`
        (unchecked, for loops that validated their data once). Training mode uses batch
        statistics and dropout, and keeps what :meth:`backward` needs."""
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dZ):
        """Backpropagate ``dZ`` (m, k) from the logits through every layer, filling the flat
        gradient buffer, plus the L2 term's ``(l2 / m) W``. ``dZ`` is overwritten."""
        self.backward_data(dZ)
        self.add_l2_grad(dZ.shape[0])

    def backward_data(self, dZ):
        """Backpropagate ``dZ`` (m, k) through every layer, filling the flat gradient buffer
        with the data term's gradient only (no L2). ``dZ`` is overwritten."""
        for layer in reversed(self.layers):
            dZ = layer.backward(dZ)

    def add_l2_grad(self, m):
        """Add the L2 term's gradient ``(l2 / m) W`` to every Linear weight's gradient, for a
        batch of ``m`` samples (nothing without L2)."""
        if self.l2:
            for lin in self.linears:
                lin.grads["weight"] += (self.l2 / m) * lin.params["weight"]

    def l2_term(self, m):
        """``l2 / (2 m) * sum ||W||^2`` over the Linear weights (0.0 without L2)."""
        if not self.l2:
            return 0.0
        total = sum(self.xp.vdot(lin.params["weight"], lin.params["weight"])
                    for lin in self.linears)
        return (self.l2 / (2.0 * m)) * total

    def forward_backward(self, X, y, dropout_masks=None, correct=None, sample_weight=None):
        """One training pass on checked device arrays: fills the gradients and returns the loss
        (data loss plus L2) as a 0-d device array, with no host synchronisation. When
        ``correct`` (a 0-d device array) is given, the batch's correct count is added to it.
        ``sample_weight`` (m,) makes the data loss the weighted mean ``sum w l / sum w`` (see
        :mod:`xpnet.heads`) and divides the L2 term by ``sum w`` instead of ``m``, as
        scikit-learn's MLP does, so that a weight of 2 trains exactly as the row given twice."""
        if dropout_masks is not None:
            self._set_dropout_masks(X.shape[0], dropout_masks)
        loss = self.forward_backward_data(X, y, correct=correct, sample_weight=sample_weight)
        m = X.shape[0] if sample_weight is None or not self.l2 else sample_weight.sum()
        self.add_l2_grad(m)
        return loss + self.l2_term(m)

    def forward_backward_data(self, X, y, correct=None, grad_scale=None, sample_weight=None):
        """The data part of a training pass: forward in training mode, the head's mean loss
        over the ``m`` rows of ``X`` (a 0-d device array) and its gradient, scaled by
        ``grad_scale`` when given (a process's share ``m / M`` of a global batch of ``M``),
        backpropagated into the flat gradient buffer. No L2 term (see :meth:`add_l2_grad`).
        With no rows (``m == 0``) the loss is 0 and the gradient zero, but every layer still
        runs forward and backward (batch norm's collectives in data-parallel training)."""
        Z = self.logits(X, training=True)
        if X.shape[0] == 0:
            self.backward_data(Z)
            return self.xp.zeros((), dtype=self.xp.float64)
        if correct is not None and self.head.is_classifier:
            correct += self.head.count_correct(Z, y)
        loss, dZ = (self.head.loss_and_grad(Z, y, out=Z) if sample_weight is None else
                    self.head.loss_and_grad(Z, y, out=Z, sample_weight=sample_weight))
        if grad_scale is not None:
            dZ *= grad_scale
        self.backward_data(dZ)
        return loss

    def _set_dropout_masks(self, m, masks):
        """Hand each dropout layer its mask for the next training forward, after checking every
        mask's shape against that layer's input ``(m, width)``, so none is broadcast."""
        widths, width = [], self.n_features_in
        for layer in self.layers:
            if isinstance(layer, Dropout):
                widths.append((layer, (m, width)))
            width = layer.output_features(width)
        if len(masks) != len(widths):
            raise ValueError(f"dropout_masks has {len(masks)} masks but the network has "
                             f"{len(widths)} dropout layers; pass one mask per layer.")
        for i, (mask, (_, want)) in enumerate(zip(masks, widths)):
            shape = tuple(getattr(mask, "shape", np.shape(mask)))
            if shape != want:
                raise ValueError(f"dropout mask {i} has shape {shape} but its layer's input has "
                                 f"shape {want}; pass a 0/1 mask of exactly that shape.")
        for mask, (layer, _) in zip(masks, widths):
            layer.next_mask = self.device.send(mask)

    def loss_and_grads(self, X, y, dropout_masks=None):
        """Loss and gradients on one batch, in training mode (batch-norm batch statistics and
        dropout are active, and the batch-norm running statistics are updated).

        Args:
            X: ``(m, n_0)`` host or device array.
            y: labels ``(m,)`` for softmax, 0/1 targets ``(m,)`` or ``(m, k)`` for sigmoid,
                targets ``(m, k)`` for identity.
            dropout_masks: optional list of 0/1 arrays ``(m, n)``, one per dropout layer in
                order, used instead of random masks (gradient checks, cross-device parity).

        Returns:
            ``(loss, grads)``: ``loss`` a Python float, ``grads`` ``[(dW, db), ...]`` of the
            Linear layers (:attr:`grads`). They are views into the net's gradient buffer and are
            overwritten by the next call; copy them to keep them. Every gradient, batch-norm
            included, is in :meth:`gradients` / ``flat.grads``.
        """
        with self.device.activate():
            Xd = self.check_X(X)
            yd = self.check_y(y, Xd.shape[0])
            loss = self.forward_backward(Xd, yd, dropout_masks)
            return float(loss), self.grads

    # ------------------------------------------------------------------ inference
    def forward(self, X):
        """Network output for ``X`` (m, n_0) in inference mode: probabilities for softmax and
        sigmoid heads, the raw values for identity. Shape ``(m, k)``, on the net's device.

        Args:
            X: ``(m, n_0)`` host or device array (sent to the net's device and dtype).

        Returns:
            ``(m, k)`` array on the net's device (``net.device.to_numpy`` brings it to the host).

        Raises:
            ValueError: ``X`` is not 2-D, has the wrong number of features, or holds NaN or
                infinity.
        """
        with self.device.activate():
            return self.head.activate(self.logits(self.check_X(X)))

    def layer_outputs(self, X):
        """Every layer's inference output, one array per layer in order (as forward hooks on
        each module of a ``torch.nn.Sequential`` would see them); the last is the logits."""
        keep = []
        with self.device.activate():
            A = self.check_X(X)
            for layer in self.layers:
                A = layer.forward(A, False)
                keep.append(A.copy())
        return keep

    def predict_proba(self, X):
        """Class probabilities ``(m, k)``; only for softmax and sigmoid heads.

        Args:
            X: ``(m, n_0)`` host or device array.

        Returns:
            ``(m, k)`` probabilities on the net's device (softmax rows sum to 1).

        Raises:
            ValueError: the head is the identity (a regression), or ``X`` is malformed.
        """
        if not self.head.is_classifier:
            raise ValueError("predict_proba needs a softmax or sigmoid output; use predict().")
        return self.forward(X)

    def predict(self, X):
        """Predictions in inference mode.

        Args:
            X: ``(m, n_0)`` host or device array.

        Returns:
            On the net's device: class indices ``(m,)`` for softmax, 0/1 ``(m, k)`` for
            sigmoid, values ``(m, k)`` for identity.
        """
        with self.device.activate():
            return self.head.predict(self.logits(self.check_X(X)))

    def evaluate_device(self, X, y, batch_size=10000, predictions=False):
        """Inference-mode metrics of checked device arrays, in chunks of ``batch_size`` rows
        (bounded memory), with no host synchronisation: ``(loss_sum, correct)`` as 0-d device
        arrays (data loss summed over samples; correct is 0 without accuracy), plus the
        predictions when ``predictions`` is true. One forward pass serves all three."""
        batch_size = _positive_batch(batch_size)
        xp = self.xp
        loss_sum = xp.zeros((), dtype=xp.float64)
        correct = xp.zeros((), dtype=xp.int64)
        preds = []
        for start in range(0, X.shape[0], batch_size):
            Xc, yc = X[start:start + batch_size], y[start:start + batch_size]
            Z = self.logits(Xc)
            if self.head.is_classifier:
                correct += self.head.count_correct(Z, yc)
            if predictions:
                preds.append(self.head.predict(Z).copy())
            loss_sum += self.head.loss(Z, yc) * Xc.shape[0]
        if predictions:
            return loss_sum, correct, xp.concatenate(preds)
        return loss_sum, correct

    def evaluate(self, X, y, batch_size=10000):
        """``(loss, accuracy)`` on ``(X, y)`` in inference mode. The loss is the data loss
        without the L2 term; accuracy is None for an identity output.

        Args:
            X: ``(m, n_0)`` host or device array.
            y: targets, as for :meth:`loss_and_grads`.
            batch_size: rows evaluated at a time (bounds the memory used).

        Returns:
            ``(loss, accuracy)`` as Python floats (``accuracy`` None for an identity head).

        Raises:
            ValueError: ``X`` or ``y`` is malformed, or they have different lengths.
        """
        batch_size = _positive_batch(batch_size)
        with self.device.activate():
            Xd = self.check_X(X)
            yd = self.check_y(y, Xd.shape[0])
            loss_sum, correct = self.evaluate_device(Xd, yd, batch_size)
            m = Xd.shape[0]
            acc = float(correct) / m if self.head.is_classifier else None
            return float(loss_sum) / m, acc


def _activation(name):
    """The registered activation ``name``, in place when its class supports it (a user's
    registered class need not take ``inplace``)."""
    cls = ACTIVATIONS[name]
    takes_inplace = "inplace" in inspect.signature(cls).parameters
    return cls(inplace=True) if takes_inplace else cls()


class MLP(Sequential):
    """A fully connected network built from a list of layer sizes.

    Args:
        layer_sizes: the full list, input through output, e.g. ``[784, 256, 128, 64, 10]``.
        activation: hidden units, one of :data:`ACTIVATIONS`: ``relu`` | ``leaky_relu`` (slope
            0.01) | ``tanh`` | ``sigmoid`` | ``gelu`` (tanh form) | ``silu``.
        output: ``softmax`` (integer labels, cross-entropy) | ``sigmoid`` (0/1 targets, binary
            cross-entropy summed over outputs) | ``identity`` (real targets, half squared error).
        init: ``he`` | ``xavier`` | ``normal`` (N(0,1) x 0.01) | ``normal:S`` (N(0,1) x S, e.g.
            ``normal:0.1``). Biases start at zero.
        l2: L2 strength; the loss gains ``l2 / (2 m) * sum_l ||W_l||^2`` (biases not penalised).
        dtype: ``float32`` (default, fast) or ``float64`` (gradient checks).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` or a :class:`~xpnet.backend.Device`.
        seed: seeds the initial weights (drawn on the host, so equal on every device) and dropout.
        batch_norm: a BatchNorm1d after each hidden Linear.
        dropout: inverted-dropout rate after each hidden activation, in ``[0, 1)``.

    The layers, in PyTorch's order: for each hidden layer ``Linear -> [BatchNorm1d] ->
    activation -> [Dropout]``, then the output ``Linear``.
    """

    def __init__(self, layer_sizes, activation="relu", output="softmax", init="he", l2=0.0,
                 dtype="float32", device="auto", seed=None, batch_norm=False, dropout=0.0):
        try:
            sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else None
        except TypeError:  # a bare int such as MLP(784): not iterable
            sizes = None
        if sizes is None or len(sizes) < 2:
            raise ValueError(
                f"layer_sizes must list at least an input and an output size, e.g. [784, 10]; "
                f"got {layer_sizes!r}"
            )
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"layer_sizes entries must be positive integers; got {sizes!r}")
        self.layer_sizes = [int(n) for n in sizes]
        self.activation = _choice("activation", activation, tuple(ACTIVATIONS))
        self.output = _choice("output", output, tuple(HEADS))
        self.init = check_init(init)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a rate in [0, 1); got {dropout!r}")
        if not isinstance(batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm must be True or False; got {batch_norm!r}")
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        layers = []
        pairs = list(zip(self.layer_sizes[:-1], self.layer_sizes[1:]))
        for n_in, n_out in pairs[:-1]:
            layers.append(Linear(n_in, n_out, init=self.init))
            if self.batch_norm:
                layers.append(BatchNorm1d(n_out))
            layers.append(_activation(self.activation))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Linear(*pairs[-1], init=self.init))
        super().__init__(layers, head=self.output, l2=l2, dtype=dtype, device=device, seed=seed)

    def layer_outputs(self, X):
        """``[A_1, ..., A_{L-1}, Z_L]`` in inference mode: each hidden block's output (after its
        activation), then the logits. (:meth:`Sequential.layer_outputs` gives every layer's.)"""
        outputs = super().layer_outputs(X)
        ends = [i - 1 for i, layer in enumerate(self.layers) if isinstance(layer, Linear) and i]
        return [outputs[i] for i in ends] + [outputs[-1]]

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (used by checkpoints)."""
        return {
            "layer_sizes": self.layer_sizes,
            "activation": self.activation,
            "output": self.output,
            "init": self.init,
            "l2": self.l2,
            "dtype": self.dtype,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        extras = "".join(
            [", batch_norm=True" if self.batch_norm else "",
             f", dropout={self.dropout}" if self.dropout else "",
             f", l2={self.l2}" if self.l2 else ""]
        )
        return (
            f"MLP({self.layer_sizes}, activation={self.activation!r}, output={self.output!r}, "
            f"dtype={self.dtype!r}, device={self.device.name!r}{extras})"
        )


def _unpickle(cls, config, state, device, extra):
    """Rebuild a network pickled by :meth:`Sequential.__reduce__`."""
    import warnings  # noqa: PLC0415

    from .backend import DeviceUnavailableError  # noqa: PLC0415

    try:
        dev = get_device(device)
    except DeviceUnavailableError as exc:
        warnings.warn(f"{exc}; the unpickled network runs on the CPU instead.", stacklevel=2)
        dev = get_device("cpu")
    if issubclass(cls, MLP):
        net = cls(**config, device=dev)
    else:
        net = cls.from_config(config, device=dev)
    net.load_state_dict(state)
    net.__dict__.update(extra)
    return net
