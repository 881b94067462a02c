"""``python -m xpnet.train``: train an MLP on MNIST, report test accuracy, save what you need.

    python -m xpnet.train --device auto            # the default recipe (see --help)
    python -m xpnet.train --optimizer gd --batch-size full --lr 0.1 --epochs 500 --init he

The data go to the device once; per epoch one line of progress; at the end the test accuracy,
the confusion matrix and the training seconds (data loading excluded). Ctrl-C or SIGTERM stop
after the current epoch, save a resumable checkpoint when ``--save`` is given, and exit with
130 or 143; ``--resume`` continues such a run to ``--epochs`` in total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
from argparse import ArgumentDefaultsHelpFormatter, ArgumentTypeError
from typing import Any

import numpy as np

from . import backend
from .checkpoint import CheckpointError, load_checkpoint, nest_states, save, sub_state
from .cli import EXIT_OK, Failure, Parser, UsageError, check_writable, run
from .initializers import INITIALIZERS
from .io import atomic_write
from .network import ACTIVATIONS, MLP
from .optimizers import OPTIMIZERS, SCHEDULES
from .preprocessing import Scaler, stratified_split
from .training import Trainer, TrainingDiverged

PROG = "xpnet.train"
MNIST_PIXELS, MNIST_CLASSES = 784, 10

# The default recipe, chosen by measurement on the 2-core CPU (README, "Performance").
DEFAULTS = {
    "layers": "784,256,128,64,10",
    "activation": "relu",
    "init": "he",
    "optimizer": "adam",
    "batch_size": "128",
    "epochs": 7,
    "schedule": "cosine",
    "dev_fraction": 0.1,
    "patience": 0,
    "seed": 0,
}


# ---------------------------------------------------------------------- argument types
def _int(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int, _nonneg_int = _int(1), _int(0)


def _float(lo=None, hi=None, lo_open=False, hi_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ArgumentTypeError(f"expected a finite number, got {text!r}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            op = ">" if lo_open else ">="
            raise ArgumentTypeError(f"expected a number {op} {lo}, got {text!r}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            op = "<" if hi_open else "<="
            raise ArgumentTypeError(f"expected a number {op} {hi}, got {text!r}")
        return value

    return parse


def _layers(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ArgumentTypeError(
            f"--layers must be comma-separated whole numbers like 784,256,10; got {text!r}"
        ) from None
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ArgumentTypeError(f"--layers needs at least two sizes, all >= 1; got {text!r}")
    return sizes


def _batch_size(text):
    if text.strip().lower() == "full":
        return None
    return _positive_int(text)


def build_parser() -> Parser:
    """The command line; choices and default learning rates come from the registries, so a
    new activation, initialiser or optimizer needs no edit here."""
    p = Parser(prog=PROG, description="Train an xpnet MLP on MNIST.",
               formatter_class=ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("device and architecture")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--layers", type=_layers, default=_layers(DEFAULTS["layers"]),
                   help="all layer sizes, input through output (first 784, last 10 for MNIST)")
    g.add_argument("--activation", default=DEFAULTS["activation"], choices=list(ACTIVATIONS))
    g.add_argument("--init", default=DEFAULTS["init"], choices=list(INITIALIZERS))
    g.add_argument("--l2", type=_float(0.0), default=0.0, help="L2 strength (lambda)")
    g.add_argument("--dropout", type=_float(0.0, 1.0, hi_open=True), default=0.0,
                   help="dropout rate on hidden layers")
    g.add_argument("--batch-norm", action="store_true", help="batch norm on hidden layers")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=list(OPTIMIZERS))
    g.add_argument("--lr", type=_float(0.0, lo_open=True), default=None,
                   help="learning rate (default: " + ", ".join(
                       f"{name} {cls.default_lr:g}" for name, cls in OPTIMIZERS.items()) + ")")
    g.add_argument("--schedule", default=DEFAULTS["schedule"], choices=list(SCHEDULES))
    g.add_argument("--batch-size", type=_batch_size, default=_batch_size(DEFAULTS["batch_size"]),
                   help="mini-batch size, or 'full' for full-batch gradient descent")
    g.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"],
                   help="epochs in total (with --resume: up to this many)")
    g.add_argument("--patience", type=_nonneg_int, default=DEFAULTS["patience"],
                   help="early stopping after this many epochs without dev improvement; 0 = off")
    g.add_argument("--dev-fraction", type=_float(0.0, 1.0, hi_open=True),
                   default=DEFAULTS["dev_fraction"],
                   help="stratified share of the training set held out as a dev set; 0 = none")
    g.add_argument("--standardize", action="store_true",
                   help="standardise pixels per feature (train statistics) instead of [0, 1]")
    g.add_argument("--seed", type=_nonneg_int, default=DEFAULTS["seed"])
    g = p.add_argument_group("precision")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor cores for float32 matrix products on a GPU")
    g = p.add_argument_group("files and output")
    g.add_argument("--data-dir", default=None,
                   help="MNIST directory (default: $XPNET_DATA_DIR, then ~/.cache/xpnet/mnist)")
    g.add_argument("--save", metavar="PATH", help="write the trained model (and run state) here")
    g.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    g.add_argument("--metrics-json", metavar="PATH", help="write metrics and history as JSON")
    g.add_argument("--plot", metavar="PATH", help="write learning curves as a PNG")
    g.add_argument("--progress", action="store_true", help="show a progress bar within epochs")
    g.add_argument("--quiet", action="store_true", help="print only the final summary")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


# ---------------------------------------------------------------------- signals
class StopRequest:
    """First SIGINT/SIGTERM: finish the epoch, save, exit 130/143. A second SIGINT aborts."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{PROG}: {signal.Signals(signum).name} received: stopping after this epoch"
              " (Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    @property
    def exit_code(self):
        return 128 + self.signum


