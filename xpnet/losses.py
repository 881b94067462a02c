"""Output layers and their losses, computed from the logits ``Z`` (shape ``(m, k)``).

Each ``*_loss(xp, Z, y, out)`` returns ``(loss, dZ)`` where ``loss`` is a 0-d device array (so
no host sync happens here) and ``dZ = d loss / d Z`` is written into ``out`` (may alias ``Z``):

    softmax + cross-entropy:  L = mean_i [ logsumexp(z_i) - z_{i, y_i} ]
                              dZ = (softmax(Z) - onehot(y)) / m        (no one-hot is built)
    sigmoid + binary CE:      L = sum_{i,j} [ max(z,0) - z y + log(1 + exp(-|z|)) ] / m
                              dZ = (sigmoid(Z) - Y) / m
    identity + squared error: L = 0.5 * sum (Z - Y)^2 / m
                              dZ = (Z - Y) / m

Both cross-entropies are written in their log-sum-exp forms, so logits of any finite size give
finite losses and gradients.
"""

from __future__ import annotations

from .activations import sigmoid


def softmax(xp, Z, out=None):
    """Row-wise softmax of ``Z`` (m, k), shifted by the row max so exp never overflows."""
    out = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def softmax_cross_entropy(xp, Z, y, out=None):
    m = Z.shape[0]
    rows = xp.arange(m)
    shifted = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    picked = shifted[rows, y]  # z_{i,y_i} - max_i, gathered before exp overwrites it
    xp.exp(shifted, out=shifted)
    sums = shifted.sum(axis=1)
    loss = (xp.log(sums) - picked).mean()
    shifted /= sums[:, None]
    shifted[rows, y] -= 1
    shifted /= m
    return loss, shifted


def sigmoid_cross_entropy(xp, Z, Y, out=None):
    m = Z.shape[0]
    Y = Y.reshape(Z.shape)
    loss = (xp.maximum(Z, 0) - Z * Y + xp.log1p(xp.exp(-xp.abs(Z)))).sum() / m
    dZ = sigmoid(xp, Z, out=out)
    dZ -= Y
    dZ /= m
    return loss, dZ


def squared_error(xp, Z, Y, out=None):
    m = Z.shape[0]
    dZ = xp.subtract(Z, Y.reshape(Z.shape), out=out)
    loss = 0.5 * (dZ * dZ).sum() / m
    dZ /= m
    return loss, dZ


LOSSES = {
    "softmax": softmax_cross_entropy,
    "sigmoid": sigmoid_cross_entropy,
    "identity": squared_error,
}
