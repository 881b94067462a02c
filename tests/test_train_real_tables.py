"""Real tables through the command line, as real subprocesses: ``--id``, ``--drop``, text
categories, True/False columns, missing cells, text labels and ``--test-data``; predictions
with the ids passed through; one file that ``xpnet.load`` turns into the same model; honest
resumes (the data found by absolute path and checked by SHA-256) and honest summaries.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from cli_helpers import one_error_line, run_module, run_train
from test_model import patients

import xpnet

pd = pytest.importorskip("pandas")
FAST = ["--device", "cpu", "--epochs", "40", "--seed", "0"]


def predict(args, cwd):
    return run_module("xpnet.predict", args, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Training and test files (ids, a category, booleans, missing cells, text labels), rows
    to predict without labels, and the model trained on them with --id and --test-data."""
    d = tmp_path_factory.mktemp("real_table")
    df = patients(300, seed=3)
    df.iloc[:240].to_csv(d / "train.csv", index=False)
    df.iloc[240:].to_csv(d / "test.csv", index=False)
    rows = df.iloc[240:].drop(columns="diagnosis")
    rows.loc[rows.index[0], "color"] = "purple"  # a category never seen in training
    rows.to_csv(d / "rows.csv", index=False)
    result = run_train(["--data", "train.csv", "--target", "diagnosis", "--id", "patient_id",
                        "--drop", "noise", "--test-data", "test.csv", "--save", "runs/p.npz",
                        "--metrics-json", "m.json", *FAST], cwd=d, subset=None)
    assert result.returncode == 0, result.stderr
    return d, result, df


def test_the_run_announces_its_column_handling(trained):
    d, result, _ = trained
    out = result.stdout
    assert "data: train.csv: 240 rows, 2 classes, test set: test.csv (60 rows)" in out
    assert ("columns: 1 number, 1 boolean (member, as 1/0), 1 text (one-hot; categories "
            "color: 3) -> 5 inputs; id: patient_id; dropped: noise") in out
    assert "missing: " in out and "cells imputed from the training rows" in out
    assert "model: MLP([5, 100, 2]" in out
    metrics = json.loads((d / "m.json").read_text())
    assert metrics["classes"] == ["benign", "malignant"]
    assert sum(map(sum, metrics["confusion_matrix"])) == 60  # the --test-data rows
    # The labels follow a simple rule of the inputs: well past the majority class (~55%).
    assert metrics["test_accuracy"] >= 0.8


def test_predictions_pass_the_ids_through_and_equal_the_loaded_model(trained):
    d, _, df = trained
    result = predict(["runs/p.npz", "--data", "rows.csv"], d)
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["patient_id", "prediction", "p_benign", "p_malignant"]
    assert [row[0] for row in table[1:]] == df["patient_id"].iloc[240:].tolist()
    model = xpnet.load(d / "runs" / "p.npz", device="cpu")
    expected = model.predict(pd.read_csv(d / "rows.csv"))
    assert [row[1] for row in table[1:]] == expected.tolist()
    proba = model.predict_proba(pd.read_csv(d / "rows.csv"))
    # The CLI prints 6 significant digits.
    np.testing.assert_allclose(np.array([row[2:] for row in table[1:]], dtype=float), proba,
                               rtol=1e-5, atol=1e-6)


def test_resume_finds_its_data_from_any_folder_and_checks_it(trained, tmp_path):
    d, _, _ = trained
    shutil.copyfile(d / "runs" / "p.npz", tmp_path / "p.npz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_train(["--resume", "../p.npz", "--epochs", "42", "--device", "cpu"],
                       cwd=elsewhere, subset=None)
    assert result.returncode == 0, result.stderr
    assert "resumed from ../p.npz after epoch 40" in result.stdout


def test_resume_refuses_a_changed_file_and_takes_a_moved_copy(tmp_path):
    df = patients(200, seed=4)
    df.to_csv(tmp_path / "t.csv", index=False)
    first = run_train(["--data", "t.csv", "--target", "diagnosis", "--id", "patient_id",
                       "--save", "r.npz", "--epochs", "3", "--device", "cpu"], cwd=tmp_path,
                      subset=None)
    assert first.returncode == 0, first.stderr
    shutil.copyfile(tmp_path / "t.csv", tmp_path / "moved.csv")
    with open(tmp_path / "t.csv", "a") as f:
        f.write("p9999,50,red,True,0.1,benign\n")
    changed = run_train(["--resume", "r.npz", "--epochs", "4"], cwd=tmp_path, subset=None)
    assert changed.returncode == 1
    assert "t.csv has changed since the run in r.npz was trained on it" in \
        one_error_line(changed)
    other = run_train(["--resume", "r.npz", "--epochs", "4", "--data", "t.csv"], cwd=tmp_path,
                      subset=None)
    assert other.returncode == 1
    assert f"is not the file the run in r.npz was trained on ({tmp_path / 't.csv'})" in \
        one_error_line(other)
    moved = run_train(["--resume", "r.npz", "--epochs", "4", "--data", "moved.csv",
                       "--device", "cpu"], cwd=tmp_path, subset=None)
    assert moved.returncode == 0, moved.stderr
    (tmp_path / "moved.csv").unlink()
    (tmp_path / "t.csv").unlink()
    gone = run_train(["--resume", "r.npz", "--epochs", "4"], cwd=tmp_path, subset=None)
    assert "which does not exist; if it moved, pass --data NEW_PATH" in one_error_line(gone)


