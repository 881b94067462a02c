"""The L-layer perceptron: parameters, forward pass with caches, exact backpropagation.

Notation for a batch of ``m`` samples (samples first, as in PyTorch and scikit-learn), layers
``l = 1..L`` with sizes ``n_0 .. n_L``:

    A_0 = X                                   (m, n_0)
    Z_l = A_{l-1} W_l^T + b_l                 (m, n_l),  W_l (n_l, n_{l-1}),  b_l (n_l,)
    A_l = g(Z_l)                              hidden layers, g the hidden activation
    Z_L                                       logits, turned into a loss by the output layer

With batch normalisation on hidden layers, ``b_l`` is the BN shift (beta) and ``gamma_l`` the scale:

    Z_l = gamma_l * (A_{l-1} W_l^T - mu) / sqrt(var + eps) + b_l

With inverted dropout of rate ``p`` on hidden layers, training multiplies ``A_l`` by a 0/1 mask
and by ``1 / (1 - p)``; inference does nothing.

Backpropagation, with ``dZ_L`` from the loss:

    dW_l = dZ_l^T A_{l-1} + (l2 / m) W_l      db_l = sum_i dZ_l
    dA_{l-1} = dZ_l W_l                       dZ_{l-1} = dA_{l-1} * g'(Z_{l-1})

``dA_0`` (the gradient with respect to the input) is never computed.
"""

from __future__ import annotations

import numbers

import numpy as np

from .activations import ACTIVATIONS, sigmoid
from .backend import Device, get_device
from .initializers import INITIALIZERS
from .losses import LOSSES, softmax

OUTPUTS = tuple(LOSSES)
DTYPES = ("float32", "float64")
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch's convention: running = (1 - momentum) * running + momentum * batch


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(map(repr, allowed))}")
    return value


class _Workspace:
    """Buffers reused across steps of the same batch size, so the step loop does not allocate."""

    def __init__(self, xp, m, sizes, dtype, batch_norm, dropout):
        hidden = sizes[1:-1]
        self.Z = [xp.empty((m, n), dtype=dtype) for n in sizes[1:]]  # Z_l, then A_l in place
        self.dA = [xp.empty((m, n), dtype=dtype) for n in hidden]
        self.xhat = [xp.empty((m, n), dtype=dtype) for n in hidden] if batch_norm else None
        self.D = [xp.empty((m, n), dtype=dtype) for n in hidden] if dropout else None
        self.masks = [None] * len(hidden)
        self.bn_inv_std = [None] * len(hidden)


