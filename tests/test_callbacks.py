"""The callbacks (xpnet.callbacks): the schedule's rate at every step, the best epoch's
snapshot, patience and state, the user's function, and the Trainer's callbacks list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpnet.callbacks import BestEpoch, Callback, EpochPrinter, LearningRateSchedule
from xpnet.loop import Loop
from xpnet.network import MLP
from xpnet.optimizers import Schedule, make_optimizer
from xpnet.training import Trainer, fit


def blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.standard_normal((n, d)), y


def net64(seed=0):
    return MLP([4, 8, 3], dtype="float64", device="cpu", seed=seed)


class Rates(Callback):
    def __init__(self):
        self.rates = []

    def on_step_end(self, loop, batch_samples):
        self.rates.append(loop.optimizer.lr)


@pytest.mark.parametrize("kind", ["constant", "step", "cosine"])
def test_schedule_sets_the_rate_of_every_step(kind):
    X, y = blobs()
    net = net64()
    rates = Rates()
    loop = Loop(net, make_optimizer("sgd", net, 0.1), batch_size=16, seed=0,
                callbacks=[LearningRateSchedule(kind, 0.1, step_size=2, gamma=0.5), rates])
    Xd = net.check_X(X)
    loop.run(Xd, net.check_y(y, 60), epochs=5)
    oracle = Schedule(kind, 0.1, total_steps=5 * 4, step_size=2, gamma=0.5)
    assert rates.rates == [oracle(step, step // 4) for step in range(20)]


def test_schedule_refuses_a_bad_setting_when_built():
    with pytest.raises(ValueError, match=r"^step_size must be a whole number of epochs >= 1"):
        LearningRateSchedule("step", 0.1, step_size=0)


def test_best_epoch_state_round_trips_and_a_wrong_network_is_refused():
    X, y = blobs()
    net = net64()
    best = BestEpoch(net, patience=2)
    hist = Loop(net, make_optimizer("sgd", net, 0.05), callbacks=[best]).run(
        net.check_X(X), net.check_y(y, 60), epochs=3)
    state = best.state_dict()
    assert state["json"] == {"best_score": min(hist.loss), "wait": 0}
    assert hist.best_epoch == 3  # full-batch sgd at a small rate lowers the loss every epoch
    other = BestEpoch(net64(seed=1), patience=2)
    other.load_state_dict({"json": dict(state["json"]),
                           "arrays": {k: np.array(v) for k, v in state["arrays"].items()}})
    assert other.best_score == best.best_score and other.wait == best.wait
    np.testing.assert_array_equal(other.params, best.params)
    small = BestEpoch(MLP([4, 5, 3], dtype="float64", device="cpu", seed=0))
    before = small.params.copy()
    with pytest.raises(ValueError, match=r"^run state array 'best/0.weight' has shape \(8, 4\) "
                                         r"but needs \(5, 4\)"):
        small.load_state_dict(state)
    np.testing.assert_array_equal(small.params, before)  # nothing written


def test_patience_stops_after_that_many_epochs_without_a_lower_loss():
    X, y = blobs()
    net = net64()
    best = BestEpoch(net, patience=3, min_delta=1e3)
    # no epoch lowers the loss by more than min_delta: epoch 1 is the best, 2-4 do not improve
    hist = Loop(net, make_optimizer("sgd", net, 0.01), callbacks=[best]).run(
        net.check_X(X), net.check_y(y, 60), epochs=50)
    assert hist.stopped_early and len(hist) == 4 and hist.best_epoch == 1 and best.wait == 3


def test_trainer_takes_callback_objects_and_refuses_anything_else():
    X, y = blobs()
    rates = Rates()
    trainer = Trainer(net64(), optimizer="sgd", lr=0.1, epochs=2, batch_size=30, seed=0,
                      schedule="cosine", callbacks=[rates])
    trainer.fit(X, y)
    oracle = Schedule("cosine", 0.1, total_steps=4)
    assert rates.rates == [oracle(step, step // 2) for step in range(4)]
    with pytest.raises(ValueError, match=r"^callbacks must be xpnet.callbacks.Callback objects; "
                                         r"got <function"):
        Trainer(net64(), callbacks=[lambda t, r: None])


def test_the_callback_function_is_settable_and_stops_the_run():
    X, y = blobs()
    net = net64()
    seen = []
    trainer = Trainer(net, optimizer="sgd", lr=0.1, epochs=6, seed=0)
    assert trainer.callback is None
    trainer.callback = lambda t, record: seen.append(record["epoch"]) or record["epoch"] == 2
    hist = trainer.fit(X, y)
    assert seen == [1, 2] and hist.interrupted and trainer.epoch == 2
    trainer.callback = None
    assert trainer.callback is None and trainer.fit(X, y).epoch == [1, 2, 3, 4, 5, 6]


def test_epoch_printer_prints_one_keras_line_per_epoch(capsys):
    X, y = blobs()
    fit(net64(), X, y, epochs=2, lr=0.1, callbacks=[EpochPrinter()])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert all(math.isfinite(float(line.split("loss: ")[1].split(" ")[0])) for line in lines)


# ------------------------------------------------------------------ EpochLog and StopOnSignal
def test_epoch_log_prints_the_first_ten_about_twenty_more_and_the_last(capsys):
    from xpnet.callbacks import EpochLog, log_line

    X, y = blobs()
    net = net64()
    trainer = Trainer(net, optimizer="sgd", lr=0.05, epochs=45, batch_size=20, seed=0,
                      callbacks=[EpochLog()])
    hist = trainer.fit(X, y, X[:10], y[:10])
    lines = capsys.readouterr().out.splitlines()
    shown = [e for e in range(1, 46) if e <= 10 or e % 2 == 0 or e == 45]
    assert [int(line.split()[1].split("/")[0]) for line in lines] == shown
    record = {key: getattr(hist, key)[-1] for key in hist.KEYS}
    assert lines[-1] == log_line(record, 45, 60, True, True)
    assert lines[-1].startswith(f"epoch   45/45  loss {hist.loss[-1]:.4f} acc "
                                f"{hist.accuracy[-1]:.4f} dev_loss {hist.val_loss[-1]:.4f} "
                                f"dev_acc {hist.val_accuracy[-1]:.4f}  lr 5.00e-02  ")
    assert lines[-1].endswith(f"{60 / record['seconds']:,.0f} samples/s")


def test_stop_on_signal_stops_after_the_epoch_and_puts_the_handlers_back():
    import os
    import signal

    from xpnet.callbacks import StopOnSignal

    class Kill(Callback):
        def on_step_end(self, loop, batch_samples):
            if loop.epoch == 1 and loop.global_step == loop.steps_per_epoch + 1:
                os.kill(os.getpid(), signal.SIGTERM)

    X, y = blobs()
    before = signal.getsignal(signal.SIGTERM)
    stop = StopOnSignal()
    hist = Trainer(net64(), optimizer="sgd", lr=0.05, epochs=5, batch_size=20, seed=0,
                   callbacks=[Kill(), stop]).fit(X, y)
    assert hist.epoch == [1, 2] and hist.interrupted and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_on_signal_a_second_sigint_aborts_and_a_given_function_decides():
    import os
    import signal

    from xpnet.callbacks import StopOnSignal

    class Twice(Callback):
        def on_step_end(self, loop, batch_samples):
            os.kill(os.getpid(), signal.SIGINT)

    X, y = blobs()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        Trainer(net64(), optimizer="sgd", lr=0.05, epochs=5, batch_size=20, seed=0,
                callbacks=[Twice(), StopOnSignal()]).fit(X, y)
    assert signal.getsignal(signal.SIGINT) is before
    asked = []
    hist = Trainer(net64(), optimizer="sgd", lr=0.05, epochs=5, seed=0,
                   callbacks=[StopOnSignal(lambda: asked.append(1) or len(asked) == 3)]).fit(X, y)
    assert hist.epoch == [1, 2, 3] and hist.interrupted
    with pytest.raises(ValueError, match="received must be a function"):
        StopOnSignal(received=3)
