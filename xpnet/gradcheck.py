"""Finite-difference gradient checks, in the way of ``torch.autograd.gradcheck``.

:func:`gradcheck` compares the gradients that backpropagation computes with central differences
in float64, for a whole network or a single layer:

* a network (:class:`~xpnet.network.Sequential` or :class:`~xpnet.network.MLP`): every
  parameter gradient that :meth:`~xpnet.network.Sequential.loss_and_grads` writes (named as in
  ``net.named_parameters()``: ``0.weight``, ``1.bias``, ...) against the central difference of
  the loss it returns;
* a layer (:class:`~xpnet.layers.Layer`): the gradient of ``f = sum(w * layer.forward(x,
  training=True))`` for a fixed random weighting ``w`` of the output, with respect to the input
  (``"input"``, what ``layer.backward(w)`` returns) and to each parameter (``layer.grads``).

For every array the check passes when::

    ||num - ana|| <= atol + rtol * (||num|| + ||ana||)          (Frobenius norms)

that is, when the normwise relative error ``||num - ana|| / (||num|| + ||ana||)``
(:func:`rel_error`) is below ``rtol``, with ``atol`` an absolute floor for arrays whose true
gradient is zero (the bias of a Linear followed by batch norm: the normalisation removes it).

Why these defaults (``eps = 1e-6``, ``rtol = 1e-6``, ``atol = 1e-8``), in float64: the central
difference ``(f(p + eps) - f(p - eps)) / 2 eps`` has a truncation error ``f''' eps^2 / 6 ~
1e-12`` for the O(1) derivatives of a small problem, and a rounding error of about ``u |f| /
eps ~ 1e-10 |f|`` (``u = 1.1e-16``). Correct gradients therefore agree to ~1e-8 relative or
better, while a wrong term (a missing factor, a dropped batch-norm coupling) gives 1e-3 or more:
``rtol = 1e-6`` sits two orders above the noise and three below the smallest real bug.
``torch.autograd.gradcheck`` uses an elementwise ``rtol = 1e-3``, ``atol = 1e-5``, which is
looser because it must pass every entry, however small, on its own; the normwise measure here
can afford to be strict. ``atol = 1e-8`` is a hundred times the rounding noise of a zero
gradient for a loss of order 1 (scale it with the loss). float32 cannot resolve ``eps = 1e-6``
(its ``u`` is 6e-8), so a float32 target is refused.

Everything is computed through the target's own array module and device (``net.device``,
``layer.xp``), so the same check runs on a CuPy-backed network; the results come back as host
float64 NumPy arrays. A check leaves the target as it found it: every parameter is restored
exactly, batch-norm running statistics are put back, and a network's gradient buffer holds the
analytic gradients afterwards.
"""

from __future__ import annotations

import numpy as np

from .backend import is_device_array
from .layers import Dropout, Layer

__all__ = [
    "GradcheckError",
    "analytic_grads",
    "gradcheck",
    "gradcheck_arrays",
    "host_copy",
    "layer_gradients",
    "numerical_grads",
    "rel_error",
    "to_host",
]

DEFAULT_EPS = 1e-6
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8


class GradcheckError(AssertionError):
    """A gradient check failed. It is an :class:`AssertionError` because it reports a failed
    claim about the code under test (its backward pass disagrees with its forward pass), not a
    bad argument: pytest reports it as a test failure with this message, and invalid input to
    :func:`gradcheck` (a float32 target, missing targets) raises :class:`ValueError` instead.

    Attributes:
        name: the worst array (``"0.weight"``, or ``"input"`` / ``"weight"`` for a layer).
        error: its normwise relative error ``||num - ana|| / (||num|| + ||ana||)``.
        errors: ``{name: relative error}`` of every array checked.
        failed: the names that failed, worst first.
    """

    def __init__(self, message, name, error, errors, failed):
        super().__init__(message)
        self.name, self.error, self.errors, self.failed = name, error, errors, failed


# ---------------------------------------------------------------------------- host arrays
def host_copy(a) -> np.ndarray:
    """A host NumPy copy of a NumPy or CuPy array (or a Python scalar)."""
    if is_device_array(a):
        a = a.get()
    return np.array(a, copy=True)


