"""``python -m xpnet.train``: train an MLP on MNIST or your own table, report test accuracy,
save what you need.

    python -m xpnet.train --device auto            # the default recipe (see --help)
    python -m xpnet.train --optimizer gd --batch-size full --lr 0.1 --epochs 500 --init he
    python -m xpnet.train --data patients.csv --target diagnosis --id patient_id --save m.npz

This module is wiring: it parses the command line and calls the library. A table's columns
become inputs through :class:`xpnet.schema.InputSchema`, its target through
:class:`xpnet.targets.Target`, the two and the network make the :class:`xpnet.Model` that is
saved, the splits are :func:`xpnet.preprocessing.holdout_split`, the test metrics
:func:`xpnet.metrics.score_network`, the defaults :data:`xpnet.recipes.RECIPES` and the run
record :mod:`xpnet.runs`.

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
    sub_state,
)
from .cli import (
    EXIT_OK,
    Failure,
    Parser,
    UsageError,
    check_writable,
    interrupts,
    printable,
    run,
    same_file,
)
from .initializers import INITIALIZERS, check_init
from .io import atomic_write
from .metrics import Scores, confusion_matrix, eval_rows, score_network
from .model import Model, ModelRecordError
from .network import ACTIVATIONS, MLP
from .optimizers import OPTIMIZERS, SCHEDULES
from .preprocessing import Scaler, holdout_split
from .recipes import RECIPES
from .runs import IMAGE_DATASETS, RunRecord, RunRecordError, source_record
from .schema import MISSING_POLICIES, InputSchema
from .targets import TASKS, Target, TargetError
from .training import Trainer, TrainingDiverged

PROG = "xpnet.train"
MNIST_PIXELS, MNIST_CLASSES = 784, 10
DATASET_NAMES = IMAGE_DATASETS  # IDX image sets: 784 pixels, 10 classes

# Settings that do not depend on the data.
DEFAULTS = {
    "activation": "relu",
    "optimizer": "adam",
    "test_fraction": 0.2,
    "seed": 0,
    "missing": "impute",
}
__all__ = ["RECIPES", "DEFAULTS", "build_parser", "confusion_matrix", "main"]
# Settings that do are the recipes of xpnet.recipes (RECIPES), by the kind of data.
OLD_DEV_FRACTION = 0.1  # the default of checkpoints that do not record theirs

EPILOG = """examples:
  python -m xpnet.train --save runs/mnist.npz          # MNIST, the default recipe (~98%)
  python -m xpnet.train --data train.csv --target label --save runs/digits.npz
  python -m xpnet.train --data houses.csv --target price --task regression --id house_id
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


def _init(text):
    try:
        return check_init(text.strip())
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None


def _columns(text):
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ArgumentTypeError(f"expected comma-separated column names, got {_shown(text)}")
    return names


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
    g.add_argument("--id", metavar="COLUMN", default=None,
                   help="a column that identifies the rows: kept out of the features, and "
                        "passed through to xpnet.predict's output as its first column")
    g.add_argument("--drop", metavar="COL,COL,...", type=_columns, default=None,
                   help="columns to leave out of the features")
    g.add_argument("--missing", choices=MISSING_POLICIES, default=DEFAULTS["missing"],
                   help="missing cells (empty, NA, NaN, null): impute them from the training "
                        "rows (the mean of a number column, the most frequent value of "
                        "another), or refuse them")
    g.add_argument("--test-data", metavar="PATH",
                   help="a test file with the same columns as --data, instead of holding out "
                        "--test-fraction of it")
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
                   help="BLAS threads on the CPU (default: one per rank with --distributed, "
                        "else the BLAS library's own choice, usually one per core; fewer can "
                        "be faster on a busy machine)")
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
    g.add_argument("--init", default=None, type=_init, metavar="|".join(INITIALIZERS) + "[:S]",
                   help=f"weight initialisation: he, xavier, normal (N(0,1) x 0.01) or "
                        f"normal:S (N(0,1) x S, e.g. normal:0.1) ({by_source('init')})")
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
    g.add_argument("--step-size", metavar="N", type=_epochs, default=None,
                   help="with --schedule step: epochs between the drops of the learning rate "
                        "(x 0.1 each; default: a third of --epochs)")
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
    limiter = _limit_threads(args)
    try:
        return _run(args, comm)
    finally:
        if limiter is not None:  # called in-process (tests, a notebook): leave no thread limit
            limiter.restore_original_limits()


