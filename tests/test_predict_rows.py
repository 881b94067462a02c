"""``python -m xpnet.predict MODEL --data ROWS [--out FILE]``: predictions for rows of a table
with a model trained by ``python -m xpnet.train --data``, as real subprocesses on scikit-learn's
bundled iris (text labels) and diabetes (regression) data written to CSV inside the tests.

Contract: the output is CSV (stdout, or ``--out`` written atomically) with the original labels
and one probability column per class, or the predicted values in the target's units; the
feature columns are matched by name; mistakes are one-line errors.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from cli_helpers import one_error_line, run_module, run_train, scaler_of

import xpnet
from xpnet import checkpoint

datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (the test extra) "
                               "provides the bundled datasets these tests train on")


def write_csv(path, X, y, names, target):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([target, *names])
        for label, row in zip(y, X):
            w.writerow([label, *(repr(float(v)) for v in row)])


def predict(args, cwd):
    return run_module("xpnet.predict", args, cwd=cwd)


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("iris")
    bunch = datasets.load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    write_csv(d / "iris.csv", bunch.data, bunch.target_names[bunch.target], names, "species")
    result = run_train(["--data", "iris.csv", "--target", "species", "--device", "cpu",
                        "--save", "iris.npz", "--quiet"], cwd=d, subset=None)
    assert result.returncode == 0, result.stderr
    return d, bunch, names


def test_rows_get_their_original_labels_and_probabilities(iris_model):
    d, bunch, names = iris_model
    # the rows to predict: the features only, in another column order
    order = [3, 0, 2, 1]
    with open(d / "rows.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([names[j] for j in order])
        w.writerows(bunch.data[:, order].tolist())
    result = predict(["iris.npz", "--data", "rows.csv"], d)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    labels = [r[0] for r in rows[1:]]
    proba = np.array([[float(p) for p in r[1:]] for r in rows[1:]])
    assert len(labels) == 150 and set(labels) <= {"setosa", "versicolor", "virginica"}
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)  # 6 significant digits
    assert [bunch.target_names[i] for i in proba.argmax(axis=1)] == labels
    # the same probabilities as the model in Python, on the same scaling
    net, state = checkpoint.load_checkpoint(d / "iris.npz", device="cpu")
    expected = net.predict_proba(scaler_of(net, state).transform(bunch.data, net.dtype))
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    assert np.mean(np.array(labels) == bunch.target_names[bunch.target]) > 0.9


def test_out_writes_a_csv_and_the_target_column_is_ignored(iris_model):
    d, _, _ = iris_model
    result = predict(["iris.npz", "--data", "iris.csv", "--out", "preds/iris.csv"], d)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote 150 predictions to preds/iris.csv\n"
    rows = list(csv.reader(open(d / "preds" / "iris.csv")))
    assert len(rows) == 151 and rows[0][0] == "prediction"


def test_missing_feature_columns_are_named(iris_model, tmp_path):
    d, _, _ = iris_model
    (tmp_path / "few.csv").write_text("sepal_length,petal_width\n5.1,0.2\n")
    result = predict([d / "iris.npz", "--data", "few.csv"], tmp_path)
    assert result.returncode == 1
    line = one_error_line(result, "xpnet.predict")
    assert "lacks 2 of the 4 feature columns" in line and "sepal_width" in line


def test_out_needs_data_and_must_not_overwrite_an_input(iris_model):
    d, _, _ = iris_model
    result = predict(["iris.npz", "--test-index", "1", "--out", "x.csv"], d)
    assert result.returncode == 2 and "--out writes the predictions for --data" in \
        one_error_line(result, "xpnet.predict")
    result = predict(["iris.npz", "--data", "iris.csv", "--out", "iris.csv"], d)
    assert result.returncode == 2 and "is an input of this run" in \
        one_error_line(result, "xpnet.predict")


def test_an_image_model_cannot_predict_rows(tmp_path):
    checkpoint.save(xpnet.MLP([784, 10], device="cpu"), tmp_path / "m.npz")
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    result = predict(["m.npz", "--data", "rows.csv"], tmp_path)
    assert result.returncode == 1
    assert "not a model trained on a table" in one_error_line(result, "xpnet.predict")


def test_regression_rows_come_back_in_target_units(tmp_path):
    bunch = datasets.load_diabetes()
    names = list(bunch.feature_names)
    write_csv(tmp_path / "d.csv", bunch.data, bunch.target, names, "progression")
    result = run_train(["--data", "d.csv", "--target", "progression", "--task", "regression",
                        "--device", "cpu", "--save", "d.npz", "--quiet"], cwd=tmp_path,
                       subset=None)
    assert result.returncode == 0, result.stderr
    out = predict(["d.npz", "--data", "d.csv"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["predicted_progression"]
    values = np.array([float(r[0]) for r in rows[1:]])
    # in the target's units (25..346), not standardised: the mean is near the target's mean
    assert abs(values.mean() - bunch.target.mean()) < 0.25 * bunch.target.std()
    assert np.corrcoef(values, bunch.target)[0, 1] > 0.6


def test_a_damaged_model_record_is_one_line(tmp_path):
    """A checkpoint whose schema is damaged (here its columns' JSON) cannot predict, and says
    so in one line instead of a traceback."""
    import json

    from xpnet.checkpoint import META_KEY, meta_text

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    xpnet.Model.fit({"a": X[:, 0], "b": X[:, 1]}, (X[:, 0] > 0).astype(int), epochs=1,
                    device="cpu").save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(meta_text(arrays[META_KEY]))
    meta["training"]["model"]["inputs"]["columns"] = [{"name": 5}]
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    result = predict(["bad.npz", "--data", "rows.csv"], tmp_path)
    assert result.returncode == 1
    assert "record of the training data is damaged" in one_error_line(result, "xpnet.predict")
