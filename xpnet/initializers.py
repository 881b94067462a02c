"""Weight initialisers. Each returns a host float64 array ``W`` of shape ``(n_out, n_in)``.

Weights are drawn on the host with NumPy so that the same seed gives bit-identical starting
weights on every device; the network then sends them to its device once.

    he:      W ~ N(0, 2 / n_in)                  (He et al. 2015, for ReLU-family units)
    xavier:  W ~ N(0, 2 / (n_in + n_out))        (Glorot & Bengio 2010, for tanh / sigmoid)
    normal:  W ~ N(0, 1) * 0.01                  (the tutorials' small random start)
"""

from __future__ import annotations

import numpy as np


def he(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)


def xavier(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / (n_in + n_out))


def normal(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    return rng.standard_normal((n_out, n_in)) * 0.01


INITIALIZERS = {"he": he, "xavier": xavier, "normal": normal}
