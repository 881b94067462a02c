"""Bounded reads (issue 11, families 1, 4 and 5): crafted files that declare, or inflate to,
far more than they may hold are refused after reading at most what the reader knows in advance;
special files are refused instead of opened; damaged checkpoints fail with one plain error.

The crafted files are real: zip archives with deflated members that really inflate to 2 GiB,
gzip files that really inflate to 512 MiB, a sparse 4 GiB IDX file, a real 13000x13000 PNG,
FIFOs made with ``os.mkfifo``, and an HTTP server on 127.0.0.1 that streams zeros or trickles.
Memory is measured in a child process (its own peak RSS, read with ``getrusage``), so a reader
that inflated the whole thing would show it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import GZ_NAMES, cli_env, one_error_line, run_module, run_train

import xpnet
from xpnet import checkpoint as ckpt
from xpnet.checkpoint import CheckpointError
from xpnet.data import MnistDataError, download_file, load_mnist
from xpnet.preprocessing import Scaler

GIB = 1 << 30


# ------------------------------------------------------------------------------- crafting
def _deflate_zeros(n_bytes: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream of ``prefix`` + ``n_bytes`` zeros, built from one compressed 16 MiB
    block repeated (after a full flush the compressor's output for equal input repeats), so
    gigabytes cost milliseconds to craft."""
    block = 16 << 20
    assert n_bytes % block == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    assert again == piece
    return head + piece * (n_bytes // block) + c.flush()


def _npy_header(shape, dtype="<f8") -> bytes:
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _write_zip(path, entries):
    """A zip file from ``(name, method, data, crc, declared_size)`` entries, written by hand so
    that a member may declare any size (zipfile itself would compute the true one)."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in entries:
        raw = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data),
                           size, len(raw), 0) + raw + data
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                               len(data), size, len(raw), 0, 0, 0, 0, 0, offset) + raw
    cd_offset = len(out)
    out += central + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                                 len(central), cd_offset, 0)
    Path(path).write_bytes(bytes(out))
    return path


def _entries_of(path, drop=()):
    """The members of a real checkpoint, as stored entries for :func:`_write_zip`."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, 0, zf.read(i), i.CRC, i.file_size) for i in zf.infolist()
                if i.filename[:-4] not in drop]


def _mnist_net_checkpoint(path, scaler=True, extra=None):
    """A small real MNIST-shaped checkpoint, with a scaler like xpnet.train writes."""
    net = xpnet.MLP([784, 16, 10], device="cpu", seed=0)
    parts = {"trainer": {"json": {"epoch": 1}, "arrays": {"opt/m/0.weight": np.zeros((16, 784))}}}
    if scaler:
        parts["scaler"] = Scaler("unit").fit(np.array([0, 255], dtype=np.uint8)).state()
    state = ckpt.nest_states(**parts)
    state["arrays"].update(extra or {})
    return ckpt.save(net, path, state)


def _child_peak(code: str, *args, timeout=120) -> tuple[str, int]:
    """Run ``code`` in a fresh interpreter; returns its stdout and the growth of its peak RSS
    (bytes) from just before ``code`` ran (after the imports)."""
    script = ("import resource, sys, numpy, xpnet, xpnet.data, xpnet.checkpoint\n"
              "def _peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
              "_before = _peak()\n" + code +
              "\nprint('GROWTH', _peak() - _before)\n")
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, env=cli_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("GROWTH "), result.stdout
    return "\n".join(lines[:-1]), int(lines[-1].split()[1])


# ------------------------------------------------------------------------------- checkpoints
@pytest.fixture
def good_ckpt(tmp_path):
    return _mnist_net_checkpoint(tmp_path / "good.npz")