# ---------------------------------------------------------------------- the job
def main(argv=None) -> int:
    """Run the training CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    return run(_main, argv, PROG)


def _main(argv) -> int:
    """The run as a data flow: each step below is one function, in the order it happens."""
    args = _parse_args(argv)
    device = _pick_device(args)
    data = _load_data(args)
    net, resume, seed = _build_or_resume(args, device)
    arrays = _prepare_arrays(args, data, net, resume, seed)
    lr = args.lr if args.lr is not None else OPTIMIZERS[args.optimizer].default_lr
    _announce(args, net, arrays, lr)
    trainer, history, stop = _train(args, net, arrays, resume, seed, lr)
    if args.save:
        _save(args, net, trainer, arrays.scaler)
    if stop.signum is not None:
        return _report_stop(args, trainer, stop)
    test = _test(net, arrays)
    _report(args, test, history, device)
    _write_outputs(args, test, history, net, trainer, arrays.scaler, device)
    return EXIT_OK


def _parse_args(argv):
    """The command line, parsed and checked: a bad value or an unwritable output folder fails
    here, before any data is read or any device is touched."""
    args = build_parser().parse_args(argv)
    if args.layers[0] != MNIST_PIXELS or args.layers[-1] != MNIST_CLASSES:
        raise UsageError(f"--layers must start with {MNIST_PIXELS} (pixels) and end with "
                         f"{MNIST_CLASSES} (digits) for MNIST; got "
                         f"{','.join(map(str, args.layers))}")
    for flag in ("save", "metrics_json", "plot"):
        check_writable("--" + flag.replace("_", "-"), getattr(args, flag))
    return args


def _pick_device(args):
    """The ``--device`` to train on (``auto`` says why it fell back to the CPU)."""
    if args.tf32:
        backend.enable_tf32(True)  # before get_device, which is when CuPy reads the setting
    try:
        device = backend.get_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    why = f" (auto: {device.fallback_reason})" if device.fallback_reason else ""
    _say(args, f"device: {device.name}{why}")
    return device


def _say(args, *parts):
    """Print unless --quiet."""
    if not args.quiet:
        print(*parts, flush=True)


def _load_data(args):
    """Verified MNIST on the host (downloaded first if missing), cut by the test hook."""
    from .data import MnistDataError, load_mnist

    try:
        data = load_mnist(args.data_dir, progress=not args.quiet)
    except MnistDataError as exc:
        raise Failure(str(exc)) from exc
    return _subset(data)


def _subset(data):
    """Hidden test hook, not a user option: env ``XPNET_MNIST_SUBSET=N`` keeps the first ``N``
    training and the first ``N // 6`` test images of the full, verified files, so CLI tests
    train in seconds. Announced on stdout (even with --quiet) so it is never on silently."""
    text = os.environ.get("XPNET_MNIST_SUBSET", "").strip()
    if not text:
        return data
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 60:
        raise Failure(f"XPNET_MNIST_SUBSET must be a whole number >= 60; got {text!r}")
    print(f"{PROG}: note: XPNET_MNIST_SUBSET={n}: using the first {n} training and "
          f"{n // 6} test images only", flush=True)
    return dataclasses.replace(data, X_train=data.X_train[:n], y_train=data.y_train[:n],
                               X_test=data.X_test[:n // 6], y_test=data.y_test[:n // 6])


def _build_or_resume(args, device):
    """``(net, resume, seed)``: a new net from the flags, or the one in ``--resume`` with its
    run state and the seed it was started with (so the dev split and batch order repeat)."""
    if args.resume:
        net, resume = _resume_state(args, device)
        return net, resume, int(resume["json"]["trainer"]["trainer"]["seed"])
    net = MLP(args.layers, activation=args.activation, output="softmax", init=args.init,
              l2=args.l2, dtype=args.dtype, device=device, seed=args.seed,
              batch_norm=args.batch_norm, dropout=args.dropout)
    return net, None, args.seed


def _resume_state(args, device):
    """The net and run state in ``--resume``; a model saved without run state cannot resume."""
    try:
        net, state = load_checkpoint(args.resume, device=device, expect_layers=args.layers)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    if state is None or "trainer" not in state["json"]:
        raise Failure(f"{args.resume} holds a model but no run state, so it cannot be resumed; "
                      f"train from scratch or pass a checkpoint saved by xpnet.train --save")
    return net, state


@dataclasses.dataclass
class _Arrays:
    """The run's data, scaled by ``scaler`` and on the device; ``X_dev``/``y_dev`` are None
    without a dev set."""

    scaler: Scaler
    X_train: Any
    y_train: Any
    X_dev: Any
    y_dev: Any
    X_test: Any
    y_test: Any


def _prepare_arrays(args, data, net, resume, seed) -> _Arrays:
    """Split off the dev set, scale with statistics of the training part only (or the resumed
    run's), and send every array to the device once, before training."""
    X, y = data.X_train, data.y_train
    X_dev = y_dev = None
    if args.dev_fraction > 0:
        train_idx, dev_idx = stratified_split(y, args.dev_fraction, seed)
        X, y, X_dev, y_dev = X[train_idx], y[train_idx], X[dev_idx], y[dev_idx]
    scaler = (Scaler.from_state(sub_state(resume, "scaler")) if resume else
              Scaler("standard" if args.standardize else "unit").fit(X))
    send = net.device.send
    X_train, y_train = send(scaler.transform(X, net.dtype)), send(y)
    if X_dev is not None:
        X_dev, y_dev = send(scaler.transform(X_dev, net.dtype)), send(y_dev)
    X_test, y_test = send(scaler.transform(data.X_test, net.dtype)), send(data.y_test)
    return _Arrays(scaler, X_train, y_train, X_dev, y_dev, X_test, y_test)


def _announce(args, net, arrays, lr):
    """The model and the training plan, before the first epoch."""
    n_dev = 0 if arrays.y_dev is None else len(arrays.y_dev)
    _say(args, f"model: {net}")
    _say(args, f"train: {len(arrays.y_train)} samples, dev: {n_dev}, "
               f"test: {len(arrays.y_test)}; optimizer {args.optimizer} lr {lr:g} "
               f"schedule {args.schedule} batch {args.batch_size or 'full'} epochs {args.epochs}")


def _train(args, net, arrays, resume, seed, lr):
    """Fit ``net`` until ``--epochs``, early stopping, or a first SIGINT/SIGTERM (then it stops
    after the epoch in progress). Returns ``(trainer, history, stop)``; ``stop.signum`` is the
    signal that stopped it, or None."""
    with StopRequest() as stop:
        trainer = Trainer(net, optimizer=args.optimizer, lr=lr, epochs=args.epochs,
                          batch_size=args.batch_size, schedule=args.schedule,
                          patience=args.patience, seed=seed, progress=args.progress,
                          callback=_epoch_printer(args, len(arrays.y_train),
                                                  arrays.X_dev is not None, stop))
        if resume is not None:
            trainer.load_state_dict(sub_state(resume, "trainer"))
            _say(args, f"resumed from {args.resume} after epoch {trainer.epoch}")
        try:
            # Overflow on the way to a divergence is reported once, by TrainingDiverged, not as
            # NumPy RuntimeWarnings that would break the one-line error.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                history = trainer.fit(arrays.X_train, arrays.y_train, arrays.X_dev, arrays.y_dev)
        except TrainingDiverged as exc:
            raise Failure(str(exc) + (f" {args.save} was not written." if args.save else "")
                          ) from exc
    return trainer, history, stop


def _epoch_printer(args, n_train, has_dev, stop):
    """The trainer's per-epoch callback: one progress line (the first ten epochs, about twenty
    more, and the last), and "stop now" once a signal has arrived."""
    def on_epoch(trainer, r):
        rate = n_train / r["seconds"] if r["seconds"] > 0 else float("inf")
        if not args.quiet and (r["epoch"] <= 10 or r["epoch"] % max(1, args.epochs // 20) == 0
                               or r["epoch"] == args.epochs):
            dev = (f" dev_loss {r['val_loss']:.4f} dev_acc {r['val_accuracy']:.4f}"
                   if has_dev else "")
            print(f"epoch {r['epoch']:>4}/{args.epochs}  loss {r['loss']:.4f} "
                  f"acc {r['accuracy']:.4f}{dev}  lr {r['lr']:.2e}  "
                  f"{r['seconds']:.2f}s {rate:,.0f} samples/s", flush=True)
        return stop.signum is not None

    return on_epoch


def _save(args, net, trainer, scaler):
    """The model with its run state (trainer and scaler), so ``--resume`` can continue it."""
    state = nest_states(trainer=trainer.state_dict(), scaler=scaler.state())
    try:
        path = save(net, args.save, training_state=state)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    _say(args, f"saved {path}")


def _report_stop(args, trainer, stop) -> int:
    """Say where a signal stopped the run and how to go on; returns 130 or 143."""
    where = f"; resume with --resume {args.save}" if args.save else \
        " (pass --save PATH to keep a resumable checkpoint)"
    print(f"{PROG}: stopped after epoch {trainer.epoch}{where}", file=sys.stderr)
    return stop.exit_code


@dataclasses.dataclass
class _TestResult:
    """The test pass, on the host: mean data loss, accuracy and the confusion matrix."""

    loss: float
    accuracy: float
    confusion: np.ndarray  # host (k, k) int array


def _test(net, arrays) -> _TestResult:
    """Test loss, accuracy and confusion matrix from one inference pass on the device."""
    device, y_test = net.device, arrays.y_test
    with device.activate():
        loss_sum, correct, pred = net.evaluate_device(arrays.X_test, y_test, batch_size=10000,
                                                      predictions=True)
        confusion = device.to_numpy(confusion_matrix(device.xp, y_test, pred, MNIST_CLASSES))
    m = len(y_test)
    return _TestResult(float(loss_sum) / m, float(correct) / m, confusion)


def confusion_matrix(xp, y_true, y_pred, k):
    """``C[i, j]`` = samples of class ``i`` predicted as ``j``, computed on the device."""
    return xp.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _report(args, test, history, device):
    """The confusion matrix (unless --quiet) and the one summary line (always)."""
    _say(args, "confusion matrix (rows: true digit, columns: predicted):")
    _say(args, "      " + " ".join(f"{j:>5}" for j in range(MNIST_CLASSES)))
    for i, row in enumerate(test.confusion):
        _say(args, f"  {i:>2}  " + " ".join(f"{v:>5}" for v in row))
    stopped = " (early stop)" if history.stopped_early else ""
    print(f"test accuracy {test.accuracy:.4f}  test loss {test.loss:.4f}  "
          f"epochs {len(history)}{stopped}  best epoch {history.best_epoch}  "
          f"train time {_train_seconds(history):.1f}s on {device.name}", flush=True)


def _train_seconds(history) -> float:
    """Training wall time: the epochs only, data loading and the test pass excluded."""
    return float(sum(history.seconds))


def _write_outputs(args, test, history, net, trainer, scaler, device):
    """``--metrics-json`` and ``--plot``, each written atomically."""
    if args.metrics_json:
        metrics = {
            "device": device.name, "test_accuracy": test.accuracy, "test_loss": test.loss,
            "train_seconds": _train_seconds(history), "epochs_run": len(history),
            "best_epoch": history.best_epoch, "confusion_matrix": test.confusion.tolist(),
            "config": {"net": net.config(), "trainer": trainer.config(),
                       "scaling": scaler.method, "dev_fraction": args.dev_fraction,
                       "dtype": args.dtype, "tf32": args.tf32},
            "history": history.to_dict(),
        }
        with _output_file(args.metrics_json, "w") as f:
            f.write(json.dumps(metrics, indent=2))
    if args.plot:
        _plot(args.plot, history)


@contextlib.contextmanager
def _output_file(path, mode="wb"):
    """:func:`~xpnet.io.atomic_write` to ``path``; any OS error while writing becomes a one-line
    failure naming the path (the file there, if any, stays as it was)."""
    try:
        with atomic_write(path, mode) as f:
            yield f
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}") from exc


def _plot(path, history):
    """Learning curves (loss and accuracy per epoch, train and dev) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Failure("--plot needs matplotlib: pip install 'xpnet[plot]'") from None
    epochs = history.epoch
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history.loss, label="train")
    ax_acc.plot(epochs, history.accuracy, label="train")
    if not all(math.isnan(v) for v in history.val_loss):
        ax_loss.plot(epochs, history.val_loss, label="dev")
        ax_acc.plot(epochs, history.val_accuracy, label="dev")
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    try:
        with _output_file(path) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
