"""The training loop: exact agreement with hand-written steps, shuffling, history, early
stopping, divergence, interruption, exact resume, dtypes and argument checks."""

from __future__ import annotations

import copy
import json
import math
import re
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.network import MLP
from xpnet.optimizers import Schedule
from xpnet.training import History, InputScaleWarning, Trainer, TrainingDiverged, fit


# ---------------------------------------------------------------------------- helpers
def make_blobs(n=120, d=5, k=3, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + spread * rng.standard_normal((n, d))
    return X, y


def make_net(d=5, k=3, hidden=(16,), dtype="float64", seed=0, **kw):
    return MLP([d, *hidden, k], dtype=dtype, device="cpu", seed=seed, **kw)


def state_arrays(net):
    return net.parameters() + net.buffers()


def host_copy(net):
    return [net.device.to_numpy(a).copy() for a in state_arrays(net)]


def twin(net, seed=None):
    """A fresh net with the same configuration and a copy of ``net``'s parameters and buffers
    (built from a different init seed, so only the copy makes them equal)."""
    cfg = dict(net.config())
    cfg["seed"] = (cfg["seed"] or 0) + 1000 if seed is None else seed
    other = MLP(**cfg, device=net.device)
    for dst, src in zip(state_arrays(other), state_arrays(net)):
        dst[...] = src
    return other


def assert_nets_equal(a, b, rtol=0.0, atol=0.0):
    for x, y in zip(host_copy(a), host_copy(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def manual_gd_step(net, X, y, lr):
    loss, _ = net.loss_and_grads(X, y)
    for p, g in zip(net.parameters(), net.gradients()):
        p -= lr * g
    return loss


def record_batches(net, X):
    """Wrap ``net.forward_backward`` (the trainer's unchecked step) so every training step
    records the indices of the rows it saw (rows of ``X`` are unique) and the loss it returned."""
    lookup = {X[i].tobytes(): i for i in range(X.shape[0])}
    assert len(lookup) == X.shape[0]
    steps = []
    inner = net.forward_backward

    def wrapper(Xb, yb, *args, **kwargs):
        loss = inner(Xb, yb, *args, **kwargs)
        idx = np.array([lookup[row.tobytes()] for row in np.asarray(Xb)])
        steps.append((idx, float(loss)))
        return loss

    net.forward_backward = wrapper
    return steps


# ---------------------------------------------------------------------------- full batch
@pytest.mark.parametrize("kw", [{}, {"batch_norm": True, "l2": 0.1},
                                {"activation": "tanh", "hidden": (8, 6)}],
                         ids=["plain", "bn-l2", "deep-tanh"])
def test_full_batch_gd_equals_manual_steps(kw):
    X, y = make_blobs()
    net = make_net(**kw)
    ref = twin(net)
    lr, epochs = 0.1, 7
    hist = fit(net, X, y, epochs=epochs, lr=lr, batch_size=None, optimizer="gd", seed=1)
    losses = [manual_gd_step(ref, X, y, lr) for _ in range(epochs)]
    assert_nets_equal(net, ref, rtol=1e-12, atol=1e-14)
    # full batch: the epoch's training loss is the loss of its single step
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-12)
    assert hist.lr == [lr] * epochs
    assert losses[-1] < losses[0]


def test_batch_size_at_least_n_is_full_batch():
    X, y = make_blobs(n=50)
    a, b = make_net(), make_net()
    fit(a, X, y, epochs=3, lr=0.1, batch_size=None, seed=0)
    fit(b, X, y, epochs=3, lr=0.1, batch_size=500, optimizer="sgd", seed=0)
    assert_nets_equal(a, b)


# ---------------------------------------------------------------------------- mini-batches
def test_minibatch_sgd_visits_a_fresh_permutation_each_epoch():
    X, y = make_blobs(n=70)
    bs, epochs, lr = 16, 4, 0.05
    net = make_net()
    ref = twin(net)
    fixed = twin(net)
    steps = record_batches(net, X)
    hist = fit(net, X, y, epochs=epochs, lr=lr, batch_size=bs, optimizer="sgd", seed=3)

    n_steps = math.ceil(len(X) / bs)
    assert len(steps) == epochs * n_steps
    orders = []
    for e in range(epochs):
        epoch_steps = steps[e * n_steps:(e + 1) * n_steps]
        sizes = [len(idx) for idx, _ in epoch_steps]
        assert sizes == [bs] * (n_steps - 1) + [len(X) - (n_steps - 1) * bs]
        order = np.concatenate([idx for idx, _ in epoch_steps])
        np.testing.assert_array_equal(np.sort(order), np.arange(len(X)))  # each sample once
        orders.append(order)
        # the epoch's loss is the sample-weighted mean of its step losses
        expected = sum(loss * len(idx) for idx, loss in epoch_steps) / len(X)
        assert hist.loss[e] == pytest.approx(expected, rel=1e-12)
    for a in range(epochs):
        for b in range(a + 1, epochs):
            assert not np.array_equal(orders[a], orders[b]), (a, b)
    assert not np.array_equal(orders[0], np.arange(len(X)))  # shuffled, not the data order

    # every step is one SGD step on exactly the recorded rows
    for idx, _ in steps:
        manual_gd_step(ref, X[idx], y[idx], lr)
    assert_nets_equal(net, ref, rtol=1e-12, atol=1e-14)

    # replaying every epoch in epoch 0's order ends elsewhere: the reshuffle matters
    for _ in range(epochs):
        for idx, _ in steps[:n_steps]:
            manual_gd_step(fixed, X[idx], y[idx], lr)
    assert not np.allclose(host_copy(fixed)[0], host_copy(net)[0], rtol=1e-6, atol=0)


def test_shuffle_depends_on_seed_only():
    X, y = make_blobs(n=40)

    def orders(seed):
        net = make_net()
        steps = record_batches(net, X)
        fit(net, X, y, epochs=2, lr=0.05, batch_size=8, optimizer="sgd", seed=seed)
        return np.concatenate([idx for idx, _ in steps])

    np.testing.assert_array_equal(orders(5), orders(5))
    assert not np.array_equal(orders(5), orders(6))


# ---------------------------------------------------------------------------- history
def test_history_records_and_aliases():
    X, y = make_blobs(n=150)
    net = make_net()
    seen = []

    def callback(trainer, record):
        # the dev numbers are the dev set's inference loss/accuracy after the epoch
        loss, acc = trainer.net.evaluate(X_val, y_val)
        seen.append((dict(record), loss, acc))

    X_val, y_val = make_blobs(n=40, seed=1)
    hist = fit(net, X, y, epochs=5, lr=0.01, batch_size=32, optimizer="adam", seed=0,
               X_val=X_val, y_val=y_val, callback=callback)
    assert net.history_ is hist and net.trainer_.history is hist
    assert len(hist) == 5 and hist.n_iter_ == 5
    assert hist.epoch == [1, 2, 3, 4, 5]
    for key in History.KEYS:
        assert len(getattr(hist, key)) == 5, key
    assert hist.loss_curve_ is hist.loss
    assert hist.validation_scores_ is hist.val_accuracy
    assert hist.best_loss_ == min(hist.loss)
    assert all(s >= 0 for s in hist.seconds)
    assert all(0 <= a <= 1 for a in hist.accuracy + hist.val_accuracy)
    assert hist.lr == [0.01] * 5
    assert seen[-1][0] == hist.last()
    for e, (record, loss, acc) in enumerate(seen):
        assert record["epoch"] == e + 1
        assert record["val_loss"] == pytest.approx(loss, rel=1e-12)
        assert record["val_accuracy"] == pytest.approx(acc, rel=1e-12)
        assert hist.val_loss[e] == record["val_loss"]
    assert hist.best_epoch == int(np.argmin(hist.val_loss)) + 1
    assert not (hist.stopped_early or hist.interrupted or hist.diverged)

    d = hist.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = History.from_dict(json.loads(text))
    for key in History.KEYS:
        assert getattr(back, key) == getattr(hist, key)
    assert back.best_epoch == hist.best_epoch


def test_history_nan_fields_for_regression_without_dev_set():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    Y = X @ rng.standard_normal((4, 2))
    net = MLP([4, 8, 2], output="identity", dtype="float64", device="cpu", seed=0)
    hist = fit(net, X, Y, epochs=3, lr=0.05, seed=0)
    assert all(math.isnan(v) for v in hist.accuracy + hist.val_loss + hist.val_accuracy)
    d = hist.to_dict()
    assert d["accuracy"] == [None] * 3 and d["val_loss"] == [None] * 3
    json.dumps(d, allow_nan=False)  # NaN became None
    back = History.from_dict(d)
    assert all(math.isnan(v) for v in back.val_loss)
    # training loss is the regression objective: half squared error per sample
    ref = MLP([4, 8, 2], output="identity", dtype="float64", device="cpu", seed=0)
    first = 0.5 * np.sum((ref.forward(X) - Y) ** 2) / len(X)
    assert hist.loss[0] == pytest.approx(first, rel=1e-12)


def test_accuracy_is_measured_during_the_epoch():
    X, y = make_blobs(n=90)
    net = make_net()
    ref = twin(net)
    hist = fit(net, X, y, epochs=1, lr=0.1, seed=0)  # full batch: accuracy before the step
    assert hist.accuracy[0] == pytest.approx(float(np.mean(ref.predict(X) == y)), rel=1e-12)


# ---------------------------------------------------------------------------- early stopping
def overfit_problem():
    """Random labels: the training set can be memorised, the dev set cannot be predicted, so
    the dev loss rises once the net grows confident."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, size=40)
    Xv = rng.standard_normal((60, 6))
    yv = rng.integers(0, 3, size=60)
    return X, y, Xv, yv


@pytest.mark.parametrize("batch_norm", [False, True])
def test_patience_stops_and_restores_best_epoch(batch_norm):
    X, y, Xv, yv = overfit_problem()
    net = MLP([6, 64, 3], dtype="float64", device="cpu", seed=0, batch_norm=batch_norm)
    snapshots = {}

    def callback(trainer, record):
        snapshots[record["epoch"]] = host_copy(trainer.net)

    epochs, patience = 200, 4
    hist = fit(net, X, y, epochs=epochs, lr=0.01, optimizer="adam", batch_size=8, seed=0,
               X_val=Xv, y_val=yv, patience=patience, callback=callback)
    assert hist.stopped_early and not hist.interrupted
    assert len(hist) < epochs
    best = hist.best_epoch
    assert best is not None and best < len(hist)
    assert len(hist) == best + patience  # no improvement in the last `patience` epochs
    assert hist.val_loss[best - 1] == min(hist.val_loss)
    # the final net is the best epoch's net, buffers included ...
    for got, want in zip(host_copy(net), snapshots[best]):
        np.testing.assert_array_equal(got, want)
    # ... so re-evaluating it gives the best dev loss, not the last one
    loss, acc = net.evaluate(Xv, yv)
    assert loss == pytest.approx(hist.val_loss[best - 1], rel=1e-12)
    assert acc == pytest.approx(hist.val_accuracy[best - 1], rel=1e-12)
    assert loss < hist.val_loss[-1]


def test_patience_zero_never_stops_early():
    X, y, Xv, yv = overfit_problem()
    epochs = 40
    runs = {}
    for restore in (None, True):
        net = MLP([6, 64, 3], dtype="float64", device="cpu", seed=0)
        hist = fit(net, X, y, epochs=epochs, lr=0.01, optimizer="adam", batch_size=8, seed=0,
                   X_val=Xv, y_val=yv, patience=0, restore_best=restore)
        assert not hist.stopped_early and len(hist) == epochs
        # the dev loss got worse for more epochs than the patience test allowed
        assert hist.best_epoch < epochs - 4
        runs[restore] = (net, hist)
    # by default a fixed-epoch run keeps its final weights ...
    net, hist = runs[None]
    assert net.trainer_.restore_best is False
    assert net.evaluate(Xv, yv)[0] == pytest.approx(hist.val_loss[-1], rel=1e-12)
    # ... and restore_best=True returns the best epoch's parameters at the end
    net, hist = runs[True]
    assert net.evaluate(Xv, yv)[0] == pytest.approx(hist.val_loss[hist.best_epoch - 1],
                                                    rel=1e-12)


def test_restore_best_false_keeps_last_parameters():
    X, y, Xv, yv = overfit_problem()
    net = MLP([6, 64, 3], dtype="float64", device="cpu", seed=0)
    hist = fit(net, X, y, epochs=200, lr=0.01, optimizer="adam", batch_size=8, seed=0,
               X_val=Xv, y_val=yv, patience=3, restore_best=False)
    assert hist.stopped_early and hist.best_epoch < len(hist)
    assert net.evaluate(Xv, yv)[0] == pytest.approx(hist.val_loss[-1], rel=1e-12)


@pytest.mark.parametrize("with_dev", [False, True])
def test_min_delta_counts_small_improvements_as_none(with_dev):
    X, y = make_blobs(n=60)
    net = make_net()
    kw = {"validation_fraction": 0.25} if with_dev else {}
    patience = 3
    hist = fit(net, X, y, epochs=50, lr=1e-6, optimizer="gd", seed=0, patience=patience,
               min_delta=1.0, **kw)
    # a loss falls by far less than min_delta per epoch at this tiny lr
    assert hist.stopped_early
    assert hist.best_epoch == 1 and len(hist) == 1 + patience


# ---------------------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
@pytest.mark.filterwarnings("ignore::xpnet.InputScaleWarning")  # 10 x N(0, 1) is borderline
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_raises_and_keeps_best_parameters(dtype):
    rng = np.random.default_rng(0)
    X = 10.0 * rng.standard_normal((50, 4))
    Y = X @ rng.standard_normal((4, 2))
    net = MLP([4, 8, 2], output="identity", dtype=dtype, device="cpu", seed=0)
    initial = host_copy(net)
    snapshots = {}

    def callback(trainer, record):
        snapshots[record["epoch"]] = host_copy(trainer.net)

    with pytest.raises(TrainingDiverged) as info:
        fit(net, X, Y, epochs=500, lr=1e6, optimizer="sgd", seed=0, callback=callback)
    err = info.value
    msg = str(err).lower()
    assert "diverged" in msg and "lower the learning rate" in msg
    hist = err.history
    assert hist.diverged and net.history_ is hist
    assert len(hist) < 500
    assert not math.isfinite(hist.loss[-1])
    assert all(math.isfinite(v) for v in hist.loss[:-1])
    params = host_copy(net)
    assert all(np.all(np.isfinite(p)) for p in params)
    expected = initial if hist.best_epoch is None else snapshots[hist.best_epoch]
    for got, want in zip(params, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::xpnet.InputScaleWarning")
def test_divergence_with_dev_set_monitors_dev_loss():
    rng = np.random.default_rng(1)
    X = 10.0 * rng.standard_normal((80, 4))
    Y = X @ rng.standard_normal((4, 1))
    net = MLP([4, 8, 1], output="identity", dtype="float32", device="cpu", seed=0)
    with pytest.raises(TrainingDiverged) as info:
        fit(net, X, Y, epochs=500, lr=1e6, optimizer="momentum", seed=0, X_val=X[:20],
            y_val=Y[:20])
    assert info.value.history.diverged
    assert all(np.all(np.isfinite(p)) for p in host_copy(net))


# ---------------------------------------------------------------------------- callback
def test_callback_true_interrupts_after_that_epoch():
    X, y = make_blobs()
    net = make_net()
    calls = []

    def callback(trainer, record):
        calls.append(record["epoch"])
        assert trainer.epoch == record["epoch"]  # epochs completed so far
        return record["epoch"] == 3

    hist = fit(net, X, y, epochs=10, lr=0.1, seed=0, callback=callback)
    assert calls == [1, 2, 3]
    assert hist.interrupted and not hist.stopped_early and len(hist) == 3
    # the parameters are those of three full-batch steps
    ref = make_net()
    for _ in range(3):
        manual_gd_step(ref, X, y, 0.1)
    assert_nets_equal(net, ref, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------- resume
RESUME_KW = dict(optimizer="adam", lr=3e-3, batch_size=16, schedule="cosine",
                 validation_fraction=0.2)


def checkpoint_and_stop_after(k):
    """``(saved, callback)``: a ``fit`` callback that stops after epoch ``k``, filling ``saved``
    with a deep-copied checkpoint (``"trainer"``: the trainer's state dict, ``"net"``: host
    copies of the net's arrays)."""
    saved = {}

    def save_and_stop(trainer, record):
        if record["epoch"] == k:
            saved["trainer"] = copy.deepcopy(trainer.state_dict())
            saved["net"] = host_copy(trainer.net)
            return True
        return False

    return saved, save_and_stop


def resume_net(dtype, seed=0):
    return MLP([5, 12, 10, 3], dtype=dtype, device="cpu", seed=seed, batch_norm=True,
               dropout=0.3)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-6)])
