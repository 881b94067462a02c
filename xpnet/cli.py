"""What the command-line programs share: one-line errors, exit codes, signals and output paths.

Exit codes: 0 success, 1 runtime failure (missing data, unusable device, divergence, out of
memory, unreadable checkpoint), 2 usage error (bad flags or values), 130/143 interrupted by
SIGINT/SIGTERM. User errors print one line and no traceback; ``--debug`` shows the traceback.

Signals (:class:`Interrupts`): by default SIGINT and SIGTERM abort at once, every file being
written is removed (:func:`xpnet.io.atomic_write` cleans up on any exception), and the exit code
is 130 or 143; from the first signal on, further ones are ignored, so a burst of Ctrl-C still
exits 130 with one line. A program may switch to "stop" (the first signal only asks the work to
stop at the next safe point; a second SIGINT aborts) or "defer" (signals are held until the
block ends: used around a final save, so a finished run is never lost half-written).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import os
import signal
import sys
import threading
import traceback
import unicodedata

from .backend import DeviceUnavailableError, is_out_of_memory
from .checkpoint import MAX_NETWORK_BYTES, network_size
from .io import SpecialFileError, atomic_write, check_output_path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line: exit code 2."""


class Failure(Exception):
    """A runtime failure already described in one sentence: exit code 1."""


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that ``finally`` blocks and temp-file cleanup
    run (the default action would kill the process on the spot): exit code 143."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (no usage dump) and exit code 2, and an
    unknown flag gets the closest known one (``--epoch`` -> "did you mean --epochs?")."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("prog"):
            kwargs["prog"] = invoked_as(kwargs["prog"])
        kwargs.setdefault("allow_abbrev", False)  # "--deb" must not quietly mean --debug
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)

    def parse_args(self, args=None, namespace=None):
        for item in sys.argv[1:] if args is None else args:
            if item == "--":  # the rest are values, whatever they look like
                break
            flag, eq, value = str(item).partition("=")
            # argparse reads "--flag=--" as the end-of-options marker and gives the flag an
            # empty list, past its type and choices: refuse it as the missing value it is.
            if eq and value == "--" and flag.startswith("--"):
                self.error(f"argument {flag}: expected one value, not '--'")
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self.unrecognized(extras))
        return namespace

    def unrecognized(self, extras) -> str:
        """The message for arguments argparse did not take: a suggestion for a misspelled flag,
        else the plain list."""
        known = [opt for action in self._actions for opt in action.option_strings
                 if opt.startswith("--")]
        for item in extras:
            if item.startswith("-") and len(item) > 1:
                flag = item.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else "; see --help"
                return f"unrecognized argument {flag}{hint}"
        return f"unrecognized arguments: {' '.join(extras)} (a flag takes one value; see --help)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each default stated once: appended as "(default: X)" unless the help
    text already says its default, and never for a flag without a value (None, a switch).
    The description and epilog keep their line breaks (the epilog holds example commands)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is argparse.SUPPRESS
                or isinstance(default, bool) or not action.option_strings):
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        return f"{text} (default: {default})"


# ---------------------------------------------------------------------- argument values
def shown(text) -> str:
    """``text`` for an error message, cut short (a value may be 400 digits long).

    Args:
        text: a command-line value as typed.

    Returns:
        Its ``repr``, or the first 20 characters' with the length when longer than 24.
    """
    return repr(text) if len(text) <= 24 else repr(text[:20]) + f"... ({len(text)} characters)"


def whole_number(minimum, maximum):
    """An argparse ``type``: a whole number from ``minimum`` to ``maximum`` (inclusive).

    Args:
        minimum: the smallest value accepted.
        maximum: the largest value accepted.

    Returns:
        ``parse(text) -> int``, which raises ``argparse.ArgumentTypeError`` (a usage error)
        with one line that says what was expected.
    """
    def parse(text):
        try:
            value = int(text)
        except ValueError:  # also more digits than int() reads
            raise argparse.ArgumentTypeError(f"expected a whole number, got {shown(text)}") \
                from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from {minimum} to "
                                             f"{maximum}, got {shown(text)}")
        return value

    return parse


