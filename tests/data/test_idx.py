"""IDX parsing, file checks and data-directory rules on small synthetic files (no real MNIST)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.data import MnistDataError, gunzip, load_mnist, parse_idx, resolve_data_dir
from xpnet.data.mnist import IMAGES_MAGIC, LABELS_MAGIC

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes | None = None) -> bytes:
    if payload is None:
        payload = bytes(i % 251 for i in range(math.prod(dims)))
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


def write_set(directory: Path, n_train=6, n_test=4, gz=True, replace=None) -> dict[str, np.ndarray]:
    """Write four small, valid IDX files; ``replace`` maps a file name to other bytes."""
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "X_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    contents = {
        NAMES[0]: idx_bytes(IMAGES_MAGIC, (n_train, 28, 28), arrays["X_train"].tobytes()),
        NAMES[1]: idx_bytes(LABELS_MAGIC, (n_train,), arrays["y_train"].tobytes()),
        NAMES[2]: idx_bytes(IMAGES_MAGIC, (n_test, 28, 28), arrays["X_test"].tobytes()),
        NAMES[3]: idx_bytes(LABELS_MAGIC, (n_test,), arrays["y_test"].tobytes()),
    }
    contents.update(replace or {})
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / name).write_bytes(data)
    return arrays


# --- parse_idx -------------------------------------------------------------------------------


def test_parse_idx_returns_exact_values():
    data = idx_bytes(IMAGES_MAGIC, (2, 3, 4), bytes(range(24)))
    arr = parse_idx(data, "x", IMAGES_MAGIC, (None, 3, 4))
    assert arr.dtype == np.uint8 and arr.shape == (2, 3, 4)
    assert arr[1, 2, 3] == 23 and arr[0, 1, 0] == 4
    np.testing.assert_array_equal(arr.ravel(), np.arange(24))


def test_parse_idx_accepts_zero_items():
    assert parse_idx(idx_bytes(LABELS_MAGIC, (0,)), "x", LABELS_MAGIC, (None,)).shape == (0,)


@pytest.mark.parametrize(
    ("data", "expect_dims", "fragment"),
    [
        (b"\x00\x00\x08", (None,), "too short"),
        (idx_bytes(IMAGES_MAGIC, (2,)), (None,), "magic number 0x00000803 instead of 0x00000801"),
        (idx_bytes(LABELS_MAGIC, (5,))[:6], (None,), "IDX header is incomplete"),
        (idx_bytes(LABELS_MAGIC, (5,))[:-1], (None,), "4 data bytes where its header promises 5"),
        (idx_bytes(LABELS_MAGIC, (5,)) + b"\x00\x00", (None,), "2 trailing bytes"),
        (idx_bytes(LABELS_MAGIC, (5,)), (6,), "dimensions 5 instead of 6"),
        (gzip.compress(idx_bytes(LABELS_MAGIC, (5,))), (None,), "rename it to lbl.gz"),
    ],
)
def test_parse_idx_rejects_bad_labels_file(data, expect_dims, fragment):
    with pytest.raises(MnistDataError, match="^lbl ") as info:
        parse_idx(data, "lbl", LABELS_MAGIC, expect_dims)
    assert fragment in str(info.value)


def test_parse_idx_rejects_wrong_image_size():
    data = idx_bytes(IMAGES_MAGIC, (2, 27, 28))
    with pytest.raises(
        MnistDataError, match="img has dimensions 2 x 27 x 28 instead of N x 28 x 28"
    ):
        parse_idx(data, "img", IMAGES_MAGIC, (None, 28, 28))


def test_gunzip_errors_name_the_file():
    good = gzip.compress(b"hello world" * 100)
    assert gunzip(good, "f.gz") == b"hello world" * 100
    with pytest.raises(
        MnistDataError, match=r"^f\.gz is truncated \(the gzip stream ended early\)"
    ):
        gunzip(good[: len(good) // 2], "f.gz")
    damaged = bytearray(good)
    damaged[-6] ^= 0xFF  # inside the CRC-32 / length trailer
    with pytest.raises(MnistDataError, match=r"^f\.gz is not a valid gzip file"):
        gunzip(bytes(damaged), "f.gz")
    with pytest.raises(MnistDataError, match=r"^f\.gz is not a valid gzip file"):
        gunzip(b"plain text, not gzip", "f.gz")


# --- property tests: the parser either parses or raises MnistDataError ------------------------

EXPECTATIONS = [(IMAGES_MAGIC, (None, 28, 28)), (LABELS_MAGIC, (None,)), (IMAGES_MAGIC, (2, 3, 1))]


def _parse_or_error(data: bytes, magic: int, dims) -> np.ndarray | None:
    try:
        arr = parse_idx(data, "fuzz", magic, dims)
    except MnistDataError as exc:
        assert str(exc).startswith("fuzz ")
        return None
    assert arr.dtype == np.uint8 and arr.ndim == len(dims)
    assert all(want is None or got == want for got, want in zip(arr.shape, dims))
    assert 4 + 4 * arr.ndim + arr.size == len(data)
    return arr


@FUZZ
@given(data=st.binary(max_size=80), which=st.sampled_from(EXPECTATIONS))
def test_parse_idx_arbitrary_bytes(data, which):
    _parse_or_error(data, *which)


@FUZZ
@given(
    ndim=st.integers(1, 3),
    sizes=st.lists(st.integers(0, 4), min_size=3, max_size=3),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 120)),
    tail=st.binary(max_size=3),
)
def test_parse_idx_mutated_headers(ndim, sizes, edits, cut, tail):
    magic, dims = 0x00000800 | ndim, sizes[:ndim]
    valid = bytearray(idx_bytes(magic, tuple(dims)))
    for pos, value in edits:
        valid[pos % len(valid)] = value
    data = bytes(valid[:cut]) + tail
    arr = _parse_or_error(data, magic, ndim * [None])
    if not edits and not tail and (cut is None or cut >= len(valid)):
        assert arr is not None and list(arr.shape) == dims


@FUZZ
@given(
    shape=st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**32 - 1),
)
def test_parse_idx_round_trip(shape, seed):
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    parsed = parse_idx(idx_bytes(IMAGES_MAGIC, shape, arr.tobytes()), "rt", IMAGES_MAGIC, shape)
    np.testing.assert_array_equal(parsed, arr)


@FUZZ
@given(
    payload=st.binary(max_size=200),
    cut=st.integers(0, 300),
    edits=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=3),
)
def test_gunzip_mutated_streams(payload, cut, edits):
    data = bytearray(gzip.compress(payload, mtime=0))[:cut]
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    try:
        out = gunzip(bytes(data), "fuzz.gz")
    except MnistDataError as exc:
        assert str(exc).startswith("fuzz.gz ")
    else:
        assert isinstance(out, bytes)


# --- load_mnist on synthetic files -----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_synthetic_set(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    data = load_mnist(tmp_path, download=False, verify=False)
    assert data.data_dir == tmp_path
    assert data.X_train.shape == (6, 784) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (4, 784) and data.y_test.dtype == np.int64
    np.testing.assert_array_equal(data.X_train, arrays["X_train"].reshape(6, 784))
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    np.testing.assert_array_equal(data.X_test[3].reshape(28, 28), arrays["X_test"][3])
    assert data.X_train.flags.writeable and data.X_train.flags.c_contiguous


def test_gz_is_preferred_over_raw(tmp_path):
    write_set(tmp_path, gz=True)
    (tmp_path / NAMES[1]).write_bytes(b"garbage that would fail")
    assert load_mnist(tmp_path, download=False, verify=False).y_train.shape == (6,)


@pytest.mark.parametrize(
    ("replace", "fragment"),
    [
        ({NAMES[2]: idx_bytes(IMAGES_MAGIC, (4, 27, 28))}, "dimensions 4 x 27 x 28"),
        ({NAMES[3]: idx_bytes(LABELS_MAGIC, (4,), bytes([1, 2, 10, 3]))}, "label 10 at index 2"),
        ({NAMES[0]: idx_bytes(LABELS_MAGIC, (6,), bytes(6))}, "magic number 0x00000801"),
        ({NAMES[3]: idx_bytes(LABELS_MAGIC, (4,), bytes(5))}, "1 trailing bytes"),
    ],
)
def test_synthetic_damage_is_reported(tmp_path, replace, fragment):
    write_set(tmp_path, gz=False, replace=replace)
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, download=False, verify=False)
    message = str(info.value)
    assert fragment in message
    assert any(message.startswith(name) for name in replace)
    assert str(tmp_path) in message  # says where to put the fix


def test_splits_read_only_their_files(tmp_path):
    arrays = write_set(tmp_path)
    for name in NAMES[:2]:
        (tmp_path / f"{name}.gz").unlink()  # no training files at all: never looked for
    data = load_mnist(tmp_path, download=False, verify=False, splits=("test",))
    assert data.X_train is None and data.y_train is None
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    with pytest.raises(MnistDataError, match=NAMES[0]):
        load_mnist(tmp_path, download=False, verify=False)
    for bad in ((), ("dev",)):
        with pytest.raises(ValueError, match="splits"):
            load_mnist(tmp_path, download=False, splits=bad)


def test_count_mismatch_names_both_files(tmp_path):
    write_set(tmp_path, replace={NAMES[1]: idx_bytes(LABELS_MAGIC, (5,), bytes(5))})
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, download=False, verify=False)
    assert f"{NAMES[0]}.gz has 6 images but {NAMES[1]}.gz has 5 labels" in str(info.value)


def test_verify_requires_published_counts(tmp_path):
    write_set(tmp_path)
    with pytest.raises(MnistDataError, match=f"^{NAMES[1]}.gz has dimensions 6 instead of 60000"):
        load_mnist(tmp_path, download=False)


# --- missing files and the data directory ----------------------------------------------------


def test_missing_files_without_download(tmp_path):
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert all(name in message for name in NAMES)
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    assert "XPNET_DATA_DIR" in message and "--data-dir" in message and "download=False" in message


def test_offline_env_lists_only_missing_files(tmp_path, monkeypatch):
    write_set(tmp_path)
    (tmp_path / f"{NAMES[0]}.gz").unlink()
    (tmp_path / f"{NAMES[3]}.gz").unlink()
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    # A mirror nothing listens on: reaching it would give a different error.
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", "http://127.0.0.1:9/")
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, verify=False)
    message = str(info.value)
    assert f"MNIST files {NAMES[0]}.gz, {NAMES[3]}.gz are missing from {tmp_path}, " in message
    assert NAMES[1] not in message and "XPNET_OFFLINE is set" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAMES[2]}.gz", f"{NAMES[1]}.gz"]


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XPNET_DATA_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "xpnet" / "mnist"
    monkeypatch.setenv("XPNET_DATA_DIR", "")
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "xpnet" / "mnist"
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir("~/x") == tmp_path / "home" / "x"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel/../d") == tmp_path / "d"
