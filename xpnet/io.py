"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

Every file xpnet writes for the user (checkpoints, downloaded MNIST files, metrics JSON, learning
curve plots) goes through :func:`atomic_write`, so an interrupted run, a full disk or a crash
mid-write never leaves a truncated file where a good one was, and concurrent writers of the same
name just replace one complete file with another.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "write_bytes_atomic", "write_text_atomic"]


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

    * The data go to a new temp file in the same folder as ``path``, with a hidden name
      (``.NAME.XXXXXXXX.tmp``), so the final rename never crosses file systems.
    * On a clean exit the temp file is flushed and fsynced, renamed onto ``path`` with
      :func:`os.replace` (atomic on POSIX and Windows: readers see the old file or the new one),
      and the folder is fsynced so the rename survives a crash (skipped where a folder cannot be
      opened, as on Windows).
    * On any exception in the block (KeyboardInterrupt included) or while finishing, the temp
      file is removed, ``path`` is left exactly as it was, and the exception propagates.
    * The new file gets mode ``0o666 & ~umask``, like a file made by :func:`open`
      (``mkstemp`` alone would make it 0600). A symlink at ``path`` is replaced, not followed.

    Raises ``ValueError`` for a mode other than ``"w"``/``"wt"``/``"wb"``, ``OSError`` when the
    folder cannot take the temp file or any write, sync or rename fails.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write mode must be 'w', 'wt' or 'wb'; got {mode!r}")
    text = "b" not in mode
    if not text and (encoding is not None or newline is not None):
        raise ValueError("atomic_write: encoding and newline apply to text mode only")
    target = Path(path)
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
        os.chmod(tmp, 0o666 & ~_umask())
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
