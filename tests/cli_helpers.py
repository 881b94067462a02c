"""Shared helpers for the tests that run ``python -m xpnet.train`` / ``python -m xpnet.predict``
as real subprocesses (tests/test_train_cli.py, tests/test_predict_cli.py,
tests/test_reliability.py): the MNIST data directory, the child's environment, the runner, and
checks of its output and checkpoints. The ``data_dir`` fixture (tests/conftest.py) wraps
:func:`mnist_dir`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
import xpnet.checkpoint
from xpnet.model import Model
from xpnet.preprocessing import Scaler

GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SUBSET = 6000  # training images kept by XPNET_MNIST_SUBSET; the test set is the first SUBSET // 6


def mnist_dir() -> Path:
    """``XPNET_DATA_DIR``, or a skip saying why it is unusable (unset, or lacking a file)."""
    env = os.environ.get("XPNET_DATA_DIR")
    if not env:
        pytest.skip("XPNET_DATA_DIR is not set; point it at the original MNIST .gz files")
    missing = [n for n in GZ_NAMES if not (Path(env) / n).is_file()]
    if missing:
        pytest.skip(f"XPNET_DATA_DIR={env} lacks {', '.join(missing)}")
    return Path(env)


def cli_env(subset=None, extra=None) -> dict[str, str]:
    """The child's environment: offline, one BLAS thread, ``XPNET_MNIST_SUBSET=subset`` (unset
    when ``subset`` is falsy), then ``extra``."""
    env = {**os.environ, "XPNET_OFFLINE": "1"}
    # One BLAS thread: with two busy-waiting OpenBLAS threads on a 2-core machine that is also
    # running other work, small-batch epochs were measured 35x slower (same results).
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.pop("XPNET_MNIST_SUBSET", None)
    if subset:
        env["XPNET_MNIST_SUBSET"] = str(subset)
    env.update(extra or {})
    return env


def run_module(module, args, *, cwd=None, subset=None, env=None, timeout=300, **kwargs):
    """Run ``python -m module args`` with :func:`cli_env`; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=cli_env(subset, env), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def run_train(args, *, cwd=None, subset=SUBSET, **kwargs):
    """``python -m xpnet.train args`` on the first ``subset`` training images (None: all)."""
    return run_module("xpnet.train", args, cwd=cwd, subset=subset, **kwargs)


def one_error_line(result, prog="xpnet.train") -> str:
    """The single stderr line of a clean user error (and no traceback anywhere)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def epoch_numbers(stdout) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^epoch\s+(\d+)/\d+\s", stdout, re.M)]


def model_arrays(path) -> list[np.ndarray]:
    net = xpnet.checkpoint.load(path, device="cpu")
    return [np.array(a) for a in net.parameters() + net.buffers()]


def assert_same_model(a, b) -> None:
    pa, pb = model_arrays(a), model_arrays(b)
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def scaler_of(net, state) -> Scaler:
    """The input scaler of the model recorded in a checkpoint's ``state`` (for ``net``)."""
    return Model.from_state(net, state).inputs.scaler
