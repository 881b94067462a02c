"""Layers: one class each, forward and backward side by side (see :mod:`.base` for the contract)."""

from .activations import ACTIVATIONS, GELU, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from .base import Layer
from .dropout import Dropout
from .linear import Linear
from .norm import BatchNorm1d

LAYERS = {cls.__name__: cls for cls in (Linear, BatchNorm1d, Dropout, *ACTIVATIONS.values())}
"""Every built-in layer by class name (how a saved :class:`~xpnet.network.Sequential` names its
layers)."""

__all__ = ["ACTIVATIONS", "LAYERS", "BatchNorm1d", "Dropout", "GELU", "Layer", "LeakyReLU",
           "Linear", "ReLU", "SiLU", "Sigmoid", "Tanh"]
