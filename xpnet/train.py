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
from argparse import ArgumentTypeError
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
from .preprocessing import Scaler, random_split, stratified_split
from .training import Trainer, TrainingDiverged

PROG = "xpnet.train"
MNIST_PIXELS, MNIST_CLASSES = 784, 10
DATASET_NAMES = ("mnist", "fashion-mnist", "kmnist")  # IDX image sets: 784 pixels, 10 classes
TASKS = ("classification", "regression")

# Settings that do not depend on the data.
DEFAULTS = {
    "activation": "relu",
    "optimizer": "adam",
    "test_fraction": 0.2,
    "seed": 0,
}
# Settings that do. The image recipe was chosen by measurement on MNIST (bench/README.md, "Time
# to 98%"): four epochs of Adam at 4e-3 on a cosine schedule reach 98.2% on seeds 0-4, and no
# dev set is held out, since nothing uses it (no early stopping) and its 6000 images are worth
# more as training data. The table recipe follows scikit-learn's MLP defaults (one hidden layer
# of 100, Glorot initialisation, batches of 200, Adam 1e-3, up to 200 epochs, stopping when the
# training loss has not improved by 1e-4 for 10 epochs): on small tables a dev set costs more
# training data than early stopping on it saves (bench/own_data_compare.py).
RECIPES = {
    "image": {"hidden": "256,128,64", "init": "he", "batch_size": 128, "epochs": 4,
              "patience": 0, "schedule": "cosine", "dev_fraction": 0.0, "lr": {"adam": 4e-3}},
    "table": {"hidden": "100", "init": "xavier", "batch_size": 200, "epochs": 200,
              "patience": 10, "schedule": "constant",
              "dev_fraction": 0.0, "lr": {"adam": 1e-3}, "min_delta": 1e-4},
}
OLD_DEV_FRACTION = 0.1  # the default of checkpoints that do not record theirs

EPILOG = """examples:
  python -m xpnet.train --save runs/mnist.npz          # MNIST, the default recipe (~98%)
  python -m xpnet.train --data train.csv --target label --save runs/digits.npz
  python -m xpnet.train --data houses.csv --target price --task regression --hidden 64,64
"""


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


def _sizes(flag, example, minimum):
    def parse(text):
        try:
            sizes = [int(part) for part in text.split(",")]
        except ValueError:
            raise ArgumentTypeError(f"{flag} must be comma-separated whole numbers like "
                                    f"{example}; got {_shown(text)}") from None
        if len(sizes) < minimum or any(n < 1 for n in sizes):
            raise ArgumentTypeError(f"{flag} needs at least {minimum} size"
                                    f"{'s' if minimum > 1 else ''}, all >= 1; got {_shown(text)}")
        layers = sizes if minimum > 1 else [1, *sizes, 1]
        n = network_size("MLP", {"layer_sizes": layers})
        if n is None or n * 4 > MAX_NETWORK_BYTES:
            raise ArgumentTypeError(f"{flag} {_shown(text)} would need more than the "
                                    f"{MAX_NETWORK_BYTES} bytes of parameters a network may have")
        return sizes

    return parse


_layers = _sizes("--layers", "784,256,10", 2)
_hidden = _sizes("--hidden", "256,128,64", 1)


def _batch_size(text):
    if text.strip().lower() == "full":
        return None
    return _positive_batch(text)


