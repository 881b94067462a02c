"""Download the original ``.gz`` files of an IDX dataset from public mirrors, verified and
atomically.

A download goes to a uniquely named temp file in the target directory
(:func:`xpnet.io.atomic_write`), is checked against the published SHA-256 (and MD5, where one
was published) of :data:`.checksums.CHECKSUMS`, fsynced, and only then renamed onto its final
name, with the permissions the umask gives a new file. Readers and concurrent downloaders
sharing a cache directory therefore only ever see a complete, verified file (two processes that
race just replace identical bytes with identical bytes).

A download is bounded: a mirror that announces or sends more bytes than the original file has
is dropped at once (never more than that size plus one chunk is written), and one that stalls
(less than 64 KiB in ``stall_timeout`` seconds, or silence for ``timeout`` seconds) is dropped
too. A directory this module created for a download that then failed is removed again.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..io import atomic_write
from ..progress import progress_bar
from .checksums import FileSum, sha256_file
from .datasets import DATASETS, get_dataset
from .errors import DownloadError, MnistDataError

__all__ = ["DEFAULT_MIRRORS", "download_file", "resolve_mirrors"]

DEFAULT_MIRRORS = DATASETS["mnist"].mirrors  # MNIST's; each dataset has its own list
_CHUNK = 1 << 16
_STALL_BYTES = 1 << 16  # at least this much (or the rest of the file) per stall_timeout
_USER_AGENT = "xpnet-mnist-downloader (python urllib)"


class _BadBody(Exception):
    """The mirror answered, but with the wrong bytes."""


def resolve_mirrors(mirrors: Sequence[str] | None = None, dataset: str = "mnist") -> list[str]:
    """Base URLs to try in order: ``mirrors``, else the dataset's env variable
    (``XPNET_MNIST_MIRRORS``, ``XPNET_FASHION_MNIST_MIRRORS``, ``XPNET_KMNIST_MIRRORS``; comma
    separated), else its built-in list (:data:`DEFAULT_MIRRORS` for MNIST)."""
    return get_dataset(dataset).resolve_mirrors(mirrors)


def download_file(
    filename: str,
    directory: str | os.PathLike[str],
    *,
    dataset: str = "mnist",
    mirrors: Sequence[str] | None = None,
    progress: bool = False,
    timeout: float = 30.0,
    stall_timeout: float = 60.0,
) -> Path:
    """Download ``filename`` (one of the four ``.gz`` names of ``dataset``, a key of
    :data:`.datasets.DATASETS`) into ``directory``.

    Tries ``base_url + filename`` for each mirror (see :func:`resolve_mirrors`) and moves on after
    any failure: HTTP or connection error, silence for ``timeout`` seconds, a stall (less than
    64 KiB in ``stall_timeout`` seconds), a body longer than the original file (announced or
    sent: reading stops there), a short body, or SHA-256 (or MD5) mismatch. Returns the final
    path. Raises :class:`MnistDataError` when the directory is not writable, and its subclass
    :class:`.errors.DownloadError` (with every URL tried and why it failed) when every mirror
    failed; then no file, final or temporary, is left, and no directory this call created.
    """
    ds = get_dataset(dataset)
    expected = ds.files.get(filename)
    if expected is None or expected.sha256 is None or not filename.endswith(".gz"):
        raise ValueError(f"{filename!r} is not one of the {ds.title} .gz files")
    directory = Path(directory)
    final = directory / filename
    created = []
    try:
        created = _make_dirs(directory)
        # Only a body that passed _fetch's length and SHA-256 checks leaves this block without
        # an exception, so only verified bytes are ever renamed onto the final name.
        with atomic_write(final) as out:
            _fetch_from_any(filename, directory, out, ds.urls(filename, mirrors), expected,
                            ds.mirrors_env, progress, timeout, stall_timeout)
    except OSError as exc:
        _remove_dirs(created)
        raise MnistDataError(
            f"cannot write {filename} to {directory} ({exc.strerror or exc}); choose a writable "
            f"directory with --data-dir or {ds.dir_env}"
        ) from exc
    except BaseException:
        _remove_dirs(created)
        raise

    # Guards against anything else writing the final name non-atomically in the meantime.
    digest = sha256_file(final)
    if digest != expected.sha256:
        raise MnistDataError(
            f"{filename} changed after it was downloaded (SHA-256 {digest}), so another program "
            f"is writing to {directory}; delete it and run again"
        )
    return final


def _make_dirs(directory: Path) -> list[Path]:
    """``mkdir -p directory``; returns the directories it created, outermost first."""
    missing = []
    d = directory.absolute()
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_dirs(created: list[Path]) -> None:
    """Remove the directories :func:`_make_dirs` created, innermost first, where still empty
    (another process may have put a file there meanwhile: then it stays)."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return


