"""File access for everything xpnet reads and writes for the user.

Writes: every file xpnet writes (checkpoints, downloaded MNIST files, metrics JSON, learning
curve plots) goes through :func:`atomic_write`, so an interrupted run, a full disk or a crash
mid-write never leaves a truncated file where a good one was, and concurrent writers of the same
name just replace one complete file with another. Outputs are regular files only: a path that
names a directory, FIFO, device or socket (directly or through a symlink) is refused with
:class:`SpecialFileError` before anything is written, so ``/dev/null`` is never replaced and a
FIFO can never hang a run.

Reads: :func:`open_regular` opens a regular file without ever blocking (a FIFO given as an input
is refused, not opened for a writer that never comes), and :func:`read_capped` reads at most a
size known in advance, never a size the file itself declares. For ``.npy`` arrays inside a zip
(checkpoints, ``--data x.npz``), :func:`plain_zip_member` and :func:`read_npy_data` are the
shared reading steps; each caller checks the header against its own limits first and words
its own errors.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

__all__ = [
    "FileTooLargeError",
    "SpecialFileError",
    "TrailingBytesError",
    "plain_zip_member",
    "read_npy_data",
    "atomic_write",
    "check_output_path",
    "file_kind",
    "open_regular",
    "read_capped",
    "resolve_output",
    "write_bytes_atomic",
    "write_text_atomic",
]


class SpecialFileError(OSError):
    """A path that must be a regular file names a directory, FIFO, device or socket."""

    def __init__(self, path, kind: str, action: str):
        super().__init__(errno.EINVAL, f"{path} is {kind}, not a regular file; {action}")
        self.filename = os.fspath(path)
        self.kind = kind

    def __str__(self) -> str:
        return self.strerror


class FileTooLargeError(OSError):
    """A file holds more bytes than the most it may legitimately have."""

    def __init__(self, path, size_text: str, limit: int):
        super().__init__(errno.EFBIG, f"{path} holds {size_text} bytes, more than the "
                                      f"{limit} it can legitimately have")
        self.filename = os.fspath(path)
        self.size_text, self.limit = size_text, limit

    def __str__(self) -> str:
        return self.strerror


def file_kind(mode: int) -> str:
    """``"a FIFO (named pipe)"``, ``"a character device"``, ... for an ``st_mode``."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def _read_umask_once() -> int:
    # os.umask can only be read by setting it. Done once, at import, before any thread of ours
    # creates files; per call it would race with other threads (one could even leave it at 0).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _read_umask_once()


