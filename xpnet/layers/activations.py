"""Elementwise activations, one class each, forward and backward side by side.

Each keeps what its derivative needs: its output ``a`` (ReLU, LeakyReLU, Tanh, Sigmoid) or its
input ``z`` together with an intermediate (GELU, SiLU). With ``inplace=True`` (the way
:class:`~xpnet.network.MLP` builds them, after a layer whose output nobody else reads) the
output overwrites the input, as in ``torch.nn.ReLU(inplace=True)``. That is safe only after a
layer whose output is a buffer it will not read again (``output_reusable``: Linear,
BatchNorm1d), so a :class:`~xpnet.network.Sequential` turns it off everywhere else, including
on its first layer, whose input is the caller's data. GELU and SiLU need their input in
backward, so they always write a new buffer. ``backward`` overwrites ``dy`` with
``dz = dy * g'(z)`` and returns it.

    ReLU       g(z) = max(z, 0)                         g'(z) = [a > 0]
    LeakyReLU  g(z) = z if z > 0 else s z  (s = 0.01)   g'(z) = 1 if a > 0 else s
    Tanh       g(z) = tanh(z)                           g'(z) = 1 - a^2
    Sigmoid    g(z) = 1 / (1 + exp(-z))                 g'(z) = a (1 - a)
    GELU       g(z) = z/2 (1 + t),  t = tanh(u),  u = c (z + 0.044715 z^3),  c = sqrt(2/pi)
               g'(z) = (1 + t)/2 + z/2 (1 - t^2) c (1 + 3 * 0.044715 z^2)   (torch's "tanh" form)
    SiLU       g(z) = z s,  s = sigmoid(z)              g'(z) = s (1 + z (1 - s))

Registering a new activation is one class here plus one line in :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import math

from .base import Layer

__all__ = ["ACTIVATIONS", "GELU", "LeakyReLU", "ReLU", "SiLU", "Sigmoid", "Tanh", "sigmoid"]


def sigmoid(xp, z, out=None):
    """Numerically stable logistic function: ``0.5 * (1 + tanh(z / 2))`` never overflows."""
    out = xp.multiply(z, 0.5, out=out)
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


class _Activation(Layer):
    """Shared plumbing: where the output goes (in place or a buffer) and the saved tensor."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)
        self._saved = None

    def config(self):
        return {"inplace": self.inplace} if self.inplace else {}

    def _out(self, x, training):
        return x if self.inplace else self.output("y", x.shape, training)


class ReLU(_Activation):
    def forward(self, x, training=False):
        a = self.xp.maximum(x, 0, out=self._out(x, training))
        self._saved = a if training else None
        return a

    def backward(self, dy):
        dy *= self.xp.greater(self._saved, 0, out=self.work("mask", dy.shape, bool))
        return dy


class LeakyReLU(_Activation):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace)
        self.negative_slope = float(negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope, **super().config()}

    def forward(self, x, training=False):
        # max(z, s z) equals leaky ReLU for a slope below 1 and needs no mask.
        scaled = self.xp.multiply(x, self.negative_slope, out=self.output("s", x.shape, training))
        a = self.xp.maximum(x, scaled, out=self._out(x, training))
        self._saved = a if training else None
        return a

    def backward(self, dy):
        xp = self.xp
        slope = self.work("slope", dy.shape)
        slope.fill(self.negative_slope)
        xp.copyto(slope, 1, where=xp.greater(self._saved, 0, out=self.work("mask", dy.shape,
                                                                             bool)))
        dy *= slope
        return dy


class Tanh(_Activation):
    def forward(self, x, training=False):
        a = self.xp.tanh(x, out=self._out(x, training))
        self._saved = a if training else None
        return a

    def backward(self, dy):
        a = self._saved
        deriv = self.xp.multiply(a, a, out=self.work("deriv", dy.shape))
        self.xp.subtract(1, deriv, out=deriv)
        dy *= deriv
        return dy


class Sigmoid(_Activation):
    def forward(self, x, training=False):
        a = sigmoid(self.xp, x, out=self._out(x, training))
        self._saved = a if training else None
        return a

    def backward(self, dy):
        a = self._saved
        deriv = self.xp.subtract(1, a, out=self.work("deriv", dy.shape))
        deriv *= a
        dy *= deriv
        return dy


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


class GELU(_Activation):
    """GELU in its tanh form, as ``torch.nn.GELU(approximate="tanh")``."""

    def config(self):
        return {}

    def forward(self, x, training=False):
        xp = self.xp
        t = self.output("t", x.shape, training)
        xp.multiply(x, x, out=t)
        t *= _GELU_K
        t += 1
        t *= x
        t *= _GELU_C
        xp.tanh(t, out=t)  # t = tanh(c (x + k x^3))
        y = xp.add(t, 1, out=self.output("y", x.shape, training))
        y *= x
        y *= 0.5
        self._saved = (x, t) if training else None
        return y

    def backward(self, dy):
        xp = self.xp
        x, t = self._saved
        deriv = xp.multiply(t, t, out=self.work("deriv", dy.shape))
        xp.subtract(1, deriv, out=deriv)  # 1 - t^2
        tmp = xp.multiply(x, x, out=self.work("tmp", dy.shape))
        tmp *= 3 * _GELU_K
        tmp += 1
        tmp *= x
        tmp *= 0.5 * _GELU_C  # x/2 c (1 + 3k x^2)
        deriv *= tmp
        t += 1
        t *= 0.5  # (1 + t)/2; t is not needed again
        deriv += t
        dy *= deriv
        return dy


class SiLU(_Activation):
    """SiLU (swish): ``z * sigmoid(z)``, as ``torch.nn.SiLU``."""

    def config(self):
        return {}

    def forward(self, x, training=False):
        s = sigmoid(self.xp, x, out=self.output("s", x.shape, training))
        y = self.xp.multiply(x, s, out=self.output("y", x.shape, training))
        self._saved = (x, s) if training else None
        return y

    def backward(self, dy):
        x, s = self._saved
        deriv = self.xp.subtract(1, s, out=self.work("deriv", dy.shape))
        deriv *= x
        deriv += 1
        deriv *= s
        dy *= deriv
        return dy


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "silu": SiLU,
}
