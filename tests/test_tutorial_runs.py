"""The tutorials' headline runs stay accepted: each row of bench/tutorial_runs.py (the table
in docs/learn/tutorials.md), cut to a few iterations on a subset of MNIST, runs, its loss falls
and its schedule is the tutorial's. The rows' commands are read from the bench script, so a
changed row is the row tested. The full runs (minutes each) are measured by the bench script,
not here.
"""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pytest
from cli_helpers import run_train

import xpnet
from xpnet.preprocessing import holdout_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "tutorial_runs.py")
SUBSET = 1200


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_tutorial_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RUNS = bench_module()


def shortened(args, **values):
    """The row's ``args`` with the flags of ``values`` (``step_size=3`` is ``--step-size 3``)
    given new values; each flag must be in the row already."""
    args = list(args)
    for key, value in values.items():
        args[args.index("--" + key.replace("_", "-")) + 1] = str(value)
    return args


def epoch_lines(stdout):
    return [(int(m[1]), float(m[2]), float(m[3])) for m in re.finditer(
        r"^epoch\s+(\d+)/\d+\s+loss (\S+) .* lr (\S+)", stdout, flags=re.M)]


def dev_split_sizes(data_dir):
    """Training and dev images of a 10% stratified dev split of the subset at seed 0."""
    y = xpnet.load_mnist(data_dir, download=False).y_train[:SUBSET]
    train, dev = holdout_split(y, 0.1, 0, True, None)
    return len(train), len(dev)


def falls(losses):
    return all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_every_row_has_its_one_command():
    """A row is a CLI command or a function of the bench script, never both, and its command
    is what the README shows."""
    for name, row in RUNS.ROWS.items():
        assert ("args" in row) != ("api" in row), name
        if "api" in row:
            assert row["api"] in RUNS.API
            assert RUNS.command(name) == f"python bench/tutorial_runs.py --rows {name}"
        else:
            assert RUNS.command(name) == "python -m xpnet.train " + " ".join(row["args"])


@pytest.mark.slow
def test_the_tanh_16_16_run_with_a_scaled_normal_start(data_dir, tmp_path):
    """Seed 004's command: tanh 784-16-16-10 from N(0,1) x 0.1, full batch, lr 1 then 0.1
    (here after 3 of 6 iterations instead of 75 of 150)."""
    args = shortened(RUNS.ROWS["seed004"]["args"], step_size=3, epochs=6)
    result = run_train([*args, "--device", "cpu", "--data-dir", data_dir], cwd=tmp_path,
                       subset=SUBSET)
    assert result.returncode == 0, result.stderr
    lines = epoch_lines(result.stdout)
    assert [e for e, _, _ in lines] == [1, 2, 3, 4, 5, 6]
    assert [lr for _, _, lr in lines] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1]
    assert lines[-1][1] < lines[0][1]


@pytest.mark.slow
def test_the_tanh_16_16_run_with_sigmoid_outputs(data_dir):
    """Seed 004's run with ten sigmoid outputs (the Python API): the schedule is the tutorial's,
    the loss falls, and the accuracies are the argmax of the outputs against the labels."""
    r = RUNS.seed004_sigmoid(epochs=6, step_size=3, subset=SUBSET)
    h = r["history"]
    assert r["epochs"] == 6
    assert h["lr"] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1]
    assert falls(h["loss"])
    # The first loss is the summed BCE of ten outputs near 0.5 from the N(0,1) x 0.1 start:
    # about 10 log 2.
    assert abs(h["loss"][0] - 10 * np.log(2)) < 0.5
    assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["final_train_accuracy"] <= 1


@pytest.mark.slow
def test_the_binary_standin_for_the_cats_and_dogs_run(data_dir):
    """Seed 001's kind of network on MNIST 4 against 9: only those digits are used, one sigmoid
    output, and its binary cross-entropy falls from about log 2."""
    r = RUNS.seed001_standin(epochs=5, subset=SUBSET)
    d = xpnet.load_mnist(data_dir, download=False)
    assert r["train_images"] == int(np.isin(d.y_train[:SUBSET], (4, 9)).sum())
    assert r["test_images"] == int(np.isin(d.y_test[:SUBSET // 6], (4, 9)).sum())
    h = r["history"]
    assert r["epochs"] == 5 and set(h["lr"]) == {0.1}
    assert falls(h["loss"])
    assert abs(h["loss"][0] - np.log(2)) < 0.3


@pytest.mark.slow
def test_the_momentum_run_with_early_stopping(data_dir, tmp_path):
    """Seed 002's xpnet command, cut to 3 epochs: accepted, a 10% dev set, the loss falls."""
    args = shortened(RUNS.ROWS["seed002"]["args"], epochs=3)
    result = run_train([*args, "--device", "cpu", "--data-dir", data_dir], cwd=tmp_path,
                       subset=SUBSET)
    assert result.returncode == 0, result.stderr
    n_train, n_dev = dev_split_sizes(data_dir)
    assert f"train: {n_train} samples, dev: {n_dev}," in result.stdout
    assert "early stop after 3 without a lower dev loss" in result.stdout
    lines = epoch_lines(result.stdout)
    assert [e for e, _, _ in lines] == [1, 2, 3]
    assert {lr for _, _, lr in lines} == {0.05}
    assert lines[-1][1] < lines[0][1]


@pytest.mark.slow
def test_the_pytorch_stand_in_for_keras(data_dir):
    """Seed 002 in PyTorch, cut to 3 epochs: its loss falls, and it trains on xpnet's own
    split (the dev set is the CLI's: the same holdout_split of the same seed)."""
    pytest.importorskip("torch")
    r = RUNS.seed002_torch(epochs=3, subset=SUBSET, threads=1)
    assert (r["train_images"], r["dev_images"]) == dev_split_sizes(data_dir)
    h = r["history"]
    assert r["epochs"] == 3 and len(h["val_loss"]) == 3
    assert falls(h["loss"])
    assert 1 <= r["best_epoch"] <= 3
    assert h["val_loss"][r["best_epoch"] - 1] == min(h["val_loss"])


@pytest.mark.slow
def test_the_pytorch_stopping_rule_is_xpnets(data_dir):
    """With lr 0 the dev loss never gets lower after epoch 1, so patience 2 stops the run after
    epoch 3 with epoch 1's weights: xpnet's rule (a strictly lower dev loss resets the wait)."""
    pytest.importorskip("torch")
    r = RUNS.seed002_torch(epochs=10, patience=2, lr=0.0, subset=SUBSET, threads=1)
    assert r["epochs"] == 3 and r["best_epoch"] == 1
    assert len(set(r["history"]["val_loss"])) == 1