def _run(args, comm) -> int:
    """The run itself, from the device to the report, with the parsed ``args``."""
    device = _pick_device(args, comm)
    resume = _resume_state(args, device) if args.resume else None
    _apply_recipe(args)
    data = _load_data(args)
    model, arrays = _build_model(args, device, resume, data)
    net = model.net
    lr = args.lr if args.lr is not None else OPTIMIZERS[args.optimizer].default_lr
    _announce(args, model, data, arrays, lr)
    signals = interrupts()
    signals.mode = "stop"  # from here until the checkpoint is written: stop, do not abort
    trainer, history = _train(args, net, arrays, resume, args.seed, lr, signals, comm)
    if not distributed.is_root(comm):
        return EXIT_OK  # rank 0 tests, saves and reports
    _check_finite(args, net, trainer, lr)
    test = None if history.interrupted else _test(args, model, arrays, lr)
    if args.save:
        with signals.defer():
            _save(args, model, trainer, arrays)
    if signals.signal_exit_code is not None:
        signals.mode = "ignore"  # the rest of a burst of Ctrl-C changes nothing now
        return _report_stop(args, trainer, history, signals)
    signals.mode = "abort"
    _report(args, test, history, device, trainer, arrays, model)
    _write_outputs(args, test, history, model, trainer, arrays, device)
    return EXIT_OK


