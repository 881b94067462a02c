"""Optimizers and learning-rate schedules.

An optimizer updates a :class:`~xpnet.parameters.FlatParameters`: every parameter of a network
is a view into one flat 1-D buffer ``params.data`` and every gradient a view, laid out the same
way, into ``params.grad``. The optimizer's state (``state[state_name]``) is one more flat
buffer per state name with that same layout, and it owns one flat scratch buffer. So a step is
a handful of whole-buffer ufunc calls, all writing in place through ``out=``, whatever the
number of layers: it allocates nothing, launches a fixed number of kernels on a GPU (instead of
a few per array), and a data-parallel all-reduce of the gradients before it is a single call.
Per-parameter state is still addressed by name (``named_state()``, ``state_dict()`` keys such
as ``"m/0.weight"``) through views of the flat state buffers.

With ``g`` the gradient and ``lr`` the current learning rate (PyTorch's conventions, so results
match ``torch.optim``); ``t`` counts steps, starting at 1 for the first:

    gd / sgd:   p -= lr * g
    momentum:   v = mu * v + g;             p -= lr * v
    nesterov:   v = mu * v + g;             p -= lr * (g + mu * v)
    adam:       m = b1 m + (1 - b1) g;      v = b2 v + (1 - b2) g^2
                p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    adamw:      p *= 1 - lr * wd            (decoupled weight decay, before the adam update;
                                             with decay_all=False only for names not in
                                             params.no_decay: biases and norm parameters)
                then the adam update
    rmsprop:    s = a s + (1 - a) g^2;      d = sqrt(s) + eps
                momentum == 0:  p -= lr * g / d
                momentum  > 0:  b = mu * b + g / d;   p -= lr * b

``gd`` and ``sgd`` are the same update; the name only says whether the trainer feeds it the full
batch or mini-batches. Bias corrections and the decay factor are host scalars, computed once per
step. ``lr`` is a plain attribute: the trainer assigns ``opt.lr = schedule(...)`` before each
step.

Adding an optimizer is one :class:`Optimizer` subclass (explicit keyword hyperparameters, each
stored as the attribute of the same name, and a ``step``) plus one line in :data:`OPTIMIZERS`.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import sys

from .parameters import FlatParameters, check_state_array

__all__ = [
    "GD", "SGD", "Momentum", "Nesterov", "Adam", "AdamW", "RMSprop", "Optimizer",
    "OPTIMIZERS", "make_optimizer", "optimizer_options", "Schedule", "SCHEDULES",
    "UnknownOptionError",
]


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


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_unit(label, x, one_allowed=False):
    """A hyperparameter in [0, 1) (betas, momentum, alpha), or [0, 1] with ``one_allowed``."""
    if not _is_number(x) or not (0 <= x < 1 or one_allowed and x == 1):
        interval = "[0, 1]" if one_allowed else "[0, 1)"
        raise ValueError(f"{label} must be a number in {interval}; got {x!r}")
    return float(x)


def _check_eps(x):
    if not _is_number(x) or not (math.isfinite(x) and x > 0):
        raise ValueError(f"eps must be a finite number > 0; got {x!r}")
    return float(x)


def _flat_parameters(params) -> FlatParameters:
    flat = params if isinstance(params, FlatParameters) else getattr(params, "flat", None)
    if not isinstance(flat, FlatParameters):
        raise TypeError(
            "an optimizer needs a FlatParameters (or a network whose .flat is one), not "
            f"{type(params).__name__}; wrap separate arrays with FlatParameters.from_arrays"
        )
    return flat


class Optimizer:
    """Base class; also plain gradient descent. ``step()`` reads ``params.grad`` and updates
    ``params.data`` in place.

    Args:
        params: a :class:`FlatParameters`, or any object (a network) whose ``.flat`` is one.
        lr: learning rate; ``None`` takes the class's ``default_lr``.

    Attributes:
        lr: the learning rate of the next step (assign to change it).
        t: steps taken.
        params: the :class:`FlatParameters` being updated.
        state: ``{state_name: flat array}`` laid out like ``params.data``, on its device.
    """

    name = "gd"
    default_lr = 0.1
    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr=None, **hyper):
        if hyper:  # subclasses pass on whatever their signature did not take
            raise UnknownOptionError(unknown_options_message(type(self), hyper))
        self.params = _flat_parameters(params)
        self.lr = _check_lr(self.default_lr if lr is None else lr)
        self.t = 0
        self.xp = _array_module(self.params.data)
        self.state = {s: self.params.zeros() for s in self.state_names}
        self._named_views = {s: self.params.views(a) for s, a in self.state.items()}
        self._scratch = self.params.zeros()

    def step(self) -> None:
        self.t += 1
        tmp = self._scratch
        self.xp.multiply(self.params.grad, -self.lr, out=tmp)
        self.params.data += tmp

    def hyperparameters(self) -> dict:
        """``{"lr": lr, option: value, ...}``: the constructor's options, JSON-able."""
        return {"lr": self.lr, **{k: getattr(self, k) for k in optimizer_options(type(self))[1:]}}

    def named_state(self) -> dict:
        """``{param_name: {state_name: view}}``; the views share memory with :attr:`state`."""
        return {p: {s: views[p] for s, views in self._named_views.items()}
                for p in self.params.names}

    def state_dict(self) -> dict:
        """``{"json": {"name", "t", **hyperparameters}, "arrays": {"state/param": view}}`` for
        checkpoints (the arrays are views: copy them out to keep a snapshot)."""
        arrays = {f"{s}/{p}": v for s, views in self._named_views.items()
                  for p, v in views.items()}
        return {"json": {"name": self.name, "t": self.t, **self.hyperparameters()},
                "arrays": arrays}

    def load_state_dict(self, state, send) -> None:
        """Restore ``t`` and the state arrays from :meth:`state_dict` output (the
        hyperparameters stay the constructor's); ``send`` moves a host array to the device.
        Everything is checked before anything is written."""
        meta, arrays = state.get("json", {}), state.get("arrays", {})
        if meta.get("name") != self.name:
            raise ValueError(f"optimizer state is for {meta.get('name')!r}, not {self.name!r}")
        t = meta.get("t")
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"{self.name} optimizer state has a bad step count t={t!r}")
        expected = self.state_dict()["arrays"]
        for key, dst in expected.items():
            if key not in arrays:
                raise ValueError(f"{self.name} optimizer state has no array {key!r} (it was "
                                 "saved for another network or other optimizer settings)")
            check_state_array(f"{self.name} optimizer state array {key!r}", arrays[key],
                              dst.shape)
        extra = sorted(set(arrays) - set(expected))
        if extra:
            raise ValueError(f"{self.name} optimizer state has unexpected arrays {extra} (it was "
                             "saved for another network or other optimizer settings)")
        for key, dst in expected.items():
            dst[...] = send(arrays[key])
        self.t = int(t)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args}, t={self.t})"


