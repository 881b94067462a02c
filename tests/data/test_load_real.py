"""Loading the real MNIST files from XPNET_DATA_DIR, and damaged copies of them in tmp_path."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import SHA256, MnistDataError, load_dataset, load_mnist, resolve_data_dir

GZ_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Published per-digit counts of the MNIST training and test sets.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_dir() -> Path:
    env = os.environ.get("XPNET_DATA_DIR")
    if not env:
        pytest.skip("XPNET_DATA_DIR is not set; point it at the original MNIST .gz files")
    directory = Path(env)
    missing = [name for name in GZ_NAMES if not (directory / name).is_file()]
    if missing:
        pytest.skip(f"XPNET_DATA_DIR={env} lacks {', '.join(missing)}")
    return directory


@pytest.fixture(scope="module")
def mnist(real_dir):
    return load_mnist(real_dir, download=False)


@pytest.fixture(scope="module")
def raw_dir(real_dir, tmp_path_factory) -> Path:
    """Uncompressed copies of the four files."""
    directory = tmp_path_factory.mktemp("raw")
    for name in GZ_NAMES:
        (directory / name[:-3]).write_bytes(gzip.decompress((real_dir / name).read_bytes()))
    return directory


@pytest.fixture
def gz_copy(real_dir, tmp_path) -> Path:
    for name in GZ_NAMES:
        shutil.copyfile(real_dir / name, tmp_path / name)
    return tmp_path


def test_real_shapes_dtypes_and_values(mnist, real_dir):
    assert mnist.data_dir == real_dir.absolute()
    assert (mnist.X_train.shape, mnist.X_train.dtype) == ((60000, 784), np.uint8)
    assert (mnist.y_train.shape, mnist.y_train.dtype) == ((60000,), np.int64)
    assert (mnist.X_test.shape, mnist.X_test.dtype) == ((10000, 784), np.uint8)
    assert (mnist.y_test.shape, mnist.y_test.dtype) == ((10000,), np.int64)
    assert np.bincount(mnist.y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test, minlength=10).tolist() == TEST_COUNTS
    assert mnist.y_train.min() == 0 and mnist.y_train.max() == 9
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.X_train.min() == 0 and mnist.X_train.max() == 255
    # The widely used normalisation constant: mean training pixel 0.1307 on a 0..1 scale.
    assert mnist.X_train.mean() / 255 == pytest.approx(0.1307, abs=1e-4)
    assert mnist.X_train[0].reshape(28, 28)[:4].sum() == 0  # the top rows are background


def test_real_data_dir_from_env(real_dir, monkeypatch):
    monkeypatch.setenv("XPNET_DATA_DIR", str(real_dir))
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    assert resolve_data_dir() == real_dir.absolute()
    assert load_mnist().data_dir == real_dir.absolute()


def test_load_dataset_mnist_is_load_mnist(real_dir, mnist):
    data = load_dataset("mnist", real_dir, download=False, splits=("test",))
    assert data.dataset == "mnist" and data.X_train is None
    np.testing.assert_array_equal(data.X_test, mnist.X_test)
    np.testing.assert_array_equal(data.y_test, mnist.y_test)


def test_real_mnist_is_not_fashion_mnist(real_dir, tmp_path):
    """The three datasets share file names; MNIST's files are refused as Fashion-MNIST's."""
    for name in GZ_NAMES[2:]:
        os.symlink(real_dir / name, tmp_path / name)
    with pytest.raises(MnistDataError, match="^t10k-labels-idx1-ubyte.gz has SHA-256 "
                                             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb"
                                             "259924204aec6 instead of the published 67da17c7"):
        load_dataset("fashion-mnist", tmp_path, download=False, splits=("test",))


def test_uncompressed_copies_load_identically(raw_dir, mnist):
    data = load_mnist(raw_dir, download=False)
    assert data.data_dir == raw_dir
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(data, field), getattr(mnist, field))


def _damage(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(data)))


def _flip(pos):
    def edit(data):
        data[pos] ^= 0x01
        return data

    return edit


@pytest.mark.parametrize(
    ("name", "edit", "fragment"),
    [
        ("train-labels-idx1-ubyte.gz", lambda d: d[: len(d) // 2], "is truncated (the gzip stream"),
        ("train-labels-idx1-ubyte.gz", _flip(2000), "is not a valid gzip file"),
        ("train-labels-idx1-ubyte.gz", lambda d: d + b"junk", "is not a valid gzip file"),
        # Byte 4 is the gzip header's timestamp: the gzip stays valid, only the checksum differs.
        ("t10k-labels-idx1-ubyte.gz", _flip(4), "has SHA-256"),
    ],
)
def test_damaged_gz_copies(gz_copy, name, edit, fragment):
    _damage(gz_copy / name, edit)
    with pytest.raises(MnistDataError) as info:
        load_mnist(gz_copy, download=False)
    message = str(info.value)
    assert message.startswith(f"{name} ") and fragment in message
    assert f"put the original file in {gz_copy}" in message


def test_gzip_header_flip_is_caught_only_by_checksum(gz_copy):
    _damage(gz_copy / "t10k-labels-idx1-ubyte.gz", _flip(4))
    data = load_mnist(gz_copy, download=False, verify=False)
    assert np.bincount(data.y_test).tolist() == TEST_COUNTS


@pytest.mark.parametrize(
    ("name", "edit", "fragment"),
    [
        ("t10k-images-idx3-ubyte", _flip(16 + 784 * 5 + 300), "has SHA-256"),
        ("train-labels-idx1-ubyte", _flip(3), "magic number 0x00000800 instead of 0x00000801"),
        ("t10k-labels-idx1-ubyte", lambda d: d + b"\x00", "1 trailing bytes"),
        ("train-images-idx3-ubyte", lambda d: d[:-784], "is truncated (47039216 data bytes"),
        ("t10k-images-idx3-ubyte", _flip(11), "dimensions 10000 x 29 x 28 instead of 10000 x 28"),
    ],
)
def test_damaged_raw_copies(raw_dir, tmp_path, name, edit, fragment):
    for other in raw_dir.iterdir():
        os.symlink(other, tmp_path / other.name)
    (tmp_path / name).unlink()
    shutil.copyfile(raw_dir / name, tmp_path / name)
    _damage(tmp_path / name, edit)
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert message.startswith(f"{name} ") and fragment in message


def test_gzip_file_without_gz_suffix(gz_copy):
    (gz_copy / "t10k-labels-idx1-ubyte.gz").rename(gz_copy / "t10k-labels-idx1-ubyte")
    with pytest.raises(MnistDataError, match="rename it to t10k-labels-idx1-ubyte.gz$"):
        load_mnist(gz_copy, download=False)


def test_labels_from_the_other_split(gz_copy):
    shutil.copyfile(gz_copy / "t10k-labels-idx1-ubyte.gz", gz_copy / "train-labels-idx1-ubyte.gz")
    with pytest.raises(MnistDataError, match="^train-labels-idx1-ubyte.gz has dimensions 10000"):
        load_mnist(gz_copy, download=False)
    # Without the published counts the image/label disagreement itself is reported.
    with pytest.raises(MnistDataError) as info:
        load_mnist(gz_copy, download=False, verify=False)
    assert str(info.value).startswith(
        "train-images-idx3-ubyte.gz has 60000 images but train-labels-idx1-ubyte.gz has 10000"
    )


def test_checksum_table_matches_shipped_sums(real_dir):
    sums = real_dir / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"{sums} is not there to compare with")
    published = {}
    for line in sums.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split()
            published[name] = digest
    assert published == SHA256
