"""IDX image datasets (MNIST, Fashion-MNIST, KMNIST) from their four files, checked before any
array is returned: the one reader behind :func:`load_dataset` and :func:`load_mnist`.

The files live in one directory (see :func:`resolve_data_dir`), each either gzip-compressed
(``NAME.gz``, as published) or uncompressed (``NAME``); the ``.gz`` wins when both are present.
Every dataset of :data:`.datasets.DATASETS` has the same layout:

=========================  =================  ====================
file                       magic              shape
=========================  =================  ====================
train-images-idx3-ubyte    0x00000803 (IDX3)  60000 x 28 x 28 uint8
train-labels-idx1-ubyte    0x00000801 (IDX1)  60000 uint8
t10k-images-idx3-ubyte     0x00000803 (IDX3)  10000 x 28 x 28 uint8
t10k-labels-idx1-ubyte     0x00000801 (IDX1)  10000 uint8
=========================  =================  ====================

IDX layout, all integers big-endian: a 4-byte magic ``0x000008NN`` (``0x08`` = unsigned byte
data, ``NN`` = number of dimensions), ``NN`` uint32 dimension sizes, then exactly
``prod(dims)`` bytes of row-major data.

Every problem (missing file, bad gzip, bad header, wrong length, wrong SHA-256 or MD5) raises
:class:`MnistDataError` with one sentence naming the file, the problem and the fix. Partial or
unverified data is never returned: an uncompressed file is verified against its published
SHA-256 where there is one (MNIST); Fashion-MNIST and KMNIST publish checksums of the ``.gz``
files only, so theirs must be the ``.gz`` files (or ``verify=False``).

Reads are bounded by sizes known in advance (:data:`.checksums.CHECKSUMS`), never by what a file
declares: a file is read only up to the size of the original (with ``verify``, a ``.gz`` up to
the original ``.gz``'s size), and a ``.gz`` is inflated only up to the original's uncompressed
size, so a sparse multi-gigabyte file or a gzip bomb is refused after reading at most that
much. Only regular files are read: a FIFO or device of one of these names is refused, never
opened for reading (which could block forever).

Missing files are downloaded (:mod:`.download`) unless downloading is off (``download=False``
or env ``XPNET_OFFLINE=1``); when they cannot be had, one error names every missing file, the
folder looked in, ``--data-dir`` and the dataset's folder variable, every URL tried and why it
failed, the dataset's mirrors variable and ``XPNET_OFFLINE``.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import FileTooLargeError, SpecialFileError, file_kind
from .checksums import SHA256, read_hashed, sha256_file
from .datasets import FILE_NAMES, SPLITS, IdxDataset, get_dataset
from .download import download_file
from .errors import DownloadError, MnistDataError

__all__ = [
    "FILE_NAMES",
    "MnistData",
    "MnistDataError",
    "SHA256",
    "SPLITS",
    "load_dataset",
    "load_mnist",
    "parse_idx",
    "gunzip",
    "resolve_data_dir",
    "sha256_file",
]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
ROWS = COLS = 28
NUM_CLASSES = 10
# Bytes accepted beyond an original file's size before reading stops (a .gz may hold another
# 0.1%: gzip adds at most about 0.03% and some framing to incompressible data).
_SLACK = 1 << 16
_INFLATE_STEP = 4 << 20

_REPLACE = "replace it with the original file"
_OFFLINE_VALUES = {"1", "true", "yes", "on"}


@dataclass(frozen=True, eq=False)
class MnistData:
    """An IDX image dataset (MNIST, Fashion-MNIST or KMNIST) as host NumPy arrays (writable,
    C-contiguous).

    ``X_train``: uint8, shape (60000, 784); ``X_test``: uint8, shape (10000, 784). Each row is one
    28x28 image flattened row-major, pixels 0..255 with 0 the background (not scaled).
    ``y_train``: int64, shape (60000,); ``y_test``: int64, shape (10000,); class indices 0..9
    (display names in ``DATASETS[dataset].classes``).
    The arrays of a split that was not asked for are None.
    ``data_dir``: the directory the files were read from; ``dataset``: the registry name.
    """

    X_train: np.ndarray | None
    y_train: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    data_dir: Path
    dataset: str = "mnist"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None,
                     dataset: str = "mnist") -> Path:
    """Return the folder of ``dataset``'s files as an absolute path; it need not exist.

    Order: ``data_dir`` (the CLI's ``--data-dir``), then the dataset's env variable
    (``XPNET_DATA_DIR`` for mnist, ``XPNET_FASHION_MNIST_DIR``, ``XPNET_KMNIST_DIR``), then
    ``~/.cache/xpnet/<dataset>``. Empty values count as unset.
    """
    ds = get_dataset(dataset)
    chosen = os.fspath(data_dir) if data_dir is not None else ""
    chosen = chosen or os.environ.get(ds.dir_env, "")
    if not chosen:
        return ds.default_dir()
    return Path(os.path.abspath(os.path.expanduser(chosen)))


def gunzip(data: bytes, name: str, hint: str = _REPLACE, max_size: int | None = None) -> bytes:
    """Decompress a whole gzip file held in memory; any damage raises :class:`MnistDataError`.

    With ``max_size``, inflating stops as soon as the output would exceed ``max_size`` bytes
    (a :class:`MnistDataError` saying so), so a small file that inflates to gigabytes costs at
    most ``max_size + 1`` bytes of memory. Concatenated gzip members are joined, as by gzip.
    """
    return bytes(_inflate(data, name, hint, max_size))


def _inflate(data, name: str, hint: str, max_size: int | None) -> bytearray:
    """:func:`gunzip` into a bytearray (so views of it are writable and nothing is copied),
    4 MiB of output at a time."""
    out = bytearray()
    rest = memoryview(data)
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing, CRC checked
            pending = rest
            while True:
                room = _INFLATE_STEP if max_size is None else \
                    min(_INFLATE_STEP, max_size + 1 - len(out))
                piece = inflater.decompress(pending, room)
                out += piece
                if max_size is not None and len(out) > max_size:
                    raise MnistDataError(
                        f"{name} inflates to more than {max_size} bytes, far more than the "
                        f"original file holds, so it is not an MNIST file; {hint}"
                    )
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and len(piece) < room):
                    break
            if not inflater.eof:
                raise MnistDataError(
                    f"{name} is truncated (the gzip stream ended early); {hint}")
            rest = memoryview(inflater.unused_data)
            if not rest:
                return out
    except zlib.error as exc:
        raise MnistDataError(f"{name} is not a valid gzip file ({exc}); {hint}") from exc


def parse_idx(
    data: bytes,
    name: str,
    expect_magic: int,
    expect_dims: Sequence[int | None],
    hint: str = _REPLACE,
) -> np.ndarray:
    """Parse one uncompressed IDX file of unsigned bytes held in memory.

    ``expect_dims`` has one entry per dimension: an int requires that size, ``None`` accepts any.
    Returns a uint8 array of shape ``dims`` that is a view of ``data`` (read-only when ``data`` is
    ``bytes``). Raises :class:`MnistDataError` naming ``name`` on a wrong magic number, wrong
    dimensions, or a payload shorter or longer than the header says. Pure: no I/O.
    """
    ndim = len(expect_dims)
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise MnistDataError(f"{name} is too short to be an IDX file ({len(data)} bytes); {hint}")
    magic = int.from_bytes(data[:4], "big")
    if magic != expect_magic:
        if data[:2] == b"\x1f\x8b":
            raise MnistDataError(
                f"{name} is gzip-compressed but its name does not end in .gz; "
                f"rename it to {name}.gz"
            )
        raise MnistDataError(
            f"{name} has magic number 0x{magic:08X} instead of 0x{expect_magic:08X}, "
            f"so it is not the expected IDX file; {hint}"
        )
    if len(data) < header_len:
        raise MnistDataError(f"{name} is truncated (its IDX header is incomplete); {hint}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(want is not None and got != want for got, want in zip(dims, expect_dims)):
        shown = " x ".join("N" if d is None else str(d) for d in expect_dims)
        raise MnistDataError(
            f"{name} has dimensions {' x '.join(map(str, dims))} instead of {shown}; {hint}"
        )
    size = math.prod(dims)
    payload = len(data) - header_len
    if payload < size:
        raise MnistDataError(
            f"{name} is truncated ({payload} data bytes where its header promises {size}); {hint}"
        )
    if payload > size:
        raise MnistDataError(
            f"{name} has {payload - size} trailing bytes after the data its header describes; "
            f"{hint}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header_len).reshape(dims)


def _load_idx(
    path: Path,
    expect_magic: int,
    expect_dims: Sequence[int | None],
    verify: bool,
    ds: IdxDataset,
) -> np.ndarray:
    name = path.name
    hint = f"delete it and run again to re-download it, or put the original file in {path.parent}"
    base = name[:-3] if name.endswith(".gz") else name
    published = ds.files[name]
    if verify and published.sha256 is None:
        raise MnistDataError(
            f"{name} is uncompressed, and {ds.title} publishes checksums of its .gz files only, "
            f"so it cannot be verified; put the original {name}.gz in {path.parent} (or delete "
            f"{name} and run again to download it)"
        )
    # The most this file may hold (a little more than the original, so that a few stray bytes
    # still get the specific diagnosis below): known in advance, never read from the file.
    raw_limit = ds.files[base].size + _SLACK
    limit = raw_limit + raw_limit // 1000 if name.endswith(".gz") else raw_limit
    try:
        data, digest = read_hashed(path, limit)
    except FileTooLargeError as exc:
        raise MnistDataError(
            f"{name} holds {exc.size_text} bytes, far more than the {published.size} of the "
            f"original file, so it is not one of the {ds.title} files; {hint}"
        ) from exc
    except SpecialFileError as exc:
        raise MnistDataError(f"{path} is {exc.kind}, not a regular file; {hint}") from exc
    except OSError as exc:
        raise MnistDataError(f"cannot read {path} ({exc.strerror or exc}); {hint}") from exc
    # Structure is checked before the checksum so a damaged file gets the specific diagnosis.
    raw = _inflate(data, name, hint, raw_limit) if name.endswith(".gz") else data
    array = parse_idx(raw, name, expect_magic, expect_dims, hint)
    if verify and digest != published.sha256:
        raise MnistDataError(
            f"{name} has SHA-256 {digest} instead of the published {published.sha256}, so it is "
            f"damaged or not the original {ds.title} file; {hint}"
        )
    if verify and published.md5 is not None:
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if md5 != published.md5:
            raise MnistDataError(
                f"{name} has MD5 {md5} instead of the published {published.md5}, so it is "
                f"damaged or not the original {ds.title} file; {hint}"
            )
    return array


def _offline() -> bool:
    """Env ``XPNET_OFFLINE`` is 1 (or true, yes, on): never touch the network."""
    return os.environ.get("XPNET_OFFLINE", "").strip().lower() in _OFFLINE_VALUES


def _find(directory: Path, names: Sequence[str], ds: IdxDataset) -> dict[str, Path | None]:
    """Each name's file, ``.gz`` first; None when neither form exists. A name that exists but
    is not a regular file (a FIFO, a device, a directory) is an error, not a missing file."""
    found: dict[str, Path | None] = {}
    for name in names:
        found[name] = None
        for p in (directory / f"{name}.gz", directory / name):
            if p.is_file():
                found[name] = p
                break
            if p.exists():  # exists, but not as a regular file (a dangling symlink does not)
                raise MnistDataError(
                    f"{p} is {file_kind(p.stat().st_mode)}, not a regular file; remove it and "
                    f"run again, or put the original {ds.title} file there"
                )
    return found


def _missing_message(
    ds: IdxDataset,
    directory: Path,
    missing: Sequence[str],
    *,
    off: str | None = None,
    failed: DownloadError | None = None,
    mirrors: Sequence[str] | None = None,
) -> str:
    """The one sentence for files that are missing and could not be downloaded: downloading
    is ``off`` (why), or ``failed`` (the download error of the first file that failed)."""
    files = ", ".join(f"{name}.gz" for name in missing)
    verb = "is" if len(missing) == 1 else "are"
    plural = "s" if len(missing) > 1 else ""
    where = "" if directory.is_dir() else " (the folder does not exist)"
    raw_ok = all(ds.files[name].sha256 is not None for name in FILE_NAMES)
    forms = ".gz or uncompressed" if raw_ok else "the .gz files as published"
    head = f"{ds.title} file{plural} {files} {verb} missing from {directory}{where}"
    point = (f"put the original files there ({forms}) or point --data-dir or {ds.dir_env} at "
             f"a folder that has them")
    if failed is None:
        enable = "unset XPNET_OFFLINE" if off == "XPNET_OFFLINE is set" else "pass download=True"
        bases = ", ".join(ds.resolve_mirrors(mirrors)) or "no mirrors"
        return (f"{head}, and downloading is off ({off}); {point}, or {enable} to download "
                f"them from {bases} ({ds.mirrors_env} sets other mirrors)")
    tried = "; ".join(f"{url}: {why}" for url, why in failed.failures) or "no mirrors are set"
    return (f"{head}, and downloading {failed.filename} failed ({tried}); {point}, set "
            f"{ds.mirrors_env} to mirrors that have them (comma-separated base URLs), or set "
            f"XPNET_OFFLINE=1 to skip downloading")


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    verify: bool = True,
    splits: Sequence[str] = ("train", "test"),
) -> MnistData:
    """Load the IDX dataset ``name`` (``"mnist"``, ``"fashion-mnist"``, ``"kmnist"``: see
    :data:`.datasets.DATASETS`) from ``resolve_data_dir(data_dir, name)``, downloading missing
    files first.

    Files may be ``.gz`` or uncompressed (uncompressed only where their SHA-256 is published:
    MNIST, or with ``verify=False``). A file that is missing (neither form present) is
    downloaded as ``.gz`` from ``mirrors`` (default: the dataset's ``XPNET_<NAME>_MIRRORS``,
    then its built-in list), unless ``download`` is false or env ``XPNET_OFFLINE=1``; then a
    missing file is an error. ``progress`` shows a tqdm bar per download when tqdm is installed.
    When files are missing and cannot be downloaded, one :class:`MnistDataError` names them all,
    the folder, how to point at files elsewhere and every URL tried.

    ``verify=False`` skips the SHA-256/MD5 checks and the fixed 60000/10000 counts (for tests
    and derived subsets); the IDX structure, 28x28 size, matching image/label counts and the
    0..9 label range are always checked.

    ``splits`` names the splits to read (``"train"``, ``"test"``); only their files are read or
    downloaded, and the arrays of a split not asked for are None.

    Returns :class:`MnistData` (uint8 images (N, 784), int64 labels (N,)). Raises
    :class:`MnistDataError` for any missing, damaged or unexpected file, and
    :class:`.errors.DataError` for an unknown ``name``.
    """
    ds = get_dataset(name)
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must name some of {list(SPLITS)}; got {list(splits)!r}")
    directory = resolve_data_dir(data_dir, ds.name)
    paths = _find(directory, [n for s in splits for n in SPLITS[s][:2]], ds)
    missing = [n for n, path in paths.items() if path is None]
    if missing:
        if not download or _offline():
            why = "XPNET_OFFLINE is set" if download else "download=False"
            raise MnistDataError(_missing_message(ds, directory, missing, off=why,
                                                  mirrors=mirrors))
        for i, file in enumerate(missing):
            try:
                paths[file] = download_file(f"{file}.gz", directory, dataset=ds.name,
                                            mirrors=mirrors, progress=progress)
            except DownloadError as exc:
                raise DownloadError(
                    _missing_message(ds, directory, missing[i:], failed=exc),
                    exc.filename, exc.failures,
                ) from exc

    arrays: dict[str, np.ndarray | None] = {f"{p}_{s}": None for s in SPLITS for p in "Xy"}
    n_classes = len(ds.classes)
    for split in splits:
        images_name, labels_name, count = SPLITS[split]
        n = count if verify else None
        labels_path, images_path = paths[labels_name], paths[images_name]
        assert labels_path is not None and images_path is not None
        labels = _load_idx(labels_path, LABELS_MAGIC, (n,), verify, ds)
        images = _load_idx(images_path, IMAGES_MAGIC, (n, ROWS, COLS), verify, ds)
        if len(images) != len(labels):
            raise MnistDataError(
                f"{images_path.name} has {len(images)} images but {labels_path.name} has "
                f"{len(labels)} labels, so one of them is from another release; delete both and "
                f"run again to re-download them, or put the original files in {directory}"
            )
        if labels.size and int(labels.max()) >= n_classes:
            bad = int(np.argmax(labels >= n_classes))
            raise MnistDataError(
                f"{labels_path.name} has label {int(labels[bad])} at index {bad} where classes "
                f"0..{n_classes - 1} are expected; delete it and run again to re-download it, "
                f"or put the original file in {directory}"
            )
        images = images.reshape(len(images), ROWS * COLS)
        # Views of decompressed bytes are read-only; callers may shuffle or scale in place.
        arrays[f"X_{split}"] = images if images.flags.writeable else images.copy()
        arrays[f"y_{split}"] = labels.astype(np.int64)
    return MnistData(data_dir=directory, dataset=ds.name, **arrays)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = False,
    *,
    mirrors: Sequence[str] | None = None,
    verify: bool = True,
    splits: Sequence[str] = ("train", "test"),
) -> MnistData:
    """MNIST: ``load_dataset("mnist", ...)`` with the arguments in their first-release order.

    The folder is ``data_dir``, else env ``XPNET_DATA_DIR``, else ``~/.cache/xpnet/mnist``;
    mirrors ``mirrors``, else env ``XPNET_MNIST_MIRRORS``, else the built-in list. Returns
    :class:`MnistData` (uint8 images (N, 784), int64 labels (N,)); see :func:`load_dataset`.

    Args:
        data_dir: the folder holding (or to receive) the four IDX files, ``.gz`` or not.
        download: fetch a missing file (env ``XPNET_OFFLINE=1`` forbids it as well).
        progress: show a progress bar while downloading.
        mirrors: base URLs to download from, tried in turn.
        verify: check every file against its published SHA-256 before using it.
        splits: which of ``"train"`` and ``"test"`` to read; the other's arrays are None.

    Returns:
        :class:`MnistData` with ``X_train`` uint8 ``(60000, 784)``, ``y_train`` int64
        ``(60000,)``, ``X_test`` uint8 ``(10000, 784)`` and ``y_test`` int64 ``(10000,)``: raw
        pixels 0..255 (scale them, e.g. with :class:`xpnet.Scaler`), labels 0..9.

    Raises:
        DownloadError: a file is missing and could not be downloaded (or downloading is off);
            the message names the files, the folder and how to point xpnet at them.
        MnistDataError: a file is corrupt, truncated or not the expected one.
    """
    return load_dataset("mnist", data_dir, progress, download=download, mirrors=mirrors,
                        verify=verify, splits=splits)
