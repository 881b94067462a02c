"""Test-suite plumbing.

How shared code is organised (one approach, used throughout):

* ``tests/`` is a plain directory, not a package (there is no ``tests/__init__.py``). pytest
  imports each ``test_*.py`` as a top-level module, so test file basenames must be unique across
  ``tests/`` and its subdirectories (``tests/gpu/test_gpu_parity.py``, not another
  ``test_gradcheck.py``).
* Reusable helpers live in ordinary modules in ``tests/``: ``tests/gradcheck.py`` (finite
  differences, random problems, error records, the network configurations they cover),
  ``tests/cli_helpers.py`` (running ``python -m xpnet.train`` / ``xpnet.predict`` and checking
  the result) and ``tests/transfer_spy.py`` (counting host/device transfers). This conftest puts
  ``tests/`` at the front of ``sys.path`` so that any test, including those in ``tests/gpu/``,
  can write ``from gradcheck import numerical_grads`` under every pytest import mode.
* Fixtures shared by several files are defined here: ``rng`` and ``data_dir`` (the MNIST files
  in ``XPNET_DATA_DIR``; skips, saying why, when they are not there).

At the end of a run the worst gradient-check and PyTorch-oracle errors are printed in the
terminal summary (no ``-s`` needed).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import cli_helpers  # noqa: E402  (these two need the sys.path entry above)
import gradcheck  # noqa: E402


@pytest.fixture
def rng():
    """A fixed-seed host generator, fresh for every test."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="module")
def data_dir():
    """The directory in ``XPNET_DATA_DIR`` holding the four MNIST .gz files (else a skip)."""
    return cli_helpers.mnist_dir()


def pytest_terminal_summary(terminalreporter):
    lines = [rec.summary() for rec in gradcheck.RECORDS.values() if rec.count]
    if lines:
        terminalreporter.section("xpnet numerical accuracy")
        for line in lines:
            terminalreporter.write_line(line)