@pytest.mark.parametrize("k", [1, 3])
def test_resume_matches_straight_run(dtype, rtol, k):
    X, y = make_blobs(n=101, spread=2.0)  # 81 train rows: a partial last batch
    N = 6
    straight = resume_net(dtype)
    h_straight = fit(straight, X, y, epochs=N, seed=11, **RESUME_KW)

    # a run stopped after k epochs, saved as a checkpoint would be (deep copies of everything)
    saved, save_and_stop = checkpoint_and_stop_after(k)
    first = resume_net(dtype)
    fit(first, X, y, epochs=N, seed=11, callback=save_and_stop, **RESUME_KW)
    state = saved["trainer"]
    assert state["json"]["epoch"] == k
    json.dumps(state["json"], allow_nan=False)  # the JSON part of a checkpoint

    # a fresh net from the same config (other init seed), then the checkpoint copied in
    resumed = resume_net(dtype, seed=99)
    assert not np.allclose(host_copy(resumed)[0], saved["net"][0])
    for dst, src in zip(state_arrays(resumed), saved["net"]):
        dst[...] = src
    h_resumed = fit(resumed, X, y, epochs=N, resume=state, **RESUME_KW)  # seed from the state

    assert resumed.trainer_.seed == 11
    for got, want in zip(host_copy(resumed), host_copy(straight)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3)
    assert len(h_resumed) == N
    for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(getattr(h_resumed, key), getattr(h_straight, key),
                                   rtol=rtol)
    assert h_resumed.best_epoch == h_straight.best_epoch


