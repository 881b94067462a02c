"""MNIST data: verified loading of the original IDX files and a mirror-aware downloader.

``load_mnist()`` returns host NumPy arrays: uint8 images (N, 784) and int64 labels (N,).
NumPy is the only dependency; tqdm is used for download progress bars when installed.
"""

from .checksums import SHA256, sha256_file
from .download import DEFAULT_MIRRORS, download_file, resolve_mirrors
from .errors import MnistDataError
from .mnist import MnistData, gunzip, load_mnist, parse_idx, resolve_data_dir

__all__ = [
    "DEFAULT_MIRRORS",
    "SHA256",
    "MnistData",
    "MnistDataError",
    "download_file",
    "gunzip",
    "load_mnist",
    "parse_idx",
    "resolve_data_dir",
    "resolve_mirrors",
    "sha256_file",
]
