"""Training on the GPU: full-batch parity with the CPU, a mini-batch run, and no transfers in
the step loop (the GPU twin of tests/test_transfers.py; both count with tests/transfer_spy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import host_copy as to_host
from transfer_spy import check_transfers, instrument

import xpnet
from xpnet.backend import is_device_array


def problem(n, n_in, k, seed):
    """Gaussian inputs with learnable labels (the argmax of the first k features)."""
    X = np.random.default_rng(seed).standard_normal((n, n_in))
    return X, X[:, :k].argmax(axis=1)


# ------------------------------------------------------------------ full-batch parity
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("optimizer,lr", [("gd", 0.2), ("momentum", 0.05)])
def test_full_batch_fit_matches_cpu(optimizer, lr, batch_norm, parity, make_pair):
    """Full-batch training draws no random numbers on the device (no shuffle, no dropout), so
    the same seed gives the same math on both devices: float64 results must agree to rounding."""
    sizes = [16, 32, 16, 4]
    cpu, gpu = make_pair(sizes, "float64", seed=20, batch_norm=batch_norm, l2=0.01)
    X, y = problem(120, 16, 4, seed=21)
    X_val, y_val = problem(40, 16, 4, seed=22)
    epochs = 6
    hists = [
        xpnet.Trainer(net, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=None,
                      seed=23).fit(X, y, X_val, y_val)
        for net in (cpu, gpu)
    ]
    hc, hg = hists
    assert len(hc) == len(hg) == epochs
    where = f"{optimizer} {'bn' if batch_norm else 'plain'}"
    for key in ("loss", "val_loss"):
        parity.check(f"fit history {key}", np.array(getattr(hg, key)),
                     np.array(getattr(hc, key)), "float64", where=where)
    assert hg.accuracy == hc.accuracy  # counts of correct samples: identical away from ties
    for i, (pg, pc) in enumerate(zip(gpu.parameters() + gpu.buffers(),
                                     cpu.parameters() + cpu.buffers())):
        parity.check(f"fit {epochs} full-batch epochs: params", pg, pc, "float64",
                     where=f"{where} array {i}")


def test_minibatch_adam_fit_completes(cuda):
    net = xpnet.MLP([16, 64, 32, 4], device="cuda", seed=30, batch_norm=True, dropout=0.2)
    X, y = problem(500, 16, 4, seed=31)
    X_val, y_val = problem(100, 16, 4, seed=32)
    hist = xpnet.fit(net, X, y, epochs=4, lr=1e-2, batch_size=64, optimizer="adam",
                     X_val=X_val, y_val=y_val, seed=33, schedule="cosine")
    assert len(hist) == 4 and hist.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        values = getattr(hist, key)
        assert len(values) == 4 and all(math.isfinite(v) for v in values), (key, values)
    assert hist.loss[-1] < hist.loss[0]
    assert all(is_device_array(p) for p in net.parameters())
    assert all(np.isfinite(to_host(p)).all() for p in net.parameters() + net.buffers())
    loss, acc = net.evaluate(X_val, y_val)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0


# ------------------------------------------------------- no transfers in the step loop
def test_step_loop_makes_no_transfers_gpu(monkeypatch, cuda):
    """Per epoch: no send / to_numpy / synchronize between the first step and the single
    metric read (to_numpy), which comes after the last update. Sends only during setup."""
    net = xpnet.MLP([12, 16, 8, 4], device="cuda", seed=0, batch_norm=True, dropout=0.2,
                    l2=1e-3)
    X, y = problem(100, 12, 4, seed=0)
    X_val, y_val = problem(40, 12, 4, seed=1)
    epochs, batch = 3, 32
    trainer = xpnet.Trainer(net, optimizer="adam", lr=1e-2, epochs=epochs, batch_size=batch,
                            schedule="cosine", seed=0)
    events = instrument(monkeypatch, trainer)
    trainer.fit(X.astype(np.float32), y, X_val.astype(np.float32), y_val)
    steps = -(-len(X) // batch)
    check_transfers(events, epochs, steps)
