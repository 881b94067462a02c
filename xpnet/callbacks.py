"""What the training loop calls: schedules, the best epoch and early stopping, the divergence
guard, the progress bar, the epoch printer and the user's function; and what ``xpnet.train``
adds, usable from Python too: its thinned epoch log (:class:`EpochLog`) and a clean stop after
the epoch on SIGINT/SIGTERM (:class:`StopOnSignal`).

A callback overrides the hooks it needs; :class:`~xpnet.loop.Loop` calls them in the order the
callbacks were given::

    on_fit_begin(loop)                  once, before the first step of a run
    on_epoch_begin(loop, epoch)         epoch is 0-based
    on_step_begin(loop)                 before each optimizer step (only if overridden)
    on_step_end(loop, batch_samples)    after each optimizer step (only if overridden)
    on_epoch_end(loop, record) -> bool  after the epoch's record is in loop.history; a true
                                        value stops the run after this epoch
    on_fit_end(loop)                    when the run ends without an exception
    teardown(loop)                      always, last (release what the callback holds)

A callback with state (the best epoch's snapshot, a patience count) saves and restores it with
``state_dict()`` / ``load_state_dict(state)``, as ``{"json": ..., "arrays": ...}``; the trainer
gathers them into its own state, so a resume is one call.
"""

from __future__ import annotations

import math
import numbers
import os
import signal
import threading

from .loop import TrainingDiverged
from .optimizers import Schedule
from .parameters import check_state_array
from .progress import progress_bar


class Callback:
    """The base: every hook does nothing, and there is no state."""

    def on_fit_begin(self, loop) -> None:
        pass

    def on_epoch_begin(self, loop, epoch) -> None:
        pass

    def on_step_begin(self, loop) -> None:
        pass

    def on_step_end(self, loop, batch_samples) -> None:
        pass

    def on_epoch_end(self, loop, record) -> bool:
        return False

    def on_fit_end(self, loop) -> None:
        pass

    def teardown(self, loop) -> None:
        pass

    def state_dict(self) -> dict:
        return {"json": {}, "arrays": {}}

    def load_state_dict(self, state) -> None:
        pass


class LearningRateSchedule(Callback):
    """Sets ``optimizer.lr`` before every step from a :class:`~xpnet.optimizers.Schedule`:
    ``step`` or ``cosine`` (over all the run's planned steps, ``epochs * steps_per_epoch``);
    ``constant`` leaves the optimizer's rate as it is. Stateless: the rate is a function of the
    loop's ``global_step`` and ``epoch``, which the loop's own state restores."""

    def __init__(self, kind="constant", lr=0.01, step_size=10, gamma=0.1):
        self.args = {"kind": kind, "lr": lr, "step_size": step_size, "gamma": gamma}
        self.schedule = Schedule(total_steps=1, **self.args)  # validate now, not at the first step

    def on_fit_begin(self, loop):
        self.schedule = Schedule(total_steps=loop.epochs * loop.steps_per_epoch, **self.args)

    def on_step_begin(self, loop):
        # A constant rate is left alone, so that another callback may change it (a user's
        # reduce-on-plateau); the others are functions of the step and set it every step.
        if self.schedule.kind != "constant":
            loop.optimizer.lr = self.schedule(loop.global_step, loop.epoch)


