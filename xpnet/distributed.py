"""Data-parallel training over MPI (mpi4py): several processes now, several GPUs by the same path.

Launch N copies of a program with ``mpiexec -n N``; each is one *rank*. Every rank loads the
data and builds the same network, and::

    comm = xpnet.distributed.init()            # mpi4py's COMM_WORLD, with a watchdog
    xpnet.fit(net, X, y, batch_size=256, comm=comm)   # or Trainer(..., comm=comm)
    if xpnet.distributed.is_root(comm):        # rank 0 prints, evaluates and saves
        xpnet.save(net, "model.npz")

How a step is split (``Trainer`` does this when given ``comm``):

* The global batch ``batch_size`` comes, as in one process, from the shared seeded permutation of
  the epoch; rank ``r`` takes its contiguous share of it: ``B // N`` rows, plus one for the first
  ``B % N`` ranks (a rank may get none when ``B < N``).
* Each rank runs forward and backward on its share with the head's gradient scaled by
  ``m_r / B``, so each rank's gradient is its share's part of the global-batch *mean*; one
  all-reduce (sum) over the flat gradient buffer ``net.flat.grad`` gives every rank the
  gradient of the global batch. The L2 term ``(l2 / B) W`` is added once, after the all-reduce,
  and every rank applies the same optimizer update.
* Batch norm uses **synchronised statistics**: the forward all-reduces the per-feature sum, then
  the sum of squared deviations from the global mean (the same two passes as NumPy's ``var``),
  and the backward all-reduces ``sum dy * xhat`` and ``sum dy`` (one message). The statistics,
  running averages included, are those of the global batch, as in one process. That is three
  small messages per batch-norm layer and step (``2 x features`` numbers at most).
* Dropout: each rank draws the mask of the *whole* global batch from the shared, per-epoch
  seeded stream and keeps its own rows, so the masks are exactly those of one process (no two
  ranks share a row's mask). The cost is drawing ``B x width`` numbers per dropout layer on
  every rank, small next to the matrix products.
* Per epoch: one collective carries the train loss and correct-count sums, the dev-set sums
  (the dev set is evaluated in shares too) and a checksum of the parameters, which must be
  equal on every rank (a ``RuntimeError`` otherwise); one more decides whether any rank's
  callback asked to stop. So every rank sees the same, global, metrics, and early stopping and
  divergence are decided alike everywhere.

So N ranks train the same model as one process with the same global batch: in float64 the
weights agree to rounding (tests: 1e-9 after 2 epochs, for every optimizer, with batch norm and
dropout). The trainer state does not depend on N, so a checkpoint resumes on any number of ranks.

GPUs: rank ``i`` uses GPU ``local_rank`` (:func:`rank_device`). Gradients travel through MPI on
host buffers (device -> host -> all-reduce -> device), which works with any MPI; NCCL is the
next step (``docs/scaling.md``).

Failure: a rank that raises an uncaught exception prints it and aborts all ranks
(``MPI_Abort``); a rank that dies is cleaned up by ``mpiexec``; a rank that waits in a
collective longer than ``timeout`` seconds (default 300, or ``$XPNET_MPI_TIMEOUT``) because
another one hangs prints one line and aborts all ranks. Nothing waits forever.

Install: ``pip install -e '.[mpi]'`` brings mpi4py and MPICH from PyPI (``mpiexec`` lands in the
environment's ``bin``); no system package is needed. Only this module imports mpi4py, and only
in :func:`init` (or when handed a communicator).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import sys
import threading
import time

import numpy as np

from . import backend
from .backend import DeviceUnavailableError

__all__ = ["Communicator", "DataParallel", "DistributedError", "INSTALL_HINT", "finish", "init",
           "init_cli", "is_root", "rank_device", "share"]

INSTALL_HINT = "pip install -e '.[mpi]'"
DEFAULT_TIMEOUT = 300.0
TIMEOUT_ENV = "XPNET_MPI_TIMEOUT"
_PEER_GRACE = 1.0  # seconds a failing rank other than 0 waits, so rank 0 reports a shared error
_OUTPUT_GRACE = 0.3  # seconds for mpiexec to forward the last output before an abort

_WORLD: Communicator | None = None


class DistributedError(RuntimeError):
    """MPI is missing or unusable, or the launch does not fit the request. ``usage`` is True
    when the command line is at fault (one rank where several are needed)."""

    def __init__(self, message, usage=False):
        super().__init__(message)
        self.usage = usage


def _check_timeout(timeout):
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise DistributedError(f"{TIMEOUT_ENV} must be a number of seconds > 0; got "
                                   f"{text!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) \
            or not (math.isfinite(timeout) and timeout > 0):
        raise DistributedError(f"the MPI timeout must be a number of seconds > 0; got "
                               f"{timeout!r}")
    return float(timeout)


def _mpi():
    """The ``mpi4py.MPI`` module (initialising MPI), or a one-line :class:`DistributedError`."""
    try:
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency, imported on demand)
    except ImportError:
        raise DistributedError(f"data-parallel training needs mpi4py and an MPI library, and "
                               f"mpi4py is not installed: install both with `{INSTALL_HINT}`") \
            from None
    except Exception as exc:  # mpi4py present, but libmpi missing or broken
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistributedError(f"mpi4py is installed but cannot start MPI ({first}): install "
                               f"mpi4py with an MPI library with `{INSTALL_HINT}`") from None
    return MPI


class Communicator:
    """An mpi4py communicator with the collectives xpnet needs, on host NumPy buffers, each
    guarded by a watchdog: a collective that waits more than ``timeout`` seconds prints one
    line and aborts every rank. Attributes: ``comm`` (the mpi4py communicator), ``rank``,
    ``size``, ``local_rank`` (the rank among those on this node), ``timeout``."""

    def __init__(self, comm=None, timeout=None):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = _check_timeout(timeout)
        self._local_rank = None
        self._busy = None  # (what, since) while inside a collective
        self._watchdog = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    @property
    def local_rank(self) -> int:
        """This rank's index among the ranks on its node (the GPU it should use)."""
        if self._local_rank is None:
            if self.size == 1:
                self._local_rank = 0
            else:
                with self._guard("finding the ranks on this node"):
                    node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
                self._local_rank = node.Get_rank()
                node.Free()
        return self._local_rank

    # ------------------------------------------------------------------ watchdog and abort
    def _guard(self, what):
        return _Guard(self, what)

    def _start_watchdog(self):
        with self._lock:
            if self._watchdog is None and self.size > 1:
                self._watchdog = threading.Thread(target=self._watch, name="xpnet-mpi-watchdog",
                                                  daemon=True)
                self._watchdog.start()

    def _watch(self):
        tick = min(1.0, self.timeout / 10)
        while True:
            time.sleep(tick)
            busy = self._busy
            if busy is not None and time.monotonic() - busy[1] > self.timeout:
                self.abort(1, f"xpnet.distributed: rank {self.rank} of {self.size} waited "
                              f"{self.timeout:g} s for the other ranks while {busy[0]}: one of "
                              f"them died or hangs; stopping all ranks (set {TIMEOUT_ENV} to "
                              f"wait longer)")

    def abort(self, code=1, message=None):
        """Print ``message`` (one line) and end every rank with exit code ``code``."""
        code = int(code) or 1
        stream = sys.__stderr__ or sys.stderr
        try:
            if message:
                stream.write(message + "\n")
            stream.flush()
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError):
            pass
        # mpiexec forwards each rank's output through a pipe, and an abort can tear it down
        # before the last lines are through: give it a moment.
        time.sleep(_OUTPUT_GRACE)
        try:  # MPI's own abort notice would repeat what the line above says
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
        except OSError:
            pass
        try:
            self.comm.Abort(code)
        finally:
            os._exit(code)

    # ------------------------------------------------------------------ collectives
    def allreduce(self, buf, what="all-reducing gradients"):
        """Sum the host array ``buf`` over the ranks, in place."""
        if self.size > 1:
            with self._guard(what):
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf

    def allgather(self, vec, what="gathering metrics"):
        """``(size, len(vec))`` host array of every rank's ``vec`` (float64), in rank order."""
        vec = np.ascontiguousarray(vec, dtype=np.float64)
        out = np.empty((self.size, vec.size), dtype=np.float64)
        if self.size == 1:
            out[0] = vec
            return out
        with self._guard(what):
            self.comm.Allgather(vec, out)
        return out

    def bcast(self, buf, what="broadcasting rank 0's state"):
        """Overwrite the host array ``buf`` with rank 0's, in place."""
        if self.size > 1:
            with self._guard(what):
                self.comm.Bcast(buf, root=0)
        return buf

    def any(self, flag, what="agreeing whether to stop") -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        buf = np.array([1 if flag else 0], dtype=np.int64)
        if self.size > 1:
            with self._guard(what):
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX)
        return bool(buf[0])

    def barrier(self, what="waiting for every rank"):
        if self.size > 1:
            with self._guard(what):
                self.comm.Barrier()


