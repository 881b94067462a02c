"""``python -m xpnet.train``: train an MLP on MNIST or your own table, report test accuracy,
save what you need.

    python -m xpnet.train --device auto            # the default recipe (see --help)
    python -m xpnet.train --optimizer gd --batch-size full --lr 0.1 --epochs 500 --init he
    python -m xpnet.train --data patients.csv --target diagnosis --id patient_id --save m.npz

This module only parses the command line and wires the library, where each step can be called
from Python: the settings' checks and the resumed run are :mod:`xpnet.runs`, the defaults
:mod:`xpnet.recipes`, the data, model and trainer :class:`xpnet.session.TrainingRun` (with the
callbacks :class:`~xpnet.callbacks.EpochLog` and :class:`~xpnet.callbacks.StopOnSignal`), the
report :mod:`xpnet.report`. Ctrl-C or SIGTERM stop after the current epoch, save a resumable
checkpoint when ``--save`` is given, and exit with 130 or 143 (a signal during that save is
held until the file is complete); ``--resume`` continues such a run to ``--epochs`` in total.
Nothing is saved from a run that is not finite; every output path is checked before any data
is read (outputs are regular files written atomically; none may name an input or another).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys

from . import backend, cli, distributed, report
from .callbacks import EpochLog, StopOnSignal
from .cli import EXIT_OK, Failure, Parser, UsageError, check_writable, interrupts
from .initializers import INITIALIZERS, check_init
from .metrics import confusion_matrix
from .network import ACTIVATIONS
from .optimizers import OPTIMIZERS, SCHEDULES
from .recipes import DEFAULTS, RECIPES, fill_recipe
from .runs import IMAGE_DATASETS, ResumedRun, RunSettingsError, check_settings, setting_name
from .schema import MISSING_POLICIES
from .session import RunDataError, TrainingRun, dataset_files, subset_size
from .targets import TASKS, TargetError
from .training import TrainingDiverged

PROG = "xpnet.train"
DATASET_NAMES = IMAGE_DATASETS  # IDX image sets: 784 pixels, 10 classes

__all__ = ["RECIPES", "DEFAULTS", "build_parser", "confusion_matrix", "main"]

EPILOG = """examples:
  python -m xpnet.train --save runs/mnist.npz          # MNIST, the default recipe (~98%)
  python -m xpnet.train --data train.csv --target label --save runs/digits.npz
  python -m xpnet.train --data houses.csv --target price --task regression --id house_id
