"""Weight initialisers. Each returns a host float64 array ``W`` of shape ``(n_out, n_in)``.

Weights are drawn on the host with NumPy so that the same seed gives bit-identical starting
weights on every device; the network then sends them to its device once.

    he:          W ~ N(0, 2 / n_in)              (He et al. 2015, for ReLU-family units)
    xavier:      W ~ N(0, 2 / (n_in + n_out))    (Glorot & Bengio 2010, for tanh / sigmoid)
    normal:      W ~ N(0, 1) * 0.01              (the tutorials' small random start)
    normal:S     W ~ N(0, 1) * S                 (any other scale: normal:0.1 is the start of
                                                  the tutorial whose tanh net needs it)

An ``init`` is named by a spec string, ``"he"`` or ``"normal:0.1"``: :func:`check_init`
validates one (a scale must be a positive, finite number) and :func:`draw` draws with it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INITIALIZERS", "check_init", "draw", "he", "normal", "xavier"]


def he(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)


def xavier(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / (n_in + n_out))


def normal(rng: np.random.Generator, n_out: int, n_in: int, scale: float = 0.01) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * scale


INITIALIZERS = {"he": he, "xavier": xavier, "normal": normal}
SCALED = ("normal",)  # the initialisers that take a scale: name:S


def check_init(spec) -> str:
    """``spec`` (``"he"``, ``"xavier"``, ``"normal"`` or ``"normal:S"``) checked, as it will be
    recorded; ValueError in one sentence otherwise."""
    if not isinstance(spec, str):
        raise ValueError(f"init must be a name such as 'he' or 'normal:0.1'; got {spec!r}")
    name, _, scale = spec.partition(":")
    if name not in INITIALIZERS:
        raise ValueError(f"unknown init {spec!r}: choose one of "
                         f"{', '.join(map(repr, INITIALIZERS))}, or normal:SCALE")
    if not _:
        return spec
    if name not in SCALED:
        raise ValueError(f"init {spec!r}: only {', '.join(SCALED)} takes a scale "
                         f"(normal:0.1); {name} sets its own from the layer's sizes")
    try:
        value = float(scale)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"init {spec!r}: the scale must be a positive, finite number, such as "
                         f"normal:0.1")
    return spec


def draw(spec: str, rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """``W`` (n_out, n_in) drawn by the initialiser ``spec`` (see :func:`check_init`)."""
    name, _, scale = check_init(spec).partition(":")
    if scale:
        return INITIALIZERS[name](rng, n_out, n_in, float(scale))
    return INITIALIZERS[name](rng, n_out, n_in)