class BestEpoch(Callback):
    """Tracks the monitored loss (``val_loss`` with a dev set, else ``loss``), keeps a snapshot
    of the parameters and batch-norm statistics of the best epoch, and stops after
    ``patience`` epochs without an improvement of more than ``min_delta`` (0: never stops).

    With ``restore_best``, a run that ends normally (not stopped by another callback, which
    pauses it for a resume) with a dev set restores the best epoch's state, as scikit-learn
    does with ``early_stopping=True``. :class:`DivergenceGuard` restores the snapshot too.
    """

    def __init__(self, net, patience=0, min_delta=0.0, restore_best=False):
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be a whole number >= 0 (0 = off); got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) \
                or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0; got {min_delta!r}")
        self.net = net
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.restore_best = bool(restore_best)
        self.best_score = math.inf
        self.wait = 0
        self.params = net.flat.data.copy()
        self.buffers = [a.copy() for a in net.buffers()]

    def snapshot(self):
        self.params[...] = self.net.flat.data
        for dst, src in zip(self.buffers, self.net.buffers()):
            dst[...] = src

    def restore(self):
        self.net.flat.data[...] = self.params
        for dst, src in zip(self.net.buffers(), self.buffers):
            dst[...] = src

    def arrays(self) -> list:
        return [self.params, *self.buffers]

    def named(self) -> dict:
        """The snapshot as ``{name: array}`` (views), parameters then buffers."""
        names = [name for name, _ in self.net.named_buffers()]
        return self.net.flat.views(self.params) | dict(zip(names, self.buffers))

    def on_epoch_end(self, loop, record):
        score = record["val_loss"] if loop.has_val else record["loss"]
        if score < self.best_score - self.min_delta:
            self.best_score, self.wait = score, 0
            loop.history.best_epoch = record["epoch"]
            self.snapshot()
        else:
            self.wait += 1
        if self.patience and self.wait >= self.patience:
            loop.history.stopped_early = True
            return True
        return False

    def on_fit_end(self, loop):
        hist = loop.history
        # An interrupted run is paused, not finished: keep the current parameters so that a
        # checkpoint saved now resumes exactly (the best ones are in the trainer state).
        if loop.has_val and self.restore_best and not hist.interrupted \
                and hist.best_epoch is not None and hist.best_epoch != hist.epoch[-1]:
            self.restore()

    def state_dict(self) -> dict:
        return {"json": {"best_score": self.best_score if math.isfinite(self.best_score)
                         else None, "wait": self.wait},
                "arrays": self.named()}

    def check_state(self, state) -> None:
        """Raise ``ValueError`` (``cannot resume: ...``) unless ``state`` fits this network."""
        js, arrays = state["json"], state["arrays"]
        best_score = js.get("best_score")
        if best_score is not None and (isinstance(best_score, bool)
                                       or not isinstance(best_score, numbers.Real)):
            raise ValueError(f"cannot resume: the run state's best_score is {best_score!r}, "
                             f"not a number; the checkpoint is damaged")
        wait = js.get("wait")
        if isinstance(wait, bool) or not isinstance(wait, numbers.Integral) or wait < 0:
            raise ValueError(f"cannot resume: the run state's wait is {wait!r}, not a whole "
                             f"number >= 0; the checkpoint is damaged")
        best = self.named()
        missing = sorted(f"best/{name}" for name in best if name not in arrays)
        if missing:
            raise ValueError(f"cannot resume: the run state lacks {', '.join(missing[:3])}")
        extra = sorted(f"best/{name}" for name in arrays if name not in best)
        if extra:
            raise ValueError(f"cannot resume: the run state has unexpected arrays {extra[:3]} "
                             f"(it was saved for another network)")
        for name, dst in best.items():
            check_state_array(f"run state array 'best/{name}'", arrays[name], dst.shape)

    def load_state_dict(self, state, send=None) -> None:
        """Restore a :meth:`state_dict`, checked first (nothing is written if it does not fit);
        ``send`` moves host arrays to the network's device."""
        self.check_state(state)
        send = send or self.net.device.send
        js = state["json"]
        self.best_score = math.inf if js["best_score"] is None else float(js["best_score"])
        self.wait = int(js["wait"])
        for name, dst in self.named().items():
            dst[...] = send(state["arrays"][name])


class DivergenceGuard(Callback):
    """Raises :class:`~xpnet.loop.TrainingDiverged` when the epoch's training loss or the
    monitored loss is not finite, after restoring ``best``'s snapshot (the best epoch so far,
    or the starting state). Put it before ``best`` in the callbacks."""

    def __init__(self, best: BestEpoch):
        self.best = best

    def on_epoch_end(self, loop, record):
        score = record["val_loss"] if loop.has_val else record["loss"]
        if math.isfinite(record["loss"]) and math.isfinite(score):
            return False
        hist = loop.history
        self.best.restore()
        hist.diverged = True
        bad = "training loss" if not math.isfinite(record["loss"]) else "dev loss"
        value = record["loss"] if bad == "training loss" else score
        kept = (f"the parameters of epoch {hist.best_epoch} were kept"
                if hist.best_epoch is not None else "the starting parameters were kept")
        raise TrainingDiverged(
            f"training diverged at epoch {record['epoch']}: the {bad} became {value}; "
            f"lower the learning rate (now {record['lr']:g}) or standardise the inputs; "
            f"{kept}.", hist)


class ProgressBar(Callback):
    """A tqdm bar per epoch (``epoch 3/7``, samples and samples/s, on stderr) when tqdm is
    installed; each bar is cleared when its epoch's steps and dev evaluation end, before the
    epoch-end callbacks that follow it print anything. Put it first. Without tqdm, nothing."""

    def __init__(self):
        self.bar = None

    def on_epoch_begin(self, loop, epoch):
        self.bar = progress_bar(True, total=loop.n_samples, unit="sample", unit_scale=True,
                                desc=f"epoch {epoch + 1}/{loop.epochs}", leave=False)

    def on_step_end(self, loop, batch_samples):
        if self.bar is not None:
            self.bar.update(batch_samples)

    def on_epoch_end(self, loop, record):
        self.teardown(loop)
        return False

    def teardown(self, loop):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochPrinter(Callback):
    """One line per epoch on stdout, as Keras prints it: ``Epoch 3/7 - 1.2s - loss: 0.1234 -
    accuracy: 0.9650 - val_loss: 0.1100 - val_accuracy: 0.9700`` (``val_*`` only with a dev
    set, accuracies only for a classifier)."""

    def on_epoch_end(self, loop, record):
        print(epoch_line(record, loop.epochs, loop.has_val, loop.net.head.is_classifier),
              flush=True)
        return False


