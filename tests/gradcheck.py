"""Shared test helpers: the network configurations the gradient checks cover, small random
problems, and a record of the worst errors seen.

Imported as a top-level module (``from gradcheck import ...``); ``tests/conftest.py`` puts
``tests/`` on ``sys.path``. The finite-difference machinery itself is public, in
:mod:`xpnet.gradcheck`; it is re-exported here (``numerical_grads``, ``analytic_grads``,
``rel_error``, ``to_host``, ``host_copy``) so existing imports keep working. Everything goes
through ``net.xp``, ``net.device`` and ``net.device.to_numpy`` rather than assuming NumPy arrays,
so the GPU parity suite (``tests/gpu/``) can run the same checks on a CuPy-backed net. Results
come back as host ``float64`` NumPy arrays so they can be compared with anything.

The module also keeps a record of the worst errors seen (:data:`RECORDS`); ``conftest.py``
prints it in pytest's terminal summary. :data:`ACTIVATIONS`, :data:`OUTPUTS` and
:data:`VARIANTS` are the network configurations the gradient checks cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xpnet.gradcheck import analytic_grads, host_copy, numerical_grads, rel_error, to_host
from xpnet.layers import GELU, BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, SiLU, Tanh

__all__ = [
    "ACTIVATIONS",
    "OUTPUTS",
    "RECORDS",
    "VARIANTS",
    "analytic_grads",
    "hidden_preactivations",
    "host_copy",
    "make_masks",
    "make_problem",
    "numerical_grads",
    "randomize_params",
    "rel_error",
    "to_host",
    "zero_gradient_names",
]


# ---------------------------------------------------------------------------- configurations
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu")
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
    "layers": _Record(
        "single-layer xpnet.gradcheck, float64, ||num-ana||/(||num||+||ana||)"
    ),
    "torch": _Record("xpnet vs PyTorch autograd, float64, ||x-t||/(||x||+||t||)"),
}


# ---------------------------------------------------------------------------- problems
def _widths(net):
    """``[(layer, width of its input)]`` for every layer of ``net``, in order."""
    out, n = [], net.n_features_in
    for layer in net.layers:
        out.append((layer, n))
        n = layer.output_features(n)
    return out


def make_problem(net, m, rng):
    """Random ``(X, y)`` for ``net``: X ~ N(0, 1) of shape (m, n_0), and targets in the form
    the output head wants (labels for softmax, 0/1 for sigmoid, N(0, 1) for identity)."""
    n0, k = net.n_features_in, net.n_outputs
    X = rng.standard_normal((m, n0))
    if net.head.name == "softmax":
        y = rng.integers(0, k, size=m)
    elif net.head.name == "sigmoid":
        y = (rng.random((m, k)) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal((m, k))
    return X, y


def make_masks(net, m, rng, keep=0.6, zero_row=True):
    """Explicit 0/1 dropout masks, one ``(m, n)`` host array per Dropout layer (for an MLP, one
    per hidden layer). With ``zero_row`` the first sample's row is dropped entirely in every
    one, the case where the next layer's pre-activation equals its bias exactly (see
    :func:`randomize_params`)."""
    masks = []
    for layer, n in _widths(net):
        if isinstance(layer, Dropout):
            mask = (rng.random((m, n)) < keep).astype(np.float64)
            if zero_row:
                mask[0] = 0.0
            masks.append(mask)
    return masks


def randomize_params(net, rng, bias_scale=0.5):
    """Give every bias (Linear and batch norm) a random non-zero value and every batch-norm
    scale a random value in [0.5, 1.5].

    Biases start at zero, so with a dropped row or BN-centred data some ReLU pre-activations are
    exactly 0 and a finite difference would straddle the kink. Random biases put the
    pre-activations a safe distance from 0 (checked by :func:`hidden_preactivations`), and
    scales away from 1 make the batch-norm weight check non-trivial. (A Linear bias in front of
    a batch norm gets a value too, though the normalisation removes it: its gradient is 0.)
    """
    with net.device.activate():
        for name, p in net.named_parameters():
            layer = net.layers[int(name.split(".")[0])]
            if name.endswith(".bias"):
                value = bias_scale * rng.uniform(0.1, 1.0, size=p.shape) \
                    * rng.choice([-1.0, 1.0], size=p.shape)
            elif isinstance(layer, BatchNorm1d) and name.endswith(".weight"):
                value = rng.uniform(0.5, 1.5, size=p.shape)
            else:
                continue
            p[...] = net.device.send(value, net.dtype)


def zero_gradient_names(net):
    """Names of the parameters whose true gradient is exactly 0: the bias of a Linear that
    feeds a batch norm (the normalisation subtracts the batch mean, and the bias with it). Their
    analytic gradient is a rounding residue (~1e-17) and their central difference pure noise
    (~1e-10), so a relative error means nothing; tests check them against an absolute bound."""
    names = []
    for i, (layer, nxt) in enumerate(zip(net.layers, net.layers[1:])):
        if isinstance(layer, Linear) and isinstance(nxt, BatchNorm1d):
            names.append(f"{i}.bias")
    return names


_HOST_ACT = {  # by layer class, written independently of xpnet
    ReLU: lambda layer, z: np.maximum(z, 0.0),
    LeakyReLU: lambda layer, z: np.where(z > 0, z, layer.negative_slope * z),
    Tanh: lambda layer, z: np.tanh(z),
    Sigmoid: lambda layer, z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    GELU: lambda layer, z: 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi)
                                                    * (z + 0.044715 * z**3))),
    SiLU: lambda layer, z: z / (1.0 + np.exp(-z)),
}


def hidden_preactivations(net, X, masks=None):
    """Training-mode inputs of every activation layer (the pre-activations ``[Z_1, ...]``),
    recomputed on the host in float64 independently of xpnet, to verify that a gradient check
    stays clear of ReLU kinks. ``masks``: one per Dropout layer, as for ``loss_and_grads``."""
    state = net.state_dict()
    A = np.asarray(X, dtype=np.float64)
    masks = iter(masks or [])
    out = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Linear):
            A = A @ state[f"{i}.weight"].T + state[f"{i}.bias"]
        elif isinstance(layer, BatchNorm1d):
            xhat = (A - A.mean(axis=0)) / np.sqrt(A.var(axis=0) + layer.eps)
            A = state[f"{i}.weight"] * xhat + state[f"{i}.bias"]
        elif isinstance(layer, Dropout):
            if layer.p:
                A = A * np.asarray(next(masks)) / (1.0 - layer.p)
        else:
            out.append(A)
            A = _HOST_ACT[type(layer)](layer, A)
    return out
