"""The published SHA-256 and sizes of the original MNIST files, and hashing of files on disk.

Shared by the loader (:mod:`.mnist`, which verifies what it reads) and the downloader
(:mod:`.download`, which verifies what it fetches before renaming it into place). The sizes are
known in advance, so neither ever reads, inflates or downloads more than the original holds,
whatever a file or a server declares.
"""

from __future__ import annotations

import hashlib
import os

from ..io import open_regular, read_capped

__all__ = ["SHA256", "SIZES", "read_hashed", "sha256_file"]

# Published SHA-256 of the original files, compressed and uncompressed (SHA256SUMS format).
_SHA256SUMS = """
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
"""
SHA256: dict[str, str] = {
    name: digest for digest, name in (line.split() for line in _SHA256SUMS.strip().splitlines())
}

# Sizes in bytes of the original files, compressed and uncompressed. An uncompressed size is
# also the most any MNIST-format file of that name can hold (a derived subset is smaller).
SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9912422,
    "train-labels-idx1-ubyte.gz": 28881,
    "t10k-images-idx3-ubyte.gz": 1648877,
    "t10k-labels-idx1-ubyte.gz": 4542,
    "train-images-idx3-ubyte": 47040016,
    "train-labels-idx1-ubyte": 60008,
    "t10k-images-idx3-ubyte": 7840016,
    "t10k-labels-idx1-ubyte": 10008,
}

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_hashed(path: str | os.PathLike[str], limit: int) -> tuple[bytearray, str]:
    """A whole regular file of at most ``limit`` bytes and its hex SHA-256, from one read; a
    bytearray so views of it are writable. A larger file raises
    :class:`xpnet.io.FileTooLargeError` having read at most ``limit + 1`` bytes; a FIFO or
    device raises :class:`xpnet.io.SpecialFileError` without blocking."""
    buf = read_capped(path, limit)
    n = len(buf)
    h = hashlib.sha256()
    view = memoryview(buf)
    for start in range(0, n, _CHUNK):
        h.update(view[start : start + _CHUNK])
    view.release()  # a live export would forbid resizing buf later
    return buf, h.hexdigest()
