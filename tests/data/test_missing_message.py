"""The one message for an IDX dataset that is not there and cannot be downloaded (issue 13).

No real data and no network: the mirrors are a port nothing listens on and a local server that
answers 404 to everything. The message must name every missing file, the folder looked in,
``--data-dir`` and the dataset's folder variable, every URL tried (and why it failed), the
dataset's mirrors variable and ``XPNET_OFFLINE``.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from local_http import local_server, refused_url

from xpnet.data import DownloadError, MnistDataError, load_dataset, load_mnist

GZ = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
ENV = ("XPNET_OFFLINE", "XPNET_DATA_DIR", "XPNET_MNIST_MIRRORS", "XPNET_FASHION_MNIST_DIR",
       "XPNET_FASHION_MNIST_MIRRORS", "XPNET_KMNIST_DIR", "XPNET_KMNIST_MIRRORS")


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with local_server(_NotFound) as httpd:
        yield httpd


@pytest.fixture
def clean_env(monkeypatch, server):
    """No dataset variables set, local addresses bypass any proxy, an empty request log."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    server.requests.clear()


@pytest.fixture
def refused() -> str:
    """A base URL where nothing listens."""
    return refused_url()


def test_no_data_and_no_network_names_everything(clean_env, server, refused, tmp_path,
                                                 monkeypatch):
    folder = tmp_path / "cache" / "mnist"
    missing_url = f"{server.url}/missing/"
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", f"{refused},{missing_url}")
    with pytest.raises(DownloadError) as info:
        load_mnist(folder)
    message = str(info.value)
    assert message.startswith(
        f"MNIST files {', '.join(GZ)} are missing from {folder} (the folder does not exist), "
        f"and downloading train-images-idx3-ubyte.gz failed ("
    )
    assert f"({refused}train-images-idx3-ubyte.gz: " in message
    assert "Connection refused; " in message
    assert f"; {missing_url}train-images-idx3-ubyte.gz: HTTP 404 Not Found); " in message
    assert message.endswith(
        "); put the original files there (.gz or uncompressed) or point --data-dir or "
        "XPNET_DATA_DIR at a folder that has them, set XPNET_MNIST_MIRRORS to mirrors that have "
        "them (comma-separated base URLs), or set XPNET_OFFLINE=1 to skip downloading"
    )
    assert "\n" not in message and "Traceback" not in message
    # It stopped at the first file (the network is down for all of them) and left no folder.
    assert server.requests == ["/missing/train-images-idx3-ubyte.gz"]
    assert os.listdir(tmp_path) == []
    assert info.value.filename == "train-images-idx3-ubyte.gz"
    assert [url for url, _ in info.value.failures] == [
        f"{refused}train-images-idx3-ubyte.gz", f"{missing_url}train-images-idx3-ubyte.gz"]


def test_offline_names_the_mirrors_it_would_use(clean_env, server, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path)
    assert str(info.value) == (
        f"MNIST files {', '.join(GZ)} are missing from {tmp_path}, and downloading is off "
        f"(XPNET_OFFLINE is set); put the original files there (.gz or uncompressed) or point "
        f"--data-dir or XPNET_DATA_DIR at a folder that has them, or unset XPNET_OFFLINE to "
        f"download them from https://ossci-datasets.s3.amazonaws.com/mnist/, "
        f"https://storage.googleapis.com/cvdf-datasets/mnist/ (XPNET_MNIST_MIRRORS sets other "
        f"mirrors)"
    )
    assert server.requests == []


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_offline_values(clean_env, tmp_path, monkeypatch, value):
    monkeypatch.setenv("XPNET_OFFLINE", value)
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", "http://127.0.0.1:9/")
    with pytest.raises(MnistDataError, match=r"downloading is off \(XPNET_OFFLINE is set\)"):
        load_mnist(tmp_path)


def test_download_false_says_so(clean_env, tmp_path):
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path / "none", download=False, mirrors=["http://127.0.0.1:9/"])
    message = str(info.value)
    assert f"are missing from {tmp_path / 'none'} (the folder does not exist), and downloading "\
           f"is off (download=False); " in message
    assert message.endswith("or pass download=True to download them from http://127.0.0.1:9/ "
                            "(XPNET_MNIST_MIRRORS sets other mirrors)")


def test_only_the_files_still_missing_are_named(clean_env, server, tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"present; never read")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"present; never read")
    with pytest.raises(DownloadError) as info:
        load_mnist(tmp_path, mirrors=[f"{server.url}/gone/"])
    assert str(info.value).startswith(
        f"MNIST files train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz are missing from "
        f"{tmp_path}, and downloading train-labels-idx1-ubyte.gz failed "
        f"({server.url}/gone/train-labels-idx1-ubyte.gz: HTTP 404 Not Found); "
    )
    assert sorted(os.listdir(tmp_path)) == ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte"]


def test_one_missing_file_reads_as_one(clean_env, tmp_path, monkeypatch):
    for name in GZ[1:]:
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    with pytest.raises(MnistDataError, match=f"^MNIST file {GZ[0]} is missing from "):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    ("name", "title", "dir_env", "mirrors_env"),
    [("fashion-mnist", "Fashion-MNIST", "XPNET_FASHION_MNIST_DIR", "XPNET_FASHION_MNIST_MIRRORS"),
     ("kmnist", "Kuzushiji-MNIST", "XPNET_KMNIST_DIR", "XPNET_KMNIST_MIRRORS")],
)
def test_other_datasets_name_their_own_variables(clean_env, server, tmp_path, monkeypatch, name,
                                                 title, dir_env, mirrors_env):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "mnist-only"))  # not for this dataset
    monkeypatch.setenv(mirrors_env, f"{server.url}/{name}/")
    with pytest.raises(DownloadError) as info:
        load_dataset(name)
    folder = home / ".cache" / "xpnet" / name
    message = str(info.value)
    assert message.startswith(f"{title} files {', '.join(GZ)} are missing from {folder} (the "
                              f"folder does not exist), and downloading {GZ[0]} failed "
                              f"({server.url}/{name}/{GZ[0]}: HTTP 404 Not Found); ")
    assert (f"put the original files there (the .gz files as published) or point --data-dir or "
            f"{dir_env} at a folder that has them, set {mirrors_env} to mirrors") in message
    assert message.endswith("or set XPNET_OFFLINE=1 to skip downloading")
    assert server.requests == [f"/{name}/{GZ[0]}"]
    assert not home.exists()


def test_no_message_mentions_the_development_layout():
    """Users never see this repository's layout: no skip reason or message in xpnet/data or
    tests/data points at the shared data folder of the development machines."""
    layout = ".." + "/shared"
    roots = [Path(__file__).parent, Path(__file__).parents[2] / "xpnet" / "data"]
    offenders = [str(p) for root in roots for p in sorted(root.glob("*.py"))
                 if layout in p.read_text(encoding="utf-8")
                 or "/work/" + "shared" in p.read_text(encoding="utf-8")]
    assert offenders == []