def build_parser() -> Parser:
    """The command line; choices and default learning rates come from the registries, so a
    new activation, initialiser or optimizer needs no edit here."""
    image, table = RECIPES["image"], RECIPES["table"]

    def by_source(key):
        return f"default: {image[key]} for image datasets, {table[key]} for --data"

    p = Parser(prog=PROG, description="Train an xpnet MLP on MNIST-like images or your own "
               "table of numbers (CSV or NPZ).", epilog=EPILOG)
    g = p.add_argument_group("data")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=DATASET_NAMES, default=None,
                     help="an IDX image dataset, downloaded and checksummed on first use "
                          "(default: mnist, unless --data is given)")
    src.add_argument("--data", metavar="PATH",
                     help="your own data: a .csv with a header row (the --target column and "
                          "numeric feature columns) or a .npz with arrays X and y (and "
                          "optionally X_test, y_test)")
    g.add_argument("--target", metavar="COLUMN", default="label",
                   help="the CSV column to predict")
    g.add_argument("--task", choices=TASKS, default="classification",
                   help="classification (integer or text labels) or regression (numbers)")
    g.add_argument("--test-fraction", metavar="F",
                   type=_float(0.0, 1.0, lo_open=True, hi_open=True),
                   default=DEFAULTS["test_fraction"],
                   help="share held out as the test set (stratified, seeded) when the data "
                        "has no test split of its own")
    g.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder of the IDX files (default: $XPNET_DATA_DIR for mnist, then "
                        "~/.cache/xpnet/<dataset>)")
    g = p.add_argument_group("device and architecture")
    g.add_argument("--device", default="auto",
                   help="auto (a CUDA GPU when CuPy finds one, else the CPU), cpu, cuda or "
                        "cuda:N")
    g.add_argument("--threads", type=_int(1, 1024), default=None, metavar="N",
                   help="BLAS threads on the CPU (default: the BLAS library's own choice, "
                        "usually one per core; fewer can be faster on a busy machine)")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI, launched as `mpiexec -n N python -m "
                        "xpnet.train --distributed ...`: --batch-size is the global batch, "
                        "each rank uses GPU local_rank with --device auto/cuda, rank 0 prints "
                        "and saves (pip install -e '.[mpi]')")
    g.add_argument("--hidden", type=_hidden, default=None, metavar="N,N,...",
                   help=f"hidden layer sizes; the input and output sizes come from the data "
                        f"({by_source('hidden')})")
    g.add_argument("--layers", type=_layers, default=None, metavar="N,N,...",
                   help="all layer sizes, input through output, instead of --hidden (for MNIST "
                        "784,...,10)")
    g.add_argument("--activation", default=DEFAULTS["activation"], choices=list(ACTIVATIONS),
                   help="hidden-layer activation")
    g.add_argument("--init", default=None, choices=list(INITIALIZERS),
                   help=f"weight initialisation ({by_source('init')})")
    g.add_argument("--l2", metavar="L", type=_float(0.0), default=0.0, help="L2 strength (lambda)")
    g.add_argument("--dropout", metavar="P", type=_float(0.0, 1.0, hi_open=True), default=0.0,
                   help="dropout rate on hidden layers")
    g.add_argument("--batch-norm", action="store_true", help="batch norm on hidden layers")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=list(OPTIMIZERS),
                   help="update rule")
    defaults = ", ".join(f"{name} {cls.default_lr:g}" for name, cls in OPTIMIZERS.items())
    g.add_argument("--lr", metavar="LR", type=_float(0.0, lo_open=True), default=None,
                   help=f"learning rate (default: adam {image['lr']['adam']:g} on image "
                        f"datasets; otherwise {defaults})")
    g.add_argument("--schedule", default=None, choices=list(SCHEDULES),
                   help=f"learning-rate schedule over the planned epochs "
                        f"({by_source('schedule')})")
    g.add_argument("--batch-size", metavar="N|full", type=_batch_size,
                   default=None,
                   help=f"mini-batch size, or 'full' for full-batch gradient descent "
                        f"({by_source('batch_size')})")
    g.add_argument("--epochs", metavar="N", type=_epochs, default=None,
                   help=f"epochs in total ({by_source('epochs')}; with --resume: the run's "
                        f"own)")
    g.add_argument("--patience", metavar="N", type=_patience, default=None,
                   help=f"stop after this many epochs without a lower dev loss and keep the "
                        f"best epoch's weights; 0 = train every epoch ({by_source('patience')})")
    g.add_argument("--dev-fraction", metavar="F", type=_float(0.0, 1.0, hi_open=True),
                   default=None,
                   help=f"stratified share of the training set held out as a dev set, for "
                        f"early stopping and the dev columns; 0 = none "
                        f"({by_source('dev_fraction')})")
    g.add_argument("--standardize", action="store_true",
                   help="images: standardise pixels per feature (train statistics) instead of "
                        "[0, 1]; tables are always standardised")
    g.add_argument("--seed", metavar="N", type=_seed, default=DEFAULTS["seed"],
                   help="seeds the weights, the splits, the batch order and dropout")
    g = p.add_argument_group("precision")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type of the parameters and the data")
    g.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor cores for float32 matrix products on a GPU")
    g = p.add_argument_group("files and output")
    g.add_argument("--save", metavar="PATH", help="write the trained model (and run state) "
                   "here; missing folders are created")
    g.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in this checkpoint, with its settings (only "
                        "--epochs, --device, --threads, --tf32 and the output flags may change)")
    g.add_argument("--metrics-json", metavar="PATH", help="write metrics and history as JSON")
    g.add_argument("--plot", metavar="PATH.png", help="write learning curves as a PNG")
    g.add_argument("--progress", action="store_true",
                   help="show a progress bar during each epoch")
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
    _limit_threads(args)
    device = _pick_device(args, comm)
    resume = _resume_state(args, device) if args.resume else None
    _apply_recipe(args)
    data = _load_data(args)
    net, seed = _build_or_resume(args, device, resume, data)
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
    _report(args, test, history, device, trainer, arrays)
    _write_outputs(args, test, history, net, trainer, arrays, device)
    return EXIT_OK


