"""A short end-to-end run on real MNIST (skipped when ``XPNET_DATA_DIR`` is unset or the files
are missing). The IDX files are read here directly, so this test does not depend on xpnet.data."""

from __future__ import annotations

import gzip
import math
import os

import numpy as np
import pytest

from xpnet.network import MLP
from xpnet.preprocessing import Scaler
from xpnet.training import fit

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path, header_bytes):
    """IDX payload as uint8: 16-byte header for images (magic, count, rows, cols), 8 for labels
    (magic, count). The header's count is checked against the payload size."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count = int.from_bytes(raw[4:8], "big")
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_bytes)
    if header_bytes == 16:
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        assert data.size == count * rows * cols, path
        return data.reshape(count, rows * cols)
    assert data.size == count, path
    return data


def load_mnist_files():
    root = os.environ.get("XPNET_DATA_DIR")
    if not root:
        pytest.skip("XPNET_DATA_DIR is not set (point it at a folder with the MNIST .gz files)")
    paths = {k: os.path.join(root, name) for k, name in FILES.items()}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        pytest.skip(f"MNIST files missing under XPNET_DATA_DIR: {', '.join(missing)}")
    return {k: read_idx(p, 16 if k.endswith("images") else 8) for k, p in paths.items()}


@pytest.mark.slow
def test_short_mnist_run():
    d = load_mnist_files()
    assert d["train_images"].shape == (60000, 784) and d["test_images"].shape == (10000, 784)
    # the first half of the training set: 3 epochs take about a second on 2 cores
    X_train, y_train = d["train_images"][:30000], d["train_labels"][:30000]
    scaler = Scaler("unit").fit(X_train)
    X_train = scaler.transform(X_train)
    X_test = scaler.transform(d["test_images"])
    y_test = d["test_labels"]

    net = MLP([784, 64, 10], dtype="float32", device="cpu", seed=0)
    hist = fit(net, X_train, y_train, epochs=3, lr=1e-3, optimizer="adam", batch_size=128,
               validation_fraction=0.1, seed=0)
    test_loss, test_acc = net.evaluate(X_test, y_test)

    for rec in zip(hist.epoch, hist.loss, hist.accuracy, hist.val_loss, hist.val_accuracy,
                   hist.seconds):
        print("epoch {} loss {:.4f} acc {:.4f} val_loss {:.4f} val_acc {:.4f} ({:.2f} s)"
              .format(*rec))
    print(f"test loss {test_loss:.4f} test accuracy {test_acc:.4f}")

    assert len(hist) == 3 and not hist.diverged
    assert all(math.isfinite(v) for v in hist.loss + hist.val_loss)
    assert all(b < a for a, b in zip(hist.loss, hist.loss[1:]))  # training loss decreases
    assert hist.val_loss[-1] < hist.val_loss[0]
    assert net.params[0][0].dtype == np.float32
    # Sanity floor, not a benchmark: this run reaches about 0.94 (0.938 when written), chance
    # is 0.10, and a broken trainer (no updates, wrong shuffle/labels pairing, a wrong
    # gradient) lands far below 0.9.
    assert test_acc > 0.9
