"""The mini-batch step driven from the device, so that a GPU can replay it as one CUDA graph.

A batch-128 training step of the MNIST MLP is about 70 small kernels. On a GPU, launching
them one by one from Python costs far more than running them (on an H200: about 1.1 ms of
launches per step against tens of microseconds of arithmetic, ``bench/results/h200-*``). So the
:class:`~xpnet.training.Trainer` records one whole step into a CUDA graph
(:meth:`xpnet.backend.Device.step_graph`) and launches that graph once per step.

A graph repeats the kernels it recorded with the same arguments: the same arrays, and the same
scalar values. Everything that changes from one step to the next therefore lives on the
device, where the step reads it:

* the rows of the batch: the epoch's permutation as a ``(steps, batch_size)`` table; step
  ``s`` gathers row ``counter``;
* the optimizer's scalars of each step (learning rate from the schedule, bias corrections):
  a ``(steps, n)`` table filled on the host once per epoch from
  :meth:`~xpnet.optimizers.Optimizer.coefficients`, read at row ``counter``;
* ``counter`` itself, which the step advances.

The arithmetic is the eager loop's, step for step (``tests/test_device_loop.py`` checks equal
results on the CPU; ``tests/gpu`` with and without the graph on a GPU). Used for mini-batches
without MPI, without active dropout (its masks come from a generator seeded on the host), and
with an optimizer whose step is ``apply(coefficients(t, lr))``; the shorter last batch of an
epoch runs eagerly.
"""

from __future__ import annotations

import numpy as np

from .layers import Dropout

__all__ = ["DeviceSteps", "device_drivable"]


def device_drivable(net, optimizer) -> bool:
    """Whether a step of ``net`` with ``optimizer`` can be driven from the device."""
    dropout = any(isinstance(layer, Dropout) and layer.p > 0 for layer in net.layers)
    return optimizer.device_drivable and not dropout


class DeviceSteps:
    """The full-size mini-batches of each epoch, one device-driven step per call of
    :meth:`step`.

    Args:
        net, optimizer: what is trained (``optimizer.t`` and ``lr`` are advanced by the caller).
        X, y: the training data on the device, ``(n, n_features)`` and ``(n,)`` or ``(n, k)``.
        batch: ``(Xb, yb)``, the reused batch buffers of ``batch_size`` rows.
        steps: full-size batches per epoch.
        loss_sum, correct: 0-d device accumulators the steps add to (the loss times the batch
            size, and the correct count).
        record_graph: record the step as a CUDA graph where the device can.
    """

    def __init__(self, net, optimizer, X, y, batch, steps, loss_sum, correct, record_graph=True):
        dev, xp = net.device, net.device.xp
        self.net, self.optimizer, self.X, self.y = net, optimizer, X, y
        self.Xb, self.yb = batch
        self.batch_size, self.steps = self.Xb.shape[0], steps
        self.loss_sum, self.correct = loss_sum, correct
        n_coefficients = len(optimizer.coefficients(1, optimizer.lr))
        self._dtype = net.flat.data.dtype
        self.order = xp.empty((steps, self.batch_size), dtype=xp.int64)
        self.table = xp.empty((steps, n_coefficients), dtype=self._dtype)
        self.counter = xp.zeros(1, dtype=xp.int64)
        self._rows = xp.empty((1, self.batch_size), dtype=xp.int64)
        self._row = xp.empty((1, n_coefficients), dtype=self._dtype)
        # 0-d views of this step's row: the optimizer reads its scalars through them. (The
        # Ellipsis keeps them views in NumPy too, where row[0, j] would be a copied scalar.)
        self._coefficients = tuple(self._row[0, j, ...] for j in range(n_coefficients))
        self.step = dev.step_graph(self._body) if record_graph else self._body

    def start_epoch(self, perm, schedule, first_step, epoch) -> None:
        """Load the epoch's batch order (``perm``, a device permutation of the ``n`` rows) and
        the optimizer's scalars for its steps (``schedule(step, epoch)`` from ``first_step``),
        and rewind the counter: the epoch's one host-to-device copy, a few kilobytes."""
        opt, dev = self.optimizer, self.net.device
        rows = [opt.coefficients(opt.t + 1 + s, schedule(first_step + s, epoch))
                for s in range(self.steps)]
        self.table[...] = dev.send(np.asarray(rows, dtype=self._dtype))
        self.order[...] = perm[:self.steps * self.batch_size].reshape(self.steps, -1)
        self.counter[...] = 0

    def _body(self) -> None:
        """One step, reading its batch and scalars at row ``counter``; no host scalar changes
        between calls and nothing synchronises, so a CUDA graph can replay it."""
        xp, dev = self.net.device.xp, self.net.device
        xp.take(self.order, self.counter, axis=0, out=self._rows)
        rows = self._rows[0]
        dev.take_rows(self.X, rows, self.Xb)
        dev.take_rows(self.y, rows, self.yb)
        loss = self.net.forward_backward(self.Xb, self.yb, correct=self.correct)
        self.loss_sum += loss * self.batch_size
        xp.take(self.table, self.counter, axis=0, out=self._row)
        self.optimizer.apply(self._coefficients)
        self.counter += 1