"""

MAX_EPOCHS = 10_000  # keeps a run's history (saved as JSON in the checkpoint) a few MB
MAX_BATCH = 1 << 30
MAX_SEED = 2**63 - 1
_epochs, _patience = cli.whole_number(1, MAX_EPOCHS), cli.whole_number(0, MAX_EPOCHS)
_seed, _positive_batch = cli.whole_number(0, MAX_SEED), cli.whole_number(1, MAX_BATCH)
_layers = cli.layer_sizes("--layers", "784,256,10", 2)
_hidden = cli.layer_sizes("--hidden", "256,128,64", 1)


def _batch_size(text):
    return None if text.strip().lower() == "full" else _positive_batch(text)


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
    g.add_argument("--drop", metavar="COL,COL,...", type=cli.names, default=None,
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
                   type=cli.number(0.0, 1.0, lo_open=True, hi_open=True),
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
    g.add_argument("--threads", type=cli.whole_number(1, 1024), default=None, metavar="N",
                   help=f"BLAS threads on the CPU (default: one per rank with --distributed "
                        f"and for mini-batches of up to {cli.ONE_THREAD_MAX_BATCH} rows, which "
                        "is steadier and faster on a busy machine; else the BLAS library's own "
                        "choice, usually one per core)")
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
    g.add_argument("--init", default=None, type=cli.checked(check_init),
                   metavar="|".join(INITIALIZERS) + "[:S]",
                   help=f"weight initialisation: he, xavier, normal (N(0,1) x 0.01) or "
                        f"normal:S (N(0,1) x S, e.g. normal:0.1) ({by_source('init')})")
    g.add_argument("--l2", metavar="L", type=cli.number(0.0), default=0.0,
                   help="L2 strength (lambda)")
    g.add_argument("--dropout", metavar="P", type=cli.number(0.0, 1.0, hi_open=True),
                   default=0.0, help="dropout rate on hidden layers")
    g.add_argument("--batch-norm", action="store_true", help="batch norm on hidden layers")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=list(OPTIMIZERS),
                   help="update rule")
    defaults = ", ".join(f"{name} {cls.default_lr:g}" for name, cls in OPTIMIZERS.items())
    g.add_argument("--lr", metavar="LR", type=cli.number(0.0, lo_open=True), default=None,
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
    g.add_argument("--dev-fraction", metavar="F", type=cli.number(0.0, 1.0, hi_open=True),
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
    return distributed.finish(cli.run(_main, argv, PROG))  # with MPI, a failure ends every rank


def _main(argv) -> int:
    """The run as a data flow: each step below is one function, in the order it happens."""
    given = sys.argv[1:] if argv is None else list(argv)
    # MPI starts first, so that only rank 0 prints, usage errors included.
    wanted = "--distributed" in given and not {"-h", "--help"} & set(given)
    comm = distributed.init_cli() if wanted else None
    args = _parse_args(argv)
    # --threads N, or one per rank under --distributed: OpenBLAS threads that spin while another
    # rank holds their core made an epoch 30-50x slower (docs/scaling.md). One process: _run.
    threads = args.threads or (cli.default_blas_threads(None, distributed=True)
                               if args.distributed else None)
    limiter = cli.limit_blas_threads(threads, "--threads" if args.threads else None)
    args.blas_threads = threads if limiter is not None else None
    limits = [limiter] if limiter is not None else []
    try:
        return _run(args, comm, limits)
    finally:
        for limiter in reversed(limits):  # called in-process (tests, a notebook): leave none
            limiter.restore_original_limits()


def _run(args, comm, limits) -> int:
    """The run itself, from the device to the report, with the parsed ``args``; a BLAS thread
    limit it sets is appended to ``limits`` (the caller lifts them)."""
    device = _pick_device(args, comm)
    resume = _resume(args, device) if args.resume else None
    if args.data is None and args.dataset is None:
        args.dataset = "mnist"
    if not args.resume:  # the defaults that depend on the data (a resumed run has its own)
        fill_recipe(vars(args), args.explicit)
    if args.blas_threads is None and comm is None and not device.is_gpu:  # measured default
        args.blas_threads = cli.limit_default_threads(args.batch_size, limits)
    run = TrainingRun(vars(args), device, resume)
    with _in_flags():  # the data on the host, then the model and the data on the device, once
        n = run.load(progress=not args.quiet).kind == "image" and subset_size()
        if n:  # the CLI tests' hook, announced even with --quiet so it is never on silently
            print(f"{PROG}: note: XPNET_MNIST_SUBSET={n}: using the first {n} training and "
                  f"{n // 6} test images only", flush=True)
            run.data = run.data.subset(n)
        run.build()
    for line in run.describe():
        _say(args, line)
    signals = interrupts()
    signals.mode = "stop"  # from here until the checkpoint is written: stop, do not abort
    # Until --epochs, early stopping, or a first SIGINT/SIGTERM: then it stops after the epoch
    # in progress (history.interrupted).
    callbacks = [*([] if args.quiet else [EpochLog()]),
                 StopOnSignal(lambda: signals.first is not None)]
    trainer = run.make_trainer(callbacks, args.progress, comm)
    if resume is not None:
        _say(args, f"resumed from {args.resume} after epoch {trainer.epoch}")
    try:
        run.fit()
        if not distributed.is_root(comm):
            return EXIT_OK  # rank 0 tests, saves and reports
        test = run.result()
    except TrainingDiverged as exc:  # nothing is saved from a run that is not finite
        raise Failure(str(exc) + (f" {args.save} was not written." if args.save else "")) \
            from exc
    if args.save:
        with signals.defer():
            source = run.source(digests=True)
            _say(args, f"saving {args.save} ...")
            _say(args, f"saved {run.save(args.save, source)}")
    if signals.signal_exit_code is not None:
        signals.mode = "ignore"  # the rest of a burst of Ctrl-C changes nothing now
        return _report_stop(args, trainer, signals)
    signals.mode = "abort"
    for line in report.confusion_lines(test, run.model.target):
        _say(args, line)
    print(report.summary_line(test, trainer, run.arrays.n_dev > 0, device.name), flush=True)
    _write_outputs(args, run, test, device)
    return EXIT_OK


def _parse_args(argv):
    """The command line, parsed and checked: a bad value, an output that cannot be written or
    two paths that collide fail here, before any data is read or any device is touched."""
    parser = build_parser()
    cli.check_list_flags(sys.argv[1:] if argv is None else [str(a) for a in argv],
                         ("--layers", "--hidden"))
    args = parser.parse_args(argv)
    # Which flags were given explicitly (a resumed run refuses those that disagree with it).
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.explicit = set(vars(parser.parse_args(argv)))
    with _in_flags():
        check_settings(vars(args), args.explicit, flags=True)
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


def _check_collisions(args, outputs):
    """No two outputs may be one file, and no output may be an input: ``--resume`` (except for
    ``--save``, which updates the checkpoint it resumed), ``--data`` or one of the IDX files."""
    inputs = [("the checkpoint given to --resume", args.resume, {"--save"})] if args.resume \
        else []
    inputs += [(f"the {setting_name(attr, flags=True)} file", getattr(args, attr), ())
               for attr in ("data", "test_data") if getattr(args, attr)]
    if args.data is None:
        inputs += [(f"the data file {path}", path, ())
                   for path in dataset_files(args.dataset or "mnist", args.data_dir)]
    cli.check_outputs(outputs, inputs)


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


@contextlib.contextmanager
def _in_flags():
    """The library's errors about a setting, in the command line's words: the flag named, and
    a usage error (exit 2) when the fix is another flag or ``--task``."""
    try:
        yield
    except RunDataError as exc:
        flag = f"{setting_name(exc.setting, flags=True)} " if exc.setting else ""
        hint = " (or give only the hidden sizes with --hidden)" if exc.setting == "layers" else ""
        raise (UsageError if exc.usage else Failure)(f"{flag}{exc.detail}{hint}") from None
    except TargetError as exc:
        raise (UsageError if exc.usage else Failure)(str(exc)) from None
    except RunSettingsError as exc:
        raise UsageError(str(exc)) from None


def _resume(args, device) -> ResumedRun:
    """Read ``--resume`` (:class:`~xpnet.runs.ResumedRun`) and make ``args`` the run's own
    settings; an explicitly given flag that disagrees is a usage error."""
    given = {attr: getattr(args, attr) for attr in ("data", "test_data") if attr in args.explicit}
    resume = ResumedRun.read(args.resume, device, given)
    with _in_flags():
        resume.apply_settings(vars(args), args.explicit, flags=True,
                              say=lambda line: _say(args, line))
    return resume


def _report_stop(args, trainer, signals) -> int:
    """Say where a signal stopped the run and how to go on; returns 130 or 143."""
    if trainer.history.interrupted:
        where = f"; resume with --resume {args.save}" if args.save else \
            " (pass --save PATH to keep a resumable checkpoint)"
        print(f"{PROG}: stopped after epoch {trainer.epoch}{where}", file=sys.stderr)
    else:
        kept = f"; {args.save} holds the finished run" if args.save else ""
        print(f"{PROG}: stopped after training had finished (epoch {trainer.epoch}){kept}; "
              f"the report and any --metrics-json/--plot were skipped", file=sys.stderr)
    return signals.signal_exit_code


def _write_outputs(args, run, test, device):
    """``--metrics-json`` (strict JSON: never NaN) and ``--plot``, each written atomically."""
    if args.metrics_json:
        text = run.metrics_json(test, device.name, tf32=args.tf32)
        with cli.output_file(args.metrics_json, "w") as f:
            f.write(text)
    if args.plot:
        from .plotting import plot_history  # learning curves, written to exactly args.plot

        try:
            plot_history(run.trainer.history, args.plot)
        except ImportError:
            _no_matplotlib()
        except OSError as exc:
            raise Failure(f"cannot write {args.plot}: {exc.strerror or exc}") from exc


def _no_matplotlib():
    raise Failure("--plot needs matplotlib: pip install -e '.[plot]'")


if __name__ == "__main__":
    sys.exit(main())
