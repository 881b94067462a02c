"""The registry of IDX image datasets xpnet can download, verify and load.

All three are drop-in replacements for one another: four files in MNIST's format (28 x 28 uint8
images, uint8 labels 0..9; 60000 training and 10000 test examples) with the same names. Only
where they come from, their checksums (:data:`.checksums.CHECKSUMS`) and what the ten classes
mean differ:

* ``mnist``: handwritten digits; classes ``0`` .. ``9``.
* ``fashion-mnist``: Zalando's article images; classes ``T-shirt/top``, ``Trouser``, ...,
  ``Ankle boot``.
* ``kmnist``: Kuzushiji-MNIST, cursive Japanese; classes ``o``, ``ki``, ``su``, ``tsu``, ``na``,
  ``ha``, ``ma``, ``ya``, ``re``, ``wo`` (one hiragana from each row of the syllabary).

The folder a dataset is read from (and downloaded to): ``--data-dir DIR`` (``data_dir=`` in
the library) for any dataset, else the dataset's own environment variable
(:attr:`IdxDataset.dir_env`): ``XPNET_DATA_DIR`` for mnist (as in the first release),
``XPNET_FASHION_MNIST_DIR`` and ``XPNET_KMNIST_DIR`` for the others, else
``~/.cache/xpnet/<name>``. Each dataset has its own variable because the three share their file
names, so one folder can hold only one of them.

Mirrors: ``mirrors=`` in the library, else the dataset's ``XPNET_<NAME>_MIRRORS`` (upper case,
``-`` as ``_``: ``XPNET_MNIST_MIRRORS``, ``XPNET_FASHION_MNIST_MIRRORS``,
``XPNET_KMNIST_MIRRORS``; comma-separated base URLs), else the built-in list below. Every
download is checked against the table, so a mirror can only fail, never deliver other bytes.
``XPNET_OFFLINE=1`` turns downloading off for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .checksums import CHECKSUMS, FileSum
from .errors import DataError

__all__ = ["DATASETS", "SPLITS", "FILE_NAMES", "IdxDataset", "get_dataset"]

# Split -> (images file, labels file, number of examples), names without ".gz"; the same for
# every dataset here.
SPLITS: dict[str, tuple[str, str, int]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
FILE_NAMES = tuple(name for images, labels, _ in SPLITS.values() for name in (images, labels))


@dataclass(frozen=True)
class IdxDataset:
    """One IDX image dataset.

    ``name``: the registry key and ``--dataset`` value; ``title``: for messages;
    ``classes``: the ten display names, label ``i`` is ``classes[i]``; ``class_chars``: for
    KMNIST the characters the romanised names stand for, else None; ``mirrors``: base URLs
    tried in order (a file's URL is the base plus its name); ``dir_env`` / ``mirrors_env``: the
    environment variables naming its folder and its mirrors; ``homepage``: the publisher.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    dir_env: str
    mirrors_env: str
    homepage: str
    class_chars: tuple[str, ...] | None = None

    @property
    def files(self) -> Mapping[str, FileSum]:
        """Every file name (``.gz`` and uncompressed) -> its published size and digests."""
        return CHECKSUMS[self.name]

    @property
    def gz_files(self) -> tuple[str, ...]:
        """The four files as published: train images, train labels, test images, test labels."""
        return tuple(f"{name}.gz" for name in FILE_NAMES)

    def default_dir(self) -> Path:
        """``~/.cache/xpnet/<name>``."""
        return Path.home() / ".cache" / "xpnet" / self.name

    def urls(self, filename: str, mirrors=None) -> list[str]:
        """The URLs ``filename`` is fetched from, in order (``mirrors`` as for
        :func:`.download.resolve_mirrors`)."""
        return [base.rstrip("/") + "/" + filename for base in self.resolve_mirrors(mirrors)]

    def resolve_mirrors(self, mirrors=None) -> list[str]:
        """Base URLs to try in order: ``mirrors``, else env :attr:`mirrors_env` (comma
        separated), else :attr:`mirrors`."""
        if mirrors is None:
            env = os.environ.get(self.mirrors_env, "")
            mirrors = [m.strip() for m in env.split(",") if m.strip()] or self.mirrors
        return list(mirrors)


DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's copy
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's copy
        ),
        dir_env="XPNET_DATA_DIR",
        mirrors_env="XPNET_MNIST_MIRRORS",
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": IdxDataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        # zalandoresearch/fashion-mnist README.md, "Labels".
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the publisher's
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's copy
            # The files committed to the publisher's repository.
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        dir_env="XPNET_FASHION_MNIST_DIR",
        mirrors_env="XPNET_FASHION_MNIST_MIRRORS",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "kmnist": IdxDataset(
        name="kmnist",
        title="Kuzushiji-MNIST",
        # One hiragana per row of the syllabary; the publisher's kmnist_classmap.csv maps
        # index -> character (U+304A ... U+3092); the romanised names are torchvision's and
        # tensorflow_datasets' (KMNIST.classes).
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        class_chars=("\u304a", "\u304d", "\u3059", "\u3064", "\u306a", "\u306f", "\u307e",
                     "\u3084", "\u308c", "\u3092"),
        mirrors=(
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",  # the publisher's (CODH)
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",  # the same over TLS
        ),
        dir_env="XPNET_KMNIST_DIR",
        mirrors_env="XPNET_KMNIST_MIRRORS",
        homepage="https://github.com/rois-codh/kmnist",
    ),
}


def get_dataset(name: str) -> IdxDataset:
    """The registry entry of ``name``; :class:`DataError` naming the choices otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"there is no IDX dataset called {name!r}; choose one of "
                        f"{', '.join(DATASETS)}") from None