def run_with_checkpoint(make, X, y, k, save_after_return=False, **kw):
    """Train, stop after epoch ``k`` and keep a deep-copied checkpoint (taken in the callback,
    or after ``fit`` returned, as the CLI saves it); resume into a fresh net and finish.
    Returns the resumed net and its history."""
    saved, save_and_stop = checkpoint_and_stop_after(k)
    first = make(0)
    hist = fit(first, X, y, callback=save_and_stop, **kw)
    assert hist.interrupted and len(hist) == k
    # an interrupted run keeps its current parameters (it is paused, not finished)
    for got, want in zip(host_copy(first), saved["net"]):
        np.testing.assert_array_equal(got, want)
    if save_after_return:
        saved["trainer"] = copy.deepcopy(first.trainer_.state_dict())
        saved["net"] = host_copy(first)
    resumed = make(99)
    for dst, src in zip(state_arrays(resumed), saved["net"]):
        dst[...] = src
    kw = {key: v for key, v in kw.items() if key != "seed"}
    return resumed, fit(resumed, X, y, resume=saved["trainer"], **kw)


@pytest.mark.parametrize("save_after_return", [False, True], ids=["in-callback", "after-fit"])
@pytest.mark.parametrize("k", [4, 13])
def test_resume_keeps_early_stopping_state(k, save_after_return):
    # k = 13 is one epoch after the best (12) with patience 2: the resumed run must stop after
    # one more epoch and restore epoch 12's parameters from the checkpoint's snapshot
    X, y, Xv, yv = overfit_problem()

    def make(seed):
        return MLP([6, 32, 3], dtype="float64", device="cpu", seed=seed, batch_norm=True,
                   dropout=0.3)

    kw = dict(epochs=20, seed=11, optimizer="adam", lr=3e-3, batch_size=16, schedule="cosine",
              X_val=Xv, y_val=yv, patience=2)
    straight = make(0)
    h_straight = fit(straight, X, y, **kw)
    assert h_straight.stopped_early and h_straight.best_epoch < len(h_straight)
    assert k < len(h_straight)
    resumed, h_resumed = run_with_checkpoint(make, X, y, k, save_after_return, **kw)
    assert h_resumed.stopped_early and not h_resumed.interrupted
    assert len(h_resumed) == len(h_straight)
    assert h_resumed.best_epoch == h_straight.best_epoch
    np.testing.assert_allclose(h_resumed.val_loss, h_straight.val_loss, rtol=1e-12)
    for got, want in zip(host_copy(resumed), host_copy(straight)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_resume_without_state_is_different():
    # the same k + (N - k) epochs without the trainer state do not reproduce the straight run,
    # so the resume test above checks something
    X, y = make_blobs(n=101, spread=2.0)
    straight = resume_net("float64")
    fit(straight, X, y, epochs=4, seed=11, **RESUME_KW)
    other = resume_net("float64")
    fit(other, X, y, epochs=4, seed=11, callback=lambda t, r: r["epoch"] == 2, **RESUME_KW)
    fit(other, X, y, epochs=2, seed=11, **RESUME_KW)
    assert not np.allclose(host_copy(other)[0], host_copy(straight)[0], rtol=1e-6)


def test_resume_rejects_a_different_setup():
    X, y = make_blobs(n=60)
    net = make_net()
    fit(net, X, y, epochs=2, lr=0.01, optimizer="adam", batch_size=16, seed=0)
    state = copy.deepcopy(net.trainer_.state_dict())
    with pytest.raises(ValueError, match="batch size"):
        fit(make_net(), X, y, epochs=4, lr=0.01, optimizer="adam", batch_size=8, resume=state)
    with pytest.raises(ValueError, match="optimizer"):
        fit(make_net(), X, y, epochs=4, lr=0.01, optimizer="sgd", batch_size=16, resume=state)


# ---------------------------------------------------------------------------- schedules in fit
@pytest.mark.parametrize("batch_size", [None, 25])
def test_schedule_learning_rates_in_history(batch_size):
    X, y = make_blobs(n=100)
    epochs, base = 7, 0.02
    steps = 1 if batch_size is None else math.ceil(100 / batch_size)

    h = fit(make_net(), X, y, epochs=epochs, lr=base, batch_size=batch_size, seed=0,
            schedule="step", step_size=2, gamma=0.5)
    np.testing.assert_allclose(h.lr, [base * 0.5 ** (e // 2) for e in range(epochs)],
                               rtol=1e-15)

    h = fit(make_net(), X, y, epochs=epochs, lr=base, batch_size=batch_size, seed=0,
            schedule="cosine")
    total = epochs * steps
    # the recorded lr is the one of the epoch's last step
    want = [base * 0.5 * (1 + math.cos(math.pi * ((e + 1) * steps - 1) / total))
            for e in range(epochs)]
    np.testing.assert_allclose(h.lr, want, rtol=1e-12)

    h = fit(make_net(), X, y, epochs=epochs, lr=base, batch_size=batch_size, seed=0,
            schedule="step")  # default step_size: a third of the epochs
    s = Schedule("step", base, step_size=max(1, epochs // 3), gamma=0.1)
    np.testing.assert_allclose(h.lr, [s(0, e) for e in range(epochs)], rtol=1e-15)


def test_step_schedule_applies_to_every_step():
    # full-batch GD with a step schedule equals manual steps with the scheduled lr
    X, y = make_blobs()
    net = make_net()
    ref = twin(net)
    fit(net, X, y, epochs=5, lr=0.2, seed=0, schedule="step", step_size=2, gamma=0.3)
    for e in range(5):
        manual_gd_step(ref, X, y, 0.2 * 0.3 ** (e // 2))
    assert_nets_equal(net, ref, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------- device and dtype
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "nesterov", "adam"])
def test_float32_stays_float32(optimizer):
    X, y = make_blobs(n=80)  # float64 inputs
    net = make_net(dtype="float32", batch_norm=True, dropout=0.2)
    ids = [id(a) for a in state_arrays(net)]
    fit(net, X, y, epochs=3, lr=0.01, optimizer=optimizer, batch_size=16, seed=0,
        validation_fraction=0.2, patience=1)
    assert [id(a) for a in state_arrays(net)] == ids  # trained in place
    array_type = type(net.params[0][0])
    for a in state_arrays(net) + net.gradients():
        assert a.dtype == np.float32 and isinstance(a, array_type)
    opt = net.trainer_.optimizer
    assert opt.params is net.flat
    for flat in opt.state.values():  # one flat buffer per state name, laid out like net.flat
        assert isinstance(flat, array_type) and flat.dtype == np.float32
        assert flat.shape == net.flat.data.shape
    for (name, p), (pname, views) in zip(net.named_parameters(), opt.named_state().items()):
        assert name == pname
        for a in views.values():
            assert isinstance(a, array_type) and a.dtype == np.float32 and a.shape == p.shape
    assert net.forward(X).dtype == np.float32
    for name, a in net.trainer_.state_dict()["arrays"].items():
        assert a.dtype == np.float32, name


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -1}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -4}, "batch_size"),
    ({"patience": -1}, "patience"),
    ({"min_delta": -0.1}, "min_delta"),
    ({"schedule": "exponential"}, "schedule"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"optimizer": "gd", "momentum": 0.9}, "optimizer 'gd' has no option 'momentum'"),
    ({"optimizer": "adam", "beta3": 0.9}, "its options are: lr, beta1, beta2, eps"),
    ({"lr": 0.0}, "learning rate"),
    ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"validation_fraction": -0.2}, "validation_fraction"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
])
def test_bad_trainer_arguments(kwargs, match):
    X, y = make_blobs(n=30)
    net = make_net()
    before = host_copy(net)
    with pytest.raises(ValueError, match=match):
        fit(net, X, y, **{"epochs": 2, "lr": 0.1, **kwargs})
    for got, want in zip(host_copy(net), before):  # nothing was trained
        np.testing.assert_array_equal(got, want)


