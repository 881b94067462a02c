"""The one training loop: batches, the step, the epoch's metrics, the callbacks.

:class:`Loop` is what :class:`~xpnet.training.Trainer`, ``xpnet.fit`` and the scikit-learn
estimators train through. Everything that is a policy rather than the loop itself is a
:class:`~xpnet.callbacks.Callback`: the learning-rate schedule, early stopping and the best
epoch, the divergence guard, the progress bar, the epoch printer and the user's function.

Per step (nothing crosses the host/device boundary, nothing is allocated that could be reused)::

    callbacks' on_step_begin (the schedule sets optimizer.lr)
    gather the mini-batch on the device -> forward -> backward -> optimizer update in place
    callbacks' on_step_end (the progress bar)

Per epoch (one device-to-host copy of a few numbers)::

    the record {epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds} -> history
    callbacks' on_epoch_end(loop, record); any true return value stops after this epoch

Randomness is derived from ``(seed, epoch)`` when a seed is given: the shuffle of epoch ``e``
and its dropout masks depend only on the seed and ``e``, so a run saved after ``k`` epochs and
resumed to ``N`` ends with the same parameters as ``N`` epochs straight.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import is_sparse

# Floating-point warnings are off while training: on the way to a divergence NumPy would print
# "overflow encountered in matmul" with a path inside xpnet before TrainingDiverged says it once.
QUIET_FP = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. The network holds the best parameters seen so far."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """Per-epoch records, as lists of equal length (easy to plot).

    ``loss`` is the training objective (data loss plus the L2 term) averaged over the epoch's
    steps, and ``accuracy`` the training accuracy over the same steps (as Keras reports them);
    ``val_loss`` is the dev-set data loss and ``val_accuracy`` the dev accuracy, both measured
    after the epoch. Accuracies are NaN for an identity output; dev values are NaN without a
    dev set. ``seconds`` is each epoch's wall time, the device synchronised.
    """

    epoch: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    diverged: bool = False

    KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")

    def append(self, **record) -> None:
        for key in self.KEYS:
            getattr(self, key).append(record[key])

    def last(self) -> dict:
        return {key: getattr(self, key)[-1] for key in self.KEYS}

    def __len__(self) -> int:
        return len(self.epoch)

    # scikit-learn's names for the same things
    @property
    def loss_curve_(self):
        return self.loss

    @property
    def validation_scores_(self):
        return self.val_accuracy

    @property
    def best_loss_(self):
        return min(self.loss) if self.loss else None

    @property
    def n_iter_(self):
        return len(self.epoch)

    def to_dict(self) -> dict:
        """JSON-ready; NaN becomes None."""
        def clean(values):
            return [None if isinstance(v, float) and math.isnan(v) else v for v in values]

        out = {key: clean(getattr(self, key)) for key in self.KEYS}
        out.update(best_epoch=self.best_epoch, stopped_early=self.stopped_early,
                   interrupted=self.interrupted, diverged=self.diverged)
        return out

    @classmethod
    def from_dict(cls, d) -> History:
        h = cls()
        for key in cls.KEYS:
            setattr(h, key, [float("nan") if v is None else v for v in d.get(key, [])])
        h.best_epoch = d.get("best_epoch")
        h.stopped_early = bool(d.get("stopped_early", False))
        h.interrupted = bool(d.get("interrupted", False))
        h.diverged = bool(d.get("diverged", False))
        return h


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """The seed of one random stream (0: the shuffle, 1: dropout) of epoch ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def batch_bounds(n, bs, min_batch=1):
    """``[(start, stop), ...]`` of each epoch's mini-batches over ``n`` shuffled samples. A
    trailing batch smaller than ``min_batch`` (a batch of 1 with batch norm, whose statistics
    over one sample give zero gradients) is merged into the batch before it, so every sample is
    still seen once per epoch; the bounds depend only on ``n``, so resume stays exact."""
    bounds = [(start, min(start + bs, n)) for start in range(0, n, bs)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def min_train_batch(net, bs, n) -> int:
    """The fewest samples a training batch of ``net`` may hold (2 with batch norm); raise
    ``ValueError`` when even a batch of ``bs`` (of ``n`` samples) is smaller."""
    layers = [layer for layer in net.layers if layer.min_train_batch > 1]
    if not layers:
        return 1
    need = max(layer.min_train_batch for layer in layers)
    if bs < need:
        kind = type(max(layers, key=lambda layer: layer.min_train_batch)).__name__
        fix = f"use batch_size >= {need}" if n >= need else f"train on {need}+ samples"
        raise ValueError(f"a training batch of {bs} sample{'s' * (bs != 1)} is too small "
                         f"for {kind}, which needs at least {need} per batch; {fix}.")
    return need


def _overrides(callback, hook) -> bool:
    from .callbacks import Callback
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class Loop:
    """Trains ``net`` with ``optimizer`` over epochs of mini-batches, calling ``callbacks``.

    Args:
        net: a :class:`~xpnet.network.Sequential` (or :class:`~xpnet.MLP`).
        optimizer: an :class:`~xpnet.optimizers.Optimizer` over ``net``'s flat buffer.
        batch_size: ``None`` for full-batch gradient descent, else the mini-batch size (a
            trailing batch too small for batch norm joins the one before it).
        callbacks: :class:`~xpnet.callbacks.Callback` objects, called in this order.
        seed: with a seed, epoch ``e`` is shuffled by ``epoch_seed(seed, e, 0)`` on the device
            and its dropout masks drawn from ``epoch_seed(seed, e, 1)``.
        shuffle: ``True`` (the seeded shuffle; needs ``seed``), ``False`` (batches in order)
            or a function ``shuffle(epoch, n)`` returning the epoch's order of the ``n`` rows
            as a device integer array (scikit-learn's estimators shuffle with their
            ``random_state``).
        step: ``step(X, y, correct=...)`` (and ``sample_weight=`` with weights) -> the batch's
            mean loss (0-d device array), having filled the gradients; default
            ``net.forward_backward``. A step that returns None skips the batch: no optimizer
            update and nothing added to the epoch's loss (a batch whose weights are all zero
            holds no information).
        parallel: a :class:`~xpnet.distributed.DataParallel` over ``net``; each rank then
            steps on its share of every global batch.
        eval_batch_size: rows per block when evaluating the dev set.

    Attributes:
        epoch: epochs completed (a resumed run continues from here).
        global_step: optimizer steps taken.
        history: the :class:`History`.
        epochs, steps_per_epoch, n_samples, has_val: set by :meth:`run` for the callbacks.
    """

    def __init__(self, net, optimizer, *, batch_size=None, callbacks=(), seed=None,
                 shuffle=True, step=None, parallel=None, eval_batch_size=10000):
        self.net, self.optimizer = net, optimizer
        self.batch_size = batch_size
        self.callbacks = list(callbacks)
        self.seed, self.shuffle = seed, shuffle
        self.step = step
        self.parallel = parallel
        self.eval_batch_size = eval_batch_size
        self.epoch = 0
        self.global_step = 0
        self.history = History()
        self.epochs = self.steps_per_epoch = self.n_samples = None
        self.has_val = False
        self.caller_fp = np.geterr()

    def run(self, X, y, X_val=None, y_val=None, epochs=1, sample_weight=None) -> History:
        """Train on checked device arrays ``X`` (n, n_features) and ``y`` until :attr:`epoch`
        reaches ``epochs`` or a callback stops the run, monitoring ``(X_val, y_val)`` if given.
        ``sample_weight`` (n,), a device array, weights each batch's loss (the step gets the
        batch's weights as ``sample_weight=``). NumPy's floating-point warnings are off during
        the steps; the callbacks run with the caller's settings."""
        self.caller_fp = np.geterr()
        with np.errstate(**QUIET_FP):
            try:
                self._run(X, y, X_val, y_val, epochs, sample_weight)
            finally:
                for cb in self.callbacks:
                    cb.teardown(self)
        return self.history

    def _run(self, X, y, X_val, y_val, epochs, w):
        net, opt, dp, dev = self.net, self.optimizer, self.parallel, self.net.device
        xp = dev.xp
        n = X.shape[0]
        bs = n if self.batch_size is None else min(self.batch_size, n)
        full_batch = bs == n
        bounds = batch_bounds(n, bs, min_train_batch(net, bs, n))
        # This process's rows of each batch: all of them, or with MPI its rank's share.
        mine = bounds if dp is None else [dp.share(start, stop) for start, stop in bounds]
        self.epochs, self.steps_per_epoch, self.n_samples = epochs, len(bounds), n
        self.has_val = X_val is not None
        shuffled = not full_batch and self.shuffle is not False
        sparse = is_sparse(X)  # rows gathered as a new sparse batch, never densified
        batches = {}  # mini-batch buffers by size, reused every step
        if shuffled:
            for size in {hi - lo for lo, hi in mine}:
                batches[size] = (None if sparse else xp.empty((size, X.shape[1]), dtype=X.dtype),
                                 xp.empty((size,) + y.shape[1:], dtype=y.dtype),
                                 None if w is None else xp.empty(size, dtype=w.dtype))
        step = self.step or net.forward_backward
        weighted = {}  # the batch's weights go to the step only when there are weights
        on_step_begin = [cb for cb in self.callbacks if _overrides(cb, "on_step_begin")]
        on_step_end = [cb for cb in self.callbacks if _overrides(cb, "on_step_end")]
        self._each("on_fit_begin")
        while self.epoch < epochs:
            e = self.epoch
            self._each("on_epoch_begin", e)
            t0 = time.perf_counter()
            if self.seed is not None:
                net.reseed_dropout(epoch_seed(self.seed, e, 1))
            loss_sum = xp.zeros((), dtype=xp.float64)
            correct = xp.zeros((), dtype=xp.int64)
            if shuffled:
                perm = (xp.argsort(dev.rng(epoch_seed(self.seed, e, 0)).random(n))
                        if self.shuffle is True else self.shuffle(e, n))
            for (start, stop), (lo, hi) in zip(bounds, mine):
                for cb in on_step_begin:
                    cb.on_step_begin(self)
                if shuffled:
                    idx = perm[lo:hi]
                    Xb, yb, wb = batches[idx.shape[0]]
                    if sparse:
                        Xb = X[idx]
                    else:
                        dev.take_rows(X, idx, Xb)
                    dev.take_rows(y, idx, yb)
                    if w is not None:
                        dev.take_rows(w, idx, wb)
                else:
                    Xb, yb = (X, y) if dp is None and full_batch else (X[lo:hi], y[lo:hi])
                    wb = None if w is None else w[lo:hi]
                if w is not None:
                    weighted["sample_weight"] = wb
                if dp is None:
                    loss = step(Xb, yb, correct=correct, **weighted)
                    if loss is None:
                        continue
                    loss_sum += loss * Xb.shape[0]
                else:  # this rank's share, then the all-reduce: the global gradient
                    loss_sum += dp.forward_backward(Xb, yb, start, stop, lo, correct)
                opt.step()
                self.global_step += 1
                for cb in on_step_end:
                    cb.on_step_end(self, stop - start)
            record = self._record(e, loss_sum, correct, n, X_val, y_val, t0)
            self.history.append(**record)
            self.epoch += 1
            if self._each("on_epoch_end", record):
                break
        self._each("on_fit_end")

    def _each(self, hook, *args) -> bool:
        """Call ``hook`` on every callback in order (all of them, even after one asks to
        stop), with the caller's floating-point settings; True when any asked to stop."""
        stop = False
        with np.errstate(**self.caller_fp):
            for cb in self.callbacks:
                stop = bool(getattr(cb, hook)(self, *args)) or stop
        return stop

    def _record(self, e, loss_sum, correct, n, X_val, y_val, t0) -> dict:
        """The epoch's metrics, with a single device-to-host copy (with MPI, and one
        collective that sums them over the ranks, each having evaluated its share of the dev
        set)."""
        dp, dev = self.parallel, self.net.device
        xp = dev.xp
        parts = [loss_sum, correct]
        if self.has_val:
            Xv, yv = (X_val, y_val) if dp is None else dp.rows(X_val, y_val)
            parts += list(self.net.evaluate_device(Xv, yv, self.eval_batch_size))
        if dp is not None:
            parts.append(dp.checksum())  # in the same host copy
        host = dev.to_numpy(xp.stack([xp.asarray(p, dtype=xp.float64) for p in parts]))
        if dp is not None:
            host = dp.epoch_sums(host)
        host[:2] /= n
        if self.has_val:
            host[2:] /= X_val.shape[0]
        seconds = time.perf_counter() - t0  # to_numpy synchronised the device
        nan = float("nan")
        classify = self.net.head.is_classifier
        return {
            "epoch": e + 1,
            "loss": float(host[0]),
            "accuracy": float(host[1]) if classify else nan,
            "val_loss": float(host[2]) if self.has_val else nan,
            "val_accuracy": float(host[3]) if self.has_val and classify else nan,
            "lr": float(self.optimizer.lr),
            "seconds": seconds,
        }