def test_deflated_2gib_member_is_refused_unread_and_predict_never_looks(good_ckpt, tmp_path):
    """A 2 GiB train/* member deflated into a few MB: the loader refuses it from its declared
    size before reading it, and predict, which reads no trainer state, is not affected."""
    n = 2 * GIB
    header = _npy_header((n // 8,))
    bomb = _deflate_zeros(n, header)
    honest = _write_zip(tmp_path / "bomb.npz", _entries_of(good_ckpt) + [
        ("train/trainer/opt/v/0.weight.npy", 8, bomb, 0, len(header) + n)])
    lying = _write_zip(tmp_path / "liar.npz", _entries_of(good_ckpt) + [
        ("train/trainer/extra.npy", 8, bomb, 0, len(header) + 8)])
    assert honest.stat().st_size < 5 << 20

    code = """
from xpnet.checkpoint import load_checkpoint, CheckpointError
for path in sys.argv[1:]:
    try:
        load_checkpoint(path, device="cpu")
    except CheckpointError as exc:
        print("REFUSED", exc)
    else:
        print("LOADED")
net, state = load_checkpoint(sys.argv[1], device="cpu", read_state=("scaler/",))
print("SCALER", sorted(state["arrays"]))
"""
    out, growth = _child_peak(code, honest, lying)
    lines = out.splitlines()
    assert lines[0].startswith("REFUSED") and "more than the" in lines[0], out
    assert lines[1].startswith("REFUSED") and "truncated or corrupt" in lines[1], out
    assert lines[2] == "SCALER ['scaler/offset', 'scaler/scale']"
    assert growth < 150 << 20, f"peak RSS grew by {growth >> 20} MiB"

    result = run_module("xpnet.predict", [honest, "--image", tmp_path / "absent.png"],
                        cwd=tmp_path)
    assert result.returncode == 1
    assert "absent.png does not exist" in one_error_line(result, "xpnet.predict")


def test_network_member_larger_than_its_config_is_refused_before_reading(good_ckpt, tmp_path):
    entries = _entries_of(good_ckpt, drop={"0.weight"})
    header = _npy_header((16 * 784 * 256,))
    entries.append(("0.weight.npy", 8, _deflate_zeros(256 << 20, header), 0,
                    len(header) + (256 << 20)))
    bad = _write_zip(tmp_path / "w.npz", entries)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"'0\.weight' of \d+ bytes, more than the 100352"):
        ckpt.load(bad, device="cpu")
    assert time.perf_counter() - start < 5  # never inflated


def test_header_shape_is_checked_before_data(good_ckpt, tmp_path):
    """A .npy header that disagrees with the config fails on the header alone (the data
    behind it are not even there)."""
    entries = _entries_of(good_ckpt, drop={"0.weight"})
    header = _npy_header((784, 16), "<f4")
    entries.append(("0.weight.npy", 0, header, zlib.crc32(header), len(header) + 784 * 16 * 4))
    bad = _write_zip(tmp_path / "h.npz", entries)
    with pytest.raises(CheckpointError, match=r"'0\.weight' of shape \(784, 16\)"):
        ckpt.load(bad, device="cpu")


@pytest.mark.parametrize("sizes", [[784, 2**20, 2**20, 10], [784, 10**40, 10]],
                         ids=["4-TiB", "10**40"])
def test_configs_beyond_the_size_cap_are_refused_before_allocating(good_ckpt, tmp_path, sizes):
    with zipfile.ZipFile(good_ckpt) as zf:
        meta = json.loads(ckpt.meta_text(np.load(zf.open("__meta__.npy"))))
    meta["config"]["layer_sizes"] = sizes
    bad = _with_meta(good_ckpt, tmp_path / "big.npz", np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="more than the 2147483648 bytes"):
        ckpt.load(bad, device="cpu")


def _with_meta(src, dst, meta_array=None, raw_meta=None):
    entries = [e for e in _entries_of(src) if e[0] != "__meta__.npy"]
    if raw_meta is not None:
        entries.append(("__meta__", 0, raw_meta, zlib.crc32(raw_meta), len(raw_meta)))
    else:
        buf = io.BytesIO()
        np.save(buf, meta_array)
        raw = buf.getvalue()
        entries.append(("__meta__.npy", 0, raw, zlib.crc32(raw), len(raw)))
    return _write_zip(dst, entries)


@pytest.mark.parametrize("depth", [70, 100_000])
def test_deeply_nested_meta_is_a_plain_error(good_ckpt, tmp_path, depth):
    with zipfile.ZipFile(good_ckpt) as zf:
        meta = json.loads(ckpt.meta_text(np.load(zf.open("__meta__.npy"))))
    text = json.dumps(meta)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    bad = _with_meta(good_ckpt, tmp_path / "deep.npz", np.array(text))
    with pytest.raises(CheckpointError, match="nested"):
        ckpt.load_checkpoint(bad, device="cpu")
    result = run_module("xpnet.predict", [bad, "--test-index", 0], cwd=tmp_path)
    assert result.returncode == 1
    assert "nested" in one_error_line(result, "xpnet.predict")


def test_members_that_are_not_arrays_are_plain_errors(good_ckpt, tmp_path):
    with zipfile.ZipFile(good_ckpt) as zf:
        meta_text = ckpt.meta_text(np.load(zf.open("__meta__.npy")))
    cases = {
        # __meta__ stored as raw bytes (np.load would hand back bytes, not an array)
        "raw-meta": _with_meta(good_ckpt, tmp_path / "a.npz", raw_meta=meta_text.encode()),
        # a parameter stored as raw bytes without the .npy suffix
        "raw-weight": _write_zip(tmp_path / "b.npz", [
            e for e in _entries_of(good_ckpt) if e[0] != "0.weight.npy"] + [
            ("0.weight", 0, b"x" * 64, zlib.crc32(b"x" * 64), 64)]),
        # a parameter whose member is not .npy data at all
        "junk-npy": _write_zip(tmp_path / "c.npz", [
            e for e in _entries_of(good_ckpt) if e[0] != "0.bias.npy"] + [
            ("0.bias.npy", 0, b"junk" * 8, zlib.crc32(b"junk" * 8), 32)]),
        # a header of 60000 bytes (numpy writes about 128)
        "huge-header": _write_zip(tmp_path / "d.npz", [
            e for e in _entries_of(good_ckpt) if e[0] != "0.bias.npy"] + [
            ("0.bias.npy", 0, b"\x93NUMPY\x01\x00\x60\xea" + b" " * 60000, 0, 60010)]),
        # a structured dtype
        "void": _write_zip(tmp_path / "e.npz", [
            e for e in _entries_of(good_ckpt) if e[0] != "0.bias.npy"] + [
            ("0.bias.npy", 0, _npy_header((16,), "|V8") + bytes(128), 0,
             len(_npy_header((16,), "|V8")) + 128)]),
    }
    for kind, path in cases.items():
        with pytest.raises(CheckpointError) as info:
            ckpt.load_checkpoint(path, device="cpu")
        assert str(path) in str(info.value), kind
    result = run_module("xpnet.predict", [cases["raw-meta"], "--test-index", 0], cwd=tmp_path)
    assert result.returncode == 1
    assert "not a NumPy array" in one_error_line(result, "xpnet.predict")


def test_optimizer_state_of_the_wrong_shape_is_refused_on_load(tmp_path):
    """A damaged run state whose optimizer moment is a scalar: refused by shape when the
    checkpoint is read (never broadcast over the parameter)."""
    path = _mnist_net_checkpoint(tmp_path / "s.npz",
                                 extra={"trainer/opt/v/0.bias": np.float64(0.5)})
    with pytest.raises(CheckpointError, match=r"'train/trainer/opt/v/0\.bias' of shape \(\)"):
        ckpt.load_checkpoint(path, device="cpu")
    assert ckpt.load(path, device="cpu").layer_sizes == [784, 16, 10]  # the network is fine


def test_saving_what_could_not_be_loaded_is_refused(tmp_path):
    net = xpnet.MLP([4, 3], device="cpu")
    with pytest.raises(CheckpointError, match="more than the"):
        ckpt.save(net, tmp_path / "x.npz", {"json": {}, "arrays": {"big": np.zeros(9 << 20)}})
    deep = {}
    for _ in range(80):
        deep = {"d": deep}
    with pytest.raises(CheckpointError, match="nested"):
        ckpt.save(net, tmp_path / "x.npz", {"json": deep, "arrays": {}})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------- FIFOs
def _fifo(path):
    os.mkfifo(path)
    return path


@contextlib.contextmanager
def _deadline(seconds):
    """Fail instead of hanging: SIGALRM interrupts a blocking open() of a FIFO."""
    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_fifo_inputs_are_refused_without_blocking(tmp_path):
    fifo = _fifo(tmp_path / "ck.npz")
    with _deadline(10), pytest.raises(CheckpointError, match="FIFO"):
        ckpt.load(fifo, device="cpu")
    for module, args in [("xpnet.predict", [fifo, "--test-index", 0]),
                         ("xpnet.train", ["--resume", fifo, "--data-dir", tmp_path])]:
        result = run_module(module, args, cwd=tmp_path, timeout=60)
        assert result.returncode == 1, result.stderr
        assert "FIFO" in one_error_line(result, module)


@pytest.mark.slow
def test_fifo_image_and_mnist_file_are_refused(data_dir, tmp_path):
    ck = _mnist_net_checkpoint(tmp_path / "ck.npz")
    result = run_module("xpnet.predict", [ck, "--image", _fifo(tmp_path / "d.png")],
                        cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "d.png is a FIFO" in one_error_line(result, "xpnet.predict")
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in GZ_NAMES[:3]:
        os.symlink(data_dir / name, mnist / name)
    _fifo(mnist / GZ_NAMES[3])
    with _deadline(10), pytest.raises(MnistDataError, match="FIFO"):
        load_mnist(mnist, download=False)


# ------------------------------------------------------------------------------- MNIST files
@pytest.mark.slow
def test_predict_reads_only_the_test_files(data_dir, tmp_path):
    only_test = tmp_path / "mnist"
    only_test.mkdir()
    for name in GZ_NAMES[2:]:
        os.symlink(data_dir / name, only_test / name)
    ck = _mnist_net_checkpoint(tmp_path / "ck.npz")
    result = run_module("xpnet.predict", [ck, "--test-index", 5, "--data-dir", only_test],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "predicted digit:" in result.stdout



def test_gzip_bomb_and_sparse_file_are_refused_within_the_known_size(data_dir, tmp_path):
    """A 512 MiB gzip bomb under the train-images name, and a sparse 4 GiB raw IDX file: both
    refused having read at most the original's size (47 MB inflated, nothing of the sparse
    file), far below what they declare."""
    bomb_dir, sparse_dir = tmp_path / "bomb", tmp_path / "sparse"
    for d in (bomb_dir, sparse_dir):
        d.mkdir()
        for name in GZ_NAMES:
            if name != "train-images-idx3-ubyte.gz":
                os.symlink(data_dir / name, d / name)
    header = (0x803).to_bytes(4, "big") + b"".join(
        n.to_bytes(4, "big") for n in (60000, 28, 28))
    piece = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    (bomb_dir / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header, mtime=0) + piece * 32)
    with open(sparse_dir / "train-images-idx3-ubyte", "wb") as f:
        f.write(header)
        f.truncate(4 * GIB)

    code = """
from xpnet.data import load_mnist, MnistDataError
for d in sys.argv[1:]:
    try:
        load_mnist(d, download=False)
    except MnistDataError as exc:
        print("REFUSED", exc)
"""
    out, growth = _child_peak(code, bomb_dir, sparse_dir)
    lines = out.splitlines()
    assert "train-images-idx3-ubyte.gz inflates to more than" in lines[0], out
    assert "train-images-idx3-ubyte holds 4294967296 bytes, far more than the 47040016" \
        in lines[1], out
    assert growth < 200 << 20, f"peak RSS grew by {growth >> 20} MiB"


# ------------------------------------------------------------------------------- images
def test_huge_png_is_refused_before_decoding(tmp_path):
    from PIL import Image

    from xpnet.imaging import MAX_IMAGE_BYTES

    ck = _mnist_net_checkpoint(tmp_path / "ck.npz")
    big = tmp_path / "big.png"
    Image.new("1", (13000, 13000)).save(big)  # 169 megapixels in a few KB
    oversized = tmp_path / "oversized.png"  # over the byte cap: only its size is looked at
    with open(oversized, "wb") as f:
        f.write(big.read_bytes())
        f.truncate(MAX_IMAGE_BYTES + 1)
    code = """
from xpnet.imaging import ImageError, read_image
for path in sys.argv[1:]:
    try:
        read_image(path)
    except ImageError as exc:
        print("REFUSED", exc)
"""
    out, growth = _child_peak(code, big, oversized)
    lines = out.splitlines()
    assert lines[0] == (f"REFUSED {big} is 13000x13000 pixels (169.0 megapixels), more than the "
                        f"40 megapixels read; scale it down or crop it to the digit")
    assert lines[1].startswith(f"REFUSED {oversized}") and str(MAX_IMAGE_BYTES) in lines[1]
    assert growth < 50 << 20, f"peak RSS grew by {growth >> 20} MiB"
    result = run_module("xpnet.predict", [ck, "--image", big], cwd=tmp_path)
    assert result.returncode == 1
    assert "13000x13000 pixels" in one_error_line(result, "xpnet.predict")


def test_grey_16_bit_and_palette_pngs_read_like_8_bit(tmp_path):
    from PIL import Image

    from xpnet.imaging import mnist_style, read_image

    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[6:22, 10:18] = rng.integers(100, 256, (16, 8))
    Image.fromarray(digit, "L").save(tmp_path / "l.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "i16.png")
    Image.fromarray(digit, "L").convert("P").save(tmp_path / "p.png")
    Image.fromarray(255 - digit, "L").convert("RGBA").save(tmp_path / "rgba.png")
    reference = mnist_style(read_image(tmp_path / "l.png"))
    assert reference.max() == 255  # the 8-bit digit went through the whole preparation
    for name in ("i16.png", "p.png", "rgba.png"):
        np.testing.assert_array_equal(mnist_style(read_image(tmp_path / name)), reference,
                                      err_msg=name)


# ------------------------------------------------------------------------------- downloads
class _Mirror(BaseHTTPRequestHandler):
    """``/zeros/NAME``: zeros forever, no length; ``/liar/NAME``: announces 10 GB;
    ``/trickle/NAME``: one byte every 0.1 s; anything else 404."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        kind = self.path.split("/")[1]
        if kind not in ("zeros", "liar", "trickle"):
            self.send_error(404)
            return
        self.send_response(200)
        if kind == "liar":
            self.send_header("Content-Length", str(10 * GIB))
        self.end_headers()
        try:
            for _ in range(100_000):
                if kind == "trickle":
                    self.wfile.write(b"\x1f")
                    self.wfile.flush()
                    time.sleep(0.1)
                else:
                    self.wfile.write(bytes(1 << 16))
        except OSError:
            pass  # the client hung up, as it should

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def online(monkeypatch):
    for var in ("XPNET_OFFLINE", "XPNET_MNIST_MIRRORS", "XPNET_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


LABELS = "train-labels-idx1-ubyte.gz"  # 28881 bytes


def test_downloads_are_capped_stall_checked_and_leave_no_folder(mirror, online, tmp_path):
    target = tmp_path / "new" / "cache"
    start = time.perf_counter()
    with pytest.raises(MnistDataError) as info:
        download_file(LABELS, target, stall_timeout=0.5, timeout=5,
                      mirrors=[f"{mirror}/zeros/", f"{mirror}/liar/", f"{mirror}/trickle/"])
    message = str(info.value)
    assert "zeros/" in message and "longer than the 28881 bytes" in message
    assert "announces 10737418240 bytes, the original file has 28881" in message
    assert "trickle/" in message and "stalled" in message
    assert time.perf_counter() - start < 10
    assert os.listdir(tmp_path) == []  # neither files nor the folders it created


@pytest.mark.slow
def test_failed_download_in_the_cli_leaves_no_empty_data_folder(mirror, tmp_path):
    data = tmp_path / "fresh" / "mnist"
    result = run_train(["--layers", "784,16,10", "--data-dir", data, "--device", "cpu"],
                       cwd=tmp_path, subset=None,
                       env={"XPNET_OFFLINE": "0", "XPNET_MNIST_MIRRORS": f"{mirror}/missing/",
                            "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    assert result.returncode == 1, result.stderr
    assert "HTTP 404" in one_error_line(result)
    assert os.listdir(tmp_path) == []
