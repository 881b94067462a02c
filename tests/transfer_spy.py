"""Counting host/device transfers of a ``Trainer.fit`` run (tests/test_transfers.py on the CPU,
tests/gpu/test_gpu_training.py on a CUDA device).

:func:`instrument` wraps ``Device.to_numpy``, ``Device.send`` and ``Device.synchronize`` (at class
level, calling the originals) to log each call with the xpnet source line that made it, and logs
the loop's landmarks too: the step (``net.forward_backward``), the optimizer update and the end of
each epoch (the trainer's callback). :func:`check_transfers` then asserts the pattern ``Trainer``
promises (xpnet/training.py):

* before the first step: anything goes (inputs are validated and sent once);
* inside an epoch, from its first step to its metric read: no send, no to_numpy, no synchronize;
* exactly one to_numpy per epoch, after the epoch's last update and before the epoch ends.
"""

from __future__ import annotations

import os
import traceback

import xpnet
from xpnet.backend import Device
from xpnet.callbacks import FunctionCallback

TRANSFERS = ("to_numpy", "send", "synchronize")
XPNET_DIR = os.path.dirname(os.path.abspath(xpnet.__file__))


def _caller() -> str:
    """``file:line`` of the innermost xpnet frame outside backend.py that made the call."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if path.startswith(XPNET_DIR) and not path.endswith("backend.py"):
            return f"{os.path.relpath(path, os.path.dirname(XPNET_DIR))}:{frame.lineno}"
    return "outside xpnet"


def instrument(monkeypatch, trainer):
    """Log transfers and loop landmarks of ``trainer.fit`` as ``(event, where)`` tuples."""
    events = []
    for name in TRANSFERS:
        original = getattr(Device, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            events.append((_name, _caller()))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Device, name, wrapper)

    step, update = trainer.net.forward_backward, trainer.optimizer.step

    def counted_step(*args, **kwargs):
        events.append(("step", ""))
        return step(*args, **kwargs)

    def counted_update(*args, **kwargs):
        events.append(("update", ""))
        return update(*args, **kwargs)

    monkeypatch.setattr(trainer.net, "forward_backward", counted_step)
    monkeypatch.setattr(trainer.optimizer, "step", counted_update)
    trainer.callbacks.append(
        FunctionCallback(lambda trainer, record: events.append(("epoch_end", "")), trainer))
    return events


def check_transfers(events, epochs, steps_per_epoch):
    """Assert the transfer pattern described in the module docstring; explain any violation."""
    log = "\n".join(f"  {i:3d} {e:<12} {w}" for i, (e, w) in enumerate(events))
    names = [e for e, _ in events]
    assert names.count("epoch_end") == epochs, f"expected {epochs} epochs:\n{log}"
    assert names.count("to_numpy") == epochs, (
        f"to_numpy must run exactly once per epoch ({epochs}), ran {names.count('to_numpy')} "
        f"times:\n{log}")
    first_step = names.index("step")
    bounds = [i for i, e in enumerate(names) if e == "epoch_end"]
    start = first_step
    for epoch, end in enumerate(bounds, 1):
        chunk = events[start:end]
        kinds = [e for e, _ in chunk]
        assert kinds.count("step") == kinds.count("update") == steps_per_epoch, (
            f"epoch {epoch}: expected {steps_per_epoch} steps:\n{log}")
        read = kinds.index("to_numpy")
        last_update = len(kinds) - 1 - kinds[::-1].index("update")
        assert read > last_update, f"epoch {epoch}: metrics read before the last update:\n{log}"
        inside = [(e, w) for e, w in chunk[:read] if e in TRANSFERS]
        assert not inside, (
            f"epoch {epoch}: host/device transfer inside the step loop: "
            f"{', '.join(f'{e} at {w}' for e, w in inside)}\n{log}")
        after = [(e, w) for e, w in chunk[read + 1:] if e in TRANSFERS]
        assert not after, f"epoch {epoch}: extra transfers after the metric read: {after}\n{log}"
        start = end + 1
    tail = [(e, w) for e, w in events[start:] if e in TRANSFERS]
    assert not tail, f"transfers after the last epoch: {tail}\n{log}"