def test_trainer_class_validates_too():
    with pytest.raises(ValueError, match="patience"):
        Trainer(make_net(), patience=True)
    with pytest.raises(ValueError, match="gamma"):
        Trainer(make_net(), schedule="step", gamma=2.0)


def test_bad_data_is_rejected_before_training():
    X, y = make_blobs(n=30)
    net = make_net()
    with pytest.raises(ValueError, match="features"):
        fit(net, X[:, :3], y, epochs=1)
    with pytest.raises(ValueError, match="labels"):
        fit(net, X, y + 5, epochs=1)


# ---------------------------------------------------------------------------- optimizer options
@pytest.mark.parametrize("name", ["gd", "sgd", "momentum", "nesterov", "adam", "adamw",
                                  "rmsprop"])
def test_lr_none_takes_the_optimizers_default(name):
    from xpnet.optimizers import OPTIMIZERS

    trainer = Trainer(make_net(), optimizer=name, lr=None, epochs=2)
    assert trainer.optimizer.lr == OPTIMIZERS[name].default_lr
    assert trainer.schedule_args["lr"] == OPTIMIZERS[name].default_lr
    assert trainer.config()["lr"] == OPTIMIZERS[name].default_lr
    X, y = make_blobs(n=30)
    hist = fit(make_net(), X, y, epochs=1, lr=None, optimizer=name, seed=0)
    assert hist.lr == [OPTIMIZERS[name].default_lr]


