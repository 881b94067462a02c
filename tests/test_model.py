"""The model that carries its own data handling (xpnet/model.py): one call to fit a table with
text labels, predictions in the user's terms, one file that loads back as the same model, and
the checkpoints written before the model record still loading as models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import checkpoint
from xpnet.model import Model

pd = pytest.importorskip("pandas")
FIXTURES = Path(__file__).parent / "fixtures" / "checkpoint_v1"


def patients(n=240, seed=0):
    """A table as users have them: an id, a text category, a True/False column, numbers with
    missing cells and text labels that depend on them."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 12, n)
    color = rng.choice(["red", "green", "blue"], n)
    member = rng.choice(["True", "False"], n)
    risk = (age - 50) / 12 + (color == "red") * 1.5 - (member == "True") * 1.0
    df = pd.DataFrame({"patient_id": [f"p{i:04d}" for i in range(n)], "age": age,
                       "color": color, "member": member, "noise": rng.normal(0, 1, n),
                       "diagnosis": np.where(risk > 0.2, "malignant", "benign")})
    df.loc[rng.choice(n, 12, replace=False), "age"] = np.nan
    df.loc[rng.choice(n, 12, replace=False), "color"] = None
    return df


@pytest.fixture(scope="module")
def fitted():
    df = patients()
    model = Model.fit(df, target="diagnosis", id="patient_id", device="cpu", epochs=60,
                      seed=0)
    return df, model


def test_one_call_fits_a_table_with_text_labels(fitted):
    df, model = fitted
    assert model.classes_.tolist() == ["benign", "malignant"]
    assert model.feature_names_in_.tolist() == ["age", "color", "member", "noise"]
    assert model.id_column == "patient_id" and model.task == "classification"
    pred = model.predict(df)
    assert set(pred) <= {"benign", "malignant"}
    # The labels follow a simple rule of the inputs; the MLP learns it well past chance (the
    # majority class is about 55%): 0.85 is a floor only a broken pipeline misses.
    assert model.score(df, df["diagnosis"]) >= 0.85
    proba = model.predict_proba(df)
    assert proba.shape == (len(df), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], pred)
    assert len(model.history) >= 1


def test_predict_takes_columns_in_any_order_and_the_target_present(fitted):
    df, model = fitted
    reordered = df[["noise", "diagnosis", "member", "patient_id", "color", "age"]]
    np.testing.assert_array_equal(model.predict(reordered), model.predict(df))
    features = df[["age", "color", "member", "noise"]]
    np.testing.assert_array_equal(model.predict(features.to_numpy(dtype=object)),
                                  model.predict(df))


def test_save_and_load_give_back_the_same_model(fitted, tmp_path):
    df, model = fitted
    model.save(tmp_path / "m.npz")
    again = xpnet.load(tmp_path / "m.npz", device="cpu")
    assert isinstance(again, Model)
    np.testing.assert_array_equal(again.predict(df), model.predict(df))
    np.testing.assert_array_equal(again.predict_proba(df), model.predict_proba(df))
    assert again.inputs.id == "patient_id" and again.target.name == "diagnosis"
    xpnet.save(model, tmp_path / "m2.npz")  # xpnet.save of a model saves the model
    assert isinstance(xpnet.load(tmp_path / "m2.npz", device="cpu"), Model)


def test_a_bare_network_loads_as_a_network(tmp_path):
    net = xpnet.MLP([3, 2], device="cpu", seed=0)
    xpnet.save(net, tmp_path / "net.npz")
    loaded = xpnet.load(tmp_path / "net.npz", device="cpu")
    assert isinstance(loaded, xpnet.Sequential)


def test_regression_predicts_in_the_targets_units():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 400)
    df = pd.DataFrame({"x": x, "kind": rng.choice(["a", "b"], 400)})
    y = 200.0 + 30.0 * x + np.where(df["kind"] == "a", 50.0, 0.0)
    model = Model.fit(df, y, task="regression", device="cpu", epochs=200, seed=0)
    assert model.classes_ is None and model.task == "regression"
    pred = model.predict(df)
    assert pred.dtype == np.float64
    # In the target's units (200-550), not standardised: R^2 near 1 on this noiseless line.
    assert model.score(df, y) > 0.95 and 150 < pred.mean() < 600
    raw = model.net.forward(model.transform(df)).reshape(-1)
    np.testing.assert_allclose(pred, raw * model.target.scale + model.target.mean, rtol=1e-6)


def test_the_record_is_checked(fitted, tmp_path):
    _, model = fitted
    model.save(tmp_path / "m.npz")
    net, state = checkpoint.load_checkpoint(tmp_path / "m.npz", device="cpu")
    state["json"]["model"]["target"]["classes"] = "benign"
    with pytest.raises(ValueError, match="record of the training data is damaged"):
        Model.from_state(net, state)
    state["json"]["model"]["format"] = 99
    with pytest.raises(ValueError, match="format 99, which this xpnet does not read"):
        Model.from_state(net, state)


def test_a_v1_cli_checkpoint_loads_as_an_mnist_model():
    model = xpnet.load(FIXTURES / "cli_mnist_bn_dropout.npz", device="cpu")
    assert isinstance(model, Model)
    assert model.classes_.tolist() == list(range(10)) and len(model.feature_names_in_) == 784
    pixels = np.zeros((2, 784), dtype=np.uint8)
    pixels[1, 300:400] = 255
    expected = model.net.predict_proba(model.inputs.scaler.transform(pixels, model.net.dtype))
    np.testing.assert_allclose(model.predict_proba(pixels), expected, rtol=1e-6)


def test_v1_networks_of_other_heads_stay_networks():
    for name in ("sigmoid_l2", "identity_leaky", "plain_float64"):
        assert isinstance(xpnet.load(FIXTURES / f"{name}.npz", device="cpu"), xpnet.Sequential)


def test_the_network_must_fit_the_schema_and_target(fitted):
    _, model = fitted
    with pytest.raises(ValueError, match="the network takes 7 inputs but the schema gives"):
        Model(xpnet.MLP([7, 2], device="cpu"), model.inputs, model.target)
    with pytest.raises(ValueError, match="needs 2 softmax outputs"):
        Model(xpnet.MLP([model.inputs.n_inputs, 1], output="identity", device="cpu"),
              model.inputs, model.target)
