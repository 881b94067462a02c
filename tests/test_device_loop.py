"""The device-driven step loop (xpnet/device_loop.py) computes what the eager loop computes.

``Trainer(cuda_graphs=True)`` drives every full-size mini-batch from the device tables (batch
order, optimizer scalars, step counter) even where no CUDA graph can be recorded, so on the CPU
and on the strict CuPy stand-in these tests prove that loop equals the eager one, bit for bit:
same rows in the same order, same scalars at the same step, same ``t``, ``global_step`` and
``lr`` afterwards, same history. The recording itself needs a GPU (tests/gpu/test_gpu_training.py
compares a graphed run with an eager one there).
"""

from __future__ import annotations

import numpy as np
import pytest
from strict_device import TRANSFER_KINDS, StrictDevice

import xpnet
from xpnet.device_loop import DeviceSteps
from xpnet.optimizers import Optimizer


def problem(n, n_in, k, seed, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    y = rng.standard_normal((n, k)) if regression else rng.integers(0, k, size=n)
    return X, y


def train(cuda_graphs, device="cpu", optimizer="adam", dtype="float32", regression=False,
          batch_size=16, epochs=3, schedule="cosine", n=75, **options):
    """A run of 75 samples in batches of 16 (4 full batches and one of 11 per epoch)."""
    net = xpnet.MLP([6, 10, 7, 3], device=device, dtype=dtype, seed=0, l2=1e-3,
                    output="identity" if regression else "softmax")
    X, y = problem(n, 6, 3, seed=1, regression=regression)
    Xv, yv = problem(30, 6, 3, seed=2, regression=regression)
    trainer = xpnet.Trainer(net, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                            schedule=schedule, seed=3, cuda_graphs=cuda_graphs, **options)
    history = trainer.fit(X.astype(dtype), y, Xv.astype(dtype), yv)
    return trainer, history


def same_run(a, b):
    (ta, ha), (tb, hb) = a, b
    np.testing.assert_array_equal(ta.net.device.to_numpy(ta.net.flat.data),
                                  tb.net.device.to_numpy(tb.net.flat.data))
    for (name, x), (_, z) in zip(ta.optimizer.state.items(), tb.optimizer.state.items()):
        np.testing.assert_array_equal(ta.net.device.to_numpy(x), tb.net.device.to_numpy(z),
                                      err_msg=name)
    assert (ta.optimizer.t, ta.global_step, ta.optimizer.lr) == \
        (tb.optimizer.t, tb.global_step, tb.optimizer.lr)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_array_equal(getattr(ha, key), getattr(hb, key), err_msg=key)


OPTIMIZERS = [
    ("sgd", {}), ("momentum", {}), ("nesterov", {"momentum": 0.8}), ("adam", {}),
    ("adamw", {"weight_decay": 0.1, "decay_all": False}), ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.5}),
]


