"""Output heads: everything that depends on the kind of output, computed from the logits.

A head turns the last layer's logits ``Z`` (m, k) into the loss and its gradient, the output
activation, predictions, the correct-count metric, and it validates targets. Nothing else in
xpnet branches on the kind of output. Losses are means over the ``m`` samples; each is written
in a form that stays finite for logits of any finite size:

    SoftmaxCrossEntropy  L = mean_i [ logsumexp(z_i) - z_{i, y_i} ]          y: labels (m,)
                         dZ = (softmax(Z) - onehot(y)) / m      (no one-hot matrix is built)
    SigmoidBCE           L = sum_{i,j} [ max(z,0) - z y + log(1 + exp(-|z|)) ] / m
                         dZ = (sigmoid(Z) - Y) / m                             Y: 0/1 (m, k)
    SquaredError         L = 0.5 * sum (Z - Y)^2 / m,  dZ = (Z - Y) / m      Y: reals (m, k)

``loss`` values are 0-d device arrays, so no host synchronisation happens here. ``loss_and_grad``
writes ``dZ`` into ``out``, which may be ``Z`` itself. Adding a head is one class here plus one
line in :data:`HEADS`.
"""

from __future__ import annotations

import numpy as np

from .layers.activations import sigmoid

__all__ = ["HEADS", "Head", "SigmoidBCE", "SoftmaxCrossEntropy", "SquaredError", "softmax"]


def softmax(xp, Z, out=None):
    """Row-wise softmax of ``Z`` (m, k), shifted by the row max so exp never overflows."""
    out = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _target_count_error(name, shape, m):
    n = shape[0] if len(shape) else 0
    return ValueError(f"{name} has {n} entries but X has {m} samples; they must match.")


class Head:
    """Base class. ``name`` is the registry key (the ``output=`` of :class:`~xpnet.MLP`)."""

    name = ""
    is_classifier = True  # has accuracy and predict_proba

    def __init__(self):
        self.xp = np

    def check_targets(self, y, m, k, device, dtype, name="y"):
        """Validate ``y`` for ``m`` samples and ``k`` outputs; return it on ``device``."""
        raise NotImplementedError

    def loss_and_grad(self, Z, y, out=None):
        """``(loss, dZ)``: the mean loss (0-d device array) and its gradient w.r.t. ``Z``."""
        raise NotImplementedError

    def loss(self, Z, y):
        """The mean loss only; may overwrite ``Z``."""
        return self.loss_and_grad(Z, y, out=Z)[0]

    def activate(self, Z):
        """The network's output from the logits (probabilities for classifiers); in place."""
        return Z

    def predict(self, Z):
        """Predictions from the logits."""
        return Z

    def count_correct(self, Z, y):
        """Correctly predicted samples (0-d device array), or None without accuracy."""
        return None

    def _real_targets(self, y, m, k, device, dtype, name):
        shape = tuple(getattr(y, "shape", ()))
        want = (m, k)
        if shape not in (want, (m,) if k == 1 else want):
            raise ValueError(
                f"{name} must have shape {want}{' or (m,)' if k == 1 else ''} for a "
                f"{self.name} output with {k} units; got {shape}."
            )
        if np.dtype(y.dtype).kind not in "biuf":
            raise ValueError(f"{name} must hold numbers for a {self.name} output; got dtype "
                             f"{y.dtype}.")
        yd = device.send(y).astype(dtype, copy=False).reshape(want)
        if not bool(device.xp.isfinite(yd).all()):
            raise ValueError(f"{name} contains NaN or infinity.")
        return yd