# Settings that define a run, as (flag, args attribute); a resumed run takes them all from its
# checkpoint, and an explicitly given flag that disagrees is a usage error.
RUN_SETTINGS = [("--dataset", "dataset"), ("--data", "data"), ("--target", "target"),
                ("--id", "id"), ("--drop", "drop"), ("--missing", "missing"),
                ("--test-data", "test_data"),
                ("--task", "task"), ("--test-fraction", "test_fraction"), ("--layers", "layers"),
                ("--activation", "activation"), ("--init", "init"),
                ("--l2", "l2"), ("--dropout", "dropout"), ("--batch-norm", "batch_norm"),
                ("--optimizer", "optimizer"), ("--lr", "lr"), ("--schedule", "schedule"),
                ("--step-size", "step_size"),
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
    table_flags = [flag for flag in ("--id", "--drop", "--test-data")
                   if flag[2:].replace("-", "_") in args.explicit]
    if args.data is None and table_flags and args.resume is None:
        raise UsageError(f"{table_flags[0]} is for your own table (--data FILE); the image "
                         f"datasets have no columns")
    if args.drop and args.target in args.drop:
        raise UsageError(f"--drop names the target column {args.target!r}; the target is "
                         f"never a feature, so leave it out of --drop (or choose another "
                         f"--target)")
    if args.id is not None and args.id == args.target:
        raise UsageError(f"--id names the target column {args.target!r}; give the column "
                         f"that identifies the rows")
    if args.step_size is not None and args.schedule != "step" and args.resume is None:
        # (no recipe's schedule is step: without --schedule step the flag would do nothing)
        raise UsageError(f"--step-size {args.step_size} sets the drops of --schedule step; add "
                         f"--schedule step")
    if args.test_data and "test_fraction" in args.explicit:
        raise UsageError("--test-data and --test-fraction both give the test set; give one of "
                         "them")
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
    """``--threads N``: at most N BLAS threads for the run (threadpoolctl); returns the limiter
    to restore when the run ends, or None. Under
    ``--distributed`` the default is one per rank: the ranks share the cores, and OpenBLAS
    threads that spin while another rank holds their core made an epoch 30-50x slower
    (docs/scaling.md)."""
    threads = args.threads
    if threads is None and args.distributed:
        threads = 1
    if threads is None:
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if args.threads is None:  # the MPI default: without threadpoolctl, the BLAS's own
            return None
        raise Failure("--threads needs threadpoolctl: pip install threadpoolctl (or pip "
                      "install -e '.[train]' in the clone)") from None
    args.blas_threads = threads
    return threadpool_limits(limits=threads, user_api="blas")  # restored when the run ends


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
        for input_flag in ("--data", "--test-data"):
            given = getattr(args, input_flag[2:].replace("-", "_"))
            if given and same_file(path, given):
                raise UsageError(f"{flag} {path} is the {input_flag} file, which it would "
                                 f"overwrite; choose another file")
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
    if comm is not None and getattr(args, "blas_threads", None):
        n = args.blas_threads
        ranks += f", {n} BLAS thread{'s' if n > 1 else ''} each"
    _say(args, f"device: {device.name}{ranks}{why}")
    return device


def _say(args, *parts):
    """Print unless --quiet."""
    if not args.quiet:
        print(*parts, flush=True)


@dataclasses.dataclass
class _Data:
    """The run's data on the host, before any encoding: the training and test rows (uint8
    pixels for an image dataset, a :class:`~xpnet.data.Frame` of columns for a table) and
    their raw targets. ``target`` is fitted on every training label (classification) and None
    for regression (fitted later, on the training part only); ``codes`` are the training rows'
    class indices, for stratified splits."""

    train: Any
    y_train: np.ndarray
    test: Any
    y_test: np.ndarray
    kind: str  # "image" (IDX pixels) or "table" (--data)
    name: str  # for messages: the dataset or the file
    target: Target | None
    codes: np.ndarray | None
    test_source: str  # "given", "held out" or "--test-data"

    @property
    def n_train(self) -> int:
        return len(self.y_train)


def _load_data(args) -> _Data:
    """The data on the host: an IDX dataset (downloaded and verified first if missing, then
    cut by the test hook) or ``--data`` as written (numbers, text, missing cells), with the
    ``--test-data`` file, the NPZ's own test split or a held-out part as the test set."""
    if args.data is None:
        return _load_images(args)
    from .data import DataError, load_frame

    try:
        table = load_frame(args.data, target=args.target)
        test = load_frame(args.test_data, target=args.target) if args.test_data else table.test
    except DataError as exc:
        raise Failure(str(exc)) from exc
    if args.test_data:
        _check_same_columns(args, table.frame.names, test.frame.names)
    what = f"the target column {args.target!r} of {args.data}"
    # Classification: the classes of every training label. Regression: a first fit only
    # checks the values (the statistics come from the training part, once it is split off).
    checked = _library_call(Target.fit, table.y, args.task, name=args.target, what=what)
    target = checked if checked.is_classifier else None
    codes = None if target is None else target.encode(table.y)
    if test is not None:
        where = f"the target column {args.target!r} of {test.path}"
        _library_call(checked.encode, test.y, what=where)
        return _Data(table.frame, table.y, test.frame, test.y, "table",
                     os.path.basename(args.data), target, codes,
                     "--test-data" if args.test_data else "given")
    keep, held = _split(codes if codes is not None else table.y, args.test_fraction, args.seed,
                        codes is not None, "--test-fraction", salt=1)
    return _Data(table.frame.take(keep), table.y[keep], table.frame.take(held), table.y[held],
                 "table", os.path.basename(args.data), target,
                 None if codes is None else codes[keep], "held out")


def _library_call(function, *args, **kwargs):
    """A library call whose :class:`~xpnet.data.DataError` is the run's one-line failure (a
    usage error when the fix is another ``--task``)."""
    from .data import DataError

    try:
        return function(*args, **kwargs)
    except TargetError as exc:
        raise (UsageError if exc.usage else Failure)(str(exc)) from None
    except DataError as exc:
        raise Failure(str(exc)) from None


def _check_same_columns(args, train, test):
    missing = [n for n in train if n not in set(test)]
    extra = [n for n in test if n not in set(train)]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing[:5])}"] if missing else []) + \
            ([f"has {', '.join(extra[:5])} besides"] if extra else [])
        raise Failure(f"--test-data {args.test_data} {' and '.join(parts)} the columns of "
                      f"{args.data}; the test file needs the same columns as the training "
                      f"file (in any order)")


def _load_images(args) -> _Data:
    from .data import DATASETS

    data = _read_dataset(args)
    names = list(getattr(DATASETS[args.dataset], "classes", range(MNIST_CLASSES)))
    target = Target("classification", classes=list(range(MNIST_CLASSES)),
                    class_names=[str(n) for n in names])
    return _Data(data.X_train, data.y_train, data.X_test, data.y_test, "image", args.dataset,
                 target, data.y_train, "given")


def _read_dataset(args):
    """The verified IDX files of ``--dataset`` (downloaded first if missing), cut by the test
    hook; the host arrays of :class:`~xpnet.data.MnistData`."""
    from .data import MnistDataError, load_dataset

    try:
        data = load_dataset(args.dataset, args.data_dir, progress=not args.quiet)
    except MnistDataError as exc:
        raise Failure(str(exc)) from exc
    return _subset(data)


