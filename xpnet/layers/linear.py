"""The fully connected layer, as ``torch.nn.Linear`` (always with a bias)."""

from __future__ import annotations

import numbers

import numpy as np

from ..backend import is_sparse
from ..initializers import check_init, draw
from .base import Layer

__all__ = ["Linear"]


class Linear(Layer):
    """``y = x W^T + b``.

    Shapes: ``x`` (m, n_in), ``W`` (n_out, n_in), ``b`` (n_out,), ``y`` (m, n_out).

    Backward, from ``dy`` (m, n_out):

        dW = dy^T x       (n_out, n_in)
        db = 1^T dy       (n_out,)      the column sums, as a matrix-vector product
        dx = dy W         (m, n_in)     skipped when ``needs_input_grad`` is False

    ``x`` may be a sparse matrix (SciPy's, or CuPy's on a GPU; see :func:`xpnet.backend.
    is_sparse`), for a first layer fed sparse data: the same products then run on the sparse
    matrix (``y = x W^T``, ``dW = (x^T dy)^T``), so the data are never densified.

    ``db`` goes through BLAS (``1^T dy``) rather than ``dy.sum(axis=0)``: on a CUDA GPU a
    reduction over the long, strided sample axis runs on a few thread blocks, while cuBLAS's
    matrix-vector product reads ``dy`` at full memory bandwidth; on the CPU it is also faster
    for full batches, and no less accurate (measured in ``bench/gpu_profile.py``).

    Args:
        in_features, out_features: ``n_in`` and ``n_out``.
        init: how ``W`` is drawn (``he`` | ``xavier`` | ``normal`` | ``normal:SCALE``, see
            :mod:`xpnet.initializers`); ``b`` starts at zero.
    """

    output_reusable = True  # a fresh buffer; backward reads the input (and xhat), not it

    def __init__(self, in_features, out_features, init="he"):
        super().__init__()
        init = check_init(init)
        for label, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"{label} must be a whole number >= 1; got {n!r}")
        self.in_features, self.out_features, self.init = int(in_features), int(out_features), init
        self._x = None
        self._ones = None  # a column of ones for db, as long as the longest batch seen

    def bind(self, params, grads, xp, dtype):
        super().bind(params, grads, xp, dtype)
        self._ones = None

    def parameter_shapes(self):
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def no_decay(self):
        return ("bias",)

    def initial_parameters(self, rng):
        W = draw(self.init, rng, self.out_features, self.in_features)
        return {"weight": W, "bias": np.zeros(self.out_features)}

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init}

    def output_features(self, n_in):
        return self.out_features

    def input_features(self):
        return self.in_features

    def forward(self, x, training=False):
        if is_sparse(x):  # sparse @ dense: a new dense (m, n_out) array
            y = x @ self.params["weight"].T
        else:
            y = self.output("y", (x.shape[0], self.out_features), training)
            self.xp.matmul(x, self.params["weight"].T, out=y)
        y += self.params["bias"]
        if training:
            self._x = x  # the input buffer is left alone by the layers after this one
        return y

    def backward(self, dy):
        xp, x = self.xp, self._x
        if is_sparse(x):
            self.grads["weight"][...] = (x.T @ dy).T  # sparse^T @ dense, never densifying x
        else:
            xp.matmul(dy.T, x, out=self.grads["weight"])
        xp.matmul(self._column_of_ones(dy.shape[0]), dy, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        return xp.matmul(dy, self.params["weight"], out=self.work("dx", x.shape))

    def _column_of_ones(self, m):
        """``m`` ones (a view), allocated once for the longest batch, so alternating batch sizes
        allocate nothing."""
        if self._ones is None or self._ones.shape[0] < m:
            self._ones = self.xp.ones(m, dtype=self.dtype)
        return self._ones[:m]
