"""Data for xpnet: verified IDX image datasets with a mirror-aware downloader, and your own tables.

* ``load_dataset(name)`` (``"mnist"``, ``"fashion-mnist"``, ``"kmnist"``; registry
  :data:`DATASETS`, with each dataset's files, checksums, mirrors and class names) and
  ``load_mnist()`` return host NumPy arrays: uint8 images (N, 784) and int64 labels (N,).
* ``load_frame(path)`` reads a table as written (numbers, text, missing cells) for a model's
  input schema; :func:`as_frame` does the same for a DataFrame, a dict or an array.
* ``load_table(path)`` reads a ``.csv`` (header row, a target column) or ``.npz`` (arrays ``X``
  and ``y``): float64 features (n_samples, n_features) and the raw targets (n_samples,).

Every problem raises a :class:`DataError` (:class:`MnistDataError` for the image datasets) with
a one-sentence message. NumPy is the only dependency; tqdm is used for download progress bars
when installed.
"""

from .checksums import CHECKSUMS, SHA256, FileSum, sha256_file
from .datasets import DATASETS, IdxDataset, get_dataset
from .download import DEFAULT_MIRRORS, download_file, resolve_mirrors
from .errors import DataError, DownloadError, MnistDataError
from .frame import MISSING_MARKERS, Frame, as_frame
from .mnist import MnistData, gunzip, load_dataset, load_mnist, parse_idx, resolve_data_dir
from .tabular import TABLE_FORMATS, RawTable, Table, check_features, load_frame, load_table

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_MIRRORS",
    "SHA256",
    "TABLE_FORMATS",
    "DataError",
    "DownloadError",
    "FileSum",
    "Frame",
    "MISSING_MARKERS",
    "RawTable",
    "as_frame",
    "load_frame",
    "IdxDataset",
    "MnistData",
    "MnistDataError",
    "Table",
    "check_features",
    "download_file",
    "get_dataset",
    "gunzip",
    "load_dataset",
    "load_mnist",
    "load_table",
    "parse_idx",
    "resolve_data_dir",
    "resolve_mirrors",
    "sha256_file",
]