class SoftmaxCrossEntropy(Head):
    name = "softmax"

    def check_targets(self, y, m, k, device, dtype, name="y"):
        shape = y.shape
        if len(shape) == 0 or shape[0] != m:
            raise _target_count_error(name, shape, m)
        if len(shape) != 1:
            raise ValueError(
                f"{name} must be integer class labels of shape (m,) for a softmax output; "
                f"got shape {tuple(shape)}. For one-hot targets use y.argmax(axis=1)."
            )
        xp = device.xp
        yd = device.send(y)
        if yd.dtype.kind == "f":
            if not bool(xp.all(xp.isfinite(yd) & (yd == xp.floor(yd)))):
                raise ValueError(
                    f"{name} must hold integer class labels; got fractions, NaN or infinity."
                )
        elif yd.dtype.kind not in "iu":
            text = " (text labels: xpnet.Model.fit(X, y) encodes them and gives them back)" \
                if yd.dtype.kind in "USO" else ""
            raise ValueError(f"{name} must hold integer class labels 0..k-1; got dtype "
                             f"{yd.dtype}{text}.")
        lo, hi = (int(v) for v in (yd.min(), yd.max()))
        if lo < 0 or hi >= k:
            raise ValueError(
                f"{name} has labels in [{lo}, {hi}] but the output layer has {k} classes, "
                f"so labels must be in [0, {k - 1}]."
            )
        return yd.astype(xp.int64, copy=False)

    def loss_and_grad(self, Z, y, out=None):
        # The label positions are a 0/1 mask (m, k) compared from y, not fancy indexing: on a
        # GPU, gathering and scattering at (i, y_i) costs several kernels each, the mask one
        # elementwise pass. picked_i = sum_j mask_ij shifted_ij is exact (one nonzero term).
        xp = self.xp
        m, k = Z.shape
        onehot = xp.equal(xp.arange(k), y[:, None])
        shifted = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
        picked = (shifted * onehot).sum(axis=1)  # z_{i,y_i} - max_i, before exp overwrites it
        xp.exp(shifted, out=shifted)
        sums = shifted.sum(axis=1, keepdims=True)
        loss = (xp.log(sums[:, 0]) - picked).mean()
        shifted /= sums
        shifted -= onehot
        shifted /= m
        return loss, shifted

    def activate(self, Z):
        return softmax(self.xp, Z, out=Z)

    def predict(self, Z):
        return Z.argmax(axis=1)

    def count_correct(self, Z, y):
        return (Z.argmax(axis=1) == y).sum()


class SigmoidBCE(Head):
    name = "sigmoid"

    def check_targets(self, y, m, k, device, dtype, name="y"):
        shape = y.shape
        if len(shape) == 0 or shape[0] != m:
            raise _target_count_error(name, shape, m)
        yd = self._real_targets(y, m, k, device, dtype, name)
        if not bool(((yd == 0) | (yd == 1)).all()):
            raise ValueError(f"{name} must hold 0/1 targets for a sigmoid output.")
        return yd

    def loss_and_grad(self, Z, Y, out=None):
        xp = self.xp
        m = Z.shape[0]
        Y = Y.reshape(Z.shape)
        loss = (xp.maximum(Z, 0) - Z * Y + xp.log1p(xp.exp(-xp.abs(Z)))).sum() / m
        dZ = sigmoid(xp, Z, out=out)
        dZ -= Y
        dZ /= m
        return loss, dZ

    def activate(self, Z):
        return sigmoid(self.xp, Z, out=Z)

    def predict(self, Z):
        return (Z > 0).astype(self.xp.int64)

    def count_correct(self, Z, y):
        # A sample counts when all its outputs are right, as scikit-learn scores multi-label.
        return ((Z > 0) == (y > 0.5)).all(axis=1).sum()


class SquaredError(Head):
    name = "identity"
    is_classifier = False

    def check_targets(self, y, m, k, device, dtype, name="y"):
        shape = y.shape
        if len(shape) == 0 or shape[0] != m:
            raise _target_count_error(name, shape, m)
        return self._real_targets(y, m, k, device, dtype, name)

    def loss_and_grad(self, Z, Y, out=None):
        m = Z.shape[0]
        dZ = self.xp.subtract(Z, Y.reshape(Z.shape), out=out)
        loss = 0.5 * (dZ * dZ).sum() / m
        dZ /= m
        return loss, dZ


HEADS = {
    "softmax": SoftmaxCrossEntropy,
    "sigmoid": SigmoidBCE,
    "identity": SquaredError,
}
