"""Batch normalisation over the batch dimension, as ``torch.nn.BatchNorm1d``."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .base import Layer

__all__ = ["BatchNorm1d"]


class BatchNorm1d(Layer):
    """Per feature ``j`` over the ``m`` samples of a training batch:

        mu = mean_i x_ij      var = mean_i (x_ij - mu)^2             (biased, for normalising)
        xhat = (x - mu) / sqrt(var + eps)        y = gamma * xhat + beta

    and the running statistics move with ``momentum`` (PyTorch's convention):
    ``running = (1 - momentum) * running + momentum * batch``, with the *unbiased* variance
    ``var * m / (m - 1)`` for ``running_var``. Inference uses them instead of the batch's:
    ``y = (x - running_mean) * gamma / sqrt(running_var + eps) + beta``.

    Backward, from ``dy`` (m, n):

        dgamma = sum_i dy * xhat      dbeta = sum_i dy
        dx = gamma / sqrt(var + eps) * (dy - dbeta / m - xhat * dgamma / m)

    Parameters ``weight`` (gamma, starts at 1) and ``bias`` (beta, starts at 0); buffers
    ``running_mean`` (starts at 0) and ``running_var`` (starts at 1).

    Training needs at least 2 samples per batch, as in PyTorch: over one sample ``xhat`` is 0,
    so the output is ``beta`` whatever the input and every gradient below the layer is 0.

    **Data parallelism** (:mod:`xpnet.distributed`): while a step runs over several processes,
    :attr:`sync` is set to an object with ``rows`` (``m``, the global batch's size) and
    ``sum(a, what)`` (``a`` summed over the processes). The sums above (of ``x``, of
    ``(x - mu)^2``, of ``dy * xhat`` and of ``dy``) are then taken over the global batch, and
    the math is the same as over one batch of ``m`` rows; the layer's own gradients stay this
    process's part, for the all-reduce of the flat gradient buffer to add up. In one process
    ``sync`` is None and every sum is local.
    """

    output_reusable = True  # a fresh buffer; backward reads the input (and xhat), not it
    min_train_batch = 2
    global_batch = True

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) \
                or num_features < 1:
            raise ValueError(f"num_features must be a whole number >= 1; got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) \
                or not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0; got {eps!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be a number in [0, 1]; got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self._xhat = self._inv_std = None
        self._rows = 0

    def parameter_shapes(self):
        n = self.num_features
        return {"weight": (n,), "bias": (n,)}

    def no_decay(self):
        return ("weight", "bias")

    def initial_parameters(self, rng):
        n = self.num_features
        return {"weight": np.ones(n), "bias": np.zeros(n)}

    def initial_buffers(self):
        n = self.num_features
        return {"running_mean": np.zeros(n), "running_var": np.ones(n)}

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def input_features(self):
        return self.num_features

    def forward(self, x, training=False):
        xp = self.xp
        gamma, beta = self.params["weight"], self.params["bias"]
        if not training:
            y = xp.subtract(x, self.buffers["running_mean"])
            y *= gamma / xp.sqrt(self.buffers["running_var"] + self.eps)
            y += beta
            return y
        m = x.shape[0] if self.sync is None else self.sync.rows
        if m < 2:  # a shape check: no data is read
            raise ValueError(
                f"BatchNorm1d cannot train on a batch of {m} sample{'s' * (m != 1)} (its variance "
                f"is 0, so every gradient through it would be 0); use training batches of 2 or "
                f"more samples."
            )
        mu = self._batch_sum(x.sum(axis=0), "synchronising batch-norm means") / m
        xhat = xp.subtract(x, mu, out=self.work("xhat", x.shape))
        # (x - mu)^2 in the output's buffer, which the output overwrites below: no allocation
        squares = xp.multiply(xhat, xhat, out=self.work("y", x.shape))
        var = self._batch_sum(squares.sum(axis=0), "synchronising batch-norm variances") / m
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv_std
        y = xp.multiply(xhat, gamma, out=self.work("y", x.shape))
        y += beta
        self._xhat, self._inv_std, self._rows = xhat, inv_std, m
        rm, rv, k = self.buffers["running_mean"], self.buffers["running_var"], self.momentum
        rm *= 1 - k
        rm += k * mu
        rv *= 1 - k
        rv += (k * m / max(m - 1, 1)) * var
        return y

    def backward(self, dy):
        xhat, m = self._xhat, self._rows
        dgamma, dbeta = self.grads["weight"], self.grads["bias"]
        (dy * xhat).sum(axis=0, out=dgamma)
        dy.sum(axis=0, out=dbeta)
        if self.sync is None:
            sum_gamma, sum_beta = dgamma, dbeta
        else:  # the global sums, for dx; the gradients stay this process's part
            n = self.num_features
            both = self.sync.sum(self.xp.concatenate([dgamma, dbeta]),
                                 "synchronising batch-norm gradients")
            sum_gamma, sum_beta = both[:n], both[n:]
        dy -= sum_beta / m
        dy -= xhat * (sum_gamma / m)
        dy *= self.params["weight"] * self._inv_std
        return dy

    def _batch_sum(self, a, what):
        """``a``, a per-feature sum over this process's rows, summed over the whole batch."""
        return a if self.sync is None else self.sync.sum(a, what)