def to_host(net, arrays):
    """Host float64 copies of ``net``'s device arrays (copies: later steps cannot change them)."""
    return [np.array(net.device.to_numpy(a), dtype=np.float64, copy=True) for a in arrays]


def rel_error(a, b) -> float:
    """``||a - b|| / (||a|| + ||b||)`` on the host; 0 when both are exactly zero."""
    a = np.asarray(host_copy(a), dtype=np.float64)
    b = np.asarray(host_copy(b), dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    if denom == 0.0:
        return 0.0
    return float(np.linalg.norm(a - b) / denom)


def _check_float64(dtype, what):
    if np.dtype(dtype) != np.float64:
        raise ValueError(f"gradcheck needs float64 {what} (float32 cannot resolve a finite "
                         f"difference step of 1e-6); got {np.dtype(dtype).name}. Build it with "
                         f"dtype='float64'.")


# ---------------------------------------------------------------------------- networks
def analytic_grads(net, X, y, masks=None):
    """``(loss, [host float64 copies of net.gradients()])`` from one training-mode backward pass
    (``masks``: one 0/1 array per Dropout layer, or None)."""
    loss, _ = net.loss_and_grads(X, y, dropout_masks=masks)
    return loss, to_host(net, net.gradients())


def numerical_grads(net, X, y, masks=None, eps=DEFAULT_EPS):
    """Central differences of ``net.loss_and_grads(X, y, masks)[0]`` with respect to every array
    in ``net.parameters()`` (buffer order, the names of ``net.named_parameters()``), as host
    float64 arrays.

    Each entry is nudged in place on the net's own device array and restored exactly afterwards.
    The step actually taken (``p+ - p-`` after rounding to the net's dtype) is the divisor.
    Batch-norm running statistics, which every training-mode call updates, are restored too, so
    the parameters and buffers are left as they were found (the gradient buffer is not). Use a
    float64 net: float32 cannot resolve ``eps = 1e-6``.
    """
    saved_buffers = to_host(net, net.buffers())

    def loss_at():
        return net.loss_and_grads(X, y, dropout_masks=masks)[0]

    grads = []
    with net.device.activate():
        for p in net.parameters():
            grads.append(_central_differences(p, loss_at, eps))
        for buf, host in zip(net.buffers(), saved_buffers):
            buf[...] = net.device.send(host, net.dtype)
    return grads


def _central_differences(p, f, eps):
    """``df/dp`` for a device array ``p`` nudged in place (and restored exactly)."""
    g = np.zeros(tuple(p.shape), dtype=np.float64)
    for idx in np.ndindex(*p.shape):
        orig = float(p[idx])  # exact for float64 (and float32)
        p[idx] = orig + eps
        p_plus = float(p[idx])
        f_plus = f()
        p[idx] = orig - eps
        p_minus = float(p[idx])
        f_minus = f()
        p[idx] = orig
        g[idx] = (f_plus - f_minus) / (p_plus - p_minus)
    return g


def _dropout_masks(net, m, seed):
    """Fixed 0/1 masks (keep probability 1 - p), one per Dropout layer of ``net`` as
    ``loss_and_grads`` takes them, each layer's width followed through ``output_features``;
    None when no Dropout is active."""
    rng = np.random.default_rng(seed)
    masks, n = [], net.n_features_in
    for layer in net.layers:
        if isinstance(layer, Dropout):
            masks.append((rng.random((m, n)) >= layer.p).astype(np.float64))
        n = layer.output_features(n)
    return masks if any(isinstance(layer, Dropout) and layer.p for layer in net.layers) else None


def _network_arrays(net, X, y, eps, dropout_masks, seed):
    _check_float64(net.dtype, "network")
    if y is None:
        raise ValueError("gradcheck of a network needs targets y (the loss depends on them)")
    if dropout_masks is None:
        dropout_masks = _dropout_masks(net, int(np.shape(X)[0]), seed)
    saved_buffers = to_host(net, net.buffers())
    _, ana = analytic_grads(net, X, y, dropout_masks)
    num = numerical_grads(net, X, y, dropout_masks, eps=eps)
    with net.device.activate():  # the analytic gradients, and the buffers as found
        for g, host in zip(net.gradients(), ana):
            g[...] = net.device.send(host, net.dtype)
        for buf, host in zip(net.buffers(), saved_buffers):
            buf[...] = net.device.send(host, net.dtype)
    names = [name for name, _ in net.named_parameters()]
    return {name: (n, a) for name, n, a in zip(names, num, ana)}


# ---------------------------------------------------------------------------- layers
def _host64(a) -> np.ndarray:
    return np.array(host_copy(a), dtype=np.float64)


def _prepare_layer(layer, seed):
    """Build a layer on the CPU in float64 when nothing is bound to it yet."""
    unbound = set(layer.params) != set(layer.parameter_shapes())
    if unbound or (not layer.parameter_shapes() and np.dtype(layer.dtype) != np.float64):
        layer.build("cpu", "float64", seed=seed)
    _check_float64(layer.dtype, "layer parameters")


def layer_gradients(layer, x, w=None, eps=DEFAULT_EPS, seed=0):
    """``{name: (numerical, analytic)}`` host float64 arrays for a single layer: ``"input"``
    (unless ``layer.needs_input_grad`` is False) and each parameter, of ``f = sum(w * y)`` with
    ``y = layer.forward(x, training=True)``.

    ``w`` defaults to a fixed standard-normal weighting drawn from ``seed``. Every forward gets
    a fresh device copy of ``x`` (in-place activations overwrite their input). A layer with a
    ``next_mask`` (:class:`~xpnet.layers.Dropout`) gets that same mask at every forward (and
    keeps it as its ``next_mask`` afterwards); an active Dropout without one gets a fixed mask
    drawn from ``seed``. Parameters are restored exactly and buffers (batch-norm running
    statistics) put back afterwards.
    """
    _prepare_layer(layer, seed)
    xp, dtype = layer.xp, layer.dtype
    rng = np.random.default_rng(seed)
    x_host = _host64(x)
    if x_host.ndim != 2:
        raise ValueError(f"x must be 2-D (samples, features); got shape {x_host.shape}")
    given_mask = mask = getattr(layer, "next_mask", None)
    if mask is None and isinstance(layer, Dropout) and layer.p > 0:
        mask = xp.asarray((rng.random(x_host.shape) >= layer.p).astype(np.float64), dtype=dtype)

    def run(x_values):
        if mask is not None:
            layer.next_mask = mask
        return layer.forward(xp.array(x_values, dtype=dtype), training=True)  # a fresh copy

    saved_buffers = {name: _host64(a) for name, a in layer.buffers.items()}
    y0 = run(x_host)
    if w is None:
        w_host = rng.standard_normal(tuple(y0.shape))
    else:
        w_host = _host64(w)
        if w_host.shape != tuple(y0.shape):
            raise ValueError(f"the output weighting has shape {w_host.shape}, the layer's "
                             f"output {tuple(y0.shape)}")
    w_dev = xp.asarray(w_host, dtype=dtype)

    def f(x_values=x_host):
        return float((run(x_values) * w_dev).sum())

    # analytic: one forward and one backward of the weighting (backward may overwrite it)
    run(x_host)
    dx = layer.backward(w_dev.copy())
    ana = {"input": _host64(dx)} if layer.needs_input_grad else {}
    ana.update({name: _host64(g) for name, g in layer.grads.items()})

    # numerical: forwards only, so the gradients written above stay the analytic ones
    num = {}
    if layer.needs_input_grad:
        g = np.zeros_like(x_host)
        for idx in np.ndindex(*x_host.shape):
            xs = x_host.copy()
            xs[idx] = x_host[idx] + eps
            f_plus, step = f(xs), xs[idx]
            xs[idx] = x_host[idx] - eps
            f_minus, step = f(xs), step - xs[idx]
            g[idx] = (f_plus - f_minus) / step
        num["input"] = g
    for name, p in layer.params.items():
        num[name] = _central_differences(p, f, eps)
    for name, host in saved_buffers.items():
        layer.buffers[name][...] = xp.asarray(host, dtype=dtype)
    if given_mask is not None:  # still the mask of the next forward, as the caller left it
        layer.next_mask = given_mask
    return {name: (num[name], ana[name]) for name in ana}


# ---------------------------------------------------------------------------- the check
def gradcheck_arrays(target, X, y=None, eps=DEFAULT_EPS, dropout_masks=None, seed=0):
    """``{name: (numerical, analytic)}`` host float64 arrays for a network or a layer, as
    :func:`gradcheck` compares them (for a layer ``y`` is the output weighting ``w``, optional).
    """
    if isinstance(target, Layer):
        return layer_gradients(target, X, w=y, eps=eps, seed=seed)
    if not all(hasattr(target, a) for a in ("loss_and_grads", "named_parameters", "device")):
        raise TypeError(f"gradcheck needs an xpnet network or layer; got {type(target).__name__}")
    return _network_arrays(target, X, y, eps, dropout_masks, seed)


def gradcheck(target, X, y=None, eps=DEFAULT_EPS, rtol=DEFAULT_RTOL, raise_exception=True, *,
              atol=DEFAULT_ATOL, dropout_masks=None, seed=0) -> bool:
    """Check backpropagation against central finite differences, in float64.

    Args:
        target: a network (every parameter gradient of ``loss_and_grads(X, y)`` is checked) or
            a single :class:`~xpnet.layers.Layer` (the gradients of ``sum(w * forward(x))``
            with respect to ``x`` and each parameter; a layer with no parameters bound yet is
            built with ``layer.build("cpu", "float64", seed=seed)``).
        X: the input batch ``(m, n_in)``, host or device array.
        y: a network's targets (required); for a layer, an optional output weighting ``w``
            (default: standard normal from ``seed``).
        eps: the finite-difference step.
        rtol: the bound on each array's normwise relative error ``||num - ana|| / (||num|| +
            ||ana||)``; see the module docstring for why 1e-6.
        raise_exception: raise :class:`GradcheckError` on failure (else return False).
        atol: absolute floor for gradients that are truly zero; an array passes when
            ``||num - ana|| <= atol + rtol * (||num|| + ||ana||)``.
        dropout_masks: a network's dropout masks (one 0/1 ``(m, n)`` array per Dropout layer);
            default: fixed masks drawn from ``seed``, the same for every finite difference.
        seed: seeds the output weighting and the default dropout masks.

    Returns:
        True when every array passes; False when one fails and ``raise_exception`` is False.

    Raises:
        GradcheckError: an array failed (its message names the worst one and its error).
        ValueError: the target is not float64, or a network got no targets.
    """
    arrays = gradcheck_arrays(target, X, y, eps=eps, dropout_masks=dropout_masks, seed=seed)
    errors, excess, lines = {}, {}, {}
    for name, (num, ana) in arrays.items():
        diff = float(np.linalg.norm(num - ana))
        scale = float(np.linalg.norm(num) + np.linalg.norm(ana))
        errors[name] = diff / scale if scale else 0.0
        excess[name] = diff / (atol + rtol * scale)
        lines[name] = (f"{name!r}: relative error {errors[name]:.3e} (||num - ana|| = "
                       f"{diff:.3e}, ||num|| = {np.linalg.norm(num):.3e}, ||ana|| = "
                       f"{np.linalg.norm(ana):.3e})")
    failed = sorted((n for n in excess if excess[n] > 1.0), key=excess.get, reverse=True)
    if not failed:
        return True
    if not raise_exception:
        return False
    worst = failed[0]
    what = type(target).__name__
    message = (f"gradcheck of {what} failed for {len(failed)} of {len(arrays)} arrays "
               f"(rtol={rtol:g}, atol={atol:g}, eps={eps:g}); worst " + lines[worst])
    if len(failed) > 1:
        message += "; also " + ", ".join(f"{n!r} ({errors[n]:.3e})" for n in failed[1:])
    raise GradcheckError(message, worst, errors[worst], errors, failed)