# Settings that define a run, as (flag, args attribute); a resumed run takes them all from its
# checkpoint, and an explicitly given flag that disagrees is a usage error.
RUN_SETTINGS = [("--dataset", "dataset"), ("--data", "data"), ("--target", "target"),
                ("--task", "task"), ("--test-fraction", "test_fraction"), ("--layers", "layers"),
                ("--activation", "activation"), ("--init", "init"),
                ("--l2", "l2"), ("--dropout", "dropout"), ("--batch-norm", "batch_norm"),
                ("--optimizer", "optimizer"), ("--lr", "lr"), ("--schedule", "schedule"),
                ("--batch-size", "batch_size"), ("--patience", "patience"),
                ("--dev-fraction", "dev_fraction"), ("--standardize", "standardize"),
                ("--seed", "seed"), ("--dtype", "dtype")]


def _parse_args(argv):
    """The command line, parsed and checked: a bad value, an output that cannot be written or
    two paths that collide fail here, before any data is read or any device is touched."""
    parser = build_parser()
    given = sys.argv[1:] if argv is None else [str(a) for a in argv]
    _check_list_flags(given)
    args = parser.parse_args(argv)
    # Which flags were given explicitly (a resumed run refuses those that disagree with it).
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = set(vars(parser.parse_args(argv)))
    if args.layers is not None and args.hidden is not None:
        raise UsageError("--layers and --hidden both give the hidden sizes; give one of them "
                         "(--hidden takes the input and output sizes from the data)")
    if args.layers is not None and args.data is None and args.resume is None and \
            (args.layers[0] != MNIST_PIXELS or args.layers[-1] != MNIST_CLASSES):
        raise UsageError(f"--layers must start with {MNIST_PIXELS} (pixels) and end with "
                         f"{MNIST_CLASSES} (classes) for {args.dataset or 'mnist'}; got "
                         f"{','.join(map(str, args.layers))} (or give only the hidden sizes "
                         f"with --hidden)")
    if args.data is None and args.task == "regression" and args.resume is None:
        raise UsageError("--task regression needs your own numeric targets (--data FILE "
                         "--target COLUMN); the image datasets are classification")
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
        _no_matplotlib()  # fails now, not after training (find_spec imports nothing)
    return args


def _check_list_flags(given):
    """``--layers 784 256 10`` (spaces, as in a Python list) is a usage error that shows the
    comma form, instead of argparse's "unrecognized arguments: 256 10"."""
    for i, item in enumerate(given):
        if item in ("--layers", "--hidden"):
            values = []
            for value in given[i + 1:]:
                if not value.strip().isdigit():
                    break
                values.append(value.strip())
            if len(values) > 1:
                raise UsageError(f"{item} takes one comma-separated list: write {item} "
                                 f"{','.join(values)} (no spaces)")


def _limit_threads(args):
    """``--threads N``: at most N BLAS threads for the rest of the run (threadpoolctl)."""
    if args.threads is None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise Failure("--threads needs threadpoolctl: pip install threadpoolctl (or pip "
                      "install -e '.[train]' in the clone)") from None
    # Kept for the life of the process: the CLI runs once and exits.
    args.thread_limiter = threadpool_limits(limits=args.threads, user_api="blas")


def _apply_recipe(args):
    """Fill the settings whose defaults depend on the data (:data:`RECIPES`): images keep the
    fast MNIST recipe, tables the scikit-learn-like one. A resumed run has its own."""
    if args.data is None and args.dataset is None:
        args.dataset = "mnist"
    args.source_kind = "table" if args.data is not None else "image"
    if args.resume:
        return
    recipe = RECIPES[args.source_kind]
    for key in ("init", "epochs", "patience", "schedule", "dev_fraction"):
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])
    if "batch_size" not in args.explicit:  # (None is 'full')
        args.batch_size = recipe["batch_size"]
    if args.lr is None:
        args.lr = recipe["lr"].get(args.optimizer)  # None: the optimizer's default_lr
    if args.layers is None and args.hidden is None:
        args.hidden = _hidden(recipe["hidden"])


