"""Shared test helpers: finite-difference gradient checks and small random problems.

Imported as a top-level module (``from gradcheck import ...``); ``tests/conftest.py`` puts
``tests/`` on ``sys.path``. Everything here goes through ``net.xp``, ``net.device`` and
``net.device.to_numpy`` rather than assuming NumPy arrays, so the GPU parity suite
(``tests/gpu/``) can run the same checks on a CuPy-backed net. Results come back as host
``float64`` NumPy arrays so they can be compared with anything.

The module also keeps a record of the worst errors seen (:data:`RECORDS`); ``conftest.py``
prints it in pytest's terminal summary. :data:`ACTIVATIONS`, :data:`OUTPUTS` and
:data:`VARIANTS` are the network configurations the gradient checks cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "OUTPUTS",
    "RECORDS",
    "VARIANTS",
    "analytic_grads",
    "hidden_preactivations",
    "make_masks",
    "make_problem",
    "numerical_grads",
    "param_names",
    "randomize_params",
    "rel_error",
    "to_host",
]


# ---------------------------------------------------------------------------- configurations
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OUTPUTS = ("softmax", "sigmoid", "identity")
VARIANTS = {  # name: MLP keyword arguments
    "plain": {},
    "l2": {"l2": 0.3},
    "bn": {"batch_norm": True},
    "dropout": {"dropout": 0.3},
    "bn+dropout+l2": {"batch_norm": True, "dropout": 0.3, "l2": 0.3},
}


# ---------------------------------------------------------------------------- error records
@dataclass
class _Record:
    """Worst value of one error measure over the session, with the case that produced it."""

    what: str
    worst: float = 0.0
    worst_case: str = ""
    count: int = 0
    cases: set = field(default_factory=set)

    def add(self, case: str, err: float) -> None:
        self.count += 1
        self.cases.add(case.split(" :: ")[0])
        if err >= self.worst or not self.worst_case:
            self.worst, self.worst_case = float(err), case

    def summary(self) -> str:
        return (
            f"{self.what}: worst {self.worst:.3e} over {self.count} arrays in "
            f"{len(self.cases)} cases (worst: {self.worst_case})"
        )


RECORDS = {
    "gradcheck": _Record(
        "finite-difference gradient check, float64, ||num-ana||/(||num||+||ana||)"
    ),
    "torch": _Record("xpnet vs PyTorch autograd, float64, ||x-t||/(||x||+||t||)"),
}


# ---------------------------------------------------------------------------- arrays
def host_copy(a) -> np.ndarray:
    """A host NumPy copy of a NumPy or CuPy array (or a Python scalar)."""
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        a = a.get()
    return np.array(a, copy=True)


def to_host(net, arrays):
    """Host float64 copies of device arrays (copies, so later steps cannot overwrite them)."""
    return [np.array(net.device.to_numpy(a), dtype=np.float64, copy=True) for a in arrays]


def rel_error(a, b) -> float:
    """``||a - b|| / (||a|| + ||b||)`` on the host; 0 when both are exactly zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    if denom == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / denom)


def param_names(net):
    """Names matching :meth:`MLP.parameters`: ``W1, b1, ..., gamma1, ...``."""
    names = [f"{p}{l + 1}" for l in range(net.n_layers) for p in ("W", "b")]
    return names + [f"gamma{l + 1}" for l in range(len(net.bn_gamma))]