def test_optimizer_options_reach_the_optimizer():
    trainer = Trainer(make_net(), optimizer="momentum", lr=0.05, momentum=0.8)
    assert trainer.optimizer.momentum == 0.8 and trainer.config()["momentum"] == 0.8
    trainer = Trainer(make_net(), optimizer="adamw", weight_decay=0.05, beta2=0.99)
    assert (trainer.optimizer.weight_decay, trainer.optimizer.beta2) == (0.05, 0.99)
    with pytest.raises(ValueError, match="optimizer 'sgd' has no option 'momentum'; its "
                                         "options are: lr"):
        Trainer(make_net(), optimizer="sgd", momentum=0.9)
    with pytest.raises(ValueError, match="has no options 'beta1', 'nesterov'"):
        Trainer(make_net(), optimizer="momentum", beta1=0.9, nesterov=True)


def test_trainer_state_arrays_are_named_by_parameter():
    X, y = make_blobs(n=60)
    net = make_net(batch_norm=True)
    fit(net, X, y, epochs=2, lr=0.01, optimizer="adam", batch_size=16, seed=0)
    arrays = net.trainer_.state_dict()["arrays"]
    params = [name for name, _ in net.named_parameters()]
    buffers = [name for name, _ in net.named_buffers()]
    assert params == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert buffers == ["1.running_mean", "1.running_var"]
    assert set(arrays) == ({f"opt/{s}/{p}" for s in ("m", "v") for p in params}
                           | {f"best/{n}" for n in params + buffers})
    for name, p in net.named_parameters():
        assert arrays[f"opt/m/{name}"].shape == p.shape
        assert arrays[f"best/{name}"].shape == p.shape


# ---------------------------------------------------------------------------- verbose
VERBOSE_LINE = re.compile(r"Epoch (\d+)/(\d+) - (\d+ms|\d+\.\ds) - (.*)")