def _check_collisions(args, outputs):
    """No two outputs may be one file, and no output may be an input: ``--resume`` (except for
    ``--save``, which updates the checkpoint it resumed), ``--data`` or one of the IDX files."""
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

    for flag, path in outputs:
        if args.data and same_file(path, args.data):
            raise UsageError(f"{flag} {path} is the --data file, which it would overwrite; "
                             f"choose another file")
    if args.data is not None:
        return
    data_dir = resolve_data_dir(args.data_dir, args.dataset or "mnist")
    for flag, path in outputs:
        for name in FILE_NAMES:
            for candidate in (data_dir / name, data_dir / f"{name}.gz"):
                if same_file(path, candidate):
                    raise UsageError(f"{flag} {path} is the data file {candidate}, which it "
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


@dataclasses.dataclass
class _Data:
    """The run's data on the host, targets encoded: class indices ``0..k-1`` (int) for
    classification, float64 values for regression. ``classes`` maps an index back to the
    original label; ``X_test``/``y_test`` are the source's own test split or a held-out part."""

    X_train: np.ndarray  # (n, d)
    y_train: np.ndarray  # (n,)
    X_test: np.ndarray
    y_test: np.ndarray
    kind: str  # "image" (IDX pixels) or "table" (--data)
    name: str  # for messages: the dataset or the file
    classes: list | None  # original labels, JSON-ready; None for regression
    class_names: list | None  # display names (Fashion-MNIST's "Trouser", ...), else None
    feature_names: list | None
    test_source: str  # "given" or "held out"

    @property
    def n_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)


def _load_data(args) -> _Data:
    """The data on the host: an IDX dataset (downloaded and verified first if missing, then
    cut by the test hook) or ``--data``; targets encoded for ``--task``; a test split held out
    when the source has none."""
    if args.data is None:
        return _load_images(args)
    from .data import DataError, load_table

    try:
        table = load_table(args.data, target=args.target)
    except DataError as exc:
        raise Failure(str(exc)) from exc
    y_test = getattr(table, "y_test", None)
    X_test = getattr(table, "X_test", None) if y_test is not None else None
    classes, y, y_test = _encode_targets(args, table.y, y_test)
    test_source = "given"
    if X_test is None:
        train_idx, test_idx = _split(y, args.test_fraction, args.seed, classes is not None,
                                     "--test-fraction", salt=1)
        X, X_test, y, y_test = table.X[train_idx], table.X[test_idx], y[train_idx], y[test_idx]
        test_source = "held out"
    else:
        X = table.X
    return _Data(X, y, X_test, y_test, "table", os.path.basename(args.data), classes, None,
                 list(table.feature_names), test_source)


def _load_images(args) -> _Data:
    from .data import DATASETS

    data = _read_dataset(args)
    names = list(getattr(DATASETS[args.dataset], "classes", range(MNIST_CLASSES)))
    return _Data(data.X_train, data.y_train, data.X_test, data.y_test, "image", args.dataset,
                 list(range(MNIST_CLASSES)), [str(n) for n in names], None, "given")


def _read_dataset(args):
    """The verified IDX files of ``--dataset`` (downloaded first if missing), cut by the test
    hook; the host arrays of :class:`~xpnet.data.MnistData`."""
    from .data import MnistDataError, load_dataset

    try:
        data = load_dataset(args.dataset, args.data_dir, progress=not args.quiet)
    except MnistDataError as exc:
        raise Failure(str(exc)) from exc
    return _subset(data)


def _encode_targets(args, y, y_test):
    """``(classes, y, y_test)``: class indices and the labels they stand for, or float64
    values and ``classes=None`` for ``--task regression``."""
    what = f"the target column {args.target!r} of {args.data}"
    if args.task == "regression":
        if y.dtype.kind not in "iuf" or (y_test is not None and y_test.dtype.kind not in "iuf"):
            example = next(v for v in y if not _is_number(v))
            raise Failure(f"{what} holds text such as {str(example)[:20]!r}; regression needs "
                          f"numbers (drop --task regression to classify the labels)")
        return None, y.astype(np.float64), None if y_test is None else y_test.astype(np.float64)
    if y.dtype.kind == "f":
        fractional = y[np.isfinite(y) & (y != np.round(y))]
        if fractional.size:
            raise UsageError(f"{what} holds non-integer numbers such as {fractional[0]:g}; "
                             f"pass --task regression to predict numbers")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise Failure(f"{what} has a single class ({_label(classes[0])}); classification "
                      f"needs at least two")
    if len(classes) > MAX_CLASSES:
        raise Failure(f"{what} has {len(classes)} different values, more than the "
                      f"{MAX_CLASSES} classes a classifier may have; pass --task regression "
                      f"if they are numbers to predict")
    if y_test is not None:
        index = np.clip(np.searchsorted(classes, y_test), 0, len(classes) - 1)
        unseen = y_test[classes[index] != y_test]
        if unseen.size:
            raise Failure(f"y_test in {args.data} has labels the training set lacks, such as "
                          f"{_label(unseen[0])}; every test label must occur in y")
        y_test = index
    return [_label(c) for c in classes], codes.reshape(-1).astype(np.int64), y_test


