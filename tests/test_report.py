"""What a finished run reports (xpnet/report.py): the finite-state check, the confusion matrix
text, which weights were tested, and strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xpnet.loop import TrainingDiverged
from xpnet.metrics import Scores
from xpnet.network import MLP
from xpnet.report import (
    check_finite_state,
    confusion_lines,
    json_ready,
    summary_line,
    weights_used,
)
from xpnet.targets import Target
from xpnet.training import Trainer


def trained(epochs=3, **options):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    net = MLP([3, 4, 2], dtype="float64", device="cpu", seed=0)
    trainer = Trainer(net, optimizer="sgd", lr=0.1, epochs=epochs, seed=0, **options)
    trainer.fit(X, y)
    return trainer


def test_a_state_that_is_not_finite_is_refused_with_the_learning_rate():
    trainer = trained()
    check_finite_state(trainer)  # finite: nothing happens
    trainer.net.flat.data[0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"^training diverged in the last update: .* "
                                               r"lower the learning rate \(now 0.1\)"):
        check_finite_state(trainer)


def test_confusion_lines_escape_and_cut_the_labels():
    target = Target("classification", classes=["a", "\x1b[31mlong-label-name"])
    scores = Scores(0.5, 0.75, np.array([[3, 1], [0, 4]]))
    lines = confusion_lines(scores, target)
    width = 10  # "\\x1b[31mlo~" is cut to 10 characters
    assert lines[1] == " " * (width + 3) + f"{'a':>{width}} \\x1b[31ml~"
    assert lines[2] == f"  {'a':>{width}} {3:>{width}} {1:>{width}}"
    assert confusion_lines(scores, target, max_classes=1) == []
    assert confusion_lines(Scores(0.5, r2=0.1, rmse=1.0), target) == []


def test_weights_used_and_the_summary_line():
    trainer = trained(epochs=3)
    assert weights_used(trainer, has_dev=False) == "tested the weights of epoch 3"
    line = summary_line(Scores(0.25, 0.5), trainer, False, "cpu")
    seconds = sum(trainer.history.seconds)
    assert line == (f"test accuracy 0.5000  test loss 0.2500  epochs 3  tested the weights of "
                    f"epoch 3  train time {seconds:.1f}s on cpu")
    trainer.history.best_epoch = 2
    assert weights_used(trainer, has_dev=False) == (
        "tested the last epoch's weights (epoch 3; lowest training loss at epoch 2)")


def test_json_ready_makes_strict_json():
    value = {"a": [1.0, math.nan, (math.inf, 2)], "b": "x"}
    assert json.loads(json.dumps(json_ready(value), allow_nan=False)) == \
        {"a": [1.0, None, [None, 2]], "b": "x"}
