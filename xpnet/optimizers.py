"""Optimizers and learning-rate schedules.

Every optimizer updates its parameters in place, keeps its state on the parameters' device, and
uses one scratch buffer per parameter so a step allocates nothing. With ``g`` the gradient and
``lr`` the current learning rate (PyTorch's conventions, so results match ``torch.optim``):

    gd / sgd:   p -= lr * g
    momentum:   v = mu * v + g;             p -= lr * v
    nesterov:   v = mu * v + g;             p -= lr * (g + mu * v)
    adam:       m = b1 m + (1 - b1) g;      v = b2 v + (1 - b2) g^2;     t += 1
                p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

``gd`` and ``sgd`` are the same update; the name only says whether the trainer feeds it the full
batch or mini-batches.
"""

from __future__ import annotations

import math
import numbers
import sys


def _array_module(array):
    """The module of ``array``'s type (numpy or cupy), for ufuncs with ``out=``; optimizers are
    handed arrays, not a Device, and only the backend may import cupy."""
    return sys.modules[type(array).__module__.partition(".")[0]]


def _check_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (
        math.isfinite(lr) and lr > 0
    ):
        raise ValueError(f"learning rate must be a finite number > 0; got {lr!r}")
    return float(lr)


def _zeros_like(a):
    out = a.copy()  # same array module, device and dtype as the parameter
    out[...] = 0
    return out


class Optimizer:
    """Base class: ``step(grads)`` updates ``params`` (lists of same-shaped arrays) in place."""

    name = "gd"
    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr=0.01):
        self.params = list(params)
        self.lr = _check_lr(lr)
        self.t = 0
        self.state = {name: [_zeros_like(p) for p in self.params] for name in self.state_names}
        self._scratch = [p.copy() for p in self.params]
        self.xp = _array_module(self.params[0]) if self.params else None

    def step(self, grads) -> None:
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g, self._scratch[i])

    def _update(self, i, p, g, tmp):
        self.xp.multiply(g, -self.lr, out=tmp)
        p += tmp

    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """``{"json": {...}, "arrays": {name: array}}`` for checkpoints."""
        arrays = {f"{name}{i}": a for name, lst in self.state.items() for i, a in enumerate(lst)}
        return {"json": {"name": self.name, "t": self.t, **self.hyperparameters()},
                "arrays": arrays}

    def load_state_dict(self, state, send) -> None:
        """Restore from :meth:`state_dict`; ``send`` moves host arrays to the device."""
        if state["json"].get("name") != self.name:
            raise ValueError(
                f"optimizer state is for {state['json'].get('name')!r}, not {self.name!r}"
            )
        self.t = int(state["json"]["t"])
        for name, lst in self.state.items():
            for i, a in enumerate(lst):
                a[...] = send(state["arrays"][f"{name}{i}"])


class GD(Optimizer):
    name = "gd"


class SGD(Optimizer):
    name = "sgd"


class Momentum(Optimizer):
    name = "momentum"
    state_names = ("velocity",)

    def __init__(self, params, lr=0.01, momentum=0.9):
        if not isinstance(momentum, numbers.Real) or not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.momentum = float(momentum)
        super().__init__(params, lr)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}

    def _update(self, i, p, g, tmp):
        v = self.state["velocity"][i]
        v *= self.momentum
        v += g
        self.xp.multiply(v, -self.lr, out=tmp)
        p += tmp


class Nesterov(Momentum):
    name = "nesterov"

    def _update(self, i, p, g, tmp):
        v = self.state["velocity"][i]
        v *= self.momentum
        v += g
        self.xp.multiply(v, self.momentum, out=tmp)
        tmp += g
        tmp *= -self.lr
        p += tmp


class Adam(Optimizer):
    name = "adam"
    state_names = ("m", "v")

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
                raise ValueError(f"{label} must be in [0, 1); got {beta!r}")
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"eps must be > 0; got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        super().__init__(params, lr)

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def step(self, grads) -> None:
        self.t += 1
        # Bias corrections are host scalars, computed once per step rather than per parameter.
        self._step_size = -self.lr / (1 - self.beta1**self.t)
        self._denom_scale = 1.0 / math.sqrt(1 - self.beta2**self.t)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, g, self._scratch[i])

    def _update(self, i, p, g, tmp):
        # 13 in-place passes (ufuncs writing into ``tmp`` instead of copy-then-modify).
        xp = self.xp
        m, v = self.state["m"][i], self.state["v"][i]
        m *= self.beta1
        xp.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        # tmp = sqrt(v) / sqrt(1 - b2^t) + eps; then p += step_size * m / tmp
        xp.sqrt(v, out=tmp)
        tmp *= self._denom_scale
        tmp += self.eps
        xp.divide(m, tmp, out=tmp)
        tmp *= self._step_size
        p += tmp


OPTIMIZERS = {
    "gd": GD,
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
}


def make_optimizer(name, params, lr, **kwargs) -> Optimizer:
    """Build an optimizer by name; extra keyword arguments go to its constructor."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[name]
    if cls in (GD, SGD):
        kwargs = {}
    elif cls in (Momentum, Nesterov):
        kwargs = {k: v for k, v in kwargs.items() if k == "momentum"}
    else:
        kwargs = {k: v for k, v in kwargs.items() if k in ("beta1", "beta2", "eps")}
    return cls(params, lr, **kwargs)


# ---------------------------------------------------------------------- schedules
SCHEDULES = ("constant", "step", "cosine")


class Schedule:
    """Learning rate as a function of the step (0-based) and epoch.

    constant: lr
    step:     lr * gamma ** (epoch // step_size)
    cosine:   lr * 0.5 * (1 + cos(pi * step / total_steps))   (decays towards 0 over the run)
    """

    def __init__(self, kind, lr, total_steps=1, step_size=10, gamma=0.1):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}")
        if kind == "step" and (not isinstance(step_size, numbers.Integral) or step_size < 1):
            raise ValueError(f"step_size must be a whole number of epochs >= 1; got {step_size!r}")
        if kind == "step" and not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1]; got {gamma!r}")
        self.kind, self.lr = kind, _check_lr(lr)
        self.total_steps = max(int(total_steps), 1)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, step: int, epoch: int) -> float:
        if self.kind == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps) /
                                                 self.total_steps))
        return self.lr
