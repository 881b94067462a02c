"""The training loop: batches, dev set, early stopping, divergence, history and resume.

Per step (nothing crosses the host/device boundary, nothing is allocated that could be reused):
    gather the mini-batch on the device -> forward -> backward -> optimizer update in place
Per epoch (one device-to-host copy of a few numbers):
    train loss/accuracy (accumulated during the epoch on the device), dev loss/accuracy,
    history, early stopping, progress (a bar per epoch, closed before the epoch's line and
    callback).
Per fit (one more device-to-host copy): a check of the inputs' scale
(:class:`InputScaleWarning`).

Randomness is derived from ``(seed, epoch)``: the shuffle of epoch ``e`` and its dropout masks
depend only on the seed and ``e``. So a run saved after ``k`` epochs and resumed to ``N`` ends
with the same parameters as ``N`` epochs straight.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .backend import as_array, is_device_array
from .distributed import DataParallel
from .network import Sequential, check_seed
from .optimizers import (
    Optimizer,
    Schedule,
    UnknownOptionError,
    make_optimizer,
    optimizer_class,
    optimizer_options,
    unknown_options_message,
)
from .parameters import check_state_array
from .preprocessing import stratified_split
from .progress import progress_bar

TRAINER_FORMAT = 2  # 1: state arrays keyed by position (read by the v1 checkpoint converter)

# Inputs whose largest per-feature root-mean-square exceeds this look unscaled (see
# InputScaleWarning); rows are squared in blocks of about this many elements.
INPUT_SCALE_LIMIT = 10.0
_SCALE_BLOCK = 1 << 22

# Floating-point warnings are off while training: on the way to a divergence NumPy would print
# "overflow encountered in matmul" with a path inside xpnet before TrainingDiverged says it once.
_QUIET_FP = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. The network holds the best parameters seen so far."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


class InputScaleWarning(UserWarning):
    """``fit`` was given inputs on a raw scale (such as 0-255 pixels), which train slowly or
    diverge. Issued at most once per ``fit``, when some feature's root-mean-square over the
    training set exceeds :data:`INPUT_SCALE_LIMIT` (10): never for inputs in [-1, 1], nor for
    standardised ones (whose every feature has a root-mean-square of 1, however large its rare
    values). Silence it with ``warnings.simplefilter("ignore", xpnet.InputScaleWarning)``."""


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


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
    return int(value)


def _batch_bounds(n, bs, min_batch=1):
    """``[(start, stop), ...]`` of each epoch's mini-batches over ``n`` shuffled samples. A
    trailing batch smaller than ``min_batch`` (a batch of 1 with batch norm, whose statistics
    over one sample give zero gradients) is merged into the batch before it, so every sample is
    still seen once per epoch; the bounds depend only on ``n``, so resume stays exact."""
    bounds = [(start, min(start + bs, n)) for start in range(0, n, bs)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _part(d, key, what):
    value = _field(d, key, what)
    if not isinstance(value, dict):
        raise ValueError(f"cannot resume: the {what}'s {key!r} is a {type(value).__name__}, not "
                         f"a mapping; the checkpoint is damaged")
    return value


def _field(d, key, what="run state"):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"cannot resume: the {what} lacks {key!r}; the checkpoint is damaged or "
                         f"was not written by Trainer.state_dict")
    return d[key]


def _count(d, key):
    value = _field(d, key)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"cannot resume: the run state's {key} is {value!r}, not a whole number "
                         f">= 0; the checkpoint is damaged")
    return int(value)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class Trainer:
    """Trains a network (:class:`~xpnet.network.Sequential` or :class:`~xpnet.MLP`) in place.

    Args:
        net: the network.
        optimizer: a name in :data:`~xpnet.optimizers.OPTIMIZERS` (``gd`` | ``sgd`` |
            ``momentum`` | ``nesterov`` | ``adam`` | ``adamw`` | ``rmsprop``) or an
            :class:`~xpnet.optimizers.Optimizer` subclass.
        lr: base learning rate; ``None`` takes the optimizer's ``default_lr``.
        epochs: total epochs (a resumed run continues up to this many).
        batch_size: ``None`` for full-batch gradient descent, else the mini-batch size. With
            batch norm a batch needs 2+ samples: a trailing batch of 1 joins the batch before it
            (54,001 samples in batches of 1000 train as 53 x 1000 + 1 x 1001).
        schedule: ``constant`` | ``step`` (x ``gamma`` every ``step_size`` epochs) | ``cosine``
            (over all planned steps).
        patience: stop after this many epochs without improvement of the monitored loss (dev
            loss when there is a dev set, else training loss) by more than ``min_delta``;
            0 turns early stopping off.
        restore_best: at the end, restore the parameters (and batch-norm statistics) of the best
            epoch. ``None`` (the default) means: when early stopping is on and there is a dev
            set, as scikit-learn does with ``early_stopping=True``. A run stopped by the callback
            keeps its current parameters, so that it can be saved and resumed exactly.
        seed: seeds shuffling and dropout; ``None`` draws one (kept in :attr:`seed`).
        progress: show a tqdm bar per epoch (``epoch 3/7``, samples and samples/s on
            stderr) when tqdm is installed; each bar is cleared when its epoch's steps and dev
            evaluation end, before the verbose line and the callback, so that what they print
            starts on a clean line. Nothing happens (and nothing fails) without tqdm.
        verbose: print one line per epoch to stdout, as Keras does:
            ``Epoch 3/7 - 1.2s - loss: 0.1234 - accuracy: 0.9650 - val_loss: 0.1100 -
            val_accuracy: 0.9700`` (``val_*`` only with a dev set, accuracies only for a
            classifier). Off by default: the library prints nothing.
        callback: ``callback(trainer, record)`` after each epoch; a true return value stops
            training cleanly after that epoch (``history.interrupted``).
        comm: data-parallel training over MPI: :func:`xpnet.distributed.init`'s communicator
            (or an mpi4py one). Each rank trains on its share of every global batch of
            ``batch_size``, and the result is that of one process (see
            :mod:`xpnet.distributed`); rank 0's seed and starting state are used, and only rank
            0 shows the progress bar and the verbose lines. Every rank must call :meth:`fit`
            with the same data and settings: before the first step the ranks compare their
            data (sizes and a checksum of the contents) and every trainer and network setting,
            and a difference stops them with one line that names it.
        **optimizer_options: passed to the optimizer's constructor as they are (e.g.
            ``momentum=0.8``, ``beta2=0.99``, ``weight_decay=0.05``). A keyword that neither
            the trainer nor the optimizer takes is an
            :class:`~xpnet.optimizers.UnknownOptionError` (a ``TypeError`` and a
            ``ValueError``) with the close match: ``did you mean 'epochs'?`` for ``epoch=3``,
            or the optimizer's options.
    """

    def __init__(self, net: Sequential, optimizer="adam", lr=None, epochs=10, batch_size=None,
                 schedule="constant", step_size=None, gamma=0.1, patience=0, min_delta=0.0,
                 restore_best=None, seed=None, progress=False, callback=None,
                 eval_batch_size=10000, comm=None, verbose=False, **optimizer_options):
        _check_keywords("Trainer", optimizer_options, optimizer)
        self.net = net
        self.parallel = None if comm is None else DataParallel(comm, net)
        self.epochs = _positive_int("epochs", epochs)
        self.batch_size = _positive_int("batch_size", batch_size, allow_none=True)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be a whole number >= 0 (0 = off); got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) \
                or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0; got {min_delta!r}")
        self.patience, self.min_delta = int(patience), float(min_delta)
        if restore_best is not None and not isinstance(restore_best, (bool, np.bool_)):
            raise ValueError(f"restore_best must be True, False or None; got {restore_best!r}")
        self.restore_best = self.patience > 0 if restore_best is None else bool(restore_best)
        seed = check_seed(seed)
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        if self.parallel is not None:
            self.seed = self.parallel.agree_seed(self.seed)
            progress = progress and self.parallel.rank == 0
        if not isinstance(verbose, (numbers.Integral, np.bool_)) or verbose not in (0, 1):
            raise ValueError(f"verbose must be True or False; got {verbose!r}")
        self.verbose = bool(verbose) and (self.parallel is None or self.parallel.rank == 0)
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be a function callback(trainer, record) or None; "
                             f"got {callback!r}")
        self.progress, self.callback = progress, callback
        self._caller_fp = np.geterr()  # NumPy's error settings for the callback (see fit)
        self.eval_batch_size = _positive_int("eval_batch_size", eval_batch_size)
        self.optimizer = (optimizer(net, lr, **optimizer_options)
                          if isinstance(optimizer, type) and issubclass(optimizer, Optimizer)
                          else make_optimizer(optimizer, net, lr, **optimizer_options))
        self.schedule_args = {"kind": schedule, "lr": self.optimizer.lr, "gamma": gamma,
                              "step_size": step_size or max(1, self.epochs // 3)}
        Schedule(total_steps=1, **self.schedule_args)  # validate now, not at the first step
        self.history = History()
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.best_score = math.inf
        self.wait = 0
        self._best_params = net.flat.data.copy()
        self._best_buffers = [a.copy() for a in net.buffers()]

    # ------------------------------------------------------------------ state
    def _snapshot_best(self):
        self._best_params[...] = self.net.flat.data
        for dst, src in zip(self._best_buffers, self.net.buffers()):
            dst[...] = src

    def _restore_best(self):
        self.net.flat.data[...] = self._best_params
        for dst, src in zip(self.net.buffers(), self._best_buffers):
            dst[...] = src

    def state_arrays(self) -> list:
        """Every device array the run's state lives in: the parameters, the buffers, the
        optimizer's state and the best-epoch snapshot (what data parallelism copies from rank 0
        to every rank before the first step)."""
        return [self.net.flat.data, *self.net.buffers(), *self.optimizer.state.values(),
                self._best_params, *self._best_buffers]

    def _best_named(self):
        """The best-epoch snapshot as ``{name: array}`` (views), parameters then buffers."""
        names = [name for name, _ in self.net.named_buffers()]
        return self.net.flat.views(self._best_params) | dict(zip(names, self._best_buffers))

    def config(self) -> dict:
        return {"format": TRAINER_FORMAT, "optimizer": self.optimizer.name,
                "epochs": self.epochs, "batch_size": self.batch_size,
                "patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best, "seed": self.seed,
                "schedule": self.schedule_args, **self.optimizer.hyperparameters()}

    def state_dict(self) -> dict:
        """``{"json": ..., "arrays": ...}``: everything needed to resume exactly. Arrays are
        keyed by parameter name: ``opt/<state>/<name>`` and ``best/<name>``."""
        opt = self.optimizer.state_dict()
        arrays = {f"opt/{k}": v for k, v in opt["arrays"].items()}
        arrays.update({f"best/{name}": a for name, a in self._best_named().items()})
        return {
            "json": {"trainer": self.config(), "epoch": self.epoch,
                     "global_step": self.global_step, "best_score": self.best_score
                     if math.isfinite(self.best_score) else None, "wait": self.wait,
                     "history": self.history.to_dict(), "optimizer": opt["json"]},
            "arrays": arrays,
        }

    def load_state_dict(self, state) -> None:
        """Continue a run saved by :meth:`state_dict` (its epochs, RNG stream and optimizer).
        Everything is checked (every array's shape and dtype included) before anything is
        written, so a damaged state raises ``ValueError`` and leaves the trainer as it was."""
        js, arrays = _part(state, "json", "run state"), _part(state, "arrays", "run state")
        saved = _part(js, "trainer", "run state")
        for key in ("batch_size", "optimizer", "seed"):
            _field(saved, key)
        if saved["batch_size"] != self.batch_size:
            raise ValueError(f"cannot resume: the checkpoint used batch size "
                             f"{saved['batch_size']}, this run asks for {self.batch_size}")
        if saved["optimizer"] != self.optimizer.name:
            raise ValueError(f"cannot resume: the checkpoint used the {saved['optimizer']} "
                             f"optimizer, this run asks for {self.optimizer.name}")
        seed = _count(saved, "seed")
        epoch, global_step, wait = (_count(js, k) for k in ("epoch", "global_step", "wait"))
        best_score = _field(js, "best_score")
        if best_score is not None and (isinstance(best_score, bool)
                                       or not isinstance(best_score, numbers.Real)):
            raise ValueError(f"cannot resume: the run state's best_score is {best_score!r}, "
                             f"not a number; the checkpoint is damaged")
        try:
            history = History.from_dict(_part(js, "history", "run state"))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"cannot resume: the run state's history is damaged ({exc})") \
                from None
        optimizer_json = _part(js, "optimizer", "run state")
        best = self._best_named()
        missing = sorted(f"best/{name}" for name in best if f"best/{name}" not in arrays)
        if missing:
            raise ValueError(f"cannot resume: the run state lacks {', '.join(missing[:3])}")
        extra = sorted(k for k in arrays if k.startswith("best/") and k[5:] not in best)
        if extra:
            raise ValueError(f"cannot resume: the run state has unexpected arrays {extra[:3]} "
                             f"(it was saved for another network)")
        for name, dst in best.items():
            check_state_array(f"run state array 'best/{name}'", arrays[f"best/{name}"],
                              dst.shape)
        send = self.net.device.send
        # The optimizer checks all its arrays before it writes any; nothing is written before.
        self.optimizer.load_state_dict(
            {"json": optimizer_json,
             "arrays": {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}}, send)
        self.seed, self.epoch, self.global_step, self.wait = seed, epoch, global_step, wait
        self.best_score = math.inf if best_score is None else float(best_score)
        self.history = history
        self.history.interrupted = self.history.stopped_early = False
        for name, dst in best.items():
            dst[...] = send(arrays[f"best/{name}"])

    # ------------------------------------------------------------------ the loop
    def fit(self, X, y, X_val=None, y_val=None) -> History:
        """Train on ``X`` (n, n_features) and ``y`` (n,) labels or (n, n_outputs) targets, host
        or device arrays, optionally monitoring ``(X_val, y_val)`` of the same layout. Returns
        the :class:`History` (also kept in ``net.history_``).

        Inputs on a raw scale (some feature's root-mean-square over ``X`` above 10, as 0-255
        pixels) give one :class:`InputScaleWarning`. NumPy's floating-point warnings are off
        while training (the callback runs with the caller's settings): a run that overflows
        ends in :class:`TrainingDiverged`, not in RuntimeWarnings."""
        net, dev = self.net, self.net.device
        xp = dev.xp
        stacklevel = _outside_stacklevel()
        with dev.activate():
            X = net.check_X(X)
            y = net.check_y(y, X.shape[0])
            has_val = X_val is not None
            if has_val != (y_val is not None):
                raise ValueError("X_val and y_val go together: pass both for a dev set, or "
                                 "neither.")
            if has_val:
                X_val = net.check_X(X_val, "X_val")
                y_val = net.check_y(y_val, X_val.shape[0], "y_val")
            if self.parallel is None or self.parallel.rank == 0:
                _warn_if_unscaled(xp, X, stacklevel + 1)
            self._caller_fp = np.geterr()
            try:
                with np.errstate(**_QUIET_FP):
                    self._run(xp, dev, X, y, X_val, y_val, has_val)
            finally:
                net.history_ = self.history
        return self.history

    def _run(self, xp, dev, X, y, X_val, y_val, has_val):
        net, opt, hist, dp = self.net, self.optimizer, self.history, self.parallel
        n = X.shape[0]
        bs = n if self.batch_size is None else min(self.batch_size, n)
        full_batch = bs == n
        bounds = _batch_bounds(n, bs, self._min_batch(bs, n))
        # This process's rows of each batch: all of them, or with MPI its rank's share.
        mine = bounds if dp is None else [dp.share(start, stop) for start, stop in bounds]
        steps = len(bounds)
        schedule = Schedule(total_steps=self.epochs * steps, **self.schedule_args)
        batches = {}  # mini-batch buffers by size, reused every step
        if not full_batch:
            for size in {hi - lo for lo, hi in mine}:
                batches[size] = (xp.empty((size, X.shape[1]), dtype=X.dtype),
                                 xp.empty((size,) + y.shape[1:], dtype=y.dtype))
        if dp is not None:
            dp.start(self, X, X_val, y, y_val)  # the same run everywhere; rank 0's state
        while self.epoch < self.epochs:
            e = self.epoch
            # One bar per epoch, closed (and cleared) before the epoch's line and callback.
            bar = self._progress_bar(n, e)
            with contextlib.nullcontext() if bar is None else bar:
                t0 = time.perf_counter()
                net.reseed_dropout(epoch_seed(self.seed, e, 1))
                loss_sum = xp.zeros((), dtype=xp.float64)
                correct = xp.zeros((), dtype=xp.int64)
                if not full_batch:
                    perm = xp.argsort(dev.rng(epoch_seed(self.seed, e, 0)).random(n))
                for (start, stop), (lo, hi) in zip(bounds, mine):
                    opt.lr = schedule(self.global_step, e)
                    if full_batch:
                        Xb, yb = (X, y) if dp is None else (X[lo:hi], y[lo:hi])
                    else:
                        idx = perm[lo:hi]
                        Xb, yb = batches[idx.shape[0]]
                        dev.take_rows(X, idx, Xb)
                        dev.take_rows(y, idx, yb)
                    if dp is None:
                        loss = net.forward_backward(Xb, yb, correct=correct)
                        loss_sum += loss * Xb.shape[0]
                    else:  # this rank's share, then the all-reduce: the global gradient
                        loss_sum += dp.forward_backward(Xb, yb, start, stop, lo, correct)
                    opt.step()
                    self.global_step += 1
                    if bar is not None:
                        bar.update(stop - start)
                record = self._end_epoch(xp, dev, e, loss_sum, correct, n, X_val, y_val,
                                         has_val, t0, opt.lr)
            if self.verbose:
                print(_epoch_line(record, self.epochs, has_val, net.head.is_classifier),
                      flush=True)
            if self._finish_epoch(record, has_val):
                break
        # An interrupted run is paused, not finished: keep the current parameters so that a
        # checkpoint saved now resumes exactly (the best ones are in the trainer state).
        if has_val and self.restore_best and not hist.interrupted \
                and hist.best_epoch is not None and hist.best_epoch != hist.epoch[-1]:
            self._restore_best()

    def _min_batch(self, bs, n) -> int:
        """The fewest samples a training batch may hold (2 with batch norm); raise when even a
        full batch is smaller."""
        layers = [layer for layer in self.net.layers if layer.min_train_batch > 1]
        if not layers:
            return 1
        need = max(layer.min_train_batch for layer in layers)
        if bs < need:
            kind = type(max(layers, key=lambda layer: layer.min_train_batch)).__name__
            fix = f"use batch_size >= {need}" if n >= need else f"train on {need}+ samples"
            raise ValueError(f"a training batch of {bs} sample{'s' * (bs != 1)} is too small "
                             f"for {kind}, which needs at least {need} per batch; {fix}.")
        return need

    def _end_epoch(self, xp, dev, e, loss_sum, correct, n, X_val, y_val, has_val, t0, lr):
        """Collect the epoch's metrics with a single device-to-host copy (with MPI, and one
        collective that sums them over the ranks, each having evaluated its share of the dev
        set)."""
        dp = self.parallel
        parts = [loss_sum, correct]
        if has_val:
            Xv, yv = (X_val, y_val) if dp is None else dp.rows(X_val, y_val)
            parts += list(self.net.evaluate_device(Xv, yv, self.eval_batch_size))
        if dp is not None:
            parts.append(dp.checksum())  # in the same host copy
        host = dev.to_numpy(xp.stack([xp.asarray(p, dtype=xp.float64) for p in parts]))
        if dp is not None:
            host = dp.epoch_sums(host)
        host[:2] /= n
        if has_val:
            host[2:] /= X_val.shape[0]
        seconds = time.perf_counter() - t0  # to_numpy synchronised the device
        nan = float("nan")
        classify = self.net.head.is_classifier
        return {
            "epoch": e + 1,
            "loss": float(host[0]),
            "accuracy": float(host[1]) if classify else nan,
            "val_loss": float(host[2]) if has_val else nan,
            "val_accuracy": float(host[3]) if has_val and classify else nan,
            "lr": float(lr),
            "seconds": seconds,
        }

    def _finish_epoch(self, record, has_val) -> bool:
        """History, divergence, early stopping and the callback; True means stop."""
        hist = self.history
        hist.append(**record)
        self.epoch += 1
        score = record["val_loss"] if has_val else record["loss"]
        if not (math.isfinite(record["loss"]) and math.isfinite(score)):
            self._restore_best()
            hist.diverged = True
            bad = "training loss" if not math.isfinite(record["loss"]) else "dev loss"
            value = record["loss"] if bad == "training loss" else score
            kept = (f"the parameters of epoch {hist.best_epoch} were kept"
                    if hist.best_epoch is not None else "the starting parameters were kept")
            raise TrainingDiverged(
                f"training diverged at epoch {record['epoch']}: the {bad} became {value}; "
                f"lower the learning rate (now {record['lr']:g}) or standardise the inputs; "
                f"{kept}.", hist)
        if score < self.best_score - self.min_delta:
            self.best_score, self.wait = score, 0
            hist.best_epoch = record["epoch"]
            self._snapshot_best()
        else:
            self.wait += 1
        if self.callback is not None:
            with np.errstate(**self._caller_fp):  # the caller's warnings, not the loop's
                stop = bool(self.callback(self, record))
        else:
            stop = False
        if self.parallel is not None and self.callback is not None:
            stop = self.parallel.any(stop)  # every rank stops after the same epoch
        if stop:
            hist.interrupted = True
            return True
        if self.patience and self.wait >= self.patience:
            hist.stopped_early = True
            return True
        return False

    def _progress_bar(self, n, e):
        """Epoch ``e``'s bar (0-based ``e``), over its ``n`` samples, or ``None``."""
        return progress_bar(self.progress, total=n, unit="sample", unit_scale=True,
                            desc=f"epoch {e + 1}/{self.epochs}", leave=False)


def _epoch_line(record, epochs, has_val, classifier) -> str:
    """The verbose line of one epoch's ``record``: ``Epoch 3/7 - 1.2s - loss: 0.1234 -
    accuracy: 0.9650 - val_loss: 0.1100 - val_accuracy: 0.9700``."""
    seconds = record["seconds"]
    parts = [f"Epoch {record['epoch']}/{epochs}",
             f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms",
             f"loss: {record['loss']:.4f}"]
    if classifier:
        parts.append(f"accuracy: {record['accuracy']:.4f}")
    if has_val:
        parts.append(f"val_loss: {record['val_loss']:.4f}")
        if classifier:
            parts.append(f"val_accuracy: {record['val_accuracy']:.4f}")
    return " - ".join(parts)


def _input_scale(xp, X):
    """``(rms, j)``: the largest root-mean-square over the columns of ``X`` (n, n_features)
    and its column, computed on ``X``'s device in row blocks (no (n, n_features) temporary)
    and read back once, before training (like ``check_X``'s finiteness check, not through
    ``Device.to_numpy``, which the trainer keeps for the one metric read per epoch)."""
    n, d = X.shape
    rows = max(1, _SCALE_BLOCK // max(d, 1))
    sums = xp.zeros(d, dtype=xp.float64)
    for lo in range(0, n, rows):
        block = X[lo:lo + rows]
        sums += (block * block).sum(axis=0, dtype=xp.float64)
    top, j = xp.stack([sums.max(), sums.argmax().astype(xp.float64)]).tolist()
    return math.sqrt(top / n), int(j)


def _warn_if_unscaled(xp, X, stacklevel):
    with np.errstate(**_QUIET_FP):  # squares of huge values are inf, and that is a yes
        rms, j = _input_scale(xp, X)
    if rms > INPUT_SCALE_LIMIT:
        warnings.warn(
            f"X looks unscaled: feature {j} has a root-mean-square of {rms:.4g} (more than "
            f"{INPUT_SCALE_LIMIT:g}), so training may be slow or diverge; scale the inputs "
            f"first, e.g. scaler = xpnet.Scaler('unit').fit(X) (or 'standard' for tables), then "
            f"train on scaler.transform(X) and transform dev and test inputs the same way.",
            InputScaleWarning, stacklevel=stacklevel)


def _outside_stacklevel() -> int:
    """The ``stacklevel`` that, given to ``warnings.warn`` in the function calling this one,
    points at the first caller outside this module (the user's ``fit`` call)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _parameter_names(function, skip) -> list:
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip]


def _check_keywords(where, kwargs, optimizer) -> None:
    """Raise :class:`UnknownOptionError` for a keyword in ``kwargs`` that neither ``where``
    (``"fit"`` or ``"Trainer"``) nor the optimizer takes, before anything is built: ``fit() got
    an unexpected keyword argument 'epoch'; did you mean 'epochs'?`` when the close match is an
    argument of ours, else the optimizer's message (with its close match, if any)."""
    if not kwargs:
        return
    try:
        cls = optimizer_class(optimizer)
    except ValueError:
        return  # an unknown optimizer, which make_optimizer reports
    options = list(optimizer_options(cls))
    names = _parameter_names(Trainer.__init__, ("self", "net"))
    if where == "fit":
        names += [name for name in _parameter_names(fit, ("net", "X", "y")) if name not in names]
    unknown = [key for key in kwargs if key not in options and key not in names]
    for key in unknown:
        close = difflib.get_close_matches(str(key), names + options, n=1)
        if close and close[0] not in options:
            raise UnknownOptionError(f"{where}() got an unexpected keyword argument {key!r}; "
                                     f"did you mean {close[0]!r}?")
    if unknown:
        raise UnknownOptionError(unknown_options_message(cls, unknown))


def fit(net, X, y, epochs=10, lr=0.01, batch_size=None, optimizer="gd",
        validation_fraction=0.0, X_val=None, y_val=None, resume=None, verbose=False,
        **kwargs) -> History:
    """Train ``net`` on ``X`` (n, n_features) and ``y`` (n,) labels or (n, n_outputs) targets
    and return its :class:`History`.

    ``batch_size=None`` is full-batch gradient descent, as in the tutorials. With
    ``validation_fraction`` in (0, 1), a stratified, seeded split of ``(X, y)`` becomes the dev
    set (ignored when ``X_val`` is given). ``resume`` is a trainer state from a checkpoint.
    Other keyword arguments go to :class:`Trainer`, and through it to the optimizer (e.g.
    ``fit(net, X, y, optimizer="adamw", lr=1e-3, weight_decay=0.05)``); a keyword that none
    of them takes is a ``TypeError`` that suggests the close match (``epoch=3``: did you mean
    'epochs'?). ``lr=None`` takes the optimizer's ``default_lr``. ``verbose=True`` prints one
    line per epoch (see :class:`Trainer`); ``progress=True`` shows a bar per epoch. Raw-scale
    inputs give an :class:`InputScaleWarning`. The trainer is kept in ``net.trainer_``.
    """
    _check_keywords("fit", kwargs, optimizer)
    trainer = Trainer(net, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size,
                      verbose=verbose, **kwargs)
    if resume is not None:
        trainer.load_state_dict(resume)
    if X_val is None and validation_fraction:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got {validation_fraction!r}")
        X, y, X_val, y_val = split_dev(net, X, y, validation_fraction, trainer.seed)
    net.trainer_ = trainer
    return trainer.fit(X, y, X_val, y_val)


def split_dev(net, X, y, fraction, seed):
    """Stratified, seeded split of ``(X, y)`` into ``X, y, X_dev, y_dev``; device arrays are
    indexed on their device."""
    dev = net.device
    X, y = as_array(X, "X"), as_array(y, "y")
    if X.shape[:1] != y.shape[:1]:
        raise ValueError(f"y has {y.shape[0] if y.ndim else 0} entries but X has "
                         f"{X.shape[0] if X.ndim else 0} samples; they must match.")
    train_idx, dev_idx = stratified_split(dev.to_numpy(y), fraction, seed)

    def pick(a, idx):
        return a[dev.send(idx)] if is_device_array(a) else a[idx]

    return pick(X, train_idx), pick(y, train_idx), pick(X, dev_idx), pick(y, dev_idx)
