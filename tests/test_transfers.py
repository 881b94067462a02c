"""The training step loop makes no host/device transfer (CPU run of the counting test).

``Trainer`` promises (xpnet/training.py): per step nothing crosses the host/device boundary; per
epoch exactly one device-to-host copy of the metrics. On the CPU a "transfer" is free, but the
calls that would transfer on a GPU are the same ``Device`` methods, so counting them here checks
the trainer's structure on every CI run; tests/gpu/test_gpu_training.py runs the same count on
a CUDA device.

The instrumentation, and the exact pattern it asserts (no send / to_numpy / synchronize between
an epoch's first step and its single metric read), are in tests/transfer_spy.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from transfer_spy import check_transfers, instrument

import xpnet


def problem(n=100, n_in=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    return X, y


@pytest.mark.parametrize("with_dev", [False, True], ids=["no-dev", "dev-set"])
@pytest.mark.parametrize("batch_size", [32, None], ids=["minibatch", "fullbatch"])
def test_step_loop_makes_no_transfers_cpu(monkeypatch, batch_size, with_dev):
    net = xpnet.MLP([12, 16, 8, 4], device="cpu", seed=0, batch_norm=True, dropout=0.2, l2=1e-3)
    X, y = problem()
    X_val, y_val = problem(n=40, seed=1) if with_dev else (None, None)
    epochs = 3
    trainer = xpnet.Trainer(net, optimizer="adam", lr=1e-2, epochs=epochs, batch_size=batch_size,
                            schedule="cosine", seed=0)
    events = instrument(monkeypatch, trainer)
    history = trainer.fit(X, y, X_val, y_val)
    assert len(history) == epochs
    steps = 1 if batch_size is None else -(-len(X) // batch_size)  # 100 / 32 -> 4, last one 4
    check_transfers(events, epochs, steps)
