"""``python -m xpnet.train``: train an MLP on MNIST, report test accuracy, save what you need.

    python -m xpnet.train --device auto            # the default recipe (see --help)
    python -m xpnet.train --optimizer gd --batch-size full --lr 0.1 --epochs 500 --init he

The data go to the device once; per epoch one line of progress; at the end the test accuracy,
the confusion matrix and the training seconds (data loading excluded). Ctrl-C or SIGTERM stop
after the current epoch, save a resumable checkpoint when ``--save`` is given, and exit with
130 or 143 (a signal during that save is held until the file is complete); ``--resume``
continues such a run, with every setting it was started with, to ``--epochs`` in total.

Nothing is saved from a run whose final parameters or test loss are not finite, and every
output path is checked before any data is read: outputs are regular files written atomically,
no two outputs (nor an output and an input) may name the same file, and ``--plot`` must end in
``.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import sys
from argparse import ArgumentDefaultsHelpFormatter, ArgumentTypeError
from typing import Any

import numpy as np

from . import backend, distributed
from .checkpoint import (
    MAX_NETWORK_BYTES,
    CheckpointError,
    load_checkpoint,
    nest_states,
    network_size,
    save,
    sub_state,
)
from .cli import (
    EXIT_OK,
    Failure,
    Parser,
    UsageError,
    check_writable,
    interrupts,
    run,
    same_file,
)
from .initializers import INITIALIZERS
from .io import atomic_write
from .network import ACTIVATIONS, MLP
from .optimizers import OPTIMIZERS, SCHEDULES, optimizer_options
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
MAX_EPOCHS = 10_000  # keeps a run's history (saved as JSON in the checkpoint) a few MB
MAX_BATCH = 1 << 30
MAX_SEED = 2**63 - 1


def _shown(text) -> str:
    """``text`` for an error message, cut short (a value may be 400 digits long)."""
    return repr(text) if len(text) <= 24 else repr(text[:20]) + f"... ({len(text)} characters)"


def _int(minimum, maximum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:  # also more digits than int() reads
            raise ArgumentTypeError(f"expected a whole number, got {_shown(text)}") from None
        if not minimum <= value <= maximum:
            raise ArgumentTypeError(f"expected a whole number from {minimum} to {maximum}, "
                                    f"got {_shown(text)}")
        return value

    return parse


_epochs, _patience = _int(1, MAX_EPOCHS), _int(0, MAX_EPOCHS)
_seed, _positive_batch = _int(0, MAX_SEED), _int(1, MAX_BATCH)


def _float(lo=None, hi=None, lo_open=False, hi_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise ArgumentTypeError(f"expected a number, got {_shown(text)}") from None
        if not math.isfinite(value):
            raise ArgumentTypeError(f"expected a finite number, got {_shown(text)}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            op = ">" if lo_open else ">="
            raise ArgumentTypeError(f"expected a number {op} {lo}, got {_shown(text)}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            op = "<" if hi_open else "<="
            raise ArgumentTypeError(f"expected a number {op} {hi}, got {_shown(text)}")
        return value

    return parse


def _layers(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ArgumentTypeError(
            f"--layers must be comma-separated whole numbers like 784,256,10; got {_shown(text)}"
        ) from None
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ArgumentTypeError(f"--layers needs at least two sizes, all >= 1; got {_shown(text)}")
    n = network_size("MLP", {"layer_sizes": sizes})
    if n is None or n * 4 > MAX_NETWORK_BYTES:
        raise ArgumentTypeError(f"--layers {_shown(text)} would need more than the "
                                f"{MAX_NETWORK_BYTES} bytes of parameters a network may have")
    return sizes


def _batch_size(text):
    if text.strip().lower() == "full":
        return None
    return _positive_batch(text)


def build_parser() -> Parser:
    """The command line; choices and default learning rates come from the registries, so a
    new activation, initialiser or optimizer needs no edit here."""
    p = Parser(prog=PROG, description="Train an xpnet MLP on MNIST.",
               formatter_class=ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("device and architecture")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI, launched as `mpiexec -n N python -m "
                        "xpnet.train --distributed ...`: --batch-size is the global batch, "
                        "each rank uses GPU local_rank with --device auto/cuda, rank 0 prints "
                        "and saves (pip install -e '.[mpi]')")
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
    g.add_argument("--epochs", type=_epochs, default=DEFAULTS["epochs"],
                   help="epochs in total (with --resume: default the run's own)")
    g.add_argument("--patience", type=_patience, default=DEFAULTS["patience"],
                   help="early stopping after this many epochs without dev improvement; 0 = off")
    g.add_argument("--dev-fraction", type=_float(0.0, 1.0, hi_open=True),
                   default=DEFAULTS["dev_fraction"],
                   help="stratified share of the training set held out as a dev set; 0 = none")
    g.add_argument("--standardize", action="store_true",
                   help="standardise pixels per feature (train statistics) instead of [0, 1]")
    g.add_argument("--seed", type=_seed, default=DEFAULTS["seed"])
    g = p.add_argument_group("precision")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor cores for float32 matrix products on a GPU")
    g = p.add_argument_group("files and output")
    g.add_argument("--data-dir", default=None,
                   help="MNIST directory (default: $XPNET_DATA_DIR, then ~/.cache/xpnet/mnist)")
    g.add_argument("--save", metavar="PATH", help="write the trained model (and run state) here")
    g.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in this checkpoint, with its settings (only "
                        "--epochs, --device, --tf32 and the output flags may change)")
    g.add_argument("--metrics-json", metavar="PATH", help="write metrics and history as JSON")
    g.add_argument("--plot", metavar="PATH.png", help="write learning curves as a PNG")
    g.add_argument("--progress", action="store_true", help="show a progress bar within epochs")
    g.add_argument("--quiet", action="store_true", help="print only the final summary")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


# ---------------------------------------------------------------------- the job
def main(argv=None) -> int:
    """Run the training CLI on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    return distributed.finish(run(_main, argv, PROG))  # with MPI, a failure ends every rank


