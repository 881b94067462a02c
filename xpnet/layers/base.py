"""The layer contract: forward and backward side by side, named parameters, reusable buffers.

A layer maps ``x`` of shape ``(m, n_in)`` (samples first) to ``y`` of shape ``(m, n_out)``:

    y  = layer.forward(x, training)       # training=True keeps what backward needs
    dx = layer.backward(dy)               # dL/dx from dL/dy; fills layer.grads

``backward`` follows the last ``forward(x, training=True)`` and may overwrite ``dy`` (the
network hands each layer a gradient buffer nobody else reads). Parameters are declared by
:meth:`Layer.parameter_shapes` and allocated by the network that owns the layer, as views into
its one flat buffer (:class:`~xpnet.parameters.FlatParameters`); a layer used on its own
allocates them itself through :meth:`Layer.build`. Their gradients are views into the flat
gradient buffer, and ``backward`` *writes* them (it never accumulates), as one batch's gradient.

Work buffers (outputs, masks, saved values) come from :meth:`Layer.work`, which allocates once
per name and shape, so a training step with a batch size seen before allocates nothing.
Inference (``training=False``) allocates its outputs fresh, so a model that only predicts keeps
no batch-sized memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Layer"]

_MAX_WORK_BUFFERS = 24  # per layer: a few names x (train batch, last partial batch, ...)


class Layer:
    """Base class of every layer; subclasses write :meth:`forward` and :meth:`backward`.

    Class attribute ``min_train_batch``: the fewest samples a training batch may have (2 for
    batch norm, whose statistics over one sample are degenerate); the trainer reads it.

    Class attribute ``random``: True for a layer that draws random numbers in training (a
    dropout): the owning network gives it :attr:`rng`, a device generator shared by its random
    layers and reseeded each epoch by the trainer, so a resumed run draws the same numbers.

    Class attribute ``global_batch``: True for a layer whose training forward reads the whole
    batch (statistics over its rows, or a random mask drawn over them): in a data-parallel step
    (:mod:`xpnet.distributed`) it is given :attr:`sync` (the global batch's ``rows``, this
    process's ``offset`` in it, and ``sum(a, what)`` over the processes); otherwise ``sync`` is
    None.

    Class attribute ``output_reusable``: True when the array ``forward`` returns is a buffer of
    the layer's own that ``backward`` does not read, so the next layer may overwrite it (an
    in-place activation). False, the safe default, for layers that keep their output or may
    return their input unchanged.

    Attributes:
        params: ``{name: array}``, e.g. ``{"weight": W, "bias": b}``; empty for activations.
        grads: ``{name: array}``, the same names and shapes, written by :meth:`backward`.
        buffers: ``{name: array}`` of non-trainable state (batch-norm running statistics).
        xp: the array module (``numpy`` or ``cupy``) the layer computes with.
        dtype: the floating dtype of its parameters and outputs.
        needs_input_grad: when False, :meth:`backward` may skip ``dx`` and return None (the
            network sets it on its first layer, whose input is the data).
    """

    output_reusable = False
    min_train_batch = 1
    random = False
    global_batch = False

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.xp = np
        self.dtype = np.dtype("float32")
        self.needs_input_grad = True
        self.rng = None
        self.sync = None
        self._work: dict = {}

    # ------------------------------------------------------------------ declaration
    def parameter_shapes(self) -> dict:
        """``{name: shape}`` of the trainable parameters, in state-dict order."""
        return {}

    def no_decay(self) -> tuple:
        """Parameter names that optional weight decay should leave alone (biases, norms)."""
        return ()

    def initial_parameters(self, rng) -> dict:
        """``{name: host float64 array}`` of starting values, drawn from the host ``rng`` (so
        the same seed gives the same weights on every device). Default: zeros."""
        return {name: np.zeros(shape) for name, shape in self.parameter_shapes().items()}

    def initial_buffers(self) -> dict:
        """``{name: host array}`` of starting non-trainable state."""
        return {}

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (``type(self)(**config)`` rebuilds)."""
        return {}

    # ------------------------------------------------------------------ allocation
    def bind(self, params, grads, xp, dtype) -> None:
        """Adopt parameter and gradient arrays (views owned by a network) and the array module;
        allocate the buffers."""
        self.params, self.grads = params, grads
        self.xp, self.dtype = xp, np.dtype(dtype)
        self.buffers = {name: xp.asarray(a, dtype=self.dtype)
                        for name, a in self.initial_buffers().items()}
        self._work = {}

    def build(self, device="cpu", dtype="float32", seed=None):
        """Allocate this layer's own parameters on ``device`` (for a layer used on its own, e.g.
        in a gradient check); returns ``self``."""
        from ..backend import get_device  # noqa: PLC0415  (layers need no device otherwise)
        from ..parameters import FlatParameters  # noqa: PLC0415

        device = get_device(device)
        with device.activate():
            flat = FlatParameters(self.parameter_shapes(), device.xp, dtype, self.no_decay())
            rng = np.random.default_rng(seed)
            for name, value in self.initial_parameters(rng).items():
                flat.params[name][...] = device.send(value, dtype)
            self.bind(flat.params, flat.grads, device.xp, dtype)
        self.flat = flat
        return self

    def work(self, name, shape, dtype=None):
        """A buffer for ``name`` of ``shape``, allocated on first use and reused after."""
        key = (name, shape, dtype)
        buf = self._work.get(key)
        if buf is None:
            if len(self._work) >= _MAX_WORK_BUFFERS:  # batch sizes come and go: drop the oldest
                self._work.pop(next(iter(self._work)))
            buf = self.xp.empty(shape, dtype=self.dtype if dtype is None else dtype)
            self._work[key] = buf
        return buf

    def output(self, name, shape, training):
        """Where ``forward`` writes: a reused work buffer in training, fresh in inference."""
        if training:
            return self.work(name, shape)
        return self.xp.empty(shape, dtype=self.dtype)

    # ------------------------------------------------------------------ computation
    def output_features(self, n_in: int) -> int:
        """Width of the output for an input of width ``n_in`` (most layers keep it)."""
        return n_in

    def input_features(self) -> int | None:
        """The input width this layer needs, or None when it takes any (activations)."""
        return None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
