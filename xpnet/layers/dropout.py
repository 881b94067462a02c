"""Inverted dropout, as ``torch.nn.Dropout``."""

from __future__ import annotations

import numbers

from .base import Layer

__all__ = ["Dropout"]


class Dropout(Layer):
    """Training: ``y = x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)`` per entry;
    inference: ``y = x``. Backward: ``dx = dy * mask / (1 - p)``.

    The mask stream comes from :attr:`rng`, a device generator the owning network shares among
    its dropout layers and reseeds each epoch (so a resumed run draws the same masks). For
    gradient checks and cross-device parity, :attr:`next_mask` (a 0/1 array of ``x``'s shape)
    replaces the random mask of the next training forward.

    **Data parallelism** (:mod:`xpnet.distributed`): while a step runs over several processes,
    :attr:`sync` has ``rows`` (the global batch's size) and ``offset`` (where this process's
    rows start in it): every process draws the mask of the whole global batch from the same
    stream, as one process would, and keeps its own rows of it.
    """

    random = True
    global_batch = True

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"dropout must be a rate in [0, 1); got {p!r}")
        self.p = float(p)
        self.next_mask = None
        self._mask = None

    def config(self):
        return {"p": self.p}

    def forward(self, x, training=False):
        if not training or self.p == 0:
            self._mask = None
            return x
        if self.next_mask is not None:
            mask, self.next_mask = self.next_mask, None
            if tuple(mask.shape) != tuple(x.shape):
                raise ValueError(f"a dropout mask has shape {tuple(mask.shape)} but the layer's "
                                 f"input has shape {tuple(x.shape)}; they must be equal.")
        else:
            if self.rng is None:
                self.rng = self.xp.random.default_rng()
            rows, offset = (x.shape[0], 0) if self.sync is None else \
                (self.sync.rows, self.sync.offset)
            draw = self.work("draw", (rows, x.shape[1]))
            self.rng.random(draw.shape, dtype=self.dtype, out=draw)
            mask = self.xp.greater_equal(draw[offset:offset + x.shape[0]], self.p,
                                         out=self.work("mask", x.shape, bool))
        self._mask = mask
        y = self.xp.multiply(x, mask, out=self.work("y", x.shape))
        y *= 1.0 / (1.0 - self.p)
        return y

    def backward(self, dy):
        if self._mask is None:
            return dy
        dy *= self._mask
        dy *= 1.0 / (1.0 - self.p)
        return dy
