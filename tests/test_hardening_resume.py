"""Honest resume and no silent wrong answers in the CLI (issue 11, families 3 and 4).

* A resumed run takes every setting that defines the run from its checkpoint (architecture,
  optimizer, learning rate, schedule, batch size, patience, dev fraction, scaling, seed, dtype),
  refuses an explicitly given flag that disagrees (exit 2, naming the flag), accepts one that
  agrees, and lets only ``--epochs`` (default: the run's own), the device and the outputs
  change. Resumed with no flags at all, it ends where a straight run with the original flags
  ends.
* Missing or damaged run-state entries are one-line errors (exit 1), never tracebacks.
* A blow-up in the last update exits 1 and writes nothing: neither the checkpoint (an older
  good one stays byte for byte) nor the metrics JSON, which is strict JSON whenever written.
* Whole-number flags are bounded (``--epochs`` with 400 digits is a usage error).

Real subprocesses on the verified MNIST files cut by ``XPNET_MNIST_SUBSET``; the conflicting
flag table calls ``xpnet.train.main`` in-process (each case fails before any data is read).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_same_model, epoch_numbers, one_error_line, run_train

import xpnet
import xpnet.train
from xpnet import checkpoint as ckpt

SUBSET = 1200
# Every setting away from its default (patience aside: a finished run with patience restores
# its best epoch at the end, so extending it is not comparable with a straight run).
CUSTOM = ["--layers", "784,24,10", "--activation", "tanh", "--init", "xavier", "--l2", "1e-4",
          "--dropout", "0.1", "--batch-norm", "--optimizer", "momentum", "--lr", "0.05",
          "--schedule", "step", "--batch-size", "200", "--dev-fraction", "0.2", "--standardize",
          "--seed", "7", "--dtype", "float64", "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume_settings")
    common = ["--data-dir", data_dir, "--quiet"]
    first = run_train([*CUSTOM, *common, "--epochs", 2, "--save", "two.npz"], cwd=d,
                      subset=SUBSET)
    assert first.returncode == 0, first.stderr
    shutil.copyfile(d / "two.npz", d / "two-copy.npz")
    # Only --epochs, plus two flags that agree with the run (accepted).
    resumed = run_train(["--resume", "two.npz", "--epochs", 3, "--lr", "0.05", "--optimizer",
                         "momentum", "--save", "resumed.npz", "--metrics-json", "m.json",
                         *common], cwd=d, subset=SUBSET)
    straight = run_train([*CUSTOM, *common, "--epochs", 3, "--save", "straight.npz"], cwd=d,
                         subset=SUBSET)
    return d, resumed, straight


@pytest.mark.slow
def test_resume_takes_every_setting_from_the_checkpoint(runs):
    d, resumed, straight = runs
    assert resumed.returncode == 0, resumed.stderr
    assert straight.returncode == 0, straight.stderr
    assert_same_model(d / "resumed.npz", d / "straight.npz")
    m = json.loads((d / "m.json").read_text())
    net, trainer = m["config"]["net"], m["config"]["trainer"]
    assert net == {"layer_sizes": [784, 24, 10], "activation": "tanh", "output": "softmax",
                   "init": "xavier", "l2": 1e-4, "dtype": "float64", "batch_norm": True,
                   "dropout": 0.1, "seed": 7}
    assert trainer["optimizer"] == "momentum" and trainer["schedule"]["kind"] == "step"
    assert trainer["schedule"]["lr"] == 0.05 and trainer["batch_size"] == 200
    assert trainer["seed"] == 7 and trainer["epochs"] == 3
    assert m["config"]["scaling"] == "standard" and m["config"]["dev_fraction"] == 0.2
    assert m["config"]["dtype"] == "float64"
    assert m["history"]["epoch"] == [1, 2, 3]


# flag, a value that disagrees with CUSTOM
CONFLICTS = [("--layers", "784,25,10"), ("--activation", "relu"), ("--init", "he"),
             ("--l2", "0"), ("--dropout", "0.3"), ("--optimizer", "adam"), ("--lr", "0.01"),
             ("--schedule", "cosine"), ("--batch-size", "full"), ("--patience", "2"),
             ("--dev-fraction", "0.1"), ("--seed", "8"), ("--dtype", "float32")]


@pytest.mark.slow
@pytest.mark.parametrize("flag, value", CONFLICTS, ids=[f for f, _ in CONFLICTS])
def test_a_conflicting_flag_is_a_usage_error_naming_it(runs, capsys, monkeypatch, flag, value):
    d, *_ = runs
    monkeypatch.chdir(d)
    code = xpnet.train.main(["--resume", "two.npz", "--epochs", "3", "--save", "two.npz",
                             flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"xpnet.train: error: {flag} ") and "(the run used " in err
    assert "\n" not in err
    assert (d / "two.npz").read_bytes() == (d / "two-copy.npz").read_bytes()


@pytest.mark.slow
def test_store_true_flags_conflict_when_the_run_did_not_use_them(data_dir, tmp_path, capsys,
                                                                 monkeypatch):
    plain = tmp_path / "plain.npz"
    result = run_train(["--layers", "784,16,10", "--epochs", 1, "--patience", 3, "--device",
                        "cpu", "--data-dir", data_dir, "--quiet", "--save", plain],
                       cwd=tmp_path, subset=600)
    assert result.returncode == 0, result.stderr
    monkeypatch.chdir(tmp_path)
    for flag in ("--batch-norm", "--standardize"):
        assert xpnet.train.main(["--resume", str(plain), "--epochs", "2", flag]) == 2
        err = capsys.readouterr().err
        assert f"{flag} on (the run used off)" in err
    # several at once are named together
    assert xpnet.train.main(["--resume", str(plain), "--epochs", "2", "--batch-norm",
                             "--lr", "0.5"]) == 2
    assert "--batch-norm on (the run used off); --lr 0.5 (the run used 0.004)" in \
        capsys.readouterr().err
    # and without flags the saved patience is used
    again = run_train(["--resume", plain, "--epochs", 2, "--data-dir", data_dir, "--quiet",
                       "--metrics-json", "m.json"], cwd=tmp_path, subset=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "m.json").read_text())["config"]["trainer"]["patience"] == 3


@pytest.mark.slow
def test_epochs_must_go_beyond_what_the_run_has_done(runs, capsys, monkeypatch):
    d, *_ = runs
    monkeypatch.chdir(d)
    assert xpnet.train.main(["--resume", "two.npz", "--epochs", "2"]) == 2
    assert "has already trained 2 epochs" in capsys.readouterr().err
    # without --epochs the run's own plan (2) is used: it has finished
    assert xpnet.train.main(["--resume", "two.npz"]) == 2
    assert "pass --epochs N with N > 2" in capsys.readouterr().err


def _damaged(src, dst, edit):
    net, state = ckpt.load_checkpoint(src, device="cpu")
    edit(state)
    return ckpt.save(net, dst, state)


def _drop(*keys):
    def edit(state):
        d = state["json"]
        for key in keys[:-1]:
            d = d[key]
        del d[keys[-1]]
    return edit


def _set(value, *keys):
    def edit(state):
        d = state["json"]
        for key in keys[:-1]:
            d = d[key]
        d[keys[-1]] = value
    return edit


def _drop_array(name):
    def edit(state):
        del state["arrays"][name]
    return edit


DAMAGE = {
    "no-epoch": (_drop("trainer", "epoch"), "lacks the run-state entry 'trainer.epoch'"),
    "no-seed": (_drop("trainer", "trainer", "seed"), "'trainer.trainer.seed'"),
    "no-model": (_drop("model"), "holds no record of its training data, so it cannot be"),
    "model-columns": (_set("x", "model", "inputs", "columns"), "record of the training data is "
                      "damaged"),
    "seed-text": (_set("seven", "trainer", "trainer", "seed"), "damaged run-state entry"),
    "lr-nan": (_set(float("nan"), "trainer", "trainer", "schedule", "lr"),
               "damaged run-state entry 'trainer.trainer.schedule.lr'"),
    "optimizer": (_set("lbfgs", "trainer", "trainer", "optimizer"), "unknown optimizer"),
    "momentum": (_set("fast", "trainer", "trainer", "momentum"), "damaged run-state settings"),
    "history": (_set(5, "trainer", "history"), "damaged run state"),
    "scaler-arrays": (_drop_array("model/inputs/offset"), "record of the training data is "
                      "damaged"),
    # wrong JSON types in the run record are one line too, never an AttributeError
    "model-type": (_set([1, 2], "model"), "holds no record of its training data"),
    "inputs-type": (_set(5, "model", "inputs"), "record of the training data is damaged"),
    "target-type": (_set(None, "model", "target"), "record of the training data is damaged"),
    "source-type": (_set("mnist", "run", "source"), "damaged run-state entry 'run.source'"),
    "trainer-type": (_set([], "trainer", "trainer"), "damaged run-state entry 'trainer.trainer'"),
    "subset": (_set({"dev_fraction": 0.2, "train_samples": 999}, "run"),
               "trained on 999 training samples but this one has 1200"),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_missing_or_damaged_run_state_is_one_line(runs, tmp_path, data_dir, kind):
    d, *_ = runs
    edit, words = DAMAGE[kind]
    bad = _damaged(d / "two.npz", tmp_path / "bad.npz", edit)
    before = bad.read_bytes()
    result = run_train(["--resume", bad, "--epochs", 3, "--data-dir", data_dir, "--save", bad],
                       cwd=tmp_path, subset=SUBSET)
    assert result.returncode == 1, result.stderr
    assert words in one_error_line(result)
    assert bad.read_bytes() == before


@pytest.mark.slow
def test_a_checkpoint_of_another_network_cannot_be_resumed(tmp_path):
    other = tmp_path / "other.npz"
    ckpt.save(xpnet.MLP([4, 3], output="sigmoid", device="cpu"), other,
              ckpt.nest_states(trainer={"json": {}, "arrays": {}}))
    result = run_train(["--resume", other, "--data-dir", tmp_path], cwd=tmp_path)
    assert result.returncode == 1
    assert "does not hold a model xpnet.train trains" in one_error_line(result)


@pytest.mark.slow
def test_a_v1_cli_checkpoint_resumes_with_its_own_settings(data_dir, tmp_path):
    v1 = Path(__file__).parent / "fixtures" / "checkpoint_v1" / "cli_mnist_bn_dropout.npz"
    shutil.copyfile(v1, tmp_path / "v1.npz")
    result = run_train(["--resume", "v1.npz", "--epochs", 3, "--data-dir", data_dir,
                        "--metrics-json", "m.json"], cwd=tmp_path, subset=600)
    assert result.returncode == 0, result.stderr
    assert "does not record its --dev-fraction" in result.stdout
    assert "resumed from v1.npz after epoch 2" in result.stdout
    assert epoch_numbers(result.stdout) == [3]
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["config"]["trainer"]["batch_size"] == 64
    assert m["config"]["scaling"] == "standard" and m["config"]["net"]["dropout"] == 0.2


# ------------------------------------------------------------------------------- divergence
def _strict(text):
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
@pytest.mark.parametrize("lr, words", [("1e30", "test loss of nan"),
                                       ("1e300", "final parameters are not finite")])
def test_a_blow_up_in_the_last_update_writes_nothing(data_dir, tmp_path, lr, words):
    gd = ["--layers", "784,16,10", "--device", "cpu", "--optimizer", "gd", "--batch-size",
          "full", "--dev-fraction", "0", "--epochs", 1, "--data-dir", data_dir,
          "--save", "ck.npz", "--metrics-json", "m.json"]
    good = run_train([*gd, "--lr", "0.1"], cwd=tmp_path, subset=600)
    assert good.returncode == 0, good.stderr
    metrics = _strict((tmp_path / "m.json").read_text())
    assert metrics["history"]["val_loss"] == [None]  # no dev set: null, never NaN
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    bad = run_train([*gd, "--lr", lr], cwd=tmp_path, subset=600)
    assert bad.returncode == 1, bad.stderr
    line = one_error_line(bad)
    assert "diverged" in line and words in line and "ck.npz was not written" in line
    assert "test accuracy" not in bad.stdout
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert all(np.isfinite(a).all() for a in ckpt.load(tmp_path / "ck.npz",
                                                       device="cpu").parameters())


# ------------------------------------------------------------------------------- bounded flags
BIG = "1" + "0" * 399


@pytest.mark.parametrize("args, flag", [
    (["--epochs", BIG], "--epochs"), (["--seed", BIG], "--seed"),
    (["--patience", BIG], "--patience"), (["--batch-size", BIG], "--batch-size"),
    (["--layers", "784,100000000,10"], "--layers"), (["--epochs", "1" * 5000], "--epochs"),
], ids=["epochs", "seed", "patience", "batch-size", "layers", "epochs-5000-digits"])
def test_huge_numbers_are_usage_errors(tmp_path, args, flag):
    result = run_train([*args, "--data-dir", tmp_path / "nowhere"], cwd=tmp_path, subset=None)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert flag in line and len(line) < 300