MAX_CLASSES = 10_000


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))


def _label(value):
    """A label as JSON stores it: int, float or str."""
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def _split(y, fraction, seed, stratified, flag, salt):
    """``(keep_idx, held_idx)``: stratified by class for classification, else a seeded random
    cut. ``salt`` makes the test and dev splits of one seed independent (the dev split keeps
    the plain seed, as MNIST runs always had)."""
    seed = seed if salt is None else [seed, salt]
    try:
        if stratified:
            return stratified_split(y, fraction, seed)
        return random_split(len(y), fraction, seed)
    except ValueError as exc:
        raise Failure(f"{flag} {fraction:g}: {exc}") from None


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


def _build_or_resume(args, device, resume, data):
    """``(net, seed)``: the net in ``--resume`` and the seed its run was started with (so the
    dev split and batch order repeat), or a new net from the flags, sized for ``data``."""
    n_in, n_out = data.X_train.shape[1], data.n_outputs
    head = "softmax" if data.classes is not None else "identity"
    if resume is not None:
        net = resume.net
        if net.n_features_in != n_in or net.n_outputs != n_out or net.head.name != head:
            raise Failure(f"the model in {args.resume} ({net.n_features_in} inputs, "
                          f"{net.n_outputs} {net.head.name} outputs) does not fit {data.name} "
                          f"({n_in} features, {n_out} {head} outputs); resume it with the data "
                          f"it was trained on")
        return net, args.seed
    if args.layers is not None:
        if args.layers[0] != n_in or args.layers[-1] != n_out:
            raise UsageError(f"--layers must start with {n_in} (the features of {data.name}) "
                             f"and end with {n_out} ({_outputs_word(data)}); got "
                             f"{','.join(map(str, args.layers))} (or give only the hidden "
                             f"sizes with --hidden)")
        layers = args.layers
    else:
        layers = [n_in, *args.hidden, n_out]
    args.layers = layers  # what the metrics and the resume check record
    net = MLP(layers, activation=args.activation, output=head, init=args.init,
              l2=args.l2, dtype=args.dtype, device=device, seed=args.seed,
              batch_norm=args.batch_norm, dropout=args.dropout)
    return net, args.seed


def _outputs_word(data) -> str:
    return "one output for regression" if data.classes is None else \
        f"one output per class: {len(data.classes)}"


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
    if getattr(net, "layer_sizes", None) is None or net.head.name not in ("softmax", "identity"):
        raise Failure(f"{path} does not hold a model xpnet.train trains (an MLP with softmax "
                      f"outputs, or one identity output for regression), so it cannot be "
                      f"resumed")
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
    saved.update(_saved_source(path, run_info, net))
    dev_fraction = run_info.get("dev_fraction")
    if isinstance(dev_fraction, (int, float)) and not isinstance(dev_fraction, bool) \
            and 0 <= dev_fraction < 1:
        saved["dev_fraction"] = float(dev_fraction)
    elif _history_without_dev(js):
        saved["dev_fraction"] = 0.0
    elif "dev_fraction" not in args.explicit:
        args.dev_fraction = OLD_DEV_FRACTION
        _say(args, f"note: {path} does not record its --dev-fraction (it was saved by an older "
                   f"xpnet); assuming {args.dev_fraction}")
    if saved["optimizer"] not in OPTIMIZERS:
        raise Failure(f"{path} has run state for an unknown optimizer "
                      f"{saved['optimizer']!r:.40}; it cannot be resumed")
    if "data" in args.explicit and saved["data"] and same_file(args.data, saved["data"]):
        saved["data"] = args.data  # the same file, named another way
    if "hidden" in args.explicit and args.hidden != saved["layers"][1:-1]:
        raise UsageError(f"--hidden {_flag_value(args.hidden)} (the run used "
                         f"{_flag_value(saved['layers'][1:-1])}): a resumed run keeps the "
                         f"settings of the run in {path}; leave it out, or train from scratch")
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