def _split(y, fraction, seed, stratified, flag, salt):
    """:func:`~xpnet.preprocessing.holdout_split`, its error a one-line failure naming
    ``flag``."""
    try:
        return holdout_split(y, fraction, seed, stratified, salt)
    except ValueError as exc:
        raise Failure(f"{flag} {fraction:g}: {exc}") from None


def _take(rows, index):
    return rows.take(index) if hasattr(rows, "take") and not isinstance(rows, np.ndarray) \
        else rows[index]


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


@dataclasses.dataclass
class _Resume:
    """A run to continue: its net, its run state (``{"json", "arrays"}``) and the Trainer
    options that the command line does not set (min_delta, schedule shape, optimizer's)."""

    model: Model
    state: dict
    trainer_options: dict
    train_samples: int | None


def _resume_state(args, device) -> _Resume:
    """Read ``--resume`` and make ``args`` the run's own settings: each setting that defines the
    run comes from the checkpoint (:class:`~xpnet.runs.RunRecord`), an explicitly given flag
    that disagrees is a usage error (exit 2, naming the flag), and only ``--epochs`` (default:
    the run's own) may change, with the device, the outputs and the path of a moved table."""
    path = args.resume
    try:
        net, state = load_checkpoint(path, device=device)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    if getattr(net, "layer_sizes", None) is None or net.head.name not in ("softmax", "identity"):
        raise Failure(f"{path} does not hold a model xpnet.train trains (an MLP with softmax "
                      f"outputs, or one identity output for regression), so it cannot be "
                      f"resumed")
    try:
        model = Model.from_state(net, state)
        given = {attr: getattr(args, attr) for attr in ("data", "test_data")
                 if attr in args.explicit}
        record = RunRecord.read(path, net, model, state, given)
    except ModelRecordError as exc:
        raise Failure(f"{path}: {exc}, so it cannot be resumed") from None
    except RunRecordError as exc:
        raise Failure(str(exc)) from None
    saved = dict(record.settings, step_size=record.trainer_options.get("step_size"))
    if "dev_fraction" not in saved and "dev_fraction" not in args.explicit:
        args.dev_fraction = OLD_DEV_FRACTION
        _say(args, f"note: {path} does not record its --dev-fraction (it was saved by an older "
                   f"xpnet); assuming {args.dev_fraction}")
    for attr in ("data", "test_data"):
        if attr in args.explicit and saved.get(attr) and same_file(getattr(args, attr),
                                                                    saved[attr]):
            saved[attr] = getattr(args, attr)  # the same file, named another way
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
        args.epochs = record.epochs_planned
    if args.epochs <= record.epochs_done:
        how = ("pass a larger --epochs" if "epochs" in args.explicit else
               f"pass --epochs N with N > {record.epochs_done}")
        raise UsageError(f"--epochs {args.epochs}: the run in {path} has already trained "
                         f"{record.epochs_done} epochs; {how} to train it further")
    return _Resume(model, state, record.trainer_options, record.train_samples)


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
    """The run's data, encoded by the model and on the device; ``X_dev``/``y_dev`` are None
    without a dev set. ``train_samples``: training samples before the dev split."""

    X_train: Any
    y_train: Any
    X_dev: Any
    y_dev: Any
    X_test: Any
    y_test: Any
    train_samples: int
    dev_fraction: float


def _build_model(args, device, resume, data) -> tuple[Model, _Arrays]:
    """Split off the dev set; fit the model's input schema and target on the training part
    (or take the resumed run's model); build its network from the flags; then encode every
    part and send it to the device once, before training."""
    if resume is not None and resume.train_samples is not None \
            and resume.train_samples != data.n_train:
        raise Failure(f"the run in {args.resume} trained on {resume.train_samples} training "
                      f"samples but this one has {data.n_train} (XPNET_MNIST_SUBSET, or other "
                      f"data); resume it with the same data")
    X, y, X_dev, y_dev = data.train, data.y_train, None, None
    if args.dev_fraction > 0:
        stratify = data.codes if data.codes is not None else y
        train_idx, dev_idx = _split(stratify, args.dev_fraction, args.seed,
                                    data.codes is not None, "--dev-fraction", salt=None)
        X, y, X_dev, y_dev = _take(X, train_idx), y[train_idx], _take(X, dev_idx), y[dev_idx]
    model = resume.model if resume is not None else _new_model(args, device, data, X, y)
    net = model.net

    def encode(rows, values, what):
        inputs = _library_call(model.transform, rows)
        targets = _library_call(model.target.encode, values, what=what)
        if not model.target.is_classifier:
            targets = targets.astype(net.dtype)
        return net.device.send(inputs), net.device.send(targets)

    where = f"the target of {data.name}"
    X_train, y_train = encode(X, y, where)
    if X_dev is not None:
        X_dev, y_dev = encode(X_dev, y_dev, where)
    X_test, y_test = encode(data.test, data.y_test, f"the test set's target ({data.name})")
    return model, _Arrays(X_train, y_train, X_dev, y_dev, X_test, y_test, data.n_train,
                          args.dev_fraction)


