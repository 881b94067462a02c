"""A training run from Python (xpnet/session.py): RunData's splits and encoding, the new
model's shape checks, the subset hook, and TrainingRun end to end, including a resume that
ends where a straight run does."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.backend import get_device
from xpnet.callbacks import Callback
from xpnet.recipes import DEFAULTS, fill_recipe
from xpnet.runs import ResumedRun
from xpnet.session import RunData, RunDataError, TrainingRun, subset_size


def write_table(path, n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.7)]
    with open(path, "w") as f:
        f.write("x0,x1,x2,kind\n")
        for row, label in zip(X, labels):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    return X, labels


def test_table_holds_out_a_stratified_test_part_and_splits_a_dev_set(tmp_path):
    _, labels = write_table(tmp_path / "t.csv")
    data = RunData.table(str(tmp_path / "t.csv"), target="kind", test_fraction=0.2, seed=0)
    assert data.test_source == "held out" and data.n_train + len(data.y_test) == 90
    assert sorted(set(data.y_test)) == ["a", "b", "c"]  # stratified: every class held out
    assert list(data.target.classes) == ["a", "b", "c"]
    np.testing.assert_array_equal(data.codes, data.target.encode(data.y_train))
    split = data.split_dev(0.25, seed=0)
    assert len(split.y) + len(split.y_dev) == data.n_train
    assert data.split_dev(0.0).X_dev is None


def test_a_test_file_needs_the_same_columns(tmp_path):
    write_table(tmp_path / "t.csv")
    (tmp_path / "bad.csv").write_text("x0,x1,kind\n1,2,a\n")
    with pytest.raises(RunDataError) as info:
        RunData.table(str(tmp_path / "t.csv"), target="kind", test_data=str(tmp_path / "bad.csv"))
    assert info.value.setting == "test_data" and not info.value.usage
    assert info.value.detail.startswith(f"{tmp_path / 'bad.csv'} lacks x2 the columns of ")
    assert str(info.value) == "test_data " + info.value.detail


def test_new_model_checks_the_layers_against_the_data(tmp_path):
    write_table(tmp_path / "t.csv")
    data = RunData.table(str(tmp_path / "t.csv"), target="kind")
    split = data.split_dev(0.0)
    model = data.new_model(split, [5], device="cpu", init="xavier")
    assert model.net.layer_sizes == [3, 5, 3] and model.inputs.n_inputs == 3
    with pytest.raises(RunDataError, match=r"^layers must start with 3 \(the inputs of t.csv\) "
                                           r"and end with 3 \(one output per class: 3\); got "
                                           r"3,4,2$") as info:
        data.new_model(split, layers=[3, 4, 2], device="cpu")
    assert info.value.usage
    arrays = data.device_arrays(model, split)
    assert arrays.X_train.shape == (data.n_train, 3) and arrays.n_dev == 0
    np.testing.assert_array_equal(arrays.y_test, model.target.encode(data.y_test))


def test_subset_keeps_the_first_rows_and_the_hook_is_checked(tmp_path):
    write_table(tmp_path / "t.csv")
    data = RunData.table(str(tmp_path / "t.csv"), target="kind")
    small = data.subset(12)
    assert small.n_train == 12 and len(small.y_test) == 2
    np.testing.assert_array_equal(small.y_train, data.y_train[:12])
    assert small.train.n_rows == 12 and data.n_train > 12  # the original is unchanged
    assert subset_size({}) is None and subset_size({"XPNET_MNIST_SUBSET": " 600 "}) == 600
    with pytest.raises(ValueError, match=r"whole number >= 60; got '59'"):
        subset_size({"XPNET_MNIST_SUBSET": "59"})


class Stop(Callback):
    def __init__(self, after):
        self.after = after

    def on_epoch_end(self, loop, record):
        if record["epoch"] == self.after:
            loop.history.interrupted = True
            return True
        return False


def settings_for(path, **changes):
    s = {**DEFAULTS, "dataset": None, "data": str(path), "target": "kind",
         "task": "classification", "test_data": None, "id": None, "drop": None,
         "hidden": None, "layers": None, "init": None, "l2": 0.0, "dropout": 0.0,
         "batch_norm": False, "lr": None, "schedule": None, "step_size": None,
         "epochs": 6, "patience": None, "dev_fraction": 0.2, "standardize": False,
         "dtype": "float64", "batch_size": 16}
    s.update(changes)
    return fill_recipe(s, given={"batch_size"})


def test_a_run_saved_after_three_epochs_and_resumed_ends_as_a_straight_run(tmp_path):
    write_table(tmp_path / "t.csv")
    device = get_device("cpu")
    straight = TrainingRun(settings_for(tmp_path / "t.csv"), device)
    straight.load()
    straight.build()
    straight.make_trainer()
    straight.fit()
    scores = straight.result()
    assert len(straight.trainer.history) == 6 and 0 <= scores.accuracy <= 1

    first = TrainingRun(settings_for(tmp_path / "t.csv"), device)
    first.load()
    first.build()
    first.make_trainer(callbacks=[Stop(3)])
    first.fit()
    assert first.result() is None  # interrupted: no test scores
    first.save(tmp_path / "r.npz")

    resumed = ResumedRun.read(str(tmp_path / "r.npz"), device)
    settings = settings_for(tmp_path / "t.csv")
    resumed.apply_settings(settings, given={"epochs"})
    run = TrainingRun(settings, device, resumed)
    run.load()
    run.build()
    assert run.make_trainer().epoch == 3
    run.fit()
    np.testing.assert_array_equal(run.model.net.flat.data, straight.model.net.flat.data)
    assert run.result().loss == scores.loss
    assert run.describe()[-1].startswith("train: ")