def _main(argv) -> int:
    """The run as a data flow: each step below is one function, in the order it happens."""
    given = sys.argv[1:] if argv is None else list(argv)
    # MPI starts first, so that only rank 0 prints, usage errors included.
    wanted = "--distributed" in given and not {"-h", "--help"} & set(given)
    comm = distributed.init_cli() if wanted else None
    args = _parse_args(argv)
    device = _pick_device(args, comm)
    resume = _resume_state(args, device) if args.resume else None
    data = _load_data(args)
    net, seed = _build_or_resume(args, device, resume)
    arrays = _prepare_arrays(args, data, net, resume, seed)
    lr = args.lr if args.lr is not None else OPTIMIZERS[args.optimizer].default_lr
    _announce(args, net, arrays, lr)
    signals = interrupts()
    signals.mode = "stop"  # from here until the checkpoint is written: stop, do not abort
    trainer, history = _train(args, net, arrays, resume, seed, lr, signals, comm)
    if not distributed.is_root(comm):
        return EXIT_OK  # rank 0 tests, saves and reports
    _check_finite(args, net, trainer, lr)
    test = None if history.interrupted else _test(args, net, arrays, lr)
    if args.save:
        with signals.defer():
            _save(args, net, trainer, arrays)
    if signals.signal_exit_code is not None:
        signals.mode = "ignore"  # the rest of a burst of Ctrl-C changes nothing now
        return _report_stop(args, trainer, history, signals)
    signals.mode = "abort"
    _report(args, test, history, device)
    _write_outputs(args, test, history, net, trainer, arrays.scaler, device)
    return EXIT_OK


# Settings that define a run, as (flag, args attribute); a resumed run takes them all from its
# checkpoint, and an explicitly given flag that disagrees is a usage error.
RUN_SETTINGS = [("--layers", "layers"), ("--activation", "activation"), ("--init", "init"),
                ("--l2", "l2"), ("--dropout", "dropout"), ("--batch-norm", "batch_norm"),
                ("--optimizer", "optimizer"), ("--lr", "lr"), ("--schedule", "schedule"),
                ("--batch-size", "batch_size"), ("--patience", "patience"),
                ("--dev-fraction", "dev_fraction"), ("--standardize", "standardize"),
                ("--seed", "seed"), ("--dtype", "dtype")]


