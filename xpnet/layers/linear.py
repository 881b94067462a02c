"""The fully connected layer, as ``torch.nn.Linear`` (always with a bias)."""

from __future__ import annotations

import numbers

import numpy as np

from ..initializers import INITIALIZERS
from .base import Layer

__all__ = ["Linear"]


class Linear(Layer):
    """``y = x W^T + b``.

    Shapes: ``x`` (m, n_in), ``W`` (n_out, n_in), ``b`` (n_out,), ``y`` (m, n_out).

    Backward, from ``dy`` (m, n_out):

        dW = dy^T x       (n_out, n_in)
        db = sum_i dy_i   (n_out,)
        dx = dy W         (m, n_in)     skipped when ``needs_input_grad`` is False

    Args:
        in_features, out_features: ``n_in`` and ``n_out``.
        init: how ``W`` is drawn (``he`` | ``xavier`` | ``normal``, see
            :mod:`xpnet.initializers`); ``b`` starts at zero.
    """

    output_reusable = True  # a fresh buffer; backward reads the input (and xhat), not it

    def __init__(self, in_features, out_features, init="he"):
        super().__init__()
        if init not in INITIALIZERS:
            raise ValueError(f"unknown init {init!r}: choose one of "
                             f"{', '.join(map(repr, INITIALIZERS))}")
        for label, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"{label} must be a whole number >= 1; got {n!r}")
        self.in_features, self.out_features, self.init = int(in_features), int(out_features), init
        self._x = None

    def parameter_shapes(self):
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def no_decay(self):
        return ("bias",)

    def initial_parameters(self, rng):
        W = INITIALIZERS[self.init](rng, self.out_features, self.in_features)
        return {"weight": W, "bias": np.zeros(self.out_features)}

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init}

    def output_features(self, n_in):
        return self.out_features

    def forward(self, x, training=False):
        y = self.output("y", (x.shape[0], self.out_features), training)
        self.xp.matmul(x, self.params["weight"].T, out=y)
        y += self.params["bias"]
        if training:
            self._x = x  # the input buffer is left alone by the layers after this one
        return y

    def backward(self, dy):
        xp, x = self.xp, self._x
        xp.matmul(dy.T, x, out=self.grads["weight"])
        dy.sum(axis=0, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        return xp.matmul(dy, self.params["weight"], out=self.work("dx", x.shape))