def _new_model(args, device, data, X, y) -> Model:
    """A new model for the training part ``(X, y)``: images keep 784 pixel columns scaled to
    [0, 1] (or standardised); tables get their columns' schema (ids, drops, kinds, missing
    cells, one-hot); the network's sizes come from the data and the flags."""
    if data.kind == "image":
        scaler = Scaler("standard" if args.standardize else "unit").fit(X)
        inputs = InputSchema.pixels(X.shape[1], scaler)
    else:
        inputs = _library_call(InputSchema.fit, X, id=args.id, drop=args.drop or (),
                               missing=args.missing)
    target = data.target or _library_call(Target.fit, y, "regression", name=args.target)
    n_in, n_out = inputs.n_inputs, target.n_outputs
    if args.layers is not None:
        if args.layers[0] != n_in or args.layers[-1] != n_out:
            outputs = ("one output for regression" if not target.is_classifier else
                       f"one output per class: {n_out}")
            raise UsageError(f"--layers must start with {n_in} (the inputs of {data.name}) "
                             f"and end with {n_out} ({outputs}); got "
                             f"{','.join(map(str, args.layers))} (or give only the hidden "
                             f"sizes with --hidden)")
        layers = args.layers
    else:
        layers = [n_in, *args.hidden, n_out]
    n = network_size("MLP", {"layer_sizes": layers})
    if n is None or n * np.dtype(args.dtype).itemsize > MAX_NETWORK_BYTES:
        raise UsageError(f"the network {','.join(map(str, layers))} would need more than the "
                         f"{MAX_NETWORK_BYTES} bytes of parameters a checkpoint may hold; use "
                         f"fewer or smaller hidden layers")
    args.layers = layers  # what the metrics and the resume check record
    net = MLP(layers, activation=args.activation, output=target.head, init=args.init,
              l2=args.l2, dtype=args.dtype, device=device, seed=args.seed,
              batch_norm=args.batch_norm, dropout=args.dropout)
    return Model(net, inputs, target)


def _announce(args, model, data, arrays, lr):
    """The data, its columns, the model and the training plan, before the first epoch."""
    net, n_dev = model.net, 0 if arrays.y_dev is None else len(arrays.y_dev)
    if data.kind == "table":
        rows = data.n_train + (len(data.y_test) if data.test_source == "held out" else 0)
        held = {"held out": f", test set: {args.test_fraction:g} held out",
                "--test-data": f", test set: {args.test_data} ({len(data.y_test)} rows)",
                "given": f", test set: its own ({len(data.y_test)} rows)"}[data.test_source]
        _say(args, f"data: {args.data}: {rows} rows, {model.target.describe()}{held}")
        for line in model.inputs.describe():
            _say(args, line)
        for note in model.target.notes:
            _say(args, f"note: {note}")
    _say(args, f"model: {net}")
    _say(args, f"train: {len(arrays.y_train)} samples, dev: {n_dev}, "
               f"test: {len(arrays.y_test)}; optimizer {args.optimizer} lr {lr:g} "
               f"schedule {args.schedule} batch {args.batch_size or 'full'} epochs {args.epochs}"
               + (f" (early stop after {args.patience} without a lower "
                  f"{'dev' if n_dev else 'training'} loss)" if args.patience else ""))


def _train(args, net, arrays, resume, seed, lr, signals, comm=None):
    """Fit ``net`` until ``--epochs``, early stopping, or a first SIGINT/SIGTERM (then it stops
    after the epoch in progress; ``history.interrupted``). Returns ``(trainer, history)``."""
    options = resume.trainer_options if resume is not None else \
        {"min_delta": RECIPES[args.source_kind].get("min_delta", 0.0),
         "step_size": args.step_size}
    try:
        trainer = Trainer(net, optimizer=args.optimizer, lr=lr, epochs=args.epochs,
                          batch_size=args.batch_size, schedule=args.schedule,
                          patience=args.patience, seed=seed, progress=args.progress,
                          callback=_epoch_printer(args, len(arrays.y_train),
                                                  arrays.X_dev is not None, signals,
                                                  net.head.is_classifier),
                          comm=comm, eval_batch_size=eval_rows(net.n_outputs), **options)
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
        # The loop silences NumPy's overflow warnings itself: a divergence is reported once,
        # by TrainingDiverged.
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