def _parse_args(argv):
    """The command line, parsed and checked: a bad value, an output that cannot be written or
    two paths that collide fail here, before any data is read or any device is touched."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Which flags were given explicitly (a resumed run refuses those that disagree with it).
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = set(vars(parser.parse_args(argv)))
    if args.layers[0] != MNIST_PIXELS or args.layers[-1] != MNIST_CLASSES:
        raise UsageError(f"--layers must start with {MNIST_PIXELS} (pixels) and end with "
                         f"{MNIST_CLASSES} (digits) for MNIST; got "
                         f"{','.join(map(str, args.layers))}")
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        # Always a PNG: a name without .png (or with .pdf, .svg) would silently hold another
        # format than it says, so the name must say PNG; it is then written exactly as given.
        raise UsageError(f"--plot {args.plot}: the learning curves are a PNG image; give a file "
                         f"name ending in .png")
    outputs = [(flag, getattr(args, flag[2:].replace("-", "_")))
               for flag in ("--save", "--metrics-json", "--plot")]
    outputs = [(flag, path) for flag, path in outputs if path]
    _check_collisions(args, outputs)
    for flag, path in outputs:
        check_writable(flag, path)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        _matplotlib()  # fails now, not after training (find_spec imports nothing)
    return args


def _check_collisions(args, outputs):
    """No two outputs may be one file, and no output may be an input: ``--resume`` (except for
    ``--save``, which updates the checkpoint it resumed) or one of the MNIST files."""
    for i, (flag_a, a) in enumerate(outputs):
        for flag_b, b in outputs[i + 1:]:
            if same_file(a, b):
                raise UsageError(f"{flag_a} {a} and {flag_b} {b} name the same file; give each "
                                 f"output its own file")
        if args.resume and flag_a != "--save" and same_file(a, args.resume):
            raise UsageError(f"{flag_a} {a} is the checkpoint given to --resume, which it would "
                             f"overwrite; choose another file")
    from .data import resolve_data_dir
    from .data.mnist import FILE_NAMES

    data_dir = resolve_data_dir(args.data_dir)
    for flag, path in outputs:
        for name in FILE_NAMES:
            for candidate in (data_dir / name, data_dir / f"{name}.gz"):
                if same_file(path, candidate):
                    raise UsageError(f"{flag} {path} is the MNIST file {candidate}, which it "
                                     f"would overwrite; choose another file")


def _pick_device(args, comm=None):
    """The ``--device`` to train on (``auto`` says why it fell back to the CPU); with MPI,
    ``auto`` and ``cuda`` mean GPU ``local_rank``."""
    if args.tf32:
        backend.enable_tf32(True)  # before get_device, which is when CuPy reads the setting
    try:
        device = distributed.rank_device(args.device, comm)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    why = f" (auto: {device.fallback_reason})" if device.fallback_reason else ""
    ranks = f" x {comm.size} MPI ranks" if comm is not None else ""
    _say(args, f"device: {device.name}{ranks}{why}")
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


def _build_or_resume(args, device, resume):
    """``(net, seed)``: the net in ``--resume`` and the seed its run was started with (so the
    dev split and batch order repeat), or a new net from the flags."""
    if resume is not None:
        return resume.net, args.seed
    net = MLP(args.layers, activation=args.activation, output="softmax", init=args.init,
              l2=args.l2, dtype=args.dtype, device=device, seed=args.seed,
              batch_norm=args.batch_norm, dropout=args.dropout)
    return net, args.seed


@dataclasses.dataclass
class _Resume:
    """A run to continue: its net, its run state (``{"json", "arrays"}``) and the Trainer
    options that the command line does not set (min_delta, schedule shape, optimizer's)."""

    net: Any
    state: dict
    trainer_options: dict
    train_samples: int | None


def _resume_state(args, device) -> _Resume:
    """Read ``--resume`` and make ``args`` the run's own settings: each setting that defines the
    run comes from the checkpoint, an explicitly given flag that disagrees is a usage error
    (exit 2, naming the flag), and only ``--epochs`` (default: the run's own) may change, with
    the device and the outputs."""
    path = args.resume
    try:
        net, state = load_checkpoint(path, device=device)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    if state is None or not isinstance(state["json"].get("trainer"), dict):
        raise Failure(f"{path} holds a model but no run state, so it cannot be resumed; "
                      f"train from scratch or pass a checkpoint saved by xpnet.train --save")
    if getattr(net, "layer_sizes", None) is None or net.n_features_in != MNIST_PIXELS \
            or net.n_outputs != MNIST_CLASSES or net.head.name != "softmax":
        raise Failure(f"{path} does not hold an MNIST classifier (an MLP with {MNIST_PIXELS} "
                      f"inputs and {MNIST_CLASSES} softmax outputs), so xpnet.train cannot "
                      f"resume it")
    js = state["json"]
    field = _field_reader(path)
    tcfg = field(js, "trainer.trainer", dict)
    schedule = field(js, "trainer.trainer.schedule", dict)
    config = net.config()
    saved = {
        "layers": config["layer_sizes"], "activation": config["activation"],
        "init": config["init"], "l2": config["l2"], "dropout": config["dropout"],
        "batch_norm": config["batch_norm"], "dtype": config["dtype"],
        "optimizer": field(js, "trainer.trainer.optimizer", str),
        "lr": field(js, "trainer.trainer.schedule.lr", float),
        "schedule": field(js, "trainer.trainer.schedule.kind", str),
        "batch_size": field(js, "trainer.trainer.batch_size", (int, type(None))),
        "patience": field(js, "trainer.trainer.patience", int),
        "seed": field(js, "trainer.trainer.seed", int),
        "standardize": field(js, "scaler.method", str) == "standard",
    }
    done = field(js, "trainer.epoch", int)
    planned = field(js, "trainer.trainer.epochs", int)
    run_info = js.get("run") if isinstance(js.get("run"), dict) else {}
    dev_fraction = run_info.get("dev_fraction")
    if isinstance(dev_fraction, (int, float)) and not isinstance(dev_fraction, bool) \
            and 0 <= dev_fraction < 1:
        saved["dev_fraction"] = float(dev_fraction)
    elif _history_without_dev(js):
        saved["dev_fraction"] = 0.0
    elif "dev_fraction" not in args.explicit:
        _say(args, f"note: {path} does not record its --dev-fraction (it was saved by an older "
                   f"xpnet); assuming {args.dev_fraction}")
    if saved["optimizer"] not in OPTIMIZERS:
        raise Failure(f"{path} has run state for an unknown optimizer "
                      f"{saved['optimizer']!r:.40}; it cannot be resumed")
    conflicts = [f"{flag} {_flag_value(getattr(args, attr))} (the run used "
                 f"{_flag_value(saved[attr])})"
                 for flag, attr in RUN_SETTINGS
                 if attr in args.explicit and attr in saved and getattr(args, attr) != saved[attr]]
    if conflicts:
        raise UsageError(f"{'; '.join(conflicts)}: a resumed run keeps the settings of the run "
                         f"in {path}; leave {'these flags' if len(conflicts) > 1 else 'it'} out, "
                         f"or train from scratch")
    for attr, value in saved.items():
        setattr(args, attr, value)
    if "epochs" not in args.explicit:
        args.epochs = planned
    if args.epochs <= done:
        how = ("pass a larger --epochs" if "epochs" in args.explicit else
               f"pass --epochs N with N > {done}")
        raise UsageError(f"--epochs {args.epochs}: the run in {path} has already trained {done} "
                         f"epochs; {how} to train it further")
    names = optimizer_options(saved["optimizer"])[1:]
    options = {"min_delta": field(js, "trainer.trainer.min_delta", float),
               "restore_best": field(js, "trainer.trainer.restore_best", bool),
               "step_size": schedule.get("step_size"), "gamma": schedule.get("gamma", 0.1),
               **{name: tcfg[name] for name in names if name in tcfg}}
    samples = run_info.get("train_samples")
    return _Resume(net, state, options, samples if isinstance(samples, int) else None)


def _field_reader(path):
    """``field(d, "a.b.c", types)``: a value of the run state, or a one-line Failure saying
    which entry is missing or damaged (the checkpoint was then not written by this program)."""
    def field(d, dotted, types):
        value = d
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise Failure(f"{path} lacks the run-state entry {dotted!r}, so it cannot be "
                              f"resumed; it is damaged or was not saved by xpnet.train --save")
            value = value[part]
        allowed = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise Failure(f"{path} has a damaged run-state entry {dotted!r} "
                          f"({_flag_value(value)}), so it cannot be resumed")
        return value

    return field


def _history_without_dev(js) -> bool:
    history = js.get("trainer", {}).get("history") if isinstance(js.get("trainer"), dict) \
        else None
    values = history.get("val_loss") if isinstance(history, dict) else None
    return isinstance(values, list) and all(v is None for v in values)


def _flag_value(value) -> str:
    if value is None:
        return "full"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclasses.dataclass
class _Arrays:
    """The run's data, scaled by ``scaler`` and on the device; ``X_dev``/``y_dev`` are None
    without a dev set. ``train_samples``: training images before the dev split."""

    scaler: Scaler
    X_train: Any
    y_train: Any
    X_dev: Any
    y_dev: Any
    X_test: Any
    y_test: Any
    train_samples: int
    dev_fraction: float


def _prepare_arrays(args, data, net, resume, seed) -> _Arrays:
    """Split off the dev set, scale with statistics of the training part only (or the resumed
    run's), and send every array to the device once, before training."""
    X, y = data.X_train, data.y_train
    if resume is not None and resume.train_samples is not None \
            and resume.train_samples != len(y):
        raise Failure(f"the run in {args.resume} trained on {resume.train_samples} training "
                      f"images but this one has {len(y)} (XPNET_MNIST_SUBSET, or other data); "
                      f"resume it with the same data")
    X_dev = y_dev = None
    if args.dev_fraction > 0:
        train_idx, dev_idx = stratified_split(y, args.dev_fraction, seed)
        X, y, X_dev, y_dev = X[train_idx], y[train_idx], X[dev_idx], y[dev_idx]
    if resume is not None:
        try:
            scaler = Scaler.from_state(sub_state(resume.state, "scaler"))
            scaler.transform(X[:1], net.dtype)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise Failure(f"{args.resume} has a damaged input scaler ({type(exc).__name__}: "
                          f"{exc}), so it cannot be resumed") from None
    else:
        scaler = Scaler("standard" if args.standardize else "unit").fit(X)
    send = net.device.send
    X_train, y_train = send(scaler.transform(X, net.dtype)), send(y)
    if X_dev is not None:
        X_dev, y_dev = send(scaler.transform(X_dev, net.dtype)), send(y_dev)
    X_test, y_test = send(scaler.transform(data.X_test, net.dtype)), send(data.y_test)
    return _Arrays(scaler, X_train, y_train, X_dev, y_dev, X_test, y_test, len(data.y_train),
                   args.dev_fraction)


def _announce(args, net, arrays, lr):
    """The model and the training plan, before the first epoch."""
    n_dev = 0 if arrays.y_dev is None else len(arrays.y_dev)
    _say(args, f"model: {net}")
    _say(args, f"train: {len(arrays.y_train)} samples, dev: {n_dev}, "
               f"test: {len(arrays.y_test)}; optimizer {args.optimizer} lr {lr:g} "
               f"schedule {args.schedule} batch {args.batch_size or 'full'} epochs {args.epochs}")


def _train(args, net, arrays, resume, seed, lr, signals, comm=None):
    """Fit ``net`` until ``--epochs``, early stopping, or a first SIGINT/SIGTERM (then it stops
    after the epoch in progress; ``history.interrupted``). Returns ``(trainer, history)``."""
    options = resume.trainer_options if resume is not None else {}
    try:
        trainer = Trainer(net, optimizer=args.optimizer, lr=lr, epochs=args.epochs,
                          batch_size=args.batch_size, schedule=args.schedule,
                          patience=args.patience, seed=seed, progress=args.progress,
                          callback=_epoch_printer(args, len(arrays.y_train),
                                                  arrays.X_dev is not None, signals),
                          comm=comm, **options)
    except (TypeError, ValueError) as exc:
        if resume is None:
            raise
        raise Failure(f"{args.resume} has damaged run-state settings ({exc}), so it cannot be "
                      f"resumed") from None
    if resume is not None:
        try:
            trainer.load_state_dict(sub_state(resume.state, "trainer"))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise Failure(f"{args.resume} has damaged run state ({exc}), so it cannot be "
                          f"resumed") from None
        _say(args, f"resumed from {args.resume} after epoch {trainer.epoch}")
    try:
        # Overflow on the way to a divergence is reported once, by TrainingDiverged, not as
        # NumPy RuntimeWarnings that would break the one-line error.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            history = trainer.fit(arrays.X_train, arrays.y_train, arrays.X_dev, arrays.y_dev)
    except TrainingDiverged as exc:
        raise Failure(str(exc) + _not_written(args)) from exc
    return trainer, history


def _not_written(args) -> str:
    return f" {args.save} was not written." if args.save else ""


def _epoch_printer(args, n_train, has_dev, signals):
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
        return signals.first is not None

    return on_epoch


def _check_finite(args, net, trainer, lr):
    """Refuse a run whose final state is not finite: the trainer checks each epoch's loss,
    but the last update comes after the last loss it sees (and an interrupted run stops right
    after an update). Parameters, batch-norm statistics and optimizer state are all checked."""
    xp = net.device.xp
    state = [net.flat.data, *net.buffers(), *trainer.optimizer.state.values()]
    with net.device.activate(), np.errstate(invalid="ignore", over="ignore"):
        finite = all(bool(xp.isfinite(a).all()) for a in state)
    if not finite:
        raise Failure(f"training diverged in the last update: the final parameters are not "
                      f"finite (NaN or infinity); lower the learning rate (now {lr:g}) or "
                      f"standardise the inputs.{_not_written(args)}")


def _save(args, net, trainer, arrays):
    """The model with its run state (trainer, scaler and the run's data settings), so
    ``--resume`` can continue it with every setting it was started with."""
    run_state = {"json": {"dev_fraction": arrays.dev_fraction,
                          "train_samples": arrays.train_samples}, "arrays": {}}
    state = nest_states(trainer=trainer.state_dict(), scaler=arrays.scaler.state(),
                        run=run_state)
    _say(args, f"saving {args.save} ...")
    try:
        path = save(net, args.save, training_state=state)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    _say(args, f"saved {path}")


def _report_stop(args, trainer, history, signals) -> int:
    """Say where a signal stopped the run and how to go on; returns 130 or 143."""
    if history.interrupted:
        where = f"; resume with --resume {args.save}" if args.save else \
            " (pass --save PATH to keep a resumable checkpoint)"
        print(f"{PROG}: stopped after epoch {trainer.epoch}{where}", file=sys.stderr)
    else:
        kept = f"; {args.save} holds the finished run" if args.save else ""
        print(f"{PROG}: stopped after training had finished (epoch {trainer.epoch}){kept}; "
              f"the report and any --metrics-json/--plot were skipped", file=sys.stderr)
    return signals.signal_exit_code


@dataclasses.dataclass
class _TestResult:
    """The test pass, on the host: mean data loss, accuracy and the confusion matrix."""

    loss: float
    accuracy: float
    confusion: np.ndarray  # host (k, k) int array


def _test(args, net, arrays, lr) -> _TestResult:
    """Test loss, accuracy and confusion matrix from one inference pass on the device; a test
    loss that is not finite means the run diverged, and nothing is saved."""
    device, y_test = net.device, arrays.y_test
    with device.activate(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss_sum, correct, pred = net.evaluate_device(arrays.X_test, y_test, batch_size=10000,
                                                      predictions=True)
        confusion = device.to_numpy(confusion_matrix(device.xp, y_test, pred, MNIST_CLASSES))
    m = len(y_test)
    result = _TestResult(float(loss_sum) / m, float(correct) / m, confusion)
    if not math.isfinite(result.loss):
        raise Failure(f"training diverged: the final parameters give a test loss of "
                      f"{result.loss}; lower the learning rate (now {lr:g}) or standardise the "
                      f"inputs.{_not_written(args)}")
    return result


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


def _json_ready(value):
    """``value`` with every float that is not finite replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _write_outputs(args, test, history, net, trainer, scaler, device):
    """``--metrics-json`` (strict JSON: never NaN) and ``--plot``, each written atomically."""
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
        text = json.dumps(_json_ready(metrics), indent=2, allow_nan=False)
        with _output_file(args.metrics_json, "w") as f:
            f.write(text)
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


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Failure("--plot needs matplotlib: pip install 'xpnet[plot]'") from None
    return plt


def _plot(path, history):
    """Learning curves (loss and accuracy per epoch, train and dev) as a PNG, written to
    exactly ``path`` (which ends in .png: checked before training)."""
    plt = _matplotlib()
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