def epoch_line(record, epochs, has_val, classifier) -> str:
    """The :class:`EpochPrinter` line of one epoch's ``record``."""
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


class FunctionCallback(Callback):
    """``function(owner, record)`` after each epoch; a true return value stops the run
    cleanly after that epoch (``history.interrupted``), on every rank with MPI."""

    def __init__(self, function, owner):
        if not callable(function):
            raise ValueError(f"callback must be a function callback(trainer, record) or None; "
                             f"got {function!r}")
        self.function, self.owner = function, owner

    def on_epoch_end(self, loop, record):
        stop = bool(self.function(self.owner, record))
        if loop.parallel is not None:
            stop = loop.parallel.any(stop)  # every rank stops after the same epoch
        if stop:
            loop.history.interrupted = True
        return stop


class EpochLog(Callback):
    """``xpnet.train``'s line per epoch on stdout, for the first ``first`` epochs, then every
    ``max(1, epochs // lines)``-th (about ``lines`` more) and the last::

        epoch    3/10  loss 0.1234 acc 0.9650 dev_loss 0.1100 dev_acc 0.9700  lr 4.00e-03  \
0.52s 103,846 samples/s

    (one line; ``acc`` only for a classifier, ``dev_*`` only with a dev set; samples/s is the
    epoch's training samples over its seconds, the device synchronised).

    Args:
        first: epochs that always print, from the first.
        lines: about how many of the later epochs print.
    """

    def __init__(self, first=10, lines=20):
        self.first, self.lines = first, lines

    def on_epoch_end(self, loop, record):
        e, epochs = record["epoch"], loop.epochs
        if e <= self.first or e % max(1, epochs // self.lines) == 0 or e == epochs:
            print(log_line(record, epochs, loop.n_samples, loop.has_val,
                           loop.net.head.is_classifier), flush=True)
        return False


def log_line(record, epochs, n_samples, has_val, classifier) -> str:
    """The :class:`EpochLog` line of one epoch's ``record``.

    Args:
        record: the loop's epoch record (``epoch``, ``loss``, ``accuracy``, ``val_loss``,
            ``val_accuracy``, ``lr``, ``seconds``).
        epochs: the run's planned epochs.
        n_samples: training samples per epoch (for samples/s).
        has_val: whether there is a dev set (the ``dev_*`` columns).
        classifier: whether the accuracies mean anything (the ``acc`` columns).

    Returns:
        The line, without a newline.
    """
    seconds = record["seconds"]
    rate = n_samples / seconds if seconds > 0 else float("inf")
    dev = f" dev_loss {record['val_loss']:.4f}" if has_val else ""
    acc = f" acc {record['accuracy']:.4f}" if classifier else ""
    if has_val and classifier:
        dev += f" dev_acc {record['val_accuracy']:.4f}"
    return (f"epoch {record['epoch']:>4}/{epochs}  loss {record['loss']:.4f}{acc}{dev}  "
            f"lr {record['lr']:.2e}  {seconds:.2f}s {rate:,.0f} samples/s")


class StopOnSignal(Callback):
    """Stops the run cleanly after the epoch in progress once SIGINT (Ctrl-C) or SIGTERM has
    arrived: ``history.interrupted`` is set and the parameters are those of the last epoch, so
    a checkpoint saved then resumes exactly. With MPI every rank stops after the same epoch.

    Args:
        received: a function that returns True once a stop has been asked for
            (``xpnet.train`` passes its own signal policy's). None: the callback handles
            SIGINT and SIGTERM itself while the run lasts (installed at ``on_fit_begin`` in
            the main thread, the previous handlers put back at ``teardown``): the first signal
            asks for the stop and says so on stderr, a second SIGINT raises
            ``KeyboardInterrupt`` at once.

    Raises:
        ValueError: ``received`` is neither None nor callable.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, received=None):
        if received is not None and not callable(received):
            raise ValueError(f"received must be a function received() -> bool or None; got "
                             f"{received!r}")
        self.received = received
        self.signum = None  # the first signal of this run (own handlers only)
        self.previous = {}

    def on_fit_begin(self, loop):
        self.signum = None
        if self.received is None and threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self.handle)

    def handle(self, signum, frame):
        """The signal handler: the first signal asks for the stop, a second SIGINT aborts."""
        if self.signum is None:
            self.signum = signum
            # Straight to the file descriptor: the main code may be inside a write to stderr
            # (a progress bar) that a handler must not re-enter.
            text = (f"\n{signal.Signals(signum).name} received: stopping after this epoch "
                    f"(Ctrl-C again to abort)\n")
            try:
                os.write(2, text.encode("utf-8", "replace"))
            except OSError:
                pass
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    def on_epoch_end(self, loop, record):
        stop = bool(self.received()) if self.received is not None else self.signum is not None
        if loop.parallel is not None:
            stop = loop.parallel.any(stop)  # every rank stops after the same epoch
        if stop:
            loop.history.interrupted = True
        return stop

    def teardown(self, loop):
        for sig, old in self.previous.items():
            signal.signal(sig, old)
        self.previous = {}