@pytest.mark.parametrize("optimizer,options", OPTIMIZERS,
                         ids=[f"{o}{'-' + '-'.join(k) if k else ''}" for o, k in OPTIMIZERS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_device_driven_steps_equal_the_eager_loop(optimizer, options, dtype):
    driven = train(True, optimizer=optimizer, dtype=dtype, **options)
    eager = train(False, optimizer=optimizer, dtype=dtype, **options)
    assert driven[0].device_steps is not None and driven[0].device_steps.steps == 4
    assert eager[0].device_steps is None
    same_run(driven, eager)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine"])
def test_schedules_and_regression_targets(schedule):
    kwargs = {"schedule": schedule, "regression": True, "optimizer": "adam", "step_size": 1,
              "gamma": 0.5}
    same_run(train(True, **kwargs), train(False, **kwargs))


def test_batches_that_divide_the_data_leave_no_eager_step():
    same_run(train(True, n=64), train(False, n=64))


def test_resumed_run_continues_exactly():
    """Three epochs in one go equal one epoch, a state round trip into a fresh trainer, and two
    more: the tables start from the restored ``t`` and global step."""
    kwargs = {"schedule": "constant", "optimizer": "adam"}
    straight = train(True, epochs=3, **kwargs)
    first, _ = train(True, epochs=1, **kwargs)
    net = xpnet.MLP([6, 10, 7, 3], device="cpu", dtype="float32", seed=0, l2=1e-3)
    net.load_state_dict(first.net.state_dict())
    resumed = xpnet.Trainer(net, optimizer="adam", epochs=3, batch_size=16, schedule="constant",
                            seed=3, cuda_graphs=True)
    resumed.load_state_dict(first.state_dict())
    X, y = problem(75, 6, 3, seed=1)
    Xv, yv = problem(30, 6, 3, seed=2)
    history = resumed.fit(X.astype("float32"), y, Xv.astype("float32"), yv)
    assert resumed.device_steps is not None and resumed.optimizer.t == straight[0].optimizer.t
    np.testing.assert_array_equal(net.flat.data, straight[0].net.flat.data)
    assert history.loss == straight[1].loss


def test_on_the_strict_stand_in_it_matches_the_cpu_and_moves_nothing_per_step(monkeypatch):
    """On the stand-in (CuPy's refusals: no implicit host conversion, no host operand), the
    device-driven run equals the CPU's eager run, and from each epoch's first step to its last
    nothing crosses the host/device boundary (the epoch's one upload, its tables, comes first)."""
    device = StrictDevice()
    events = []
    monkeypatch.setattr(device.xp, "listeners",
                        [lambda kind, detail, where: events.append((kind, where))])
    real_init = DeviceSteps.__init__

    def logged_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        inner = self.step

        def logged():
            events.append(("step", ""))
            inner()

        self.step = logged

    monkeypatch.setattr(DeviceSteps, "__init__", logged_init)
    driven = train(True, device=device)
    cpu = train(False)
    np.testing.assert_array_equal(device.to_numpy(driven[0].net.flat.data), cpu[0].net.flat.data)
    assert driven[1].loss == cpu[1].loss
    starts = [i for i, (kind, _) in enumerate(events) if kind == "step"]
    assert len(starts) == 3 * 4
    for epoch in range(3):
        block = events[starts[4 * epoch]:starts[4 * epoch + 3] + 1]
        moved = [e for e in block if e[0] in TRANSFER_KINDS]
        assert not moved, f"epoch {epoch}: {moved}"


def test_runs_that_cannot_be_driven_from_the_device_step_eagerly():
    # Active dropout draws its masks from a host-seeded generator.
    net = xpnet.MLP([6, 10, 3], device="cpu", seed=0, dropout=0.2)
    X, y = problem(40, 6, 3, seed=1)
    trainer = xpnet.Trainer(net, epochs=1, batch_size=8, cuda_graphs=True)
    trainer.fit(X.astype("float32"), y)
    assert trainer.device_steps is None

    # An optimizer that overrides step() (docs/extending.md's Lion, say) runs as written.
    class Halving(Optimizer):
        name = "halving"

        def step(self):
            self.t += 1
            self.params.data -= 0.5 * self.lr * self.params.grad

    assert not Halving(xpnet.MLP([2, 2], seed=0)).device_drivable
    trainer = xpnet.Trainer(xpnet.MLP([6, 3], seed=0), optimizer=Halving, lr=0.1, epochs=1,
                            batch_size=8, cuda_graphs=True)
    trainer.fit(X.astype("float32"), y)
    assert trainer.device_steps is None

    # Full batch: one step per epoch, nothing to gain.
    trainer, _ = train(True, batch_size=None)
    assert trainer.device_steps is None


def test_auto_steps_eagerly_where_no_graph_can_be_recorded():
    assert not xpnet.get_device("cpu").supports_graphs
    assert not StrictDevice().supports_graphs
    trainer, _ = train("auto")
    assert trainer.device_steps is None


@pytest.mark.parametrize("bad", ["yes", 1, None, 0.5])
def test_cuda_graphs_takes_auto_true_or_false(bad):
    with pytest.raises(ValueError, match=r"cuda_graphs must be 'auto', True or False; got"):
        xpnet.Trainer(xpnet.MLP([2, 2], seed=0), cuda_graphs=bad)
