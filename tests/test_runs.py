"""The run record (xpnet/runs.py): the source written by source_record, and verified_file,
which finds a table by its recorded path or a moved copy and checks its SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from xpnet.runs import RunRecord, RunRecordError, source_record, verified_file


def test_a_table_is_recorded_by_absolute_path_and_digest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    record = source_record(data="t.csv", target="label", test_fraction=0.2, id="a",
                           drop=["b"])
    assert record["data"] == str(tmp_path / "t.csv") and record["kind"] == "table"
    assert record["data_sha256"] == hashlib.sha256(b"a,label\n1,0\n").hexdigest()
    assert record["drop"] == ["b"] and record["test_data"] is None
    assert source_record(dataset="kmnist") == {"dataset": "kmnist", "data": None,
                                               "task": "classification", "kind": "image"}


def test_verified_file(tmp_path):
    (tmp_path / "t.csv").write_text("x\n")
    digest = hashlib.sha256(b"x\n").hexdigest()
    assert verified_file("r.npz", "--data", str(tmp_path / "t.csv"), digest) == \
        str(tmp_path / "t.csv")
    (tmp_path / "copy.csv").write_text("x\n")
    assert verified_file("r.npz", "--data", "gone.csv", digest,
                         str(tmp_path / "copy.csv")) == str(tmp_path / "copy.csv")
    with pytest.raises(RunRecordError, match="gone.csv, which does not exist; if it moved, "
                                             "pass --data NEW_PATH"):
        verified_file("r.npz", "--data", str(tmp_path / "gone.csv"), digest)
    (tmp_path / "t.csv").write_text("y\n")
    with pytest.raises(RunRecordError, match="has changed since the run in r.npz"):
        verified_file("r.npz", "--data", str(tmp_path / "t.csv"), digest)


def test_a_state_without_a_trainer_is_not_a_run():
    with pytest.raises(RunRecordError, match="holds a model but no run state"):
        RunRecord.read("m.npz", None, None, {"json": {"model": {}}, "arrays": {}})
    with pytest.raises(RunRecordError, match="holds no record of its training data"):
        RunRecord.read("m.npz", None, None, {"json": {"trainer": {}}, "arrays": {}})


# ------------------------------------------------------------------ settings of a run
def test_check_settings_names_keywords_or_flags():
    from xpnet.runs import RunSettingsError, check_settings

    ok = {"data": "t.csv", "target": "y", "layers": None, "hidden": [5], "schedule": "step",
          "step_size": 2, "task": "classification", "resume": None}
    check_settings(ok, given={"data"})
    with pytest.raises(RunSettingsError, match=r"^layers and hidden both give the hidden "
                                               r"sizes; give one of them \(hidden takes"):
        check_settings({**ok, "layers": [4, 5, 2]})
    with pytest.raises(RunSettingsError, match=r"^--step-size 2 sets the drops of --schedule "
                                               r"step; add --schedule step$"):
        check_settings({**ok, "schedule": "cosine"}, flags=True)
    with pytest.raises(RunSettingsError, match=r"^--id is for your own table \(--data FILE\)"):
        check_settings({**ok, "data": None, "id": "k"}, given={"id"}, flags=True)
    check_settings({**ok, "data": None, "id": "k", "resume": "r.npz"}, given={"id"})
    with pytest.raises(RunSettingsError, match="test_data and test_fraction both give"):
        check_settings({**ok, "test_data": "u.csv"}, given={"test_fraction"})


def test_setting_text():
    from xpnet.runs import setting_text

    assert [setting_text(v) for v in (None, True, False, [1, 2], 0.001, "x" * 50)] == \
        ["full", "on", "off", "1,2", "0.001", "x" * 37 + "..."]


def test_a_resumed_run_keeps_its_settings(tmp_path):
    import numpy as np

    from xpnet.model import Model
    from xpnet.network import MLP
    from xpnet.preprocessing import Scaler
    from xpnet.runs import ResumedRun, RunSettingsError, save_run
    from xpnet.schema import InputSchema
    from xpnet.targets import Target
    from xpnet.training import Trainer

    X = np.random.default_rng(0).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    net = MLP([2, 3, 2], device="cpu", seed=0)
    trainer = Trainer(net, optimizer="adam", lr=0.01, epochs=2, batch_size=10, seed=5)
    trainer.fit(X, y)
    model = Model(net, InputSchema.numeric(["a", "b"], Scaler("standard").fit(X)),
                  Target("classification", classes=[0, 1]))
    save_run(tmp_path / "r.npz", model, trainer, source=source_record(dataset="mnist"),
             dev_fraction=0.0, train_samples=30)
    run = ResumedRun.read(str(tmp_path / "r.npz"), "cpu")
    assert run.record.settings["seed"] == 5 and run.record.epochs_done == 2
    settings = {"lr": 0.5, "batch_size": 10, "epochs": 4}
    with pytest.raises(RunSettingsError, match=r"^lr 0.5 \(the run used 0.01\): a resumed run "
                                               r"keeps the settings of the run in "):
        run.apply_settings(dict(settings), given={"lr"})
    run.apply_settings(settings, given={"epochs"})
    assert settings["lr"] == 0.01 and settings["epochs"] == 4 and settings["seed"] == 5
    with pytest.raises(RunSettingsError, match=r"^--epochs 2: the run in .* has already trained "
                                               r"2 epochs; pass --epochs N with N > 2"):
        run.apply_settings({"epochs": None}, flags=True)
    resumed = run.trainer(epochs=4)
    assert resumed.epoch == 2 and resumed.seed == 5
    np.testing.assert_array_equal(resumed.optimizer.state_dict()["arrays"]["m/0.weight"],
                                  trainer.optimizer.state_dict()["arrays"]["m/0.weight"])
    with pytest.raises(RunRecordError, match="trained on 30 training samples but this one has "
                                             "29"):
        run.check_train_samples(29)
