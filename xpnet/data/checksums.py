"""The one checksum table: published sizes and digests of every IDX dataset's files, and hashing.

:data:`CHECKSUMS` maps a dataset name to its files, each a :class:`FileSum` (size in bytes,
SHA-256, and MD5 where one was published). Shared by the loader (:mod:`.mnist`, which verifies
what it reads) and the downloader (:mod:`.download`, which verifies what it fetches before
renaming it into place). The sizes are known in advance, so neither ever reads, inflates or
downloads more than the original holds, whatever a file or a server declares.

Each dataset has the four ``.gz`` files as published and the four uncompressed IDX files inside
them. The uncompressed sizes follow from the format (16 + N x 784 bytes of images, 8 + N bytes of
labels); their SHA-256 is known for MNIST only, so for the other datasets an uncompressed file
cannot be verified (``sha256`` is ``None``) and the loader asks for the ``.gz`` instead.

Where the values come from (none could be recomputed here: they were taken from public code):

* mnist: the SHA-256 of the eight files as listed in the SHA256SUMS that accompanies the data
  (the .gz values equal tensorflow/datasets ``tensorflow_datasets/url_checksums/mnist.txt``).
* fashion-mnist: sizes and SHA-256 of the .gz files from tensorflow/datasets
  ``tensorflow_datasets/url_checksums/fashion_mnist.txt`` (the same SHA-256 are in keras-team/keras
  ``keras/src/datasets/fashion_mnist.py``); MD5 from the publisher, the "MD5 Checksum" column of
  zalandoresearch/fashion-mnist README.md (also torchvision ``FashionMNIST.resources``). The
  publisher gives MD5 only, so both are kept and both are checked.
* kmnist: sizes and SHA-256 of the .gz files from tensorflow/datasets
  ``tensorflow_datasets/url_checksums/kmnist.txt``; MD5 from pytorch/vision
  ``torchvision/datasets/mnist.py`` (``KMNIST.resources``): the publisher (rois-codh/kmnist)
  gives none, so the MD5 is an independent second source and is checked too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ..io import open_regular, read_capped

__all__ = ["CHECKSUMS", "SHA256", "SIZES", "FileSum", "read_hashed", "sha256_file"]


@dataclass(frozen=True)
class FileSum:
    """One file's published size in bytes, hex SHA-256 (``None``: not published) and hex MD5
    (``None``: not published)."""

    size: int
    sha256: str | None
    md5: str | None = None


def _uncompressed(n_train: int, n_test: int) -> dict[str, int]:
    """Sizes of the four uncompressed IDX files of an MNIST-format set: 28 x 28 uint8 images."""
    return {
        "train-images-idx3-ubyte": 16 + n_train * 28 * 28,
        "train-labels-idx1-ubyte": 8 + n_train,
        "t10k-images-idx3-ubyte": 16 + n_test * 28 * 28,
        "t10k-labels-idx1-ubyte": 8 + n_test,
    }


_RAW_SIZES = _uncompressed(60000, 10000)

CHECKSUMS: dict[str, dict[str, FileSum]] = {
    # Source: the SHA256SUMS shipped with the MNIST files (sections 1 and 2); the .gz lines are
    # identical to tensorflow/datasets tensorflow_datasets/url_checksums/mnist.txt.
    "mnist": {
        "train-images-idx3-ubyte.gz": FileSum(
            9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": FileSum(
            28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": FileSum(
            1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": FileSum(
            4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        "train-images-idx3-ubyte": FileSum(
            _RAW_SIZES["train-images-idx3-ubyte"],
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": FileSum(
            _RAW_SIZES["train-labels-idx1-ubyte"],
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": FileSum(
            _RAW_SIZES["t10k-images-idx3-ubyte"],
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": FileSum(
            _RAW_SIZES["t10k-labels-idx1-ubyte"],
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    # Size and SHA-256: tensorflow/datasets tensorflow_datasets/url_checksums/fashion_mnist.txt
    # (SHA-256 also in keras-team/keras keras/src/datasets/fashion_mnist.py FILE_HASHES).
    # MD5: zalandoresearch/fashion-mnist README.md, "Get the Data" table (the publisher's).
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": FileSum(
            26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": FileSum(
            29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte.gz": FileSum(
            4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": FileSum(
            5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "bb300cfdad3c16e7a12a480ee83cd310"),
        **{name: FileSum(size, None) for name, size in _RAW_SIZES.items()},
    },
    # Size and SHA-256: tensorflow/datasets tensorflow_datasets/url_checksums/kmnist.txt.
    # MD5: pytorch/vision torchvision/datasets/mnist.py, KMNIST.resources (the publisher,
    # rois-codh/kmnist, lists none).
    "kmnist": {
        "train-images-idx3-ubyte.gz": FileSum(
            18165135, "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "bdb82020997e1d708af4cf47b453dcf7"),
        "train-labels-idx1-ubyte.gz": FileSum(
            29497, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "e144d726b3acfaa3e44228e80efcd344"),
        "t10k-images-idx3-ubyte.gz": FileSum(
            3041136, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "5c965bf0a639b31b8f53240b1b52f4d7"),
        "t10k-labels-idx1-ubyte.gz": FileSum(
            5120, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            "7320c461ea6c1c855c0b718fb2a4b134"),
        **{name: FileSum(size, None) for name, size in _RAW_SIZES.items()},
    },
}

# MNIST's table in the shapes of the first release (name -> hex SHA-256, name -> size).
SHA256: dict[str, str] = {name: s.sha256 for name, s in CHECKSUMS["mnist"].items() if s.sha256}
SIZES: dict[str, int] = {name: s.size for name, s in CHECKSUMS["mnist"].items()}

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