class _Guard:
    def __init__(self, comm, what):
        self.comm, self.what = comm, what

    def __enter__(self):
        self.comm._start_watchdog()
        self.comm._busy = (self.what, time.monotonic())
        return self

    def __exit__(self, *exc):
        self.comm._busy = None
        return False


def as_communicator(comm) -> Communicator:
    """``comm`` as a :class:`Communicator` (an mpi4py communicator is wrapped)."""
    if isinstance(comm, Communicator):
        return comm
    if hasattr(comm, "Allreduce") and hasattr(comm, "Get_size"):
        return Communicator(comm)
    raise ValueError(f"comm must be xpnet.distributed.init()'s Communicator or an mpi4py "
                     f"communicator; got {type(comm).__name__}")


# ---------------------------------------------------------------------- launching
def init(timeout=None, min_size=1) -> Communicator:
    """Start MPI and return the :class:`Communicator` of all ranks (``COMM_WORLD``).

    Args:
        timeout: seconds a rank may wait in a collective for the others before it aborts the
            run (default ``$XPNET_MPI_TIMEOUT``, else 300).
        min_size: the fewest ranks the caller accepts; fewer raise :class:`DistributedError`
            with ``usage=True``. The default 1 lets a program run unchanged without ``mpiexec``.

    With 2+ ranks an uncaught exception on any rank prints its traceback, then one line, and
    aborts every rank, so the others do not wait for it forever. Calling ``init`` again
    returns the same object.
    """
    global _WORLD
    if _WORLD is None:
        world = Communicator(None, timeout)
        if world.size > 1:
            _install_excepthook(world)
        _WORLD = world
    elif timeout is not None:
        _WORLD.timeout = _check_timeout(timeout)
    if _WORLD.size < min_size:
        raise DistributedError(
            f"this process is the only MPI rank, and {min_size} or more are needed: start it "
            f"with `mpiexec -n {max(min_size, 2)} {_command()}`", usage=True)
    return _WORLD