def _save(args, model, trainer, arrays):
    """The model (network, input schema, labels or target statistics) with its run state
    (trainer, the data's paths and SHA-256, the splits), so ``--resume`` can continue it with
    every setting it was started with and ``xpnet.predict`` gives back the original labels."""
    run_state = {"json": {"dev_fraction": arrays.dev_fraction,
                          "train_samples": arrays.train_samples,
                          "source": _source_record(args, digests=True)}, "arrays": {}}
    state = nest_states(trainer=trainer.state_dict(), run=run_state)
    _say(args, f"saving {args.save} ...")
    try:
        path = model.save(args.save, training_state=state)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    _say(args, f"saved {path}")


def _source_record(args, digests=False) -> dict:
    """What the run was trained on (:func:`~xpnet.runs.source_record`)."""
    return source_record(dataset=args.dataset, data=args.data, task=args.task,
                         target=args.target, test_fraction=args.test_fraction, id=args.id,
                         drop=args.drop, missing=args.missing, test_data=args.test_data,
                         digests=digests)


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


def _test(args, model, arrays, lr) -> Scores:
    """Test metrics from one inference pass on the device; a test loss that is not finite
    means the run diverged, and nothing is saved."""
    scores = score_network(model.net, arrays.X_test, arrays.y_test,
                           target_scale=model.target.scale)
    if not math.isfinite(scores.loss):
        raise Failure(f"training diverged: the final parameters give a test loss of "
                      f"{scores.loss}; lower the learning rate (now {lr:g}) or standardise the "
                      f"inputs.{_not_written(args)}")
    return scores


MAX_CONFUSION_CLASSES = 20  # wider matrices do not fit a terminal; --metrics-json has them


def _report(args, test, history, device, trainer, arrays, model):
    """The confusion matrix (unless --quiet or too many classes) and the one summary line
    (always), saying which epoch's weights were tested and saved."""
    target = model.target
    if test.confusion is not None and len(test.confusion) <= MAX_CONFUSION_CLASSES:
        names = [_short(c) for c in (target.class_names or target.classes)]
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
    text = printable(label)  # a label's escape sequences must not reach the terminal
    return text if len(text) <= 10 else text[:9] + "~"


def _weights_used(trainer, history, has_dev) -> str:
    """Which weights the test (and ``--save``) used: the last epoch's, or the best dev epoch's
    when early stopping on a dev set restored them. Without a dev set nothing is restored (as
    in scikit-learn, which keeps the last weights when it stops on the training loss). With a
    ``min_delta``, the best epoch is the last one that improved by more than it."""
    last = history.epoch[-1] if len(history) else trainer.epoch
    best = history.best_epoch
    restored = has_dev and trainer.restore_best and best is not None and best != last \
        and not history.interrupted
    loss = "dev loss" if has_dev else "training loss"
    where = f"lowest {loss}" if trainer.min_delta == 0 else \
        f"last {loss} improvement of more than {trainer.min_delta:g}"
    if restored:
        return f"tested the weights of epoch {best} ({where}; restored)"
    if best is not None and best != last:
        return f"tested the last epoch's weights (epoch {last}; {where} at epoch {best})"
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


def _write_outputs(args, test, history, model, trainer, arrays, device):
    """``--metrics-json`` (strict JSON: never NaN) and ``--plot``, each written atomically."""
    if args.metrics_json:
        metrics = {
            "device": device.name, **test.as_dict(),
            "train_seconds": _train_seconds(history), "epochs_run": len(history),
            "best_epoch": history.best_epoch,
            **({"confusion_matrix": test.confusion.tolist(), "classes": model.target.classes}
               if test.confusion is not None else {}),
            # many classes: only the nonzero cells, [true, predicted, count] (never k^2)
            **({"confusion_cells": test.confusion_cells.tolist(),
                "classes": model.target.classes}
               if test.confusion_cells is not None else {}),
            "config": {"net": model.net.config(), "trainer": trainer.config(),
                       "source": _source_record(args),
                       "scaling": model.inputs.scaler.method,
                       "dev_fraction": args.dev_fraction,
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