def _umask() -> int:
    """The process umask now: from /proc on Linux (reading it there changes nothing), else the
    value seen at import."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


# ---------------------------------------------------------------------------------- writes
_OUTPUT_ACTION = "outputs are written only to regular files (atomically); choose a file name"


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """Where a write to ``path`` lands: symlinks are followed (the link is kept and the file it
    points to is replaced), so the result is the real path of the file to write."""
    return Path(os.path.realpath(os.fspath(path)))


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The resolved output path (:func:`resolve_output`); :class:`SpecialFileError` when
    something other than a regular file is there."""
    target = resolve_output(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError:
        return target  # e.g. EACCES: the write itself will report it
    if not stat.S_ISREG(mode):
        raise SpecialFileError(path, file_kind(mode), _OUTPUT_ACTION)
    return target


def _existing_mode(target: Path) -> int | None:
    try:
        st = os.stat(target)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Write ``path`` atomically through the file object this yields.

    ``mode`` is ``"wb"`` (bytes, the default) or ``"w"`` (text, UTF-8 unless ``encoding`` says
    otherwise; ``newline`` as for :func:`open`). Anything that writes to a file object works,
    e.g. ``np.savez(f, **arrays)`` or ``fig.savefig(f, format="png")``. Do not close the file
    yourself.

    Guarantees:

    * Only regular files are written: when ``path`` (or what a symlink there points to) is a
      directory, FIFO, device or socket, :class:`SpecialFileError` is raised before the block
      runs, and that node is left alone (``/dev/null`` is never replaced).
    * A symlink at ``path`` is followed: the file it points to is replaced and the link kept.
    * The data go to a new temp file in the same folder as the file replaced, with a hidden name
      (``.NAME.XXXXXXXX.tmp``), so the final rename never crosses file systems.
    * On a clean exit the temp file is flushed and fsynced, renamed onto the target with
      :func:`os.replace` (atomic on POSIX and Windows: readers see the old file or the new one),
      and the folder is fsynced so the rename survives a crash (skipped where a folder cannot be
      opened, as on Windows).
    * On any exception in the block (KeyboardInterrupt included) or while finishing, the temp
      file is removed, ``path`` is left exactly as it was, and the exception propagates.
    * Permissions are those :func:`open` would give: a new file gets ``0o666 & ~umask``
      (``mkstemp`` alone would make it 0600); a regular file that is replaced keeps its mode.

    Raises ``ValueError`` for a mode other than ``"w"``/``"wt"``/``"wb"``, ``OSError`` when the
    folder cannot take the temp file or any write, sync or rename fails.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write mode must be 'w', 'wt' or 'wb'; got {mode!r}")
    text = "b" not in mode
    if not text and (encoding is not None or newline is not None):
        raise ValueError("atomic_write: encoding and newline apply to text mode only")
    target = check_output_path(path)
    # tempfile.mkstemp is looked up at call time so tests can inject faults through it.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        f = os.fdopen(fd, mode, encoding=(encoding or "utf-8") if text else None,
                      newline=newline)
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_output_path(path)  # again: something else may have been put there meanwhile
        kept = _existing_mode(target)
        os.chmod(tmp, kept if kept is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """``path`` holds exactly ``data`` afterwards, written with :func:`atomic_write`."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """``path`` holds exactly ``text`` afterwards (no newline translation), written with
    :func:`atomic_write`."""
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _remove(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Best effort: the new file is already in place,
    and not every platform or file system can open or sync a folder."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- reads
_INPUT_ACTION = "give the path of a regular file"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading in binary mode, only if it is a regular file (symlinks are
    followed). Never blocks: a FIFO, device, socket or directory raises
    :class:`SpecialFileError` (checked before opening, and again on the open descriptor, so a
    swap in between is caught). Other problems raise the usual ``OSError``."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise SpecialFileError(path, file_kind(mode), _INPUT_ACTION)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpecialFileError(path, file_kind(mode), _INPUT_ACTION)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str | os.PathLike[str], limit: int, chunk: int = 1 << 20) -> bytearray:
    """The whole regular file ``path``, which may hold at most ``limit`` bytes: a larger file
    raises :class:`FileTooLargeError` without more than ``limit + 1`` bytes ever being read or
    allocated (its size on disk is checked first; a sparse or growing file changes nothing).
    A bytearray, so views of it are writable."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise FileTooLargeError(path, str(size), limit)
        buf = bytearray(min(size, limit) + 1)
        view = memoryview(buf)
        n = 0
        try:
            while n < len(buf):
                got = f.readinto(view[n:n + chunk])
                if not got:
                    break
                n += got
        finally:
            view.release()
    if n > limit:
        raise FileTooLargeError(path, f"more than {limit}", limit)
    del buf[n:]
    return buf


# ---------------------------------------------------------------------- .npy members of a zip
_NPY_CHUNK = 1 << 22  # bytes per read: memory grows with the data actually read, not promised


class TrailingBytesError(ValueError):
    """A ``.npy`` member holds more bytes than its header declares."""


def plain_zip_member(info: zipfile.ZipInfo) -> bool:
    """Whether zip member ``info`` is as ``numpy.savez`` writes them: not encrypted, and stored
    or deflated."""
    return not info.flag_bits & 0x1 and info.compress_type in (zipfile.ZIP_STORED,
                                                               zipfile.ZIP_DEFLATED)


def read_npy_data(f: BinaryIO, shape: tuple, fortran: bool, dtype: np.dtype) -> np.ndarray:
    """The data of the ``.npy`` stream ``f``, positioned just after its header, as an array of
    ``shape`` and ``dtype``: exactly ``prod(shape) * itemsize`` bytes, read in chunks, which the
    caller has checked against its limit before. ``EOFError`` when the stream ends early,
    :class:`TrailingBytesError` when a byte follows (that extra read also makes :mod:`zipfile`
    check the member's CRC-32)."""
    nbytes = math.prod(shape) * dtype.itemsize
    data = bytearray(nbytes)
    view, got = memoryview(data), 0
    while got < nbytes:
        n = f.readinto(view[got:got + _NPY_CHUNK])
        if not n:
            raise EOFError(f"{nbytes - got} of its {nbytes} data bytes are missing")
        got += n
    view.release()
    if f.read(1):
        raise TrailingBytesError("it is longer than its header says")
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