def _command() -> str:
    argv = [os.path.basename(sys.executable) or "python"]
    if sys.argv and sys.argv[0]:
        argv.append(sys.argv[0] if not sys.argv[0].endswith("__main__.py") else "-m ...")
    return " ".join(argv + ["..."])


def _install_excepthook(world):
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            previous(kind, value, tb)
        finally:
            world.abort(1, f"xpnet.distributed: rank {world.rank} of {world.size} stopped with "
                           f"{kind.__name__}; stopping all ranks")

    sys.excepthook = hook


def is_root(comm) -> bool:
    """True on rank 0, and without a communicator (``comm`` None): where to print and save."""
    if comm is None:
        return True
    return as_communicator(comm).rank == 0


def rank_device(spec, comm):
    """The :class:`~xpnet.backend.Device` for this rank: ``auto`` and ``cuda`` mean GPU
    ``local_rank`` (``auto`` falls back to the CPU when there is no usable GPU); ``cpu`` and
    an explicit ``cuda:N`` are taken as they are, for every rank."""
    if comm is None:
        return backend.get_device(spec)
    comm = as_communicator(comm)
    text = spec.strip().lower() if isinstance(spec, str) else None
    if text not in ("auto", "cuda", "gpu"):
        return backend.get_device(spec)
    if text == "auto":
        first = backend.get_device("auto")
        if not first.is_gpu:
            return first
    index = comm.local_rank
    try:
        return backend.get_device(f"cuda:{index}")
    except DeviceUnavailableError as exc:
        raise DeviceUnavailableError(
            f"rank {comm.rank} is rank {index} on its node and so uses GPU {index}, which "
            f"cannot be used ({exc}); start at most one rank per GPU, or use --device cpu") \
            from None


