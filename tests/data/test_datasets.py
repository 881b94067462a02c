"""The IDX dataset registry (MNIST, Fashion-MNIST, KMNIST), its checksum table, and downloading
and loading through it (issue 12).

The real files cannot be fetched here, so the table's values are checked for form only; the
download and verification paths run against a local HTTP server serving small generated IDX
sets, with the table's entries for them swapped in (``tiny``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import unicodedata
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from local_http import local_server

import xpnet.data.datasets as datasets_module
from xpnet.data import (
    CHECKSUMS,
    DATASETS,
    DEFAULT_MIRRORS,
    DataError,
    DownloadError,
    FileSum,
    MnistDataError,
    download_file,
    get_dataset,
    load_dataset,
    load_mnist,
    resolve_data_dir,
    resolve_mirrors,
)
from xpnet.data.mnist import IMAGES_MAGIC, LABELS_MAGIC

RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
       "t10k-labels-idx1-ubyte")
GZ = tuple(f"{n}.gz" for n in RAW)
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX32 = re.compile(r"[0-9a-f]{32}")
ENV = ("XPNET_OFFLINE", "XPNET_DATA_DIR", "XPNET_MNIST_MIRRORS", "XPNET_FASHION_MNIST_DIR",
       "XPNET_FASHION_MNIST_MIRRORS", "XPNET_KMNIST_DIR", "XPNET_KMNIST_MIRRORS")
N_TRAIN, N_TEST = 12, 6


# --- the table and the registry, as data ------------------------------------------------------


def test_registry_names():
    assert list(DATASETS) == ["mnist", "fashion-mnist", "kmnist"]
    for name, ds in DATASETS.items():
        assert ds.name == name and get_dataset(name) is ds


@pytest.mark.parametrize("name", list(DATASETS))
def test_checksum_table_is_well_formed(name):
    files = DATASETS[name].files
    assert files is CHECKSUMS[name]
    assert set(files) == set(GZ) | set(RAW)
    assert DATASETS[name].gz_files == GZ
    for gz in GZ:
        entry = files[gz]
        assert isinstance(entry, FileSum)
        assert HEX64.fullmatch(entry.sha256), gz
        assert type(entry.size) is int and 0 < entry.size < files[gz[:-3]].size
        if name != "mnist":  # the publisher's MD5 (Fashion-MNIST) or torchvision's (KMNIST)
            assert HEX32.fullmatch(entry.md5), gz
    n = {"train": 60000, "t10k": 10000}
    for raw in RAW:
        count = n[raw.split("-")[0]]
        per_item = 784 if "images" in raw else 1
        assert files[raw].size == (16 if "images" in raw else 8) + count * per_item
        assert files[raw].md5 is None
        if name == "mnist":
            assert HEX64.fullmatch(files[raw].sha256)
        else:
            assert files[raw].sha256 is None  # not published: such a file cannot be verified


def test_checksums_differ_between_datasets():
    digests = [e.sha256 for table in CHECKSUMS.values() for e in table.values() if e.sha256]
    assert len(digests) == len(set(digests)) == 8 + 4 + 4
    sizes = [table[gz].size for table in CHECKSUMS.values() for gz in GZ]
    assert len(sizes) == len(set(sizes))


def test_published_values_spot_checks():
    """A few entries against the sources named in checksums.py (tensorflow_datasets'
    url_checksums, the Fashion-MNIST README), so a transposed row would show."""
    fashion, kmnist = CHECKSUMS["fashion-mnist"], CHECKSUMS["kmnist"]
    assert fashion["train-images-idx3-ubyte.gz"] == FileSum(
        26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d")
    assert fashion["t10k-labels-idx1-ubyte.gz"].md5 == "bb300cfdad3c16e7a12a480ee83cd310"
    assert kmnist["t10k-labels-idx1-ubyte.gz"].size == 5120
    assert kmnist["train-labels-idx1-ubyte.gz"].sha256 == \
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"


@pytest.mark.parametrize("name", list(DATASETS))
def test_mirrors_are_base_urls(name):
    ds = DATASETS[name]
    assert ds.mirrors
    for base in ds.mirrors:
        assert re.fullmatch(r"https?://[a-z0-9.-]+/([^\s?#]*/)?", base), base
    assert ds.urls(GZ[0], mirrors=None)[0] == ds.mirrors[0] + GZ[0]


def test_publishers_mirrors_are_listed():
    assert DEFAULT_MIRRORS == DATASETS["mnist"].mirrors
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in \
        DATASETS["fashion-mnist"].mirrors
    assert "http://codh.rois.ac.jp/kmnist/dataset/kmnist/" in DATASETS["kmnist"].mirrors


def test_class_names_for_display():
    assert DATASETS["mnist"].classes == tuple("0123456789")
    assert DATASETS["fashion-mnist"].classes == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
        "Bag", "Ankle boot")
    kmnist = DATASETS["kmnist"]
    assert kmnist.classes == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    assert "".join(kmnist.class_chars) == "おきすつなはまやれを"
    assert [unicodedata.name(c) for c in kmnist.class_chars[:2]] == [
        "HIRAGANA LETTER O", "HIRAGANA LETTER KI"]
    for ds in DATASETS.values():
        assert len(ds.classes) == len(set(ds.classes)) == 10


def test_environment_variable_names():
    assert [(d.dir_env, d.mirrors_env) for d in DATASETS.values()] == [
        ("XPNET_DATA_DIR", "XPNET_MNIST_MIRRORS"),
        ("XPNET_FASHION_MNIST_DIR", "XPNET_FASHION_MNIST_MIRRORS"),
        ("XPNET_KMNIST_DIR", "XPNET_KMNIST_MIRRORS"),
    ]


def test_unknown_dataset():
    with pytest.raises(DataError, match="^there is no IDX dataset called 'cifar10'; choose one "
                                        "of mnist, fashion-mnist, kmnist$"):
        load_dataset("cifar10")


# --- folders and mirrors from the environment -------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home" / ".cache" / "xpnet"


def test_each_dataset_has_its_own_folder(clean_env, tmp_path, monkeypatch):
    assert [resolve_data_dir(None, n) for n in DATASETS] == [clean_env / n for n in DATASETS]
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("XPNET_KMNIST_DIR", str(tmp_path / "k"))
    assert resolve_data_dir() == tmp_path / "m"  # the first release's signature still works
    assert resolve_data_dir(None, "fashion-mnist") == clean_env / "fashion-mnist"
    assert resolve_data_dir(None, "kmnist") == tmp_path / "k"
    assert resolve_data_dir(tmp_path / "arg", "kmnist") == tmp_path / "arg"  # --data-dir wins


def test_each_dataset_has_its_own_mirrors(clean_env, monkeypatch):
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", "http://a/, http://b/")
    monkeypatch.setenv("XPNET_FASHION_MNIST_MIRRORS", "http://f/")
    assert resolve_mirrors() == ["http://a/", "http://b/"]
    assert resolve_mirrors(dataset="fashion-mnist") == ["http://f/"]
    assert resolve_mirrors(dataset="kmnist") == list(DATASETS["kmnist"].mirrors)
    assert resolve_mirrors(["http://x/"], dataset="kmnist") == ["http://x/"]


# --- downloading and loading generated files through the registry ------------------------------


def _idx(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


@pytest.fixture(scope="module")
def generated():
    """A small, valid IDX set: raw bytes and gzip bytes per file name, and the arrays."""
    rng = np.random.default_rng(12)
    arrays = {
        "X_train": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "X_test": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }
    raw = {
        RAW[0]: _idx(IMAGES_MAGIC, arrays["X_train"]),
        RAW[1]: _idx(LABELS_MAGIC, arrays["y_train"]),
        RAW[2]: _idx(IMAGES_MAGIC, arrays["X_test"]),
        RAW[3]: _idx(LABELS_MAGIC, arrays["y_test"]),
    }
    gz = {f"{name}.gz": gzip.compress(data, mtime=0) for name, data in raw.items()}
    return raw, gz, arrays


def _sums(raw, gz, *, with_md5=True, raw_sha=False) -> dict[str, FileSum]:
    table = {}
    for name, data in gz.items():
        md5 = hashlib.md5(data).hexdigest() if with_md5 else None
        table[name] = FileSum(len(data), hashlib.sha256(data).hexdigest(), md5)
    for name, data in raw.items():
        table[name] = FileSum(len(data), hashlib.sha256(data).hexdigest() if raw_sha else None)
    return table


@pytest.fixture
def tiny(generated, monkeypatch, clean_env):
    """Fashion-MNIST's table entries and the split sizes replaced by those of the generated
    files, so that downloads and ``verify=True`` loads check against them."""
    raw, gz, arrays = generated
    monkeypatch.setitem(CHECKSUMS, "fashion-mnist", _sums(raw, gz))
    monkeypatch.setitem(datasets_module.SPLITS, "train", (RAW[0], RAW[1], N_TRAIN))
    monkeypatch.setitem(datasets_module.SPLITS, "test", (RAW[2], RAW[3], N_TEST))
    return raw, gz, arrays


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        body = self.server.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(generated):
    """``/good/NAME`` the generated .gz files, ``/bad/NAME`` each with one byte flipped."""
    _, gz, _ = generated
    routes = {}
    for name, data in gz.items():
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        routes[f"/good/{name}"] = data
        routes[f"/bad/{name}"] = bytes(flipped)
    with local_server(_Handler, routes) as httpd:
        yield httpd


@pytest.fixture
def url(server):
    server.requests.clear()
    return server.url


def test_download_verifies_and_loads(tiny, url, server, tmp_path, monkeypatch):
    _, gz, arrays = tiny
    monkeypatch.setenv("XPNET_FASHION_MNIST_MIRRORS", f"{url}/good/")
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", f"{url}/bad/")  # another dataset's: not used
    data = load_dataset("fashion-mnist", tmp_path / "f")
    assert sorted(server.requests) == sorted(f"/good/{n}" for n in GZ)
    assert sorted(os.listdir(tmp_path / "f")) == sorted(GZ)
    for name in GZ:
        assert (tmp_path / "f" / name).read_bytes() == gz[name]
    assert data.dataset == "fashion-mnist" and data.data_dir == tmp_path / "f"
    np.testing.assert_array_equal(data.X_train, arrays["X_train"].reshape(N_TRAIN, 784))
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.y_train.dtype == np.int64
    names = [DATASETS["fashion-mnist"].classes[i] for i in data.y_test]
    assert names == [DATASETS["fashion-mnist"].classes[int(i)] for i in arrays["y_test"]]
    # Loaded again from the folder, with nothing requested.
    server.requests.clear()
    again = load_dataset("fashion-mnist", tmp_path / "f", download=False)
    np.testing.assert_array_equal(again.X_test, data.X_test)
    assert server.requests == []


def test_download_folder_from_the_dataset_variable(tiny, url, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_FASHION_MNIST_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "mnist"))
    data = load_dataset("fashion-mnist", mirrors=[f"{url}/good/"], splits=("test",))
    assert data.data_dir == tmp_path / "env" and data.X_train is None
    assert sorted(os.listdir(tmp_path / "env")) == sorted(GZ[2:])
    assert not (tmp_path / "mnist").exists()


def test_wrong_checksum_on_the_server(tiny, url, tmp_path):
    with pytest.raises(DownloadError) as info:
        load_dataset("fashion-mnist", tmp_path, mirrors=[f"{url}/bad/"])
    message = str(info.value)
    assert message.startswith(f"Fashion-MNIST files {', '.join(GZ)} are missing from {tmp_path}")
    assert f"({url}/bad/{GZ[0]}: SHA-256 mismatch ({len(tiny[1][GZ[0]])} bytes; damaged or not " \
           f"the original file)); " in message
    assert os.listdir(tmp_path) == []


def test_wrong_md5_in_the_table_is_caught(tiny, url, tmp_path, monkeypatch):
    raw, gz, _ = tiny
    table = dict(CHECKSUMS["fashion-mnist"])
    table[GZ[1]] = FileSum(table[GZ[1]].size, table[GZ[1]].sha256, "0" * 32)
    monkeypatch.setitem(CHECKSUMS, "fashion-mnist", table)
    with pytest.raises(DownloadError) as info:
        download_file(GZ[1], tmp_path, dataset="fashion-mnist", mirrors=[f"{url}/good/"])
    assert f"{url}/good/{GZ[1]}: MD5 mismatch with the publisher's" in str(info.value)
    assert os.listdir(tmp_path) == []
    # A file already on disk is checked against the MD5 as well.
    for name, data in gz.items():
        (tmp_path / name).write_bytes(data)
    md5 = hashlib.md5(gz[GZ[1]]).hexdigest()
    with pytest.raises(MnistDataError, match=f"^{GZ[1]} has MD5 {md5} instead of the published "
                                             f"0{{32}}, so it is damaged or not the original "
                                             f"Fashion-MNIST file"):
        load_dataset("fashion-mnist", tmp_path)


def test_local_file_with_a_wrong_checksum(tiny, tmp_path):
    raw, gz, _ = tiny
    for name, data in gz.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / GZ[3]).write_bytes(gzip.compress(raw[RAW[3]], mtime=1))  # same IDX, other gzip
    with pytest.raises(MnistDataError, match=f"^{GZ[3]} has SHA-256 [0-9a-f]{{64}} instead of "
                                             f"the published"):
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert load_dataset("fashion-mnist", tmp_path, download=False, verify=False).y_test.shape \
        == (N_TEST,)


def test_uncompressed_files_need_published_checksums(tiny, tmp_path):
    raw, gz, arrays = tiny
    for name, data in raw.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(MnistDataError) as info:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert str(info.value) == (
        f"{RAW[1]} is uncompressed, and Fashion-MNIST publishes checksums of its .gz files only, "
        f"so it cannot be verified; put the original {RAW[1]}.gz in {tmp_path} (or delete "
        f"{RAW[1]} and run again to download it)"
    )
    data = load_dataset("fashion-mnist", tmp_path, download=False, verify=False)
    np.testing.assert_array_equal(data.X_test, arrays["X_test"].reshape(N_TEST, 784))


def test_uncompressed_files_with_published_checksums_verify(generated, monkeypatch, tmp_path):
    raw, gz, arrays = generated
    monkeypatch.setitem(CHECKSUMS, "kmnist", _sums(raw, gz, with_md5=False, raw_sha=True))
    monkeypatch.setitem(datasets_module.SPLITS, "train", (RAW[0], RAW[1], N_TRAIN))
    monkeypatch.setitem(datasets_module.SPLITS, "test", (RAW[2], RAW[3], N_TEST))
    for name, data in raw.items():
        (tmp_path / name).write_bytes(data)
    data = load_dataset("kmnist", tmp_path, download=False)
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    assert data.dataset == "kmnist"


@pytest.mark.parametrize("name", list(DATASETS))
def test_download_file_accepts_only_the_datasets_gz_names(name, tmp_path):
    title = DATASETS[name].title
    for bad in ("train-images-idx3-ubyte", "emnist-train.gz"):
        with pytest.raises(ValueError, match=f"is not one of the {title} .gz files"):
            download_file(bad, tmp_path, dataset=name, mirrors=["http://127.0.0.1:9/"])


def test_load_mnist_is_load_dataset(clean_env, tmp_path, generated, monkeypatch):
    raw, gz, arrays = generated
    for name, data in gz.items():
        (tmp_path / name).write_bytes(data)
    a = load_mnist(tmp_path, download=False, verify=False)
    b = load_dataset("mnist", tmp_path, download=False, verify=False)
    assert a.dataset == b.dataset == "mnist"
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path))
    assert load_mnist(download=False, verify=False).data_dir == tmp_path
    with pytest.raises(MnistDataError):  # XPNET_DATA_DIR is MNIST's folder only
        load_dataset("kmnist", download=False, verify=False)