def test_without_a_dev_set_nothing_is_restored(tmp_path):
    """Early stopping on the training loss keeps the last weights (as scikit-learn does), and
    the summary says so: the tested epoch is the last one."""
    df = patients(200, seed=5)
    df.to_csv(tmp_path / "t.csv", index=False)
    result = run_train(["--data", "t.csv", "--target", "diagnosis", "--id", "patient_id",
                        "--device", "cpu", "--epochs", "400", "--patience", "2",
                        "--metrics-json", "m.json"], cwd=tmp_path, subset=None)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    last = metrics["epochs_run"]
    summary = result.stdout.strip().splitlines()[-1]
    assert "restored" not in summary
    if metrics["best_epoch"] == last:
        assert f"tested the weights of epoch {last}" in summary
    else:
        assert (f"tested the last epoch's weights (epoch {last}; last training loss "
                f"improvement of more than 0.0001 at epoch {metrics['best_epoch']})") in summary


@pytest.mark.parametrize("extra, code, words", [
    (["--id", "nope"], 1, "has no column 'nope' (--id); its columns are patient_id, age"),
    (["--drop", "age,zip"], 1, "has no column 'zip' (--drop)"),
    (["--drop", "diagnosis"], 2, "--drop names the target column 'diagnosis'"),
    (["--id", "patient_id", "--missing", "error"], 1, "is missing in row"),
    (["--id", "patient_id", "--test-data", "other.csv"], 1,
     "--test-data other.csv lacks noise the columns of t.csv"),
    # 160 rows: the training part, after 20% is held out as the test set
    ([], 1, "the text column 'patient_id' has 160 different values in 160 rows, too many to "
            "learn from as categories; leave it out with --drop patient_id"),
])
def test_bad_column_choices_are_one_line(tmp_path, extra, code, words):
    df = patients(200, seed=6)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.drop(columns="noise").to_csv(tmp_path / "other.csv", index=False)
    args = ["--data", "t.csv"] if "--dataset" not in extra else []
    result = run_train([*args, "--target", "diagnosis", *extra, "--device", "cpu",
                        "--epochs", "1"], cwd=tmp_path, subset=None)
    assert result.returncode == code, result.stdout
    assert words in one_error_line(result)


def test_an_image_flag_without_a_table_is_a_usage_error(tmp_path):
    result = run_train(["--drop", "x", "--epochs", "1"], cwd=tmp_path, subset=None)
    assert result.returncode == 2
    assert "--drop is for your own table (--data FILE)" in one_error_line(result)


def test_rows_whose_category_is_all_new_are_refused(trained, tmp_path):
    d, _, df = trained
    rows = df.iloc[:3].drop(columns="diagnosis").assign(color=["x", "y", "z"])
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = predict([d / "runs" / "p.npz", "--data", "new.csv"], tmp_path)
    assert result.returncode == 1
    assert "every value of the text column 'color' is one the model never saw" in \
        one_error_line(result, "xpnet.predict")


def test_regression_rows_come_back_in_units_with_ids(tmp_path):
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame({"house_id": [f"h{i}" for i in range(n)],
                       "rooms": rng.integers(1, 8, n).astype(float),
                       "area": rng.choice(["north", "south"], n)})
    df["price"] = 1000.0 * df["rooms"] + np.where(df["area"] == "north", 5000.0, 0.0) + 20000
    df.loc[[3, 7], "rooms"] = np.nan
    df.to_csv(tmp_path / "h.csv", index=False)
    result = run_train(["--data", "h.csv", "--target", "price", "--task", "regression", "--id",
                        "house_id", "--save", "h.npz", "--device", "cpu"], cwd=tmp_path,
                       subset=None)
    assert result.returncode == 0, result.stderr
    out = predict(["h.npz", "--data", "h.csv"], tmp_path)
    table = list(csv.reader(io.StringIO(out.stdout)))
    assert table[0] == ["house_id", "predicted_price"]
    values = np.array([float(r[1]) for r in table[1:]])
    model = xpnet.load(tmp_path / "h.npz", device="cpu")
    np.testing.assert_allclose(values, model.predict(df), rtol=1e-7)
    assert 20000 < np.median(values) < 32000  # the target's units, not standardised


def test_a_network_too_large_to_save_is_refused_before_training(tmp_path):
    """30,000 feature columns into 20,000 hidden units: 2.4 GB of float32 parameters, more
    than a checkpoint may hold; refused before the first epoch, not after it (issue 23,
    family 1)."""
    names = [f"c{j}" for j in range(30_000)]
    rows = [",".join(["label", *names])] + [",".join([str(i % 2), *("1" for _ in names)])
                                            for i in range(6)]
    (tmp_path / "wide.csv").write_text("\n".join(rows) + "\n")
    result = run_train(["--data", "wide.csv", "--hidden", "20000", "--device", "cpu",
                        "--test-fraction", "0.5"], cwd=tmp_path, subset=None)
    assert result.returncode == 2
    assert "would need more than the 2147483648 bytes of parameters a checkpoint may hold" in \
        one_error_line(result)
    assert "epoch" not in result.stdout