# ---------------------------------------------------------------------- the CLI's helpers
class _HeldStream(io.TextIOBase):
    """stderr of a rank other than 0: kept until :func:`finish`, so that an error every rank
    meets alike is printed once, by rank 0."""

    def __init__(self, stream, rank):
        super().__init__()
        self.stream, self.rank, self.parts = stream, rank, []

    def writable(self):
        return True

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def release(self):
        text = "".join(self.parts)
        self.parts = []
        if text:
            lines = text.splitlines()
            self.stream.write("".join(f"[rank {self.rank}] {line}\n" for line in lines))
            self.stream.flush()


def init_cli(timeout=None) -> Communicator:
    """:func:`init` for a command-line program's ``--distributed``: needs 2+ ranks, and on
    ranks other than 0 sends stdout to ``os.devnull`` and holds stderr until :func:`finish`.
    Errors are the CLI's one-line ``UsageError`` (one rank) or ``Failure`` (no MPI)."""
    from .cli import Failure, UsageError  # noqa: PLC0415  (the library does not need the CLI)

    try:
        world = init(timeout, min_size=2)
    except DistributedError as exc:
        if exc.usage:
            raise UsageError("--distributed needs 2 or more MPI ranks but this process is the "
                             "only one: launch it as `mpiexec -n 2 "
                             f"{os.path.basename(sys.executable)} -m xpnet.train --distributed "
                             "...`") from None
        raise Failure(f"--distributed: {exc}") from None
    if world.rank != 0 and not isinstance(sys.stderr, _HeldStream):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
        sys.stderr = _HeldStream(sys.stderr, world.rank)
    return world


def finish(code) -> int:
    """The exit code of a command-line run (pass what it returned). With 2+ ranks a failure
    (code not 0) ends every rank now, so none waits for this one forever; a rank other than 0
    first waits a moment, so that an error all ranks meet is reported once, by rank 0."""
    world = _WORLD
    held = sys.stderr if isinstance(sys.stderr, _HeldStream) else None
    if world is None or world.size == 1 or not code:
        if held is not None:
            held.release()
        return code
    if world.rank != 0:
        time.sleep(_PEER_GRACE)
    if held is not None:
        held.release()
    world.abort(code)
    return code  # not reached