def parse_verbose(out):
    """``[(epoch, epochs, {name: text})]`` of the verbose lines in ``out``; every line must be
    one."""
    rows = []
    for line in out.splitlines():
        match = VERBOSE_LINE.fullmatch(line)
        assert match, f"not a verbose line: {line!r}"
        pairs = [part.split(": ") for part in match.group(4).split(" - ")]
        assert all(len(p) == 2 for p in pairs), line
        rows.append((int(match.group(1)), int(match.group(2)), dict(pairs)))
    return rows


def test_verbose_prints_one_line_per_epoch_with_the_history_values(capsys):
    X, y = make_blobs(n=80)
    hist = fit(make_net(), X, y, epochs=3, lr=0.05, optimizer="adam", batch_size=16, seed=0,
               validation_fraction=0.25, verbose=True)
    out, err = capsys.readouterr()
    assert err == ""
    rows = parse_verbose(out)
    assert [(e, n) for e, n, _ in rows] == [(1, 3), (2, 3), (3, 3)]
    for i, (_, _, values) in enumerate(rows):
        assert list(values) == ["loss", "accuracy", "val_loss", "val_accuracy"]
        for key, text in values.items():
            assert text == f"{getattr(hist, key)[i]:.4f}", (key, i)


def test_verbose_regression_without_dev_set_prints_only_the_loss(capsys):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 4))
    Y = X @ rng.standard_normal((4, 2))
    net = MLP([4, 8, 2], output="identity", dtype="float64", device="cpu", seed=0)
    trainer = Trainer(net, optimizer="adam", lr=0.01, epochs=2, seed=0, verbose=True)
    hist = trainer.fit(X, Y)
    rows = parse_verbose(capsys.readouterr().out)
    assert [(e, n, list(v)) for e, n, v in rows] == [(1, 2, ["loss"]), (2, 2, ["loss"])]
    assert [v["loss"] for _, _, v in rows] == [f"{loss:.4f}" for loss in hist.loss]


def test_verbose_line_comes_before_the_callback_and_resume_counts_on(capsys):
    X, y = make_blobs(n=60)
    net = make_net()

    def callback(trainer, record):
        print(f"callback {record['epoch']}")

    fit(net, X, y, epochs=2, lr=0.1, seed=0, verbose=True, callback=callback)
    state = net.trainer_.state_dict()
    fit(net, X, y, epochs=4, lr=0.1, seed=0, verbose=True, resume=state)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == [
        "Epoch 1/2", "callback 1", "Epoch 2/2", "callback 2", "Epoch 3/4", "Epoch 4/4"]


def test_quiet_by_default(capsys):
    X, y = make_blobs(n=40)
    fit(make_net(), X, y, epochs=2, lr=0.1, seed=0, validation_fraction=0.25)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("seconds, shown", [(0.0123, "12ms"), (0.9994, "999ms"), (1.0, "1.0s"),
                                            (12.345, "12.3s")])
def test_verbose_duration_format(seconds, shown):
    from xpnet.callbacks import epoch_line as _epoch_line

    record = {"epoch": 3, "seconds": seconds, "loss": 0.5, "accuracy": 0.25,
              "val_loss": 0.125, "val_accuracy": 1.0}
    assert _epoch_line(record, 7, True, True) == (
        f"Epoch 3/7 - {shown} - loss: 0.5000 - accuracy: 0.2500 - val_loss: 0.1250 - "
        f"val_accuracy: 1.0000")
    assert _epoch_line(record, 7, False, False) == f"Epoch 3/7 - {shown} - loss: 0.5000"


@pytest.mark.parametrize("verbose", [2, "yes", None, 0.5])
def test_bad_verbose(verbose):
    with pytest.raises(ValueError, match="verbose must be True or False"):
        Trainer(make_net(), verbose=verbose)


# ---------------------------------------------------------------------------- did you mean
@pytest.mark.parametrize("call", ["fit", "Trainer"])
def test_misspelt_keyword_suggests_the_close_match(call):
    X, y = make_blobs(n=30)
    net = make_net()
    before = host_copy(net)
    with pytest.raises(TypeError) as info:
        if call == "fit":
            fit(net, X, y, epoch=3)
        else:
            Trainer(net, epoch=3)
    assert str(info.value) == (f"{call}() got an unexpected keyword argument 'epoch'; did you "
                               f"mean 'epochs'?")
    assert isinstance(info.value, ValueError)  # what an unknown option raised before
    for got, want in zip(host_copy(net), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_frac": 0.2},
     "fit() got an unexpected keyword argument 'validation_frac'; did you mean "
     "'validation_fraction'?"),
    ({"verbos": True}, "fit() got an unexpected keyword argument 'verbos'; did you mean "
                       "'verbose'?"),
    ({"pateince": 3}, "fit() got an unexpected keyword argument 'pateince'; did you mean "
                      "'patience'?"),
    ({"batchsize": 8}, "fit() got an unexpected keyword argument 'batchsize'; did you mean "
                       "'batch_size'?"),
    ({"optimizer": "momentum", "momentun": 0.9},
     "optimizer 'momentum' has no option 'momentun' (did you mean 'momentum'?); its options "
     "are: lr, momentum"),
    ({"optimizer": "adamw", "weight_decai": 0.1},
     "optimizer 'adamw' has no option 'weight_decai' (did you mean 'weight_decay'?); its "
     "options are: lr, beta1, beta2, eps, weight_decay, decay_all"),
    ({"optimizer": "sgd", "momentum": 0.9},
     "optimizer 'sgd' has no option 'momentum'; its options are: lr"),
])
def test_unknown_keywords_of_fit(kwargs, message):
    X, y = make_blobs(n=30)
    with pytest.raises(TypeError) as info:
        fit(make_net(), X, y, **kwargs)
    assert str(info.value) == message