def number(lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse ``type``: a finite number in ``[lo, hi]`` (an open end excludes its bound).

    Args:
        lo: the lower bound, or None for none.
        hi: the upper bound, or None for none.
        lo_open: exclude ``lo`` itself.
        hi_open: exclude ``hi`` itself.

    Returns:
        ``parse(text) -> float``, which raises ``argparse.ArgumentTypeError`` for a value that
        is not a number, not finite or out of range.
    """
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {shown(text)}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {shown(text)}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            op = ">" if lo_open else ">="
            raise argparse.ArgumentTypeError(f"expected a number {op} {lo}, got {shown(text)}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            op = "<" if hi_open else "<="
            raise argparse.ArgumentTypeError(f"expected a number {op} {hi}, got {shown(text)}")
        return value

    return parse


def layer_sizes(flag, example, minimum):
    """An argparse ``type``: comma-separated layer sizes (``784,256,10``) of an MLP whose
    parameters fit a checkpoint (:data:`~xpnet.checkpoint.MAX_NETWORK_BYTES` at 4 bytes each).

    Args:
        flag: the option, for messages (``--layers``).
        example: a valid value, for messages.
        minimum: the fewest sizes; 1 means hidden sizes only (the input and output sizes come
            from the data and count as 1 each for the size check).

    Returns:
        ``parse(text) -> list[int]``, which raises ``argparse.ArgumentTypeError``.
    """
    def parse(text):
        try:
            sizes = [int(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be comma-separated whole numbers "
                                             f"like {example}; got {shown(text)}") from None
        if len(sizes) < minimum or any(n < 1 for n in sizes):
            raise argparse.ArgumentTypeError(f"{flag} needs at least {minimum} size"
                                             f"{'s' if minimum > 1 else ''}, all >= 1; got "
                                             f"{shown(text)}")
        layers = sizes if minimum > 1 else [1, *sizes, 1]
        n = network_size("MLP", {"layer_sizes": layers})
        if n is None or n * 4 > MAX_NETWORK_BYTES:
            raise argparse.ArgumentTypeError(f"{flag} {shown(text)} would need more than the "
                                             f"{MAX_NETWORK_BYTES} bytes of parameters a "
                                             f"network may have")
        return sizes

    return parse


def names(text) -> list:
    """An argparse ``type``: comma-separated names (``id,notes``), each stripped.

    Args:
        text: the value as typed.

    Returns:
        The names, in order.

    Raises:
        argparse.ArgumentTypeError: an empty name (``a,,b``).
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got "
                                         f"{shown(text)}")
    return parts