# ---------------------------------------------------------------------- the training engine
def share(start, stop, rank, size):
    """Rank ``rank``'s rows ``(lo, hi)`` of the global batch ``[start, stop)`` split over
    ``size`` ranks: contiguous, ``B // size`` rows plus one for the first ``B % size`` ranks
    (``lo == hi`` when the rank has none)."""
    base, extra = divmod(stop - start, size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _flat(d, prefix="") -> dict:
    """``{"trainer.schedule.lr": (0.1, True), "trainer.optimizer": (<hash>, False), ...}``:
    every setting as a float64 and whether it is a number (shown as it is) or a 48-bit hash
    of its JSON (shown as a hash: the ranks' values differ, the message names the setting)."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and abs(value) < 2**52:
            out[name] = (float(value), True)
        else:
            text = json.dumps(value, sort_keys=True, default=str).encode()
            out[name] = (float(int.from_bytes(hashlib.sha256(text).digest()[:6], "big")), False)
    return out


def _checksum(xp, a) -> float:
    """A float64 fingerprint of the array ``a`` (n, ...) on its device, from its row sums and
    its column sums, each weighted by position (reordered rows or columns give another value)
    and reduced once; equal data on equal devices give equal sums. Memory: n + d floats."""
    a = a.reshape(a.shape[0], -1)
    rows = xp.sum(a, axis=1, dtype=xp.float64)
    cols = xp.sum(a, axis=0, dtype=xp.float64)

    def weighted(v):
        return float(xp.dot(v, xp.arange(v.size, dtype=xp.float64) % 1021 + 1))

    return weighted(rows) + math.pi * weighted(cols)


class GlobalBatch:
    """What a layer that reads the whole batch (batch norm, dropout) is given as its ``sync``
    during a data-parallel step: the global batch's ``rows``, this rank's ``offset`` in it, and
    ``sum(a, what)``, a small device array summed over the ranks."""

    __slots__ = ("rows", "offset", "sum")

    def __init__(self, rows, offset, sum):
        self.rows, self.offset, self.sum = rows, offset, sum


class DataParallel:
    """What :class:`~xpnet.training.Trainer` calls when given ``comm``: the split of each
    global batch, the step (forward, backward, all-reduce, L2), synchronised batch norm, global
    dropout masks and the per-epoch metrics. Attribute ``stats``: seconds spent in gradient
    all-reduces (host copies included) and steps taken, for measurements."""

    def __init__(self, comm, net):
        self.comm = as_communicator(comm)
        self.net = net
        self.dev, self.xp = net.device, net.device.xp
        self.rank, self.size = self.comm.rank, self.comm.size
        self._host_grad = None
        self.stats = {"allreduce_seconds": 0.0, "steps": 0}
        self._synced = [layer for layer in net.layers if layer.global_batch]

    # ------------------------------------------------------------------ agreement
    def agree_seed(self, seed) -> int:
        """Rank 0's seed, on every rank (a ``None`` seed is drawn per rank, then unified)."""
        buf = np.array([seed], dtype=np.int64)
        return int(self.comm.bcast(buf, "agreeing on the seed")[0])

    def start(self, trainer, X, X_val, y=None, y_val=None):
        """At the start of ``fit``, before the first step: check that every rank runs the same
        training (data sizes and contents, run position, the trainer's and the network's
        settings), with one line that names what differs, then copy rank 0's parameters,
        buffers and optimizer state to every rank."""
        labels = ["training samples", "features", "batch size", "epochs", "epochs done",
                  "steps done", "optimizer steps", "seed", "dev samples"]
        mine = [X.shape[0], X.shape[1], trainer.batch_size or 0, trainer.epochs, trainer.epoch,
                trainer.global_step, trainer.optimizer.t, trainer.seed % 2**52,
                -1 if X_val is None else X_val.shape[0]]
        numeric = set(labels)
        # (the network's seed may differ: rank 0's parameters are copied to every rank below)
        network = {k: v for k, v in self.net.config().items() if k != "seed"}
        settings = _flat({"trainer": trainer.config(), "network": network})
        for label, (value, is_number) in settings.items():
            labels.append(label)
            mine.append(value)
            if is_number:
                numeric.add(label)
        # The data's contents, by two sums each (same shapes, other rows or labels differ).
        for label, a in (("training data", X), ("training targets", y), ("dev data", X_val),
                         ("dev targets", y_val)):
            if a is not None:
                labels.append(label)
                mine.append(_checksum(self.xp, a))
        every = self.comm.allgather(np.array(mine, dtype=np.float64), "comparing the ranks' runs")
        for j, label in enumerate(labels):
            column = every[:, j]
            if not (column == column[0]).all():
                values = ", ".join(f"rank {r}: {v:g}" if label in numeric else
                                   f"rank {r}: #{int(v):x}" for r, v in enumerate(column))
                raise ValueError(f"the ranks disagree on the {label} ({values}); start every "
                                 f"rank with the same command and data")
        for a in trainer.state_arrays():
            self._bcast(a)

    def _bcast(self, a):
        if self.size == 1:
            return
        if self.dev.is_gpu:
            host = a.get()
            self.comm.bcast(host)
            a.set(host)
        else:
            self.comm.bcast(a)

    # ------------------------------------------------------------------ the split
    def share(self, start, stop):
        """This rank's ``(lo, hi)`` within the global batch ``[start, stop)`` (:func:`share`)."""
        return share(start, stop, self.rank, self.size)

    def rows(self, X, y):
        """This rank's contiguous share of an evaluation set."""
        lo, hi = self.share(0, X.shape[0])
        return X[lo:hi], y[lo:hi]

    # ------------------------------------------------------------------ the step
    def forward_backward(self, X, y, start, stop, lo, correct=None):
        """One step's forward and backward on this rank's rows ``X, y`` (global rows ``lo``
        onwards of the global batch ``[start, stop)``), then the all-reduce and the L2 term:
        ``net.flat.grad`` holds the global-batch gradient on every rank. Returns this rank's
        part of the batch's loss sum (0-d device array; the L2 term counted on rank 0)."""
        net = self.net
        m, k = stop - start, X.shape[0]
        # Batch norm and dropout see the global batch through their ``sync``: its size, this
        # rank's place in it and a sum over the ranks.
        batch = GlobalBatch(m, lo - start, self.sum)
        for layer in self._synced:
            layer.sync = batch
        try:
            # This rank's share k/m of the global-batch mean, as a loss sum over its rows.
            part = net.forward_backward_data(X, y, correct, grad_scale=k / m) * k
        finally:
            for layer in self._synced:
                layer.sync = None  # the layers are plain again outside the step
        self.allreduce_grad()
        net.add_l2_grad(m)  # once, after the sum, exactly as one process adds it
        if net.l2 and self.rank == 0:
            part = part + net.l2_term(m) * m
        return part

    def allreduce_grad(self):
        """Sum ``net.flat.grad`` over the ranks, in place; on a GPU through a host buffer."""
        t0 = time.perf_counter()
        grad = self.net.flat.grad
        if self.dev.is_gpu:
            if self._host_grad is None:
                self._host_grad = np.empty(grad.shape, dtype=grad.dtype)
            grad.get(out=self._host_grad)
            self.comm.allreduce(self._host_grad)
            grad.set(self._host_grad)
        else:
            self.comm.allreduce(grad)
        self.stats["allreduce_seconds"] += time.perf_counter() - t0
        self.stats["steps"] += 1

    def sum(self, a, what):
        """A small device array summed over the ranks (batch norm's statistics and gradient
        sums, through its ``sync``): a new array on the device."""
        if self.size == 1:
            return a
        if self.dev.is_gpu:
            host = a.get()
            self.comm.allreduce(host, what)
            return self.dev.send(host)
        self.comm.allreduce(a, what)
        return a

    # ------------------------------------------------------------------ the epoch
    def checksum(self):
        """The sum of the parameters (0-d float64 device array), equal on every rank."""
        return self.xp.sum(self.net.flat.data, dtype=self.xp.float64)

    def epoch_sums(self, host_parts):
        """Sum the host vector ``host_parts`` (its last entry: :meth:`checksum`) over the ranks
        in rank order, so every rank gets the same numbers, in the epoch's one metrics
        collective; the checksums must agree (every rank holds the same parameters)."""
        every = self.comm.allgather(host_parts, "gathering epoch metrics")
        sums = every[:, :-1].sum(axis=0)
        sums_of = every[:, -1]
        same = np.array_equal(sums_of, np.full_like(sums_of, sums_of[0]), equal_nan=True)
        if not same:
            raise RuntimeError(f"the ranks' parameters differ after this epoch (checksums "
                               f"{sums_of.tolist()}): the MPI library's all-reduce gave "
                               f"different results on different ranks")
        return sums

    def any(self, flag) -> bool:
        return self.comm.any(flag)
