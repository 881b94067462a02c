"""xpnet: a from-scratch multilayer perceptron that runs the same code on NumPy and CuPy."""

from .backend import Device, DeviceUnavailableError, get_device
from .network import MLP

__version__ = "0.1.0"
__all__ = ["MLP", "Device", "DeviceUnavailableError", "get_device", "__version__"]
