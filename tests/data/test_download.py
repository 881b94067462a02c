"""The downloader against a real HTTP server on 127.0.0.1 serving copies of the MNIST files.

Mirror base URLs select what the server does with a file:
``/good/`` the original bytes, ``/bad/`` one byte flipped, ``/short/`` the first half (with a
matching Content-Length), ``/cut/`` the first half after announcing the full length (the
connection drops), anything else 404.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
from local_http import local_server, refused_url

import xpnet.data
import xpnet.data.mnist as mnist
from xpnet.data import SHA256, MnistDataError, download_file, load_mnist, sha256_file

GZ_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
LABELS = "train-labels-idx1-ubyte.gz"
IMAGES = "train-images-idx3-ubyte.gz"
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_files(data_dir) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in GZ_NAMES}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        announced, body = route
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(real_files):
    routes = {}
    for name, data in real_files.items():
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        half = data[: len(data) // 2]
        routes[f"/good/{name}"] = (len(data), data)
        routes[f"/bad/{name}"] = (len(data), bytes(flipped))
        routes[f"/short/{name}"] = (len(half), half)
        routes[f"/cut/{name}"] = (len(data), half)
    with local_server(_Handler, routes) as httpd:
        yield httpd


@pytest.fixture
def url(server, monkeypatch):
    """Base URL of the server, with a clean request log and an environment that allows downloads."""
    server.requests.clear()
    for var in ("XPNET_OFFLINE", "XPNET_MNIST_MIRRORS", "XPNET_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    return server.url


@pytest.fixture
def umask():
    """Sets the process umask for one test (the file permissions follow it), then restores it."""
    saved = []

    def set_umask(mask):
        saved.append(os.umask(mask))

    yield set_umask
    if saved:
        os.umask(saved[0])


@pytest.fixture
def refused() -> str:
    """A base URL where nothing listens."""
    return refused_url()


def test_good_download(url, tmp_path, real_files, umask):
    umask(0o022)
    cache = tmp_path / "new" / "cache"
    path = download_file(LABELS, cache, mirrors=[f"{url}/good/"])
    assert path == cache / LABELS
    assert sha256_file(path) == SHA256[LABELS]
    assert path.read_bytes() == real_files[LABELS]
    assert os.listdir(cache) == [LABELS]
    assert path.stat().st_mode & 0o777 == 0o644


def test_download_permissions_follow_the_umask(url, tmp_path, umask):
    umask(0o077)
    path = download_file(LABELS, tmp_path, mirrors=[f"{url}/good/"])
    assert path.stat().st_mode & 0o777 == 0o600


def test_load_mnist_downloads_only_missing_files(
    url, server, tmp_path, real_files, monkeypatch, capsys
):
    (tmp_path / LABELS).write_bytes(real_files[LABELS])
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", f"{url}/good/")
    data = load_mnist(tmp_path, progress=True)
    assert sorted(server.requests) == sorted(f"/good/{n}" for n in GZ_NAMES if n != LABELS)
    assert sorted(os.listdir(tmp_path)) == sorted(GZ_NAMES)
    assert data.X_train.shape == (60000, 784) and data.X_test.shape == (10000, 784)
    assert np.bincount(data.y_test).tolist() == TEST_COUNTS
    assert IMAGES in capsys.readouterr().err  # the tqdm bar


def test_corrupt_file_on_server(url, tmp_path):
    with pytest.raises(MnistDataError) as info:
        download_file(LABELS, tmp_path, mirrors=[f"{url}/bad/"])
    message = str(info.value)
    assert message.startswith(f"could not download {LABELS} from any mirror")
    assert f"{url}/bad/{LABELS}: SHA-256 mismatch" in message
    assert os.listdir(tmp_path) == []  # neither the final file nor a temp file


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("short", "SHA-256 mismatch"), ("cut", "truncated body (14440 of 28881 bytes)")],
)
def test_truncated_file_on_server(url, tmp_path, kind, reason):
    with pytest.raises(MnistDataError) as info:
        download_file(LABELS, tmp_path, mirrors=[f"{url}/{kind}/"])
    assert f"{url}/{kind}/{LABELS}: {reason}" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_404_then_second_mirror(url, server, tmp_path):
    path = download_file(LABELS, tmp_path, mirrors=[f"{url}/missing/", f"{url}/good"])
    assert server.requests == [f"/missing/{LABELS}", f"/good/{LABELS}"]
    assert sha256_file(path) == SHA256[LABELS]
    assert os.listdir(tmp_path) == [LABELS]


def test_every_kind_of_failure_falls_through(url, server, tmp_path, refused):
    mirrors = [refused, f"{url}/bad/", f"{url}/cut/", f"{url}/missing/", f"{url}/good/"]
    path = download_file(IMAGES, tmp_path, mirrors=mirrors)
    assert len(server.requests) == 4  # the refused one never reached the server
    assert sha256_file(path) == SHA256[IMAGES]
    assert os.listdir(tmp_path) == [IMAGES]


def test_all_mirrors_fail(url, tmp_path, refused):
    with pytest.raises(MnistDataError) as info:
        download_file(LABELS, tmp_path, mirrors=[f"{url}/missing/", refused])
    message = str(info.value)
    assert f"{url}/missing/{LABELS}: HTTP 404" in message
    assert "Connection refused" in message
    assert "XPNET_MNIST_MIRRORS" in message and str(tmp_path) in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("offline", ["env", "argument"])
def test_offline_never_downloads(url, server, tmp_path, monkeypatch, offline):
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", f"{url}/good/")
    if offline == "env":
        monkeypatch.setenv("XPNET_OFFLINE", "1")
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, download=offline == "env")
    message = str(info.value)
    assert message.startswith(f"MNIST files {', '.join(GZ_NAMES)} are missing from {tmp_path}, "
                              f"and downloading is off (")
    assert "point --data-dir or XPNET_DATA_DIR at a folder that has them" in message
    assert f"download them from {url}/good/ (XPNET_MNIST_MIRRORS sets other mirrors)" in message
    assert server.requests == []
    assert os.listdir(tmp_path) == []


def test_concurrent_threads_share_one_directory(url, tmp_path):
    barrier = threading.Barrier(4)
    results, errors = [], []

    def fetch():
        barrier.wait()
        try:
            results.append(download_file(IMAGES, tmp_path, mirrors=[f"{url}/good/"]))
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [tmp_path / IMAGES] * 4
    assert sha256_file(tmp_path / IMAGES) == SHA256[IMAGES]
    assert os.listdir(tmp_path) == [IMAGES]


def test_concurrent_processes_share_one_directory(url, tmp_path):
    code = (
        "import sys; from xpnet.data import download_file; "
        "print(download_file(sys.argv[1], sys.argv[2], mirrors=[sys.argv[3]]))"
    )
    args = [IMAGES, str(tmp_path), f"{url}/good/"]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(tmp_path / IMAGES)] * 2
    assert sha256_file(tmp_path / IMAGES) == SHA256[IMAGES]
    assert os.listdir(tmp_path) == [IMAGES]


def test_progress_without_tqdm(url, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    path = download_file(LABELS, tmp_path, mirrors=[f"{url}/good/"], progress=True)
    assert sha256_file(path) == SHA256[LABELS]
    assert capsys.readouterr().err == ""


def test_unwritable_directory(url, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(MnistDataError, match=f"^cannot write {LABELS} to {tmp_path}/a-file/mnist"):
        download_file(LABELS, tmp_path / "a-file" / "mnist", mirrors=[f"{url}/good/"])


def test_unknown_file_name(tmp_path):
    with pytest.raises(ValueError, match="not one of the MNIST .gz files"):
        download_file("train-images-idx3-ubyte", tmp_path, mirrors=["http://127.0.0.1:9/"])


def test_loader_and_downloader_do_not_import_each_other():
    """The shared pieces live in xpnet/data/checksums.py, datasets.py and errors.py; the loader
    and the downloader need none of each other's names, so neither imports the other lazily to
    dodge a cycle, and the table reader is independent of all three."""
    package = Path(xpnet.data.__file__).parent
    pairs = [("download", "mnist"), ("checksums", "mnist"), ("errors", "mnist"),
             ("checksums", "download"), ("errors", "download"), ("datasets", "mnist"),
             ("datasets", "download"), ("checksums", "datasets"), ("tabular", "mnist"),
             ("tabular", "download"), ("tabular", "datasets")]
    for module, other in pairs:
        tree = ast.parse((package / f"{module}.py").read_text())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert other not in imported, f"{module}.py imports .{other}"
    mnist_tree = ast.parse((package / "mnist.py").read_text())
    nested = [node for fn in ast.walk(mnist_tree) if isinstance(fn, ast.FunctionDef)
              for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert nested == [], "mnist.py imports inside a function"


def test_public_names_are_importable_from_their_old_homes():
    for name in ("SHA256", "MnistDataError", "sha256_file"):
        assert getattr(mnist, name) is getattr(xpnet.data, name)
