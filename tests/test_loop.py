"""The one training loop (xpnet.loop.Loop): agreement with hand-written steps in a given order,
the callbacks' hooks in order and count, stopping, and teardown after a failure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpnet.callbacks import BestEpoch, Callback, DivergenceGuard
from xpnet.loop import Loop, TrainingDiverged, batch_bounds
from xpnet.network import MLP
from xpnet.optimizers import make_optimizer


def blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.standard_normal((n, d)), y


def net64(seed=0):
    return MLP([4, 8, 3], dtype="float64", device="cpu", seed=seed, l2=0.01)


def checked(net, X, y):
    Xd = net.check_X(X)
    return Xd, net.check_y(y, Xd.shape[0])


class Recorder(Callback):
    """Logs every hook call as a tuple."""

    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_fit_begin(self, loop):
        self.calls.append(("fit_begin", loop.epochs, loop.steps_per_epoch, loop.n_samples))

    def on_epoch_begin(self, loop, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_step_begin(self, loop):
        self.calls.append(("step_begin", loop.global_step))

    def on_step_end(self, loop, batch_samples):
        self.calls.append(("step_end", batch_samples))

    def on_epoch_end(self, loop, record):
        self.calls.append(("epoch_end", record["epoch"], len(loop.history)))
        return record["epoch"] == self.stop_at

    def on_fit_end(self, loop):
        self.calls.append(("fit_end",))

    def teardown(self, loop):
        self.calls.append(("teardown",))


@pytest.mark.parametrize("shuffle", ["given", "in-order"])
def test_loop_matches_hand_written_steps_in_the_same_order(shuffle):
    """Mini-batches of 16 over 60 rows for 3 epochs, sgd: the loop's parameters equal a plain
    loop of forward_backward + step over the same rows, bit for bit (same operations)."""
    X, y = blobs()
    orders = [np.random.default_rng(e).permutation(60) for e in range(3)]
    net = net64()
    loop = Loop(net, make_optimizer("sgd", net, 0.1), batch_size=16,
                shuffle=(lambda e, n: orders[e]) if shuffle == "given" else False)
    loop.run(*checked(net, X, y), epochs=3)

    ref = net64()
    opt = make_optimizer("sgd", ref, 0.1)
    Xd, yd = checked(ref, X, y)
    losses = []
    for e in range(3):
        order = orders[e] if shuffle == "given" else np.arange(60)
        total = 0.0
        for start, stop in batch_bounds(60, 16):
            idx = order[start:stop]
            total += float(ref.forward_backward(Xd[idx], yd[idx])) * (stop - start)
            opt.step()
        losses.append(total / 60)
    np.testing.assert_array_equal(net.flat.data, ref.flat.data)
    np.testing.assert_allclose(loop.history.loss, losses, rtol=1e-12)
    assert loop.epoch == 3 and loop.global_step == 12


def test_hooks_run_in_order_and_a_true_epoch_end_stops_after_that_epoch():
    X, y = blobs(n=40)
    net = net64()
    first, second = Recorder(stop_at=2), Recorder()
    loop = Loop(net, make_optimizer("sgd", net, 0.1), batch_size=16, seed=0,
                callbacks=[first, second])
    loop.run(*checked(net, X, y), epochs=5)
    # 40 rows in batches of 16: 16, 16, 8
    epoch = [("step_begin", None), ("step_end", 16), ("step_begin", None), ("step_end", 16),
             ("step_begin", None), ("step_end", 8)]
    want = [("fit_begin", 5, 3, 40)]
    for e in range(2):
        want += [("epoch_begin", e)]
        want += [(name, 3 * e + i // 2 if name == "step_begin" else arg)
                 for i, (name, arg) in enumerate(epoch)]
        want += [("epoch_end", e + 1, e + 1)]
    want += [("fit_end",), ("teardown",)]
    assert first.calls == want
    assert second.calls == want  # the second still ran in the epoch the first stopped
    assert loop.epoch == 2 and len(loop.history) == 2


def test_teardown_runs_after_a_divergence_and_the_best_state_is_back():
    X, y = blobs()
    net = net64()
    start = net.flat.data.copy()
    rec = Recorder()
    best = BestEpoch(net)
    loop = Loop(net, make_optimizer("sgd", net, 1e6), callbacks=[DivergenceGuard(best), best,
                                                                 rec])
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch \d+: the training"):
        loop.run(*checked(net, X, y), epochs=200)
    assert rec.calls[-1] == ("teardown",) and ("fit_end",) not in rec.calls
    assert loop.history.diverged
    kept = start if loop.history.best_epoch is None else best.params
    np.testing.assert_array_equal(net.flat.data, kept)
    assert all(math.isfinite(v) for v in net.flat.data)


def test_a_step_function_replaces_forward_backward():
    """``step`` is what each batch calls: here the plain step on half the learning signal,
    which with sgd equals the plain loop at half the rate."""
    X, y = blobs()
    net = net64()

    def half(Xb, yb, correct=None):
        loss = net.forward_backward(Xb, yb, correct=correct)
        net.flat.grad[...] *= 0.5
        return loss

    Loop(net, make_optimizer("sgd", net, 0.2), step=half).run(*checked(net, X, y), epochs=4)
    ref = net64()
    Loop(ref, make_optimizer("sgd", ref, 0.1)).run(*checked(ref, X, y), epochs=4)
    np.testing.assert_allclose(net.flat.data, ref.flat.data, rtol=1e-12, atol=1e-15)
