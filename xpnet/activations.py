"""Hidden-layer activations, forward and derivative side by side.

Each forward works in place on ``Z`` (shape ``(m, n)``) and returns it as ``A = g(Z)``. Each
derivative is written in terms of the *output* ``A`` so that ``Z`` need not be kept:

    relu:        g(z) = max(z, 0)                  g'(z) = [a > 0]
    leaky_relu:  g(z) = z if z > 0 else 0.01 z     g'(z) = 1 if a > 0 else 0.01
    tanh:        g(z) = tanh(z)                    g'(z) = 1 - a^2
    sigmoid:     g(z) = 1 / (1 + exp(-z))          g'(z) = a (1 - a)

``backward(xp, A, dA)`` overwrites ``dA`` with ``dZ = dA * g'(z)`` and returns it.
"""

from __future__ import annotations

LEAKY_SLOPE = 0.01


def _relu(xp, Z):
    return xp.maximum(Z, 0, out=Z)


def _relu_back(xp, A, dA):
    dA *= A > 0
    return dA


def _leaky_relu(xp, Z):
    # max(z, 0.01 z) equals leaky ReLU for a slope below 1, and needs no mask array.
    return xp.maximum(Z, Z * LEAKY_SLOPE, out=Z)


def _leaky_relu_back(xp, A, dA):
    dA *= xp.where(A > 0, 1.0, LEAKY_SLOPE).astype(dA.dtype, copy=False)
    return dA


def _tanh(xp, Z):
    return xp.tanh(Z, out=Z)


def _tanh_back(xp, A, dA):
    dA *= 1 - A * A
    return dA


def sigmoid(xp, Z, out=None):
    """Numerically stable logistic function: 0.5 * (1 + tanh(z / 2)) never overflows."""
    out = xp.multiply(Z, 0.5, out=out)
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _sigmoid(xp, Z):
    return sigmoid(xp, Z, out=Z)


def _sigmoid_back(xp, A, dA):
    dA *= A * (1 - A)
    return dA


ACTIVATIONS = {
    "relu": (_relu, _relu_back),
    "leaky_relu": (_leaky_relu, _leaky_relu_back),
    "tanh": (_tanh, _tanh_back),
    "sigmoid": (_sigmoid, _sigmoid_back),
}