def _fetch_from_any(
    filename: str,
    directory: Path,
    out: IO[bytes],
    urls: list[str],
    expected: FileSum,
    mirrors_env: str,
    progress: bool,
    timeout: float,
    stall_timeout: float,
) -> None:
    """Fill ``out`` with the verified ``filename`` from the first URL that delivers it;
    :class:`DownloadError` listing every URL's failure when none does."""
    failures = []
    for url in urls:
        out.seek(0)
        out.truncate()
        try:
            _fetch(url, out, expected, progress, timeout, stall_timeout)
            return
        except Exception as exc:  # any failure means "try the next mirror"
            failures.append((url, _describe(exc)))
    listed = "; ".join(f"{url}: {why}" for url, why in failures) or "no mirrors are configured"
    raise DownloadError(
        f"could not download {filename} from any mirror ({listed}); check the network or set "
        f"{mirrors_env}, or put the original file in {directory}",
        filename, failures,
    )


def _fetch(url: str, out: IO[bytes], expected: FileSum, progress: bool, timeout: float,
           stall_timeout: float) -> None:
    """Copy ``url``'s body to ``out``: at most ``expected.size`` bytes (the original file's),
    else :class:`_BadBody` as soon as there is one byte more; :class:`_BadBody` on a stall or
    when the body is not the original (SHA-256, and MD5 where the table has one)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    size = expected.size
    h = hashlib.sha256()
    h_md5 = hashlib.md5(usedforsecurity=False) if expected.md5 else None
    received = 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() and len(length) < 20 else None
        if total is not None and total > size:
            raise _BadBody(f"the mirror announces {total} bytes, the original file has {size}")
        bar = progress_bar(progress, total=total, desc=url.rsplit("/", 1)[-1], unit="B",
                           unit_scale=True, unit_divisor=1024)
        window_start, window_bytes = time.monotonic(), 0
        try:
            # read1: whatever has arrived (read(n) would wait for all n bytes, so a trickle of
            # one byte per socket timeout would never time out).
            while chunk := response.read1(_CHUNK):
                received += len(chunk)
                if received > size:
                    raise _BadBody(f"the body is longer than the {size} bytes of the original "
                                   f"file; stopped reading there")
                out.write(chunk)
                h.update(chunk)
                if h_md5 is not None:
                    h_md5.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= stall_timeout:
                    if window_bytes < min(_STALL_BYTES, size - (received - window_bytes)):
                        raise _BadBody(f"stalled ({window_bytes} bytes in the last "
                                       f"{now - window_start:.0f} s)")
                    window_start, window_bytes = now, 0
        finally:
            if bar is not None:
                bar.close()
    # http.client returns a short body without complaint when the connection drops.
    if total is not None and received != total:
        raise _BadBody(f"truncated body ({received} of {total} bytes)")
    if h.hexdigest() != expected.sha256:
        raise _BadBody(f"SHA-256 mismatch ({received} bytes; damaged or not the original file)")
    if h_md5 is not None and h_md5.hexdigest() != expected.md5:
        raise _BadBody(f"MD5 mismatch with the publisher's ({received} bytes; the SHA-256 "
                       f"matched, so the checksum table itself is wrong)")


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, _BadBody):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