def checked(check):
    """An argparse ``type`` from a library check: ``check(text.strip())``, its ``ValueError``
    a usage error with the same message.

    Args:
        check: a function that returns the parsed value or raises ``ValueError``.

    Returns:
        ``parse(text)``.
    """
    def parse(text):
        try:
            return check(text.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def check_list_flags(given, flags) -> None:
    """Refuse ``--layers 784 256 10`` (spaces, as in a Python list) with a usage error that
    shows the comma form, instead of argparse's "unrecognized arguments: 256 10".

    Args:
        given: the command line's words.
        flags: the options that take one comma-separated list.

    Raises:
        UsageError: one of ``flags`` is followed by two or more whole numbers.
    """
    for i, item in enumerate(given):
        if item in flags:
            values = []
            for value in given[i + 1:]:
                if not value.strip().isdigit():
                    break
                values.append(value.strip())
            if len(values) > 1:
                raise UsageError(f"{item} takes one comma-separated list: write {item} "
                                 f"{','.join(values)} (no spaces)")


# The largest mini-batch (rows) that trains on one BLAS thread by default; see
# default_blas_threads for the measurements behind it.
ONE_THREAD_MAX_BATCH = 2048


def default_blas_threads(batch_size, distributed=False):
    """The BLAS threads a CPU training run uses when ``--threads`` does not say.

    One thread per MPI rank, and one thread for mini-batches of up to
    :data:`ONE_THREAD_MAX_BATCH` rows; full batch and larger mini-batches keep the BLAS
    library's own choice (one thread per core).

    Why (``bench/thread_default.py`` on the 2-core AMD EPYC VM, OpenBLAS 0.3.31, 2026-12-06;
    raw results in ``bench/results/thread-default-*`` and ``thread-sweep-*``): OpenBLAS's
    threads spin while they wait, so a second thread pays off only when nothing else wants
    the core. The default MNIST run (batch 128, then 4 epochs, 5 runs each) took 3.86-3.93 s on
    one thread and 2.78-4.37 s on two with the machine quiet (two threads: bimodal), and
    3.89-4.09 s on one against 8.27-12.23 s on two beside one busy process. Full batch
    (10 epochs) took 7.2-7.8 s on one thread and 4.2-5.0 s on two quiet, 7.3-7.8 s against
    9.0-10.9 s loaded. A forward+backward sweep from 128 to 8192 rows found two threads
    1.45-1.83x faster quiet and 0.46-0.71x as fast loaded at every size; the geometric mean
    of the two, the expected gain on a machine that is sometimes busy, is 0.86-1.02 up to
    2048 rows, 1.11-1.13 at 4096 and 8192, and 1.16 for the full-batch runs. Ranks of
    an MPI run already fill the cores, and with more than one thread each their spinning
    threads took an epoch from 0.7 s to 23-38 s (docs/scaling.md).

    Args:
        batch_size: the mini-batch size in rows, or None for full-batch training.
        distributed: whether the run is one rank of an MPI job.

    Returns:
        The thread count, or None to leave the BLAS library's own choice.
    """
    if distributed:
        return 1
    if batch_size is not None and batch_size <= ONE_THREAD_MAX_BATCH:
        return 1
    return None



def limit_default_threads(batch_size, limits):
    """Apply :func:`default_blas_threads` for a single-process CPU run of ``batch_size`` rows
    per mini-batch (None: full batch): the limiter, if one was set, is appended to ``limits``
    for the caller to lift when the run ends.

    Returns:
        The thread count now in force, or None when the BLAS library's choice stands.
    """
    threads = default_blas_threads(batch_size)
    limiter = limit_blas_threads(threads, None)
    if limiter is None:
        return None
    limits.append(limiter)
    return threads

def limit_blas_threads(threads, flag="--threads"):
    """At most ``threads`` BLAS threads until the returned limiter's
    ``restore_original_limits()`` (threadpoolctl).

    Args:
        threads: the limit, or None for none.
        flag: the option that asked for it, for the message; None when the limit is only a
            default, which is then skipped without threadpoolctl.

    Returns:
        The threadpoolctl limiter, or None when nothing was limited.

    Raises:
        Failure: ``flag`` asked for a limit and threadpoolctl is not installed.
    """
    if threads is None:
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if flag is None:
            return None
        raise Failure(f"{flag} needs threadpoolctl: pip install threadpoolctl (or pip "
                      f"install -e '.[train]' in the clone)") from None
    return threadpool_limits(limits=threads, user_api="blas")


# ---------------------------------------------------------------------- signals
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """SIGINT/SIGTERM policy of one command-line run; :func:`run` installs one.

    ``mode`` is ``"abort"`` (raise KeyboardInterrupt / :class:`Terminated` now), ``"stop"``
    (record the first signal in :attr:`first` and carry on; a second SIGINT aborts),
    ``"defer"`` (record it in :attr:`deferred` and carry on; see :meth:`defer`) or
    ``"ignore"`` (the run is already on its way out with 130/143).
    """

    def __init__(self, prog: str):
        self.prog = prog
        self.mode = "abort"
        self.first: int | None = None
        self.deferred: int | None = None
        self.aborted = False
        self._old: dict = {}

    def install(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Put the previous handlers back, unless a signal arrived during the run: then both
        stay ignored, so the rest of a burst cannot strike while the process exits (an
        uncaught KeyboardInterrupt there would end it with -2 instead of 130)."""
        received = self.aborted or self.first is not None or self.deferred is not None
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_IGN if received else old)
        self._old = {}

    def _handle(self, signum, frame):
        if self.mode == "ignore":
            return
        if self.mode == "defer":
            if self.deferred is None:
                self.deferred = signum
                _say_now(f"\n{self.prog}: {signal.Signals(signum).name} received while "
                         f"saving: finishing the file first\n")
            return
        if self.mode == "stop":
            if self.first is None:
                self.first = signum
                _say_now(f"\n{self.prog}: {signal.Signals(signum).name} received: stopping "
                         f"after this epoch (Ctrl-C again to abort without saving)\n")
                return
            if signum != signal.SIGINT:
                return  # already stopping; another SIGTERM changes nothing
        self.abort(signum)

    def abort(self, signum):
        """Ignore both signals from now on and raise KeyboardInterrupt or Terminated."""
        self.aborted = True
        if self._old:
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    @contextlib.contextmanager
    def defer(self):
        """Hold SIGINT/SIGTERM until the block has finished (its work is then complete); the
        first one that arrived meanwhile is left in :attr:`deferred`. The Python-level handler
        runs in the main thread whichever thread the kernel picks, so this holds even with
        BLAS threads around (blocking the signal in one thread would not)."""
        previous, self.mode = self.mode, "defer"
        try:
            yield self
        finally:
            self.mode = previous

    @property
    def signal_exit_code(self) -> int | None:
        sig = self.first if self.first is not None else self.deferred
        return None if sig is None else 128 + sig


def _say_now(text: str) -> None:
    """Write to stderr from a signal handler: straight to the file descriptor, since the main
    code may be inside a write to ``sys.stderr`` (a progress bar) that must not be re-entered."""
    with contextlib.suppress(OSError, RuntimeError, ValueError, AttributeError):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(2, text.encode("utf-8", "replace"))


_ACTIVE: list[Interrupts] = []


def interrupts() -> Interrupts:
    """The :class:`Interrupts` of the run in progress (a detached one outside :func:`run`)."""
    return _ACTIVE[-1] if _ACTIVE else Interrupts("xpnet")


# ---------------------------------------------------------------------- output paths
def check_writable(flag, path) -> None:
    """Fail before any work when ``path`` cannot take an output: its folder is missing or not
    writable, or it is (or a symlink there points to) a directory, FIFO, device or socket.
    Outputs are only ever regular files, written atomically: a special file is refused rather
    than written through, since it could block (a FIFO without a reader), could not be
    replaced atomically, and replacing it (``/dev/null`` as root) would be worse."""
    if path is None:
        return
    try:
        target = check_output_path(path)
    except SpecialFileError as exc:
        raise Failure(f"{flag} {path}: {path} is {exc.kind}, not a regular file; outputs are "
                      f"written only to regular files (atomically): choose a file name") from None
    parent = target.parent
    if not parent.is_dir():
        _make_folders(flag, path, parent)
    if not os.access(parent, os.W_OK):
        raise Failure(f"{flag} {path}: the folder {parent} is not writable")


def _make_folders(flag, path, parent) -> None:
    """Create the missing folders above an output (as ``mkdir -p``), so ``--save runs/a.npz``
    works on a fresh clone; a path through a file, or an unwritable folder, is a Failure."""
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise Failure(f"{flag} {path}: {ancestor} is not a folder, so {parent} cannot be "
                      f"created; choose another path")
    if not os.access(ancestor, os.W_OK):
        raise Failure(f"{flag} {path}: the folder {parent} does not exist and {ancestor} is "
                      f"not writable, so it cannot be created")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise Failure(f"{flag} {path}: cannot create the folder {parent} "
                      f"({exc.strerror or exc})") from None


def check_outputs(outputs, inputs=()) -> None:
    """Refuse outputs that would overwrite each other or an input, before any work.

    Args:
        outputs: ``(flag, path)`` of each file the program will write, in order.
        inputs: ``(what, path, allowed)`` of each file it reads: ``what`` names it in the
            message (``"the --data file"``), ``allowed`` is the output flags that may name it
            (``{"--save"}`` for the checkpoint that ``--resume`` updates in place).

    Raises:
        UsageError: two outputs name the same file (after symlinks), or an output names an
            input it is not allowed to replace.
    """
    for i, (flag_a, a) in enumerate(outputs):
        for flag_b, b in outputs[i + 1:]:
            if same_file(a, b):
                raise UsageError(f"{flag_a} {a} and {flag_b} {b} name the same file; give each "
                                 f"output its own file")
    for what, source, allowed in inputs:
        for flag, path in outputs:
            if flag not in allowed and same_file(path, source):
                raise UsageError(f"{flag} {path} is {what}, which it would overwrite; choose "
                                 f"another file")


@contextlib.contextmanager
def output_file(path, mode="wb"):
    """:func:`~xpnet.io.atomic_write` to ``path``, any OS error a one-line failure.

    Args:
        path: the output file.
        mode: ``"wb"`` or ``"w"``.

    Yields:
        The open temporary file, moved to ``path`` when the block ends without an error.

    Raises:
        Failure: ``cannot write PATH: reason``; the file there, if any, stays as it was.
    """
    try:
        with atomic_write(path, mode) as f:
            yield f
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}") from exc


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (after symlinks; hard links included)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------------- running
def invoked_as(module: str) -> str:
    """The program's name as the user ran it: ``xpnet-train`` through the console script of
    that name, else the module's ``xpnet.train`` (``python -m xpnet.train``, or a call)."""
    script = module.replace(".", "-")
    return script if os.path.basename(sys.argv[0] if sys.argv else "") == script else module


def run(main_fn, argv, prog) -> int:
    """Call ``main_fn(argv)`` and turn known errors into one line on stderr and an exit code,
    with SIGINT/SIGTERM handled by an :class:`Interrupts` for the duration. ``prog`` is the
    module's name; messages use :func:`invoked_as`'s."""
    prog = invoked_as(prog)
    debug = argv is not None and "--debug" in argv or argv is None and "--debug" in sys.argv
    guard = Interrupts(prog).install()
    _ACTIVE.append(guard)
    try:
        return _call(main_fn, argv, prog, debug, guard)
    finally:
        _ACTIVE.remove(guard)
        guard.restore()


def _call(main_fn, argv, prog, debug, guard) -> int:
    try:
        try:
            return main_fn(argv)
        finally:
            # The work is over (done, failed or aborted): a signal from now on, such as the
            # rest of a burst of Ctrl-C, must not raise on the way out.
            guard.mode = "ignore"
    except SystemExit as exc:  # --help, or argparse exiting by itself
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        return _fail(prog, str(exc), EXIT_USAGE, debug)
    except (Failure, DeviceUnavailableError) as exc:
        return _fail(prog, str(exc), EXIT_FAILURE, debug)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # The reader went away (`xpnet.predict ... | head -1`): nothing is wrong and there is no
        # one to tell. Python's own advice: point stdout at devnull so that the flush at exit
        # raises nothing more, and exit 1.
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:
        if is_out_of_memory(exc):
            msg = ("out of memory (" + type(exc).__name__ + "); use a smaller --batch-size "
                   "or a smaller network")
            return _fail(prog, msg, EXIT_FAILURE, debug)
        if isinstance(exc, (ValueError, OSError)):
            return _fail(prog, str(exc), EXIT_FAILURE, debug)
        # A bug, not a user error: show everything.
        traceback.print_exc()
        return EXIT_FAILURE


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed, or not a real file
        pass


def _fail(prog, message, code, debug) -> int:
    if debug:
        traceback.print_exc()
    print(f"{prog}: error: {_one_line(message)}", file=sys.stderr)
    return code


def printable(text) -> str:
    """``text`` with control characters and line separators escaped (``\x1b`` for ESC): a file
    name or a label cannot then break a line, move the cursor or recolour the terminal."""
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in str(text))


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell) -> str:
    """A text cell for a CSV file a spreadsheet may open: one that starts like a formula and is
    not a number gets a leading ``'`` (OWASP's advice), so it is shown as text, never run."""
    text = str(cell)
    if text.startswith(FORMULA_STARTS):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _one_line(message: str) -> str:
    """Escape control characters and line separators (argparse echoes raw argv tokens, paths
    may hold newlines) so the error stays a single line."""
    return printable(message)