def _saved_source(path, run_info, net) -> dict:
    """The data settings a checkpoint's run was trained with; a checkpoint from before
    ``--data`` trained MNIST."""
    source = run_info.get("source")
    if source is None:
        return {"dataset": "mnist", "data": None, "task": "classification"}
    ok = isinstance(source, dict) and source.get("task") in TASKS and (
        source.get("dataset") in DATASET_NAMES and source.get("data") is None
        or isinstance(source.get("data"), str) and source.get("dataset") is None)
    if not ok:
        raise Failure(f"{path} has a damaged run-state entry 'run.source', so it cannot be "
                      f"resumed")
    out = {"dataset": source.get("dataset"), "data": source.get("data"),
           "task": source["task"]}
    if isinstance(source.get("target"), str):
        out["target"] = source["target"]
    fraction = source.get("test_fraction")
    if isinstance(fraction, float) and 0 < fraction < 1:
        out["test_fraction"] = fraction
    return out


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
    without a dev set. ``train_samples``: training samples before the dev split. Regression
    targets are standardised on the device: ``y = (value - target_mean) / target_scale``."""

    scaler: Scaler
    X_train: Any
    y_train: Any
    X_dev: Any
    y_dev: Any
    X_test: Any
    y_test: Any
    train_samples: int
    dev_fraction: float
    data: _Data
    target_mean: float = 0.0
    target_scale: float = 1.0


def _prepare_arrays(args, data, net, resume, seed) -> _Arrays:
    """Split off the dev set, scale with statistics of the training part only (or the resumed
    run's), and send every array to the device once, before training."""
    X, y = data.X_train, data.y_train
    if resume is not None and resume.train_samples is not None \
            and resume.train_samples != len(y):
        raise Failure(f"the run in {args.resume} trained on {resume.train_samples} training "
                      f"samples but this one has {len(y)} (XPNET_MNIST_SUBSET, or other data); "
                      f"resume it with the same data")
    X_dev = y_dev = None
    if args.dev_fraction > 0:
        train_idx, dev_idx = _split(y, args.dev_fraction, seed, data.classes is not None,
                                    "--dev-fraction", salt=None)
        X, y, X_dev, y_dev = X[train_idx], y[train_idx], X[dev_idx], y[dev_idx]
    if resume is not None:
        try:
            scaler = Scaler.from_state(sub_state(resume.state, "scaler"))
            scaler.transform(X[:1], net.dtype)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise Failure(f"{args.resume} has a damaged input scaler ({type(exc).__name__}: "
                          f"{exc}), so it cannot be resumed") from None
    else:
        # Tables mix units (years, dollars, ratios), so each feature is standardised; pixels
        # share one unit and map to [0, 1] unless --standardize.
        method = "standard" if args.standardize or data.kind == "table" else "unit"
        scaler = Scaler(method).fit(X)
    mean, scale = _target_stats(args, data, y, resume)

    def targets(values):
        if data.classes is not None:
            return values
        return ((values - mean) / scale).astype(net.dtype)

    send = net.device.send
    X_train, y_train = send(scaler.transform(X, net.dtype)), send(targets(y))
    if X_dev is not None:
        X_dev, y_dev = send(scaler.transform(X_dev, net.dtype)), send(targets(y_dev))
    X_test, y_test = send(scaler.transform(data.X_test, net.dtype)), send(targets(data.y_test))
    return _Arrays(scaler, X_train, y_train, X_dev, y_dev, X_test, y_test, len(data.y_train),
                   args.dev_fraction, data, mean, scale)


def _target_stats(args, data, y, resume):
    """``(mean, scale)`` of the regression targets of the training part (the resumed run's
    own when resuming); ``(0, 1)`` for classification."""
    if data.classes is not None:
        return 0.0, 1.0
    if resume is not None:
        source = resume.state["json"].get("run", {}).get("source", {})
        mean, scale = source.get("target_mean"), source.get("target_scale")
        if not (_is_number(mean) and _is_number(scale) and math.isfinite(mean)
                and math.isfinite(scale) and scale > 0):
            raise Failure(f"{args.resume} has damaged target statistics, so it cannot be "
                          f"resumed")
        return float(mean), float(scale)
    std = float(np.std(y))
    return float(np.mean(y)), std if std > 0 else 1.0


def _announce(args, net, arrays, lr):
    """The data, the model and the training plan, before the first epoch."""
    data = arrays.data
    n_dev = 0 if arrays.y_dev is None else len(arrays.y_dev)
    if data.kind == "table":
        what = (f"{len(data.classes)} classes" if data.classes is not None
                else f"regression of {args.target!r}")
        held = f", test set: {args.test_fraction:g} held out" if data.test_source == \
            "held out" else ""
        _say(args, f"data: {args.data}: {data.X_train.shape[1]} features, {what}, inputs "
                   f"standardised{held}")
    _say(args, f"model: {net}")
    _say(args, f"train: {len(arrays.y_train)} samples, dev: {n_dev}, "
               f"test: {len(arrays.y_test)}; optimizer {args.optimizer} lr {lr:g} "
               f"schedule {args.schedule} batch {args.batch_size or 'full'} epochs {args.epochs}"
               + (f" (early stop after {args.patience} without a lower dev loss)"
                  if args.patience and n_dev else ""))


def _train(args, net, arrays, resume, seed, lr, signals, comm=None):
    """Fit ``net`` until ``--epochs``, early stopping, or a first SIGINT/SIGTERM (then it stops
    after the epoch in progress; ``history.interrupted``). Returns ``(trainer, history)``."""
    options = resume.trainer_options if resume is not None else \
        {"min_delta": RECIPES[args.source_kind].get("min_delta", 0.0)}
    try:
        trainer = Trainer(net, optimizer=args.optimizer, lr=lr, epochs=args.epochs,
                          batch_size=args.batch_size, schedule=args.schedule,
                          patience=args.patience, seed=seed, progress=args.progress,
                          callback=_epoch_printer(args, len(arrays.y_train),
                                                  arrays.X_dev is not None, signals,
                                                  net.head.is_classifier),
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


def _epoch_printer(args, n_train, has_dev, signals, accuracy=True):
    """The trainer's per-epoch callback: one progress line (the first ten epochs, about twenty
    more, and the last), and "stop now" once a signal has arrived."""
    def on_epoch(trainer, r):
        rate = n_train / r["seconds"] if r["seconds"] > 0 else float("inf")
        if not args.quiet and (r["epoch"] <= 10 or r["epoch"] % max(1, args.epochs // 20) == 0
                               or r["epoch"] == args.epochs):
            dev = f" dev_loss {r['val_loss']:.4f}" if has_dev else ""
            acc = f" acc {r['accuracy']:.4f}" if accuracy else ""
            if has_dev and accuracy:
                dev += f" dev_acc {r['val_accuracy']:.4f}"
            print(f"epoch {r['epoch']:>4}/{args.epochs}  loss {r['loss']:.4f}"
                  f"{acc}{dev}  lr {r['lr']:.2e}  "
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
    """The model with its run state (trainer, scaler, the data source and the label mapping),
    so ``--resume`` can continue it with every setting it was started with and
    ``xpnet.predict`` can give back the original labels."""
    run_state = {"json": {"dev_fraction": arrays.dev_fraction,
                          "train_samples": arrays.train_samples,
                          "source": _source_record(args, arrays)}, "arrays": {}}
    state = nest_states(trainer=trainer.state_dict(), scaler=arrays.scaler.state(),
                        run=run_state)
    _say(args, f"saving {args.save} ...")
    try:
        path = save(net, args.save, training_state=state)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    _say(args, f"saved {path}")


def _source_record(args, arrays) -> dict:
    """What the run was trained on, for resuming and predicting: the dataset or the file (as
    given), the task, the label of each output (classification) or the target statistics
    (regression), and the feature names of a table."""
    data = arrays.data
    record = {"dataset": args.dataset if data.kind == "image" else None,
              "data": args.data, "task": args.task, "test_fraction": args.test_fraction,
              "kind": data.kind, "classes": data.classes, "class_names": data.class_names,
              "feature_names": data.feature_names}
    if data.kind == "table":
        record["target"] = args.target
    if data.classes is None:
        record.update(target_mean=arrays.target_mean, target_scale=arrays.target_scale)
    return record


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
    """The test pass, on the host: mean data loss (on the standardised targets for
    regression), accuracy and the confusion matrix, or R^2 and RMSE in the target's units."""

    loss: float
    accuracy: float | None = None
    confusion: np.ndarray | None = None  # host (k, k) int array
    r2: float | None = None
    rmse: float | None = None


def _test(args, net, arrays, lr) -> _TestResult:
    """Test metrics from one inference pass on the device; a test loss that is not finite
    means the run diverged, and nothing is saved."""
    device, y_test = net.device, arrays.y_test
    k = arrays.data.n_outputs
    with device.activate(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss_sum, correct, pred = net.evaluate_device(arrays.X_test, y_test, batch_size=10000,
                                                      predictions=True)
        if net.head.is_classifier:
            confusion = device.to_numpy(confusion_matrix(device.xp, y_test, pred, k))
    m = len(y_test)
    if net.head.is_classifier:
        result = _TestResult(float(loss_sum) / m, float(correct) / m, confusion)
    else:
        # R^2 and RMSE in the target's own units: the scale cancels in R^2.
        error = device.to_numpy(pred).reshape(-1) - device.to_numpy(y_test).reshape(-1)
        truth = device.to_numpy(y_test).reshape(-1).astype(np.float64)
        sse = float(np.sum(error.astype(np.float64) ** 2))
        sst = float(np.sum((truth - truth.mean()) ** 2))
        r2 = 1.0 - sse / sst if sst > 0 else float("nan")
        result = _TestResult(float(loss_sum) / m, r2=r2,
                             rmse=math.sqrt(sse / m) * arrays.target_scale)
    if not math.isfinite(result.loss):
        raise Failure(f"training diverged: the final parameters give a test loss of "
                      f"{result.loss}; lower the learning rate (now {lr:g}) or standardise the "
                      f"inputs.{_not_written(args)}")
    return result


def confusion_matrix(xp, y_true, y_pred, k):
    """``C[i, j]`` = samples of class ``i`` predicted as ``j``, computed on the device."""
    return xp.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


MAX_CONFUSION_CLASSES = 20  # wider matrices do not fit a terminal; --metrics-json has them


def _report(args, test, history, device, trainer, arrays):
    """The confusion matrix (unless --quiet or too many classes) and the one summary line
    (always), saying which epoch's weights were tested and saved."""
    data = arrays.data
    if test.confusion is not None and len(test.confusion) <= MAX_CONFUSION_CLASSES:
        names = [_short(c) for c in (data.class_names or data.classes)]
        width = max(5, *(len(n) for n in names))
        _say(args, "confusion matrix (rows: true class, columns: predicted):")
        _say(args, " " * (width + 3) + " ".join(f"{n:>{width}}" for n in names))
        for name, row in zip(names, test.confusion):
            _say(args, f"  {name:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    if test.accuracy is not None:
        scores = f"test accuracy {test.accuracy:.4f}  test loss {test.loss:.4f}"
    else:
        scores = f"test r2 {test.r2:.4f}  test rmse {test.rmse:.4g}"
    stopped = " (early stop)" if history.stopped_early else ""
    used = _weights_used(trainer, history, arrays.y_dev is not None)
    print(f"{scores}  epochs {len(history)}{stopped}  {used}  "
          f"train time {_train_seconds(history):.1f}s on {device.name}", flush=True)


def _train_seconds(history) -> float:
    """Training wall time: the epochs only, data loading and the test pass excluded."""
    return float(sum(history.seconds))


def _short(label) -> str:
    text = str(label)
    return text if len(text) <= 10 else text[:9] + "~"


def _weights_used(trainer, history, has_dev) -> str:
    """Which weights the test (and ``--save``) used: the last epoch's, or the best dev epoch's
    when early stopping restored them."""
    last = history.epoch[-1] if len(history) else trainer.epoch
    best = history.best_epoch
    restored = trainer.restore_best and best is not None and best != last \
        and not history.interrupted
    loss = "dev loss" if has_dev else "training loss"
    if restored:
        return f"tested the weights of epoch {best} (lowest {loss}; restored)"
    if best is not None and best != last:
        return (f"tested the last epoch's weights (epoch {last}; lowest {loss} at epoch "
                f"{best})")
    return f"tested the weights of epoch {last}"


def _json_ready(value):
    """``value`` with every float that is not finite replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _write_outputs(args, test, history, net, trainer, arrays, device):
    """``--metrics-json`` (strict JSON: never NaN) and ``--plot``, each written atomically."""
    if args.metrics_json:
        data = arrays.data
        scores = ({"test_accuracy": test.accuracy, "test_loss": test.loss}
                  if test.accuracy is not None else
                  {"test_r2": test.r2, "test_rmse": test.rmse, "test_loss": test.loss})
        metrics = {
            "device": device.name, **scores,
            "train_seconds": _train_seconds(history), "epochs_run": len(history),
            "best_epoch": history.best_epoch,
            **({"confusion_matrix": test.confusion.tolist(), "classes": data.classes}
               if test.confusion is not None else {}),
            "config": {"net": net.config(), "trainer": trainer.config(),
                       "source": _source_record(args, arrays),
                       "scaling": arrays.scaler.method, "dev_fraction": args.dev_fraction,
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


def _no_matplotlib():
    raise Failure("--plot needs matplotlib: pip install -e '.[plot]'")


def _plot(path, history):
    """Learning curves (:func:`xpnet.plot_history`: loss, and accuracy for a classifier, per
    epoch, train and dev) as a PNG, written atomically to exactly ``path`` (which ends in
    .png: checked before training)."""
    from .plotting import plot_history

    try:
        plot_history(history, path)
    except ImportError:
        _no_matplotlib()
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
