"""xpnet: a from-scratch multilayer perceptron that runs the same code on NumPy and CuPy."""

from .backend import Device, DeviceUnavailableError, get_device
from .gradcheck import GradcheckError, gradcheck
from .model import Model
from .network import MLP, Sequential
from .plotting import plot_history
from .preprocessing import Scaler, stratified_split
from .schema import InputSchema
from .targets import Target
from .training import History, InputScaleWarning, Trainer, TrainingDiverged, fit

__version__ = "0.1.0"
__all__ = [
    "Model", "InputSchema", "Target", "MLP", "Sequential", "fit", "Trainer", "History",
    "TrainingDiverged", "InputScaleWarning",
    "plot_history", "Scaler", "stratified_split", "Device", "DeviceUnavailableError",
    "get_device", "load_mnist", "save", "load", "gradcheck", "GradcheckError", "export",
    "from_torch", "to_torch", "__version__",
]


def __getattr__(name):
    # Data and checkpoint helpers are imported on first use, so `import xpnet` stays light.
    if name == "load_mnist":
        from .data import load_mnist
        return load_mnist
    if name in ("save", "load_checkpoint"):
        from . import checkpoint
        return getattr(checkpoint, name)
    if name == "load":  # a Model for files that record one, else the network
        from .model import load
        return load
    if name == "export":  # the module, callable as xpnet.export(net, path, ...): see its doc
        import importlib
        return importlib.import_module(".export", __name__)
    if name in ("from_torch", "to_torch"):
        from .export import from_torch, to_torch
        return from_torch if name == "from_torch" else to_torch
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
