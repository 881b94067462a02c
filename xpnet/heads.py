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
    PoissonLog           L = sum_{i,j} [ y log y - y z + exp(z) - y ] / m  (half Poisson deviance,
                         log link: the prediction is exp(z)),  dZ = (exp(Z) - Y) / m   Y: >= 0

Sample weights. Every ``loss_and_grad`` takes an optional ``sample_weight`` ``w`` of shape
``(m,)`` (a device array, or None). With it the mean over samples becomes the weighted mean,
scikit-learn's definition (``np.average(..., weights=w)`` in its MLP):

    L = sum_i w_i l_i / sum_i w_i,        dZ_i = w_i * (dl_i / dz_i) / sum_i w_i

so weights of all ones give the unweighted loss, scaling every weight by ``c > 0`` changes
nothing, a weight of 0 removes a sample and an integer weight ``n`` counts it ``n`` times. The
caller keeps ``sum_i w_i > 0`` (a batch whose weights are all zero has no mean: NaN).

``loss`` values are 0-d device arrays, so no host synchronisation happens here. ``loss_and_grad``
writes ``dZ`` into ``out``, which may be ``Z`` itself. Adding a head is one class here plus one
line in :data:`HEADS`.
"""

from __future__ import annotations

import numpy as np

from .layers.activations import sigmoid

__all__ = ["HEADS", "Head", "PoissonLog", "SigmoidBCE", "SoftmaxCrossEntropy", "SquaredError",
           "log_softmax", "softmax"]


def softmax(xp, Z, out=None):
    """Row-wise softmax of ``Z`` (m, k), shifted by the row max so exp never overflows."""
    out = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def log_softmax(xp, Z, out=None):
    """Row-wise ``log(softmax(Z))`` of ``Z`` (m, k): ``z - max - log(sum(exp(z - max)))``,
    finite wherever ``Z`` is (softmax itself underflows to 0 in float32 for gaps past ~104)."""
    out = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    out -= xp.log(xp.exp(out).sum(axis=1, keepdims=True))
    return out


def _weighted_mean(xp, per_sample, dZ, sample_weight):
    """The mean of ``per_sample`` (m,) and ``dZ`` (m, k) scaled to match: ``(sum l / m,
    dZ / m)`` without weights, ``(sum w l / sum w, dZ * w / sum w)`` with them; ``dZ`` holds
    the unscaled per-sample gradient on entry and is scaled in place."""
    if sample_weight is None:
        m = per_sample.shape[0]
        dZ /= m
        return per_sample.sum() / m
    w = sample_weight.astype(dZ.dtype, copy=False)
    total = w.sum()
    dZ *= (w / total)[:, None]
    return (w * per_sample).sum() / total


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

    def loss_and_grad(self, Z, y, out=None, sample_weight=None):
        """``(loss, dZ)``: the mean loss (0-d device array) and its gradient w.r.t. ``Z``.

        Args:
            Z: logits ``(m, k)``.
            y: targets as :meth:`check_targets` returns them.
            out: where to write ``dZ`` ``(m, k)``; may be ``Z`` itself.
            sample_weight: ``(m,)`` non-negative weights, or None: the weighted mean
                ``sum w_i l_i / sum w_i`` instead of the mean (see the module docstring).
        """
        raise NotImplementedError

    def loss(self, Z, y, sample_weight=None):
        """The mean (or weighted mean) loss only; may overwrite ``Z``."""
        return self.loss_and_grad(Z, y, out=Z, sample_weight=sample_weight)[0]

    def log_activate(self, Z):
        """``log`` of :meth:`activate`, computed from the logits so it stays finite where the
        probabilities underflow; in place."""
        return self.xp.log(self.activate(Z), out=Z)

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

    def loss_and_grad(self, Z, y, out=None, sample_weight=None):
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
        shifted /= sums
        shifted -= onehot
        if sample_weight is None:  # the unweighted path, unchanged: mean, then dZ / m
            loss = (xp.log(sums[:, 0]) - picked).mean()
            shifted /= m
            return loss, shifted
        return _weighted_mean(xp, xp.log(sums[:, 0]) - picked, shifted, sample_weight), shifted

    def activate(self, Z):
        return softmax(self.xp, Z, out=Z)

    def log_activate(self, Z):
        return log_softmax(self.xp, Z, out=Z)

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

    def loss_and_grad(self, Z, Y, out=None, sample_weight=None):
        xp = self.xp
        m = Z.shape[0]
        Y = Y.reshape(Z.shape)
        terms = xp.maximum(Z, 0) - Z * Y + xp.log1p(xp.exp(-xp.abs(Z)))
        dZ = sigmoid(xp, Z, out=out)
        dZ -= Y
        if sample_weight is None:
            dZ /= m
            return terms.sum() / m, dZ
        return _weighted_mean(xp, terms.sum(axis=1), dZ, sample_weight), dZ

    def activate(self, Z):
        # Probabilities with full relative precision in both tails: exp(-|z|) / (1 + exp(-|z|))
        # for z < 0 (the training path's 0.5 (1 + tanh(z / 2)) rounds every z below about -37
        # to exactly 0 in float64, so log(p) would be -inf where expit gives 1e-17).
        xp = self.xp
        e = xp.exp(-xp.abs(Z))
        neg = Z < 0
        xp.add(e, 1.0, out=Z)
        xp.divide(xp.where(neg, e, 1.0), Z, out=Z)
        return Z

    def log_activate(self, Z):
        # log sigmoid(z) = -log(1 + exp(-z)) = -logaddexp(0, -z): finite for any finite z.
        xp = self.xp
        xp.negative(Z, out=Z)
        xp.logaddexp(Z, 0.0, out=Z)
        xp.negative(Z, out=Z)
        return Z

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

    def loss_and_grad(self, Z, Y, out=None, sample_weight=None):
        m = Z.shape[0]
        dZ = self.xp.subtract(Z, Y.reshape(Z.shape), out=out)
        if sample_weight is None:
            loss = 0.5 * (dZ * dZ).sum() / m
            dZ /= m
            return loss, dZ
        return _weighted_mean(self.xp, 0.5 * (dZ * dZ).sum(axis=1), dZ, sample_weight), dZ


class PoissonLog(SquaredError):
    """Poisson regression with the log link: the prediction is ``mu = exp(z)`` and the loss the
    half Poisson deviance ``y log(y / mu) - y + mu = y log y - y z + exp(z) - y`` (with
    ``0 log 0 = 0``), summed over outputs and averaged over samples, as scikit-learn's
    ``MLPRegressor(loss="poisson")`` defines it. Its gradient is ``exp(z) - y`` (the canonical
    link), computed from the logits, so no ``log`` of a prediction is ever taken. Targets are
    counts or rates: real numbers ``>= 0``."""

    name = "poisson"

    def check_targets(self, y, m, k, device, dtype, name="y"):
        yd = super().check_targets(y, m, k, device, dtype, name)
        if bool((yd < 0).any()):
            raise ValueError(f"{name} has negative values, which a Poisson output cannot "
                             f"predict; pass counts or rates >= 0.")
        return yd

    def loss_and_grad(self, Z, Y, out=None, sample_weight=None):
        xp = self.xp
        Y = Y.reshape(Z.shape)
        # y log y with 0 log 0 = 0: the log's argument is 1 where y is 0.
        terms = Y * (xp.log(xp.where(Y > 0, Y, 1)) - Z) - Y
        dZ = xp.exp(Z, out=out)
        terms += dZ
        dZ -= Y
        if sample_weight is None:
            m = Z.shape[0]
            dZ /= m
            return terms.sum() / m, dZ
        return _weighted_mean(xp, terms.sum(axis=1), dZ, sample_weight), dZ

    def activate(self, Z):
        return self.xp.exp(Z, out=Z)

    def predict(self, Z):
        return self.xp.exp(Z)


HEADS = {
    "softmax": SoftmaxCrossEntropy,
    "sigmoid": SigmoidBCE,
    "identity": SquaredError,
    "poisson": PoissonLog,
}