def test_trainer_keyword_error_names_the_trainer_and_the_optimizer_options():
    with pytest.raises(TypeError, match=r"^Trainer\(\) got an unexpected keyword argument "
                                        r"'callbak'; did you mean 'callback'\?$"):
        Trainer(make_net(), callbak=print)
    with pytest.raises(TypeError, match=r"^optimizer 'rmsprop' has no option 'alpah' \(did you "
                                        r"mean 'alpha'\?\); its options are: lr, alpha, eps, "
                                        r"momentum$"):
        Trainer(make_net(), optimizer="rmsprop", alpah=0.9)
    # fit's own arguments are not Trainer's
    with pytest.raises(TypeError, match="has no option 'validation_fraction'"):
        Trainer(make_net(), validation_fraction=0.2)


# ---------------------------------------------------------------------------- input scale
def mnist_like(n=300, seed=0):
    """Raw 28x28 uint8 "digits" (n, 784): a dark background, bright rings near the centre
    (0..255, anti-aliased), and labels 0..2 by the ring's radius, as raw MNIST pixels are."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:28, 0:28]
    y = rng.integers(0, 3, size=n)
    centre = 14 + rng.normal(scale=1.5, size=(n, 2))
    radius = 4 + 2.5 * y + rng.normal(scale=0.5, size=n)
    dist = np.hypot(rr - centre[:, 0, None, None], cc - centre[:, 1, None, None])
    ink = np.clip(1.5 - np.abs(dist - radius[:, None, None]), 0, 1)
    return np.round(255 * ink).astype(np.uint8).reshape(n, 784), y


def scale_warnings(X, y, **kwargs):
    """The InputScaleWarnings of one short fit on ``(X, y)``, every warning shown."""
    d = X.shape[1]
    net = MLP([d, 8, int(np.max(y)) + 1], dtype="float32", device="cpu", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(net, X, y, **{"epochs": 2, "lr": 1e-3, "optimizer": "adam", "batch_size": 64,
                          "seed": 0, **kwargs})
    return [w for w in caught if issubclass(w.category, InputScaleWarning)]


def test_raw_pixels_warn_once_per_fit_at_the_callers_line():
    X, y = mnist_like()
    seen = scale_warnings(X, y, epochs=3)
    assert len(seen) == 1
    w = seen[0]
    assert w.filename == __file__  # the fit call in scale_warnings, not xpnet's internals
    text = str(w.message)
    rms = np.sqrt((X.astype(np.float64) ** 2).mean(axis=0))
    assert text.startswith(f"X looks unscaled: feature {int(np.argmax(rms))} has a "
                           f"root-mean-square of {rms.max():.4g} (more than 10)")
    assert "xpnet.Scaler('unit').fit(X)" in text and "scaler.transform(X)" in text
    assert "\n" not in text
    # with a dev set split off inside fit: still one warning, still at the caller's line
    seen = scale_warnings(X, y, epochs=3, validation_fraction=0.2)
    assert len(seen) == 1 and seen[0].filename == __file__


def test_trainer_fit_warns_at_the_callers_line_each_fit():
    X, y = mnist_like(n=100)
    trainer = Trainer(MLP([784, 4, 3], device="cpu", seed=0), optimizer="adam", lr=1e-3,
                      epochs=1, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(X, y)
        trainer.epochs = 2
        trainer.fit(X, y)  # a second fit (continuing the run) checks again
    seen = [w for w in caught if issubclass(w.category, InputScaleWarning)]
    assert [w.filename for w in seen] == [__file__, __file__]
    assert seen[0].lineno + 2 == seen[1].lineno


def standardised(X):
    X = np.asarray(X, dtype=np.float64)
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)


def quiet_inputs():
    """Scaled inputs that must not warn, some with rare large values: ``{name: (X, y)}``."""
    from sklearn.datasets import load_breast_cancer, load_digits

    rng = np.random.default_rng(7)
    pixels, labels = mnist_like(n=400, seed=1)
    cancer = load_breast_cancer()
    digits = load_digits()
    onehot = np.zeros((2000, 30))
    onehot[np.arange(2000), rng.choice(30, size=2000, p=np.r_[[0.0005] * 10,
                                                               [0.9950 / 20] * 20])] = 1
    heavy = rng.standard_t(df=2, size=(2000, 6))  # heavy tails, standardised: rare |x| of 40+
    return {
        "mnist-like / 255": (pixels / 255.0, labels),
        "mnist-like standardised per pixel": (standardised(pixels), labels),
        "mnist-like xpnet.Scaler('standard')": (
            xpnet.Scaler("standard").fit_transform(pixels), labels),
        "breast cancer standardised": (standardised(cancer.data), cancer.target),
        "breast cancer min-max": (
            (cancer.data - cancer.data.min(0)) / np.ptp(cancer.data, axis=0), cancer.target),
        "digits standardised": (standardised(digits.data), digits.target),
        "rare one-hot categories standardised": (standardised(onehot), rng.integers(0, 2, 2000)),
        "student-t(2) standardised": (standardised(heavy), rng.integers(0, 2, 2000)),
        "uniform [-1, 1]": (rng.uniform(-1, 1, size=(500, 10)), rng.integers(0, 3, 500)),
        "standard normal": (rng.standard_normal((500, 10)), rng.integers(0, 3, 500)),
    }


def test_scaled_inputs_do_not_warn():
    for name, (X, y) in quiet_inputs().items():
        # the rule's own premise: every feature's RMS is about 1 or less
        assert np.sqrt((np.asarray(X, np.float64) ** 2).mean(axis=0)).max() < 1.5, name
        assert scale_warnings(X, y) == [], name
    # standardised data do have values beyond 10: a max-|x| rule would fire on them
    inputs = quiet_inputs()
    for name in ("mnist-like standardised per pixel", "digits standardised",
                 "rare one-hot categories standardised", "student-t(2) standardised"):
        assert np.abs(inputs[name][0]).max() > 15, name


@pytest.mark.parametrize("name", ["mnist-like raw", "breast cancer raw", "digits raw 0..16",
                                  "one raw feature among scaled ones"])
def test_raw_inputs_warn(name):
    from sklearn.datasets import load_breast_cancer, load_digits

    rng = np.random.default_rng(5)
    if name == "mnist-like raw":
        X, y = mnist_like(n=200, seed=2)
    elif name == "breast cancer raw":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "digits raw 0..16":
        X, y = load_digits(return_X_y=True)
    else:
        X = rng.standard_normal((300, 5))
        X[:, 2] = rng.normal(50_000, 12_000, size=300)  # an income in dollars
        y = rng.integers(0, 2, 300)
    assert len(scale_warnings(X, y)) == 1


def test_the_advice_in_the_warning_silences_it():
    X, y = mnist_like(n=200)
    assert len(scale_warnings(X, y)) == 1
    scaler = xpnet.Scaler("unit").fit(X)
    assert scale_warnings(scaler.transform(X), y) == []


def test_raw_mnist_warns_and_scaled_mnist_does_not(data_dir):
    data = xpnet.load_mnist(data_dir, download=False, splits=("test",))
    X, y = data.X_test[:3000], data.y_test[:3000]
    assert X.dtype == np.uint8
    assert len(scale_warnings(X, y, epochs=1)) == 1
    for method in ("unit", "standard"):
        assert scale_warnings(xpnet.Scaler(method).fit_transform(X), y, epochs=1) == [], method


# ---------------------------------------------------------------------------- fp warnings
def test_divergence_gives_no_runtime_warnings_only_the_error():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))  # well scaled: the lr alone makes it diverge
    Y = X @ rng.standard_normal((4, 2))
    before = np.geterr()
    for dtype in ("float32", "float64"):
        net = MLP([4, 8, 2], output="identity", dtype=dtype, device="cpu", seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(TrainingDiverged, match="training diverged at epoch"):
                fit(net, X, Y, epochs=500, lr=1e6, optimizer="sgd", seed=0, X_val=X[:10],
                    y_val=Y[:10])
        assert [str(w.message) for w in caught] == [], dtype
        assert np.geterr() == before  # the caller's settings are back


def test_the_callback_runs_with_the_callers_floating_point_settings():
    X, y = make_blobs(n=30)
    got = []

    def callback(trainer, record):
        got.append(np.geterr())
        np.float64(1e308) * np.float64(10)  # overflow: the caller's rules apply here

    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            fit(make_net(), X, y, epochs=2, lr=0.1, seed=0, callback=callback)
    assert got[0]["over"] == "raise"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(make_net(), X, y, epochs=2, lr=0.1, seed=0, callback=callback)
    assert [w.category for w in caught] == [RuntimeWarning, RuntimeWarning]


# ---------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_integer_sample_weights_train_as_repeated_rows(l2):
    """Full-batch gd on weights in {0, 1, 2, 3} equals gd on the data with each row repeated
    its weight's number of times (scikit-learn's definition, L2 over the sum of weights)."""
    X, y = make_blobs(n=40)
    w = np.random.default_rng(1).integers(0, 4, size=40)
    weighted, repeated = make_net(l2=l2), make_net(l2=l2)
    hw = fit(weighted, X, y, epochs=5, lr=0.1, sample_weight=w)
    hr = fit(repeated, np.repeat(X, w, axis=0), np.repeat(y, w), epochs=5, lr=0.1)
    assert_nets_equal(weighted, repeated, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hw.loss, hr.loss, rtol=1e-10)


def test_scaling_every_weight_changes_nothing_and_minibatches_take_the_weights():
    X, y = make_blobs(n=50)
    w = np.random.default_rng(2).uniform(0.1, 2.0, size=50)
    a, b, plain = make_net(), make_net(), make_net()
    kw = dict(epochs=3, lr=0.05, batch_size=16, optimizer="sgd", seed=3)
    fit(a, X, y, sample_weight=w, **kw)
    fit(b, X, y, sample_weight=7.0 * w, **kw)
    fit(plain, X, y, **kw)
    assert_nets_equal(a, b, rtol=1e-9, atol=1e-12)
    assert np.abs(host_copy(a)[0] - host_copy(plain)[0]).max() > 1e-4  # the weights mattered


def test_sample_weight_splits_with_validation_fraction_and_bad_weights_are_refused():
    X, y = make_blobs(n=60)
    net = make_net()
    w = np.ones(60)
    hist = fit(net, X, y, epochs=2, lr=0.1, validation_fraction=0.25, sample_weight=w, seed=4)
    ref = make_net()
    ref_hist = fit(ref, X, y, epochs=2, lr=0.1, validation_fraction=0.25, seed=4)
    np.testing.assert_allclose(hist.val_loss, ref_hist.val_loss, rtol=1e-12)
    with pytest.raises(ValueError, match=r"^sample_weight must be >= 0 with a positive sum; "
                                         r"got a minimum of -1 and a sum of 58"):
        fit(make_net(), X, y, sample_weight=np.r_[-1.0, np.ones(59)])
    with pytest.raises(ValueError, match=r"^sample_weight must be 1-D with one weight per "
                                         r"sample \(60\); got shape \(59,\)"):
        fit(make_net(), X, y, sample_weight=np.ones(59))
    with pytest.raises(ValueError, match=r"^sample_weight contains NaN or infinity"):
        fit(make_net(), X, y, sample_weight=np.r_[np.nan, np.ones(59)])


def test_validation_data_is_the_dev_set():
    X, y = make_blobs(n=60)
    Xv, yv = make_blobs(n=30, seed=5)
    a, b = make_net(), make_net()
    ha = fit(a, X, y, epochs=3, lr=0.1, validation_data=(Xv, yv))
    hb = fit(b, X, y, epochs=3, lr=0.1, X_val=Xv, y_val=yv)
    assert ha.val_loss == hb.val_loss and all(math.isfinite(v) for v in ha.val_loss)
    with pytest.raises(ValueError, match=r"^pass the dev set once"):
        fit(make_net(), X, y, validation_data=(Xv, yv), X_val=Xv, y_val=yv)
    with pytest.raises(ValueError, match=r"^validation_data must be a pair \(X_val, y_val\)"):
        fit(make_net(), X, y, validation_data=Xv)