# ---------------------------------------------------------------------------- problems
def make_problem(net, m, rng):
    """Random ``(X, y)`` for ``net``: X ~ N(0, 1) of shape (m, n_0), and targets in the form
    the output layer wants (labels for softmax, 0/1 for sigmoid, N(0, 1) for identity)."""
    n0, k = net.layer_sizes[0], net.layer_sizes[-1]
    X = rng.standard_normal((m, n0))
    if net.output == "softmax":
        y = rng.integers(0, k, size=m)
    elif net.output == "sigmoid":
        y = (rng.random((m, k)) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal((m, k))
    return X, y


def make_masks(net, m, rng, keep=0.6, zero_row=True):
    """Explicit 0/1 dropout masks, one ``(m, n_l)`` host array per hidden layer. With
    ``zero_row`` the first sample's row is dropped entirely in every hidden layer, the case where
    the next layer's pre-activation equals its bias exactly (see :func:`randomize_params`)."""
    masks = []
    for n in net.layer_sizes[1:-1]:
        mask = (rng.random((m, n)) < keep).astype(np.float64)
        if zero_row:
            mask[0] = 0.0
        masks.append(mask)
    return masks


def randomize_params(net, rng, bias_scale=0.5):
    """Give every bias (and batch-norm scale) a random non-zero value.

    Biases start at zero, so with a dropped row or BN-centred data some ReLU pre-activations are
    exactly 0 and a finite difference would straddle the kink. Random biases put the
    pre-activations a safe distance from 0 (checked by :func:`hidden_preactivations`), and
    scales away from 1 make the gamma gradient check non-trivial.
    """
    new = []
    for W, b in net.params:
        W_host = net.device.to_numpy(W)
        b_host = rng.uniform(0.1, 1.0, size=b.shape) * rng.choice([-1.0, 1.0], size=b.shape)
        new.append((W_host, bias_scale * b_host))
    net.set_params(new)
    with net.device.activate():
        for g in net.bn_gamma:
            g[...] = net.device.send(rng.uniform(0.5, 1.5, size=g.shape), net.dtype)


_HOST_ACT = {
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
}


def hidden_preactivations(net, X, masks=None):
    """Training-mode pre-activations ``[Z_1, ..., Z_{L-1}]`` recomputed on the host in float64
    (independently of xpnet), to verify that a gradient check stays clear of ReLU kinks."""
    A = np.asarray(X, dtype=np.float64)
    params = [(to_host(net, [W])[0], to_host(net, [b])[0]) for W, b in net.params]
    gammas = to_host(net, net.bn_gamma)
    out = []
    for l, (W, b) in enumerate(params[:-1]):
        Z = A @ W.T
        if net.batch_norm:
            Z = gammas[l] * (Z - Z.mean(axis=0)) / np.sqrt(Z.var(axis=0) + 1e-5)
        Z = Z + b
        out.append(Z)
        A = _HOST_ACT[net.activation](Z)
        if net.dropout:
            A = A * np.asarray(masks[l]) / (1.0 - net.dropout)
    return out


# ---------------------------------------------------------------------------- gradients
def analytic_grads(net, X, y, masks=None):
    """``(loss, [host copies of net.gradients()])`` from one backward pass."""
    loss, _ = net.loss_and_grads(X, y, dropout_masks=masks)
    return loss, to_host(net, net.gradients())


def numerical_grads(net, X, y, masks=None, eps=1e-6):
    """Central differences of ``net.loss_and_grads(X, y, masks)[0]`` with respect to every array
    in ``net.parameters()`` (W, b per layer, then batch-norm scales), as host float64 arrays.

    Each entry is nudged in place on the net's own device array and restored exactly afterwards.
    The step actually taken (``x+ - x-`` after rounding to the net's dtype) is the divisor.
    Batch-norm running statistics, which every training-mode call updates, are restored too, so
    the net is left as it was found. Use a float64 net: float32 cannot resolve ``eps = 1e-6``.
    """
    saved_buffers = to_host(net, net.buffers())

    def loss_at():
        return net.loss_and_grads(X, y, dropout_masks=masks)[0]

    grads = []
    with net.device.activate():
        for p in net.parameters():
            g = np.zeros(tuple(p.shape), dtype=np.float64)
            for idx in np.ndindex(*p.shape):
                orig = float(p[idx])
                p[idx] = orig + eps
                x_plus = float(p[idx])
                loss_plus = loss_at()
                p[idx] = orig - eps
                x_minus = float(p[idx])
                loss_minus = loss_at()
                p[idx] = orig
                g[idx] = (loss_plus - loss_minus) / (x_plus - x_minus)
            grads.append(g)
        for buf, host in zip(net.buffers(), saved_buffers):
            buf[...] = net.device.send(host, net.dtype)
    return grads
