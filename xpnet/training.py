"""The trainer: :class:`Trainer` and :func:`fit`, the keyword front of the one training loop.

:class:`~xpnet.loop.Loop` does the batches, the step and the epoch's metrics;
:mod:`~xpnet.callbacks` do the rest (schedule, early stopping and the best epoch, the
divergence guard, progress and printing). This module turns keywords into those objects,
checks the inputs, and saves and restores the whole run (:meth:`Trainer.state_dict`). Per fit
(one more device-to-host copy than the loop's one per epoch): a check of the inputs' scale
(:class:`InputScaleWarning`).
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import sys
import warnings

import numpy as np

from .backend import as_array, is_device_array
from .callbacks import (
    BestEpoch,
    Callback,
    DivergenceGuard,
    EpochPrinter,
    FunctionCallback,
    LearningRateSchedule,
    ProgressBar,
)
from .distributed import DataParallel
from .loop import QUIET_FP, History, Loop, TrainingDiverged, min_train_batch
from .network import Sequential, check_seed
from .optimizers import (
    Optimizer,
    UnknownOptionError,
    make_optimizer,
    optimizer_class,
    optimizer_options,
    unknown_options_message,
)
from .preprocessing import stratified_split

__all__ = ["Trainer", "fit", "History", "TrainingDiverged", "InputScaleWarning", "split_dev"]

TRAINER_FORMAT = 2  # 1: state arrays keyed by position (read by the v1 checkpoint converter)

# Inputs whose largest per-feature root-mean-square exceeds this look unscaled (see
# InputScaleWarning); rows are squared in blocks of about this many elements.
INPUT_SCALE_LIMIT = 10.0
_SCALE_BLOCK = 1 << 22


class InputScaleWarning(UserWarning):
    """``fit`` was given inputs on a raw scale (such as 0-255 pixels), which train slowly or
    diverge. Issued at most once per ``fit``, when some feature's root-mean-square over the
    training set exceeds :data:`INPUT_SCALE_LIMIT` (10): never for inputs in [-1, 1], nor for
    standardised ones (whose every feature has a root-mean-square of 1, however large its rare
    values). Silence it with ``warnings.simplefilter("ignore", xpnet.InputScaleWarning)``."""


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
    return int(value)


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


class Trainer(Loop):
    """Trains a network (:class:`~xpnet.network.Sequential` or :class:`~xpnet.MLP`) in place.

    A :class:`~xpnet.loop.Loop` configured from keywords: the optimizer by name, the
    learning-rate schedule, early stopping, the progress bar and the epoch printer become
    :mod:`~xpnet.callbacks`, and :meth:`state_dict` gathers the loop's, the optimizer's and
    the callbacks' state so that a resume is one :meth:`load_state_dict`.

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
        callbacks: more :class:`~xpnet.callbacks.Callback` objects, called after the
            built-in ones (progress bar, epoch printer, divergence guard, best epoch and
            ``callback``) in the order given.
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
                 eval_batch_size=10000, comm=None, verbose=False, callbacks=(),
                 **optimizer_options):
        _check_keywords("Trainer", optimizer_options, optimizer)
        parallel = None if comm is None else DataParallel(comm, net)
        epochs = _positive_int("epochs", epochs)
        batch_size = _positive_int("batch_size", batch_size, allow_none=True)
        if restore_best is not None and not isinstance(restore_best, (bool, np.bool_)):
            raise ValueError(f"restore_best must be True, False or None; got {restore_best!r}")
        best = BestEpoch(net, patience, min_delta, restore_best=False)
        best.restore_best = best.patience > 0 if restore_best is None else bool(restore_best)
        seed = check_seed(seed)
        seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        if parallel is not None:
            seed = parallel.agree_seed(seed)
            progress = progress and parallel.rank == 0
        if not isinstance(verbose, (numbers.Integral, np.bool_)) or verbose not in (0, 1):
            raise ValueError(f"verbose must be True or False; got {verbose!r}")
        verbose = bool(verbose) and (parallel is None or parallel.rank == 0)
        extra = list(callbacks)
        for cb in extra:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks must be xpnet.callbacks.Callback objects; got "
                                 f"{cb!r}")
        optimizer = (optimizer(net, lr, **optimizer_options)
                     if isinstance(optimizer, type) and issubclass(optimizer, Optimizer)
                     else make_optimizer(optimizer, net, lr, **optimizer_options))
        self.schedule = LearningRateSchedule(schedule, optimizer.lr, gamma=gamma,
                                             step_size=step_size or max(1, epochs // 3))
        self.best = best
        super().__init__(
            net, optimizer, batch_size=batch_size, seed=seed, parallel=parallel,
            eval_batch_size=_positive_int("eval_batch_size", eval_batch_size),
            callbacks=[*([ProgressBar()] if progress else []),
                       self.schedule,
                       *([EpochPrinter()] if verbose else []),
                       DivergenceGuard(best), best, *extra])
        self.epochs = epochs
        self.progress, self.verbose = progress, verbose
        self.callback = callback

    @property
    def callback(self):
        """The function ``callback(trainer, record)`` called after each epoch, or ``None``;
        settable (it runs right after the best-epoch bookkeeping, before ``callbacks``)."""
        user = [cb for cb in self.callbacks if isinstance(cb, FunctionCallback)
                and cb.owner is self]
        return user[0].function if user else None

    @callback.setter
    def callback(self, function):
        at = self.callbacks.index(self.best) + 1
        self.callbacks = [cb for cb in self.callbacks
                          if not (isinstance(cb, FunctionCallback) and cb.owner is self)]
        if function is not None:
            self.callbacks.insert(at, FunctionCallback(function, self))

    # The early-stopping settings and counters live in the BestEpoch callback.
    patience = property(lambda self: self.best.patience)
    min_delta = property(lambda self: self.best.min_delta)
    restore_best = property(lambda self: self.best.restore_best)
    best_score = property(lambda self: self.best.best_score)
    wait = property(lambda self: self.best.wait)

    @property
    def schedule_args(self) -> dict:
        return dict(self.schedule.args)

    # ------------------------------------------------------------------ state
    def state_arrays(self) -> list:
        """Every device array the run's state lives in: the parameters, the buffers, the
        optimizer's state and the best-epoch snapshot (what data parallelism copies from rank 0
        to every rank before the first step)."""
        return [self.net.flat.data, *self.net.buffers(), *self.optimizer.state.values(),
                *self.best.arrays()]

    def config(self) -> dict:
        return {"format": TRAINER_FORMAT, "optimizer": self.optimizer.name,
                "epochs": self.epochs, "batch_size": self.batch_size,
                "patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best, "seed": self.seed,
                "schedule": self.schedule_args, **self.optimizer.hyperparameters()}

    def state_dict(self) -> dict:
        """``{"json": ..., "arrays": ...}``: everything needed to resume exactly: the loop's
        position and history, the optimizer's state and the best epoch's. Arrays are keyed by
        parameter name: ``opt/<state>/<name>`` and ``best/<name>``."""
        opt, best = self.optimizer.state_dict(), self.best.state_dict()
        arrays = {f"opt/{k}": v for k, v in opt["arrays"].items()}
        arrays.update({f"best/{name}": a for name, a in best["arrays"].items()})
        return {
            "json": {"trainer": self.config(), "epoch": self.epoch,
                     "global_step": self.global_step, **best["json"],
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
        epoch, global_step = (_count(js, k) for k in ("epoch", "global_step"))
        best = {"json": {"best_score": _field(js, "best_score"), "wait": _count(js, "wait")},
                "arrays": {k[5:]: v for k, v in arrays.items() if k.startswith("best/")}}
        try:
            history = History.from_dict(_part(js, "history", "run state"))
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"cannot resume: the run state's history is damaged ({exc})") \
                from None
        optimizer_json = _part(js, "optimizer", "run state")
        self.best.check_state(best)
        send = self.net.device.send
        # The optimizer checks all its arrays before it writes any; nothing is written before.
        self.optimizer.load_state_dict(
            {"json": optimizer_json,
             "arrays": {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}}, send)
        self.seed, self.epoch, self.global_step = seed, epoch, global_step
        self.history = history
        self.history.interrupted = self.history.stopped_early = False
        self.best.load_state_dict(best, send)

    # ------------------------------------------------------------------ training
    def fit(self, X, y, X_val=None, y_val=None, sample_weight=None) -> History:
        """Train on ``X`` (n, n_features) and ``y`` (n,) labels or (n, n_outputs) targets, host
        or device arrays, optionally monitoring ``(X_val, y_val)`` of the same layout, until
        :attr:`epochs` (counting a resumed run's earlier epochs), early stopping or a callback
        stops it. Returns the :class:`History` (also kept in ``net.history_``).

        ``sample_weight`` (n,) weights the training loss: each batch's loss is the weighted
        mean ``sum w_i l_i / sum w_i`` and the L2 term is divided by ``sum w_i``, as in
        scikit-learn's MLP, so a weight of 2 trains as the row given twice (the dev loss stays
        unweighted). Not with data parallelism.

        Inputs on a raw scale (some feature's root-mean-square over ``X`` above 10, as 0-255
        pixels) give one :class:`InputScaleWarning`. NumPy's floating-point warnings are off
        while training (the callbacks run with the caller's settings): a run that overflows
        ends in :class:`TrainingDiverged`, not in RuntimeWarnings.

        Raises:
            ValueError: inputs of the wrong shape, type or values, or a batch too small for
                batch norm.
            TrainingDiverged: the loss became NaN or infinite (the best epoch's parameters,
                or the starting ones, are kept).
        """
        net, dev = self.net, self.net.device
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
            if sample_weight is not None:
                if self.parallel is not None:
                    raise ValueError("sample_weight is not supported with data parallelism "
                                     "(comm=...); train without it or in one process.")
                sample_weight = net.check_sample_weight(sample_weight, X.shape[0])
            if self.parallel is None or self.parallel.rank == 0:
                _warn_if_unscaled(dev.xp, X, stacklevel + 1)
            bs = X.shape[0] if self.batch_size is None else min(self.batch_size, X.shape[0])
            min_train_batch(net, bs, X.shape[0])  # before the ranks' agreement check
            if self.parallel is not None:
                self.parallel.start(self, X, X_val, y, y_val)  # the same run; rank 0's state
            try:
                self.run(X, y, X_val, y_val, epochs=self.epochs, sample_weight=sample_weight)
            finally:
                net.history_ = self.history
        return self.history


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
    with np.errstate(**QUIET_FP):  # squares of huge values are inf, and that is a yes
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
        validation_data=None, sample_weight=None, **kwargs) -> History:
    """Train ``net`` on ``X`` (n, n_features) and ``y`` (n,) labels or (n, n_outputs) targets
    and return its :class:`History`.

    ``batch_size=None`` is full-batch gradient descent, as in the tutorials. The dev set that
    early stopping (``patience``) and ``val_loss`` watch is ``validation_data=(X_val, y_val)``
    (Keras's name; ``X_val=``, ``y_val=`` say the same), or else, with
    ``validation_fraction`` in (0, 1), a stratified, seeded split of ``(X, y)``.
    ``sample_weight`` (n,) weights each sample's loss (see :meth:`Trainer.fit`); with a split
    it is split too. ``callbacks=[...]`` takes :class:`~xpnet.callbacks.Callback` objects.
    ``resume`` is a trainer state from a checkpoint. Other keyword arguments go to
    :class:`Trainer`, and through it to the optimizer (e.g.
    ``fit(net, X, y, optimizer="adamw", lr=1e-3, weight_decay=0.05)``); a keyword that none
    of them takes is a ``TypeError`` that suggests the close match (``epoch=3``: did you mean
    'epochs'?). ``lr=None`` takes the optimizer's ``default_lr``. ``verbose=True`` prints one
    line per epoch (see :class:`Trainer`); ``progress=True`` shows a bar per epoch. Raw-scale
    inputs give an :class:`InputScaleWarning`. The trainer is kept in ``net.trainer_``.
    """
    _check_keywords("fit", kwargs, optimizer)
    if validation_data is not None:
        if X_val is not None or y_val is not None:
            raise ValueError("pass the dev set once: validation_data=(X_val, y_val) or "
                             "X_val= and y_val=, not both.")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val); got "
                             f"{type(validation_data).__name__}.")
        X_val, y_val = validation_data
    trainer = Trainer(net, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size,
                      verbose=verbose, **kwargs)
    if resume is not None:
        trainer.load_state_dict(resume)
    if X_val is None and validation_fraction:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got {validation_fraction!r}")
        X, y, X_val, y_val, *weights = split_dev(net, X, y, validation_fraction, trainer.seed,
                                                  sample_weight)
        sample_weight = weights[0] if weights else None
    net.trainer_ = trainer
    return trainer.fit(X, y, X_val, y_val, sample_weight=sample_weight)


def split_dev(net, X, y, fraction, seed, sample_weight=None):
    """Stratified, seeded split of ``(X, y)`` into ``X, y, X_dev, y_dev`` (and the training
    rows' ``sample_weight`` after them, when given); device arrays are indexed on their
    device."""
    dev = net.device
    X, y = as_array(X, "X"), as_array(y, "y")
    if X.shape[:1] != y.shape[:1]:
        raise ValueError(f"y has {y.shape[0] if y.ndim else 0} entries but X has "
                         f"{X.shape[0] if X.ndim else 0} samples; they must match.")
    train_idx, dev_idx = stratified_split(dev.to_numpy(y), fraction, seed)

    def pick(a, idx):
        return a[dev.send(idx)] if is_device_array(a) else a[idx]

    parts = [pick(X, train_idx), pick(y, train_idx), pick(X, dev_idx), pick(y, dev_idx)]
    if sample_weight is not None:
        w = as_array(sample_weight, "sample_weight")
        if w.ndim != 1 or w.shape[0] != X.shape[0]:
            raise ValueError(f"sample_weight must be 1-D with one weight per sample "
                             f"({X.shape[0]}); got shape {tuple(w.shape)}.")
        parts.append(pick(w, train_idx))
    return parts