class GD(Optimizer):
    name = "gd"
    default_lr = 0.1


class SGD(Optimizer):
    name = "sgd"
    default_lr = 0.1


class Momentum(Optimizer):
    name = "momentum"
    default_lr = 0.05
    state_names = ("velocity",)

    momentum_one_allowed = False  # scikit-learn's momentum is in [0, 1]; xpnet's in [0, 1)

    def __init__(self, params, lr=None, momentum=0.9, **unknown):
        self.momentum = _check_unit("momentum", momentum, self.momentum_one_allowed)
        super().__init__(params, lr, **unknown)

    def step(self) -> None:
        self.t += 1
        g, v, tmp = self.params.grad, self.state["velocity"], self._scratch
        v *= self.momentum
        v += g
        self.xp.multiply(v, -self.lr, out=tmp)
        self.params.data += tmp


class Nesterov(Momentum):
    name = "nesterov"

    def step(self) -> None:
        self.t += 1
        g, v, tmp = self.params.grad, self.state["velocity"], self._scratch
        v *= self.momentum
        v += g
        self.xp.multiply(v, self.momentum, out=tmp)
        tmp += g
        tmp *= -self.lr
        self.params.data += tmp


class Adam(Optimizer):
    """Adam. ``default_lr`` is 2e-3, xpnet's tuned value for its MNIST MLP (``torch.optim.Adam``
    defaults to 1e-3)."""

    name = "adam"
    default_lr = 2e-3
    state_names = ("m", "v")

    def __init__(self, params, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, **unknown):
        self.beta1 = _check_unit("beta1", beta1)
        self.beta2 = _check_unit("beta2", beta2)
        self.eps = _check_eps(eps)
        super().__init__(params, lr, **unknown)

    def _update_scalars(self):
        """``(eps_term, scale)`` of this step, host scalars computed once per step, so that the
        update is ``p += scale * m / (sqrt(v) + eps_term)``. PyTorch's Adam adds ``eps`` to the
        bias-corrected ``sqrt(v) * s`` (``s = 1 / sqrt(1 - b2^t)``); dividing through by ``s``
        gives ``eps_term = eps / s`` and ``scale = -lr / (1 - b1^t) / s``, one pass fewer than
        scaling ``sqrt(v)`` first."""
        denom_scale = 1.0 / math.sqrt(1 - self.beta2**self.t)
        step_size = -self.lr / (1 - self.beta1**self.t)
        return self.eps / denom_scale, step_size / denom_scale

    def step(self) -> None:
        self.t += 1
        eps_term, scale = self._update_scalars()
        # 12 whole-buffer in-place passes (ufuncs writing into ``tmp``, no temporaries).
        xp, g, tmp = self.xp, self.params.grad, self._scratch
        m, v = self.state["m"], self.state["v"]
        m *= self.beta1
        xp.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += eps_term
        xp.divide(m, tmp, out=tmp)
        tmp *= scale
        self.params.data += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: ``p *= 1 - lr * weight_decay``
    before the Adam update. With ``decay_all=False`` the names in ``params.no_decay`` (biases and
    normalisation parameters) are left alone: the decayed names are merged, at construction,
    into contiguous runs of the flat buffer and the multiply is applied per run.
    ``default_lr`` is 2e-3 as for :class:`Adam` (torch's is 1e-3)."""

    name = "adamw"
    default_lr = 2e-3

    def __init__(self, params, lr=None, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 decay_all=True, **unknown):
        if not _is_number(weight_decay) or not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0; got {weight_decay!r}")
        if not isinstance(decay_all, bool):
            raise ValueError(f"decay_all must be True or False; got {decay_all!r}")
        self.weight_decay, self.decay_all = float(weight_decay), decay_all
        super().__init__(params, lr, beta1, beta2, eps, **unknown)
        self._decay_runs = [self.params.data[s] for s in self._decayed_slices()]

    def _decayed_slices(self) -> list[slice]:
        if self.weight_decay == 0:
            return []
        if self.decay_all:
            return [slice(0, self.params.size)]
        runs: list[slice] = []
        for name, s in self.params.slices.items():
            if name in self.params.no_decay or s.stop == s.start:
                continue
            if runs and runs[-1].stop == s.start:
                runs[-1] = slice(runs[-1].start, s.stop)
            else:
                runs.append(s)
        return runs

    def step(self) -> None:
        if self._decay_runs:
            factor = 1.0 - self.lr * self.weight_decay
            for run in self._decay_runs:
                run *= factor
        super().step()


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop`` (not centered, no weight decay). State
    ``"square_avg"``, plus ``"momentum_buffer"`` only when ``momentum > 0``. ``default_lr`` is
    1e-3, xpnet's choice for its MNIST MLP: torch's default of 1e-2 is too high for it."""

    name = "rmsprop"
    default_lr = 1e-3
    state_names = ("square_avg",)

    def __init__(self, params, lr=None, alpha=0.99, eps=1e-8, momentum=0.0, **unknown):
        self.alpha = _check_unit("alpha", alpha)
        self.eps = _check_eps(eps)
        self.momentum = _check_unit("momentum", momentum)
        if self.momentum > 0:
            self.state_names = ("square_avg", "momentum_buffer")
        super().__init__(params, lr, **unknown)

    def step(self) -> None:
        self.t += 1
        xp, g, tmp = self.xp, self.params.grad, self._scratch
        sq = self.state["square_avg"]
        sq *= self.alpha
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.alpha
        sq += tmp
        xp.sqrt(sq, out=tmp)
        tmp += self.eps
        xp.divide(g, tmp, out=tmp)  # g / (sqrt(s) + eps)
        if self.momentum > 0:
            buf = self.state["momentum_buffer"]
            buf *= self.momentum
            buf += tmp
            xp.multiply(buf, -self.lr, out=tmp)
        else:
            tmp *= -self.lr
        self.params.data += tmp


OPTIMIZERS = {
    "gd": GD,
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
}


def optimizer_class(name_or_class):
    if isinstance(name_or_class, type) and issubclass(name_or_class, Optimizer):
        return name_or_class
    if not isinstance(name_or_class, str) or name_or_class not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name_or_class!r}: choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name_or_class]


def optimizer_options(name_or_class) -> tuple[str, ...]:
    """The keyword options of an optimizer (a registry name or a class), ``"lr"`` first, read
    from its constructor's signature: ``optimizer_options("momentum") == ("lr", "momentum")``."""
    cls = optimizer_class(name_or_class)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, params
    return tuple(p.name for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class UnknownOptionError(TypeError, ValueError):
    """A keyword that the optimizer (or the trainer) does not take. A ``TypeError``, as Python
    raises for an unexpected keyword argument, and a ``ValueError``, as xpnet raised before."""


def unknown_options_message(cls, given) -> str:
    """``optimizer 'momentum' has no option 'momentun' (did you mean 'momentum'?); its options
    are: lr, momentum``: the close match, when there is one, comes from :mod:`difflib`."""
    options = optimizer_options(cls)

    def named(key):
        close = difflib.get_close_matches(str(key), options, n=1)
        return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

    names = ", ".join(named(k) for k in given)
    noun = "option" if len(given) == 1 else "options"
    return f"optimizer {cls.name!r} has no {noun} {names}; its options are: {', '.join(options)}"


def make_optimizer(name, params, lr=None, **kwargs) -> Optimizer:
    """Build an optimizer by registry name; keyword arguments go to its constructor as given,
    and one it does not take is an :class:`UnknownOptionError` (a ``TypeError`` and a
    ``ValueError``) naming the options it has and the close match, if any."""
    cls = optimizer_class(name)
    unknown = {k: v for k, v in kwargs.items() if k not in optimizer_options(cls)}
    if unknown:
        raise UnknownOptionError(unknown_options_message(cls, unknown))
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