class MLP:
    """A fully connected network built from a list of layer sizes.

    Args:
        layer_sizes: the full list, input through output, e.g. ``[784, 256, 128, 64, 10]``.
        activation: hidden units, ``relu`` | ``leaky_relu`` (slope 0.01) | ``tanh`` | ``sigmoid``.
        output: ``softmax`` (integer labels, cross-entropy) | ``sigmoid`` (0/1 targets, binary
            cross-entropy summed over outputs) | ``identity`` (real targets, half squared error).
        init: ``he`` | ``xavier`` | ``normal`` (N(0,1) x 0.01). Biases start at zero.
        l2: L2 strength; the loss gains ``l2 / (2 m) * sum_l ||W_l||^2`` (biases not penalised).
        dtype: ``float32`` (default, fast) or ``float64`` (gradient checks).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` or a :class:`~xpnet.backend.Device`.
        seed: seeds the initial weights (drawn on the host, so equal on every device) and dropout.
        batch_norm: normalise each hidden layer's pre-activation over the batch.
        dropout: inverted-dropout rate on hidden activations, in ``[0, 1)``.
    """

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        output="softmax",
        init="he",
        l2=0.0,
        dtype="float32",
        device="auto",
        seed=None,
        batch_norm=False,
        dropout=0.0,
    ):
        try:
            sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else None
        except TypeError:  # a bare int such as MLP(784): not iterable
            sizes = None
        if sizes is None or len(sizes) < 2:
            raise ValueError(
                f"layer_sizes must list at least an input and an output size, e.g. [784, 10]; "
                f"got {layer_sizes!r}"
            )
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"layer_sizes entries must be positive integers; got {sizes!r}")
        self.layer_sizes = [int(n) for n in sizes]
        self.activation = _choice("activation", activation, tuple(ACTIVATIONS))
        self.output = _choice("output", output, OUTPUTS)
        self.init = _choice("init", init, tuple(INITIALIZERS))
        try:
            dtype_name = np.dtype(dtype).name if dtype is not None else None
        except TypeError:
            dtype_name = dtype
        self.dtype = _choice("dtype", dtype_name, DTYPES)
        if not isinstance(l2, numbers.Real) or not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a rate in [0, 1); got {dropout!r}")
        self.l2 = float(l2)
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.seed = seed
        self.device: Device = get_device(device)
        self.xp = self.device.xp
        self._act, self._act_back = ACTIVATIONS[self.activation]
        self._loss = LOSSES[self.output]

        host_rng = np.random.default_rng(seed)
        draw = INITIALIZERS[self.init]
        self.params = []
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            W = self.device.send(draw(host_rng, n_out, n_in), self.dtype)
            b = self.device.send(np.zeros(n_out), self.dtype)
            self.params.append((W, b))
        hidden = self.layer_sizes[1:-1]
        xp = self.xp
        with self.device.activate():
            if self.batch_norm:
                self.bn_gamma = [xp.ones(n, dtype=self.dtype) for n in hidden]
                self.bn_running_mean = [xp.zeros(n, dtype=self.dtype) for n in hidden]
                self.bn_running_var = [xp.ones(n, dtype=self.dtype) for n in hidden]
            else:
                self.bn_gamma, self.bn_running_mean, self.bn_running_var = [], [], []
            self.grads = [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in self.params]
            self.bn_gamma_grads = [xp.zeros_like(g) for g in self.bn_gamma]
        self._dropout_rng = self.device.rng(host_rng.integers(2**63))
        self._workspaces: dict[int, _Workspace] = {}

    # ------------------------------------------------------------------ parameters
    @property
    def n_layers(self) -> int:
        return len(self.params)

    def parameters(self):
        """Every trainable array, flat: ``W_1, b_1, W_2, b_2, ..., gamma_1, gamma_2, ...``."""
        flat = [a for pair in self.params for a in pair]
        return flat + list(self.bn_gamma)

    def gradients(self):
        """Gradient buffers matching :meth:`parameters`, filled by the last backward pass."""
        flat = [a for pair in self.grads for a in pair]
        return flat + list(self.bn_gamma_grads)

    def buffers(self):
        """Non-trainable state: the batch-norm running means and variances."""
        return list(self.bn_running_mean) + list(self.bn_running_var)

    def set_params(self, params):
        """Copy ``[(W, b), ...]`` (host or device arrays) into this net's parameters in place."""
        if len(params) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} (W, b) pairs, got {len(params)}")
        for (W, b), (W_new, b_new) in zip(self.params, params):
            for dst, src, name in ((W, W_new, "W"), (b, b_new, "b")):
                if tuple(src.shape) != dst.shape:
                    raise ValueError(
                        f"{name} has shape {tuple(src.shape)}, expected {dst.shape}"
                    )
                dst[...] = self.device.send(src, self.dtype)

    def reseed_dropout(self, seed) -> None:
        """Restart the dropout mask stream (the trainer does this each epoch, for exact resume)."""
        self._dropout_rng = self.device.rng(seed)

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (used by checkpoints)."""
        return {
            "layer_sizes": self.layer_sizes,
            "activation": self.activation,
            "output": self.output,
            "init": self.init,
            "l2": self.l2,
            "dtype": self.dtype,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        extras = "".join(
            [", batch_norm=True" if self.batch_norm else "",
             f", dropout={self.dropout}" if self.dropout else "",
             f", l2={self.l2}" if self.l2 else ""]
        )
        return (
            f"MLP({self.layer_sizes}, activation={self.activation!r}, output={self.output!r}, "
            f"dtype={self.dtype!r}, device={self.device.name!r}{extras})"
        )

    # ------------------------------------------------------------------ input checks
    def check_X(self, X, name="X"):
        """Validate and send ``X`` (m, n_0); raise ``ValueError`` naming the problem."""
        shape = getattr(X, "shape", None)
        if shape is None:
            X = np.asarray(X)
            shape = X.shape
        if len(shape) != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features); got shape {tuple(shape)}. "
                f"Reshape it, e.g. {name}.reshape(len({name}), -1)."
            )
        if shape[0] == 0:
            raise ValueError(f"{name} is empty (0 samples); pass at least one sample.")
        if shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"{name} has {shape[1]} features but the network's input layer has "
                f"{self.layer_sizes[0]}; fix {name} or layer_sizes[0]."
            )
        kind = np.dtype(X.dtype).kind
        if kind not in "biuf":
            raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}.")
        Xd = self.device.send(X, self.dtype)
        if not bool(self.xp.isfinite(Xd).all()):
            raise ValueError(
                f"{name} contains NaN or infinity (or values too large for {self.dtype}); "
                f"clean, impute or rescale the data first."
            )
        return Xd

    def check_y(self, y, m, name="y"):
        """Validate and send the targets for ``m`` samples, in the form the output layer needs."""
        shape = getattr(y, "shape", None)
        if shape is None:
            y = np.asarray(y)
            shape = y.shape
        k = self.layer_sizes[-1]
        if len(shape) == 0 or shape[0] != m:
            raise ValueError(
                f"{name} has {shape[0] if len(shape) else 0} entries but X has {m} samples; "
                f"they must match."
            )
        yd = self.device.send(y)
        if self.output == "softmax":
            if len(shape) != 1:
                raise ValueError(
                    f"{name} must be integer class labels of shape (m,) for a softmax output; "
                    f"got shape {tuple(shape)}. For one-hot targets use y.argmax(axis=1)."
                )
            if yd.dtype.kind == "f":
                if not bool(self.xp.all(self.xp.isfinite(yd) & (yd == self.xp.floor(yd)))):
                    raise ValueError(
                        f"{name} must hold integer class labels; got fractions, NaN or infinity."
                    )
            elif yd.dtype.kind not in "iu":
                raise ValueError(f"{name} must hold integer class labels; got dtype {yd.dtype}.")
            lo, hi = (int(v) for v in (yd.min(), yd.max()))
            if lo < 0 or hi >= k:
                raise ValueError(
                    f"{name} has labels in [{lo}, {hi}] but the output layer has {k} classes, "
                    f"so labels must be in [0, {k - 1}]."
                )
            return yd.astype(self.xp.int64, copy=False)
        want = (m, k)
        if tuple(shape) not in (want, (m,) if k == 1 else want):
            raise ValueError(
                f"{name} must have shape {want}{' or (m,)' if k == 1 else ''} for a "
                f"{self.output} output with {k} units; got {tuple(shape)}."
            )
        yd = yd.astype(self.dtype, copy=False).reshape(want)
        if not bool(self.xp.isfinite(yd).all()):
            raise ValueError(f"{name} contains NaN or infinity.")
        if self.output == "sigmoid" and not bool(((yd == 0) | (yd == 1)).all()):
            raise ValueError(f"{name} must hold 0/1 targets for a sigmoid output.")
        return yd

    # ------------------------------------------------------------------ forward
    def _workspace(self, m) -> _Workspace:
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) >= 4:  # batch sizes seen: full, batch, last partial, eval
                self._workspaces.pop(next(iter(self._workspaces)))
            with self.device.activate():
                ws = _Workspace(self.xp, m, self.layer_sizes, self.dtype, self.batch_norm,
                                self.dropout > 0)
            self._workspaces[m] = ws
        return ws

    def _forward_train(self, X, ws, masks=None):
        """Training forward pass into ``ws``; returns the logits ``Z_L`` (a buffer of ``ws``)."""
        xp = self.xp
        A = X
        last = self.n_layers - 1
        for l, (W, b) in enumerate(self.params):
            Z = xp.matmul(A, W.T, out=ws.Z[l])
            if l == last:
                Z += b
                return Z
            if self.batch_norm:
                mu = Z.mean(axis=0)
                var = Z.var(axis=0)
                inv_std = 1.0 / xp.sqrt(var + BN_EPS)
                xhat = xp.subtract(Z, mu, out=ws.xhat[l])
                xhat *= inv_std
                xp.multiply(xhat, self.bn_gamma[l], out=Z)
                ws.bn_inv_std[l] = inv_std
                m = Z.shape[0]
                rm, rv = self.bn_running_mean[l], self.bn_running_var[l]
                rm *= 1 - BN_MOMENTUM
                rm += BN_MOMENTUM * mu
                rv *= 1 - BN_MOMENTUM
                rv += (BN_MOMENTUM * m / max(m - 1, 1)) * var  # unbiased, as PyTorch keeps it
            Z += b
            A = self._act(xp, Z)
            if self.dropout:
                if masks is not None:
                    mask = self.device.send(masks[l])
                else:
                    mask = self._dropout_rng.random(A.shape, dtype=self.dtype) >= self.dropout
                ws.masks[l] = mask
                A = xp.multiply(A, mask, out=ws.D[l])
                A *= 1.0 / (1.0 - self.dropout)
        raise AssertionError("unreachable")

    def _forward_eval(self, X, keep=None):
        """Inference forward pass (running BN statistics, no dropout); returns the logits."""
        xp = self.xp
        A = X
        last = self.n_layers - 1
        for l, (W, b) in enumerate(self.params):
            Z = A @ W.T
            if l < last and self.batch_norm:
                Z -= self.bn_running_mean[l]
                Z *= self.bn_gamma[l] / xp.sqrt(self.bn_running_var[l] + BN_EPS)
            Z += b
            if l == last:
                if keep is not None:
                    keep.append(Z)
                return Z
            A = self._act(xp, Z)
            if keep is not None:
                keep.append(A)
        raise AssertionError("unreachable")

    def _output_activation(self, Z):
        if self.output == "softmax":
            return softmax(self.xp, Z, out=Z)
        if self.output == "sigmoid":
            return sigmoid(self.xp, Z, out=Z)
        return Z

    def forward(self, X):
        """Network output for ``X`` (m, n_0) in inference mode: probabilities for softmax and
        sigmoid outputs, the raw values for identity. Shape ``(m, n_L)``, on the net's device."""
        with self.device.activate():
            return self._output_activation(self._forward_eval(self.check_X(X)))

    def layer_outputs(self, X):
        """``[A_1, ..., A_{L-1}, Z_L]`` in inference mode (hidden activations, then logits)."""
        keep = []
        with self.device.activate():
            self._forward_eval(self.check_X(X), keep)
        return keep

    def predict_proba(self, X):
        """Class probabilities ``(m, n_L)``; only for softmax and sigmoid outputs."""
        if self.output == "identity":
            raise ValueError("predict_proba needs a softmax or sigmoid output; use predict().")
        return self.forward(X)

    def predict(self, X):
        """Labels ``(m,)`` for softmax, 0/1 ``(m, n_L)`` for sigmoid, values for identity."""
        with self.device.activate():
            Z = self._forward_eval(self.check_X(X))
            if self.output == "softmax":
                return Z.argmax(axis=1)
            if self.output == "sigmoid":
                return (Z > 0).astype(self.xp.int64)
            return Z

    # ------------------------------------------------------------------ loss and backward
    def _l2_term(self, m):
        if not self.l2:
            return 0.0
        total = sum(self.xp.vdot(W, W) for W, _ in self.params)
        return (self.l2 / (2.0 * m)) * total

    def _backward(self, X, dZ, ws):
        xp = self.xp
        m = X.shape[0]
        for l in range(self.n_layers - 1, -1, -1):
            W, _ = self.params[l]
            dW, db = self.grads[l]
            if l > 0:
                A_prev = ws.D[l - 1] if self.dropout else ws.Z[l - 1]
            else:
                A_prev = X
            xp.matmul(dZ.T, A_prev, out=dW)
            if not (self.batch_norm and l < self.n_layers - 1):  # BN layers took db already
                dZ.sum(axis=0, out=db)
            if self.l2:
                dW += (self.l2 / m) * W
            if l == 0:
                return
            dA = xp.matmul(dZ, W, out=ws.dA[l - 1])
            if self.dropout:
                dA *= ws.masks[l - 1]
                dA *= 1.0 / (1.0 - self.dropout)
            dZ = self._act_back(xp, ws.Z[l - 1], dA)
            if self.batch_norm:
                dZ = self._bn_backward(l - 1, dZ, ws)

    def _bn_backward(self, l, dY, ws):
        """Gradient through ``Y = gamma * xhat + b`` and the batch normalisation itself:
        dgamma = sum(dY * xhat), db = sum(dY),
        dZ = gamma * inv_std * (dY - mean(dY) - xhat * mean(dY * xhat))."""
        xhat = ws.xhat[l]
        m = dY.shape[0]
        dgamma = self.bn_gamma_grads[l]
        db = self.grads[l][1]
        (dY * xhat).sum(axis=0, out=dgamma)
        dY.sum(axis=0, out=db)
        scale = self.bn_gamma[l] * ws.bn_inv_std[l]
        dY -= db / m
        dY -= xhat * (dgamma / m)
        dY *= scale
        return dY

    def _count_correct(self, Z, y):
        """Correctly classified samples in a batch of logits, as a 0-d device array (for
        sigmoid outputs a sample counts when all its outputs are right, as sklearn scores)."""
        if self.output == "softmax":
            return (Z.argmax(axis=1) == y).sum()
        if self.output == "sigmoid":
            return ((Z > 0) == (y > 0.5)).all(axis=1).sum()
        return None

    def _loss_and_grads(self, X, y, masks=None, correct=None):
        """Unchecked training step for device arrays: fills :attr:`grads` and returns the loss as
        a 0-d device array (no host synchronisation). When ``correct`` (a 0-d device array) is
        given, the number of correctly classified samples is added to it."""
        ws = self._workspace(X.shape[0])
        Z = self._forward_train(X, ws, masks)
        if correct is not None and self.output != "identity":
            correct += self._count_correct(Z, y)
        loss, dZ = self._loss(self.xp, Z, y, out=Z)
        loss = loss + self._l2_term(X.shape[0])
        self._backward(X, dZ, ws)
        return loss

    def loss_and_grads(self, X, y, dropout_masks=None):
        """Loss and gradients on one batch, in training mode (batch-norm batch statistics and
        dropout are active, and the batch-norm running statistics are updated).

        Args:
            X: ``(m, n_0)`` host or device array.
            y: labels ``(m,)`` for softmax, 0/1 targets ``(m,)`` or ``(m, k)`` for sigmoid,
               targets ``(m, k)`` for identity.
            dropout_masks: optional list of 0/1 arrays ``(m, n_l)``, one per hidden layer, to use
               instead of random masks (for gradient checks and cross-device parity).

        Returns:
            ``(loss, grads)``: ``loss`` a Python float, ``grads`` ``[(dW, db), ...]`` with the
            shapes, dtype and device of :attr:`params`. The arrays are the net's own buffers and
            are overwritten by the next call; copy them to keep them. With batch norm, the
            gradients of the scales are in :attr:`bn_gamma_grads`.
        """
        with self.device.activate():
            Xd = self.check_X(X)
            yd = self.check_y(y, Xd.shape[0])
            loss = self._loss_and_grads(Xd, yd, dropout_masks)
            return float(loss), self.grads

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, X, y, chunk=10000):
        """Data loss summed over samples and correct count, as 0-d device arrays (inference
        mode, in chunks of ``chunk`` rows so memory stays bounded)."""
        xp = self.xp
        loss_sum = xp.zeros((), dtype=xp.float64)
        correct = xp.zeros((), dtype=xp.int64)
        for start in range(0, X.shape[0], chunk):
            Xc, yc = X[start:start + chunk], y[start:start + chunk]
            Z = self._forward_eval(Xc)
            if self.output != "identity":
                correct += self._count_correct(Z, yc)
            loss, _ = self._loss(xp, Z, yc, out=Z)
            loss_sum += loss * Xc.shape[0]
        return loss_sum, correct

    def evaluate(self, X, y, batch_size=10000):
        """``(loss, accuracy)`` on ``(X, y)`` in inference mode. The loss is the data loss
        without the L2 term; accuracy is None for an identity output."""
        with self.device.activate():
            Xd = self.check_X(X)
            yd = self.check_y(y, Xd.shape[0])
            loss_sum, correct = self._evaluate(Xd, yd, batch_size)
            m = Xd.shape[0]
            acc = None if self.output == "identity" else float(correct) / m
            return float(loss_sum) / m, acc
