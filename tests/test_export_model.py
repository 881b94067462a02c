"""Exporting an :class:`xpnet.Model` keeps its meaning: raw table rows in, the user's labels (or
values in the target's units) out, with onnxruntime as the oracle.

The table has a text id column (kept out), a text category (with a space in its name, so the
graph input is renamed), a column of "True"/"False" strings (a boolean), a pandas bool column (a
number 0/1, as :func:`xpnet.data.as_frame` reads it), a number column with missing cells, and
text labels. New rows hold missing cells of every kind and a category never seen in training.

Tolerances: the graph computes in float32 (the input is float32; the scaling, the Gemms and the
softmax run in onnxruntime's own order of summation), while xpnet scales in float64 and runs the
network in float32 with NumPy's order. Both are float32 networks, so their outputs agree to a few
float32 rounding steps (eps 6e-8) per layer: ``probabilities`` to ``atol=1e-5`` (two orders above
what is observed, ~1e-7), ``prediction`` to ``rtol=1e-5`` of the value plus ``1e-5`` of the
target's scale (its output is standardised, then ``* scale + mean``). ``label`` must equal
``model.predict`` exactly; every test row's top two probabilities are checked to differ by far
more than the tolerance, so that equality is not luck.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import xpnet
from xpnet import export as export_module
from xpnet.export import load_model, load_safetensors, main
from xpnet.schema import ColumnSpec, InputSchema
from xpnet.targets import Target

onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported model "
                                                "(pip install -e '.[test]')")
pd = pytest.importorskip("pandas", reason="the tests build their tables with pandas")

PROBA_ATOL = 1e-5
PROG = "xpnet.export"


# ------------------------------------------------------------------------------- data
def table(n=160, seed=0):
    """Training rows: id, category (with missing cells), True/False text, a pandas bool,
    a number with missing cells, and text labels that depend on them."""
    rng = np.random.default_rng(seed)
    blood = rng.choice(["A", "B", "O"], n).astype(object)
    blood[rng.random(n) < 0.1] = None
    smoker = rng.choice(["True", "False"], n)
    insured = rng.random(n) < 0.4
    age = rng.normal(45, 12, n)
    score = (age - 45) / 12 + (smoker == "True") - 0.5 * insured + (blood == "O")
    age[rng.random(n) < 0.15] = np.nan
    outcome = np.where(score > 0.8, "poor", np.where(score > -0.3, "fair", "good"))
    return pd.DataFrame({"patient id": [f"p{i:03d}" for i in range(n)], "blood type": blood,
                         "smoker": smoker, "insured": insured, "age": age,
                         "outcome": outcome})


def new_rows():
    """Rows to predict: every kind of missing cell, an unseen category ("AB"), and no target."""
    return pd.DataFrame({
        "patient id": ["n1", "n2", "n3", "n4", "n5", "n6", "n7"],
        "blood type": ["A", None, "AB", "O", "B", "O", None],
        "smoker": ["True", "False", None, "False", "True", None, "True"],
        "insured": [True, False, True, False, False, True, False],
        "age": [30.0, np.nan, 61.5, 44.0, np.nan, 72.0, 18.0],
    })


@pytest.fixture(scope="module")
def classifier():
    return xpnet.Model.fit(table(), target="outcome", id="patient id", epochs=3, seed=0,
                           device="cpu")


@pytest.fixture(scope="module")
def regressor():
    df = table(seed=1)
    df["cost"] = 2000.0 + 300.0 * np.nan_to_num(df["age"] - 45) / 12 \
        + 500.0 * (df["smoker"] == "True")
    return xpnet.Model.fit(df.drop(columns=["outcome"]), target="cost", id="patient id",
                           task="regression", batch_norm=True, dropout=0.1, epochs=3, seed=0,
                           device="cpu")  # batch norm: folded into the Gemm, also for a model


# ------------------------------------------------------------------------------- onnxruntime
def session_of(model_or_path):
    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") \
        else str(model_or_path)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def onnx_feeds(session, rows):
    """The graph's inputs for the DataFrame ``rows``, read from the model's own metadata:
    ``input`` holds the number/boolean columns (booleans 1/0, NaN missing), each text column
    its own string input ("" missing)."""
    record = json.loads(session.get_modelmeta().custom_metadata_map["model"])
    kinds = {c["name"]: c["kind"] for c in record["inputs"]["columns"]}
    feeds = {}
    for name, columns in record["onnx_inputs"].items():
        if isinstance(columns, list):
            block = [[np.nan if v is None or v != v else
                      float(v.lower() == "true") if kinds[c] == "boolean" and isinstance(v, str)
                      else float(v) for v in rows[c]] for c in columns]
            feeds[name] = np.array(block, dtype=np.float32).T.reshape(len(rows), len(columns))
        else:
            feeds[name] = np.array([["" if v is None or v != v else str(v)]
                                    for v in rows[columns]], dtype=object)
    return feeds


def decided_rows(proba):
    """The rows whose top two probabilities differ by far more than the tolerance: their
    label cannot depend on float32 rounding."""
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2] > 20 * PROBA_ATOL


def assert_labels_decided(proba):
    assert decided_rows(proba).all(), np.sort(proba, axis=1)


# ------------------------------------------------------------------------------- ONNX
def test_classifier_onnx_takes_raw_rows(classifier, tmp_path):
    path = xpnet.export(classifier, tmp_path / "outcome.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {(o.domain or "", o.version) for o in proto.opset_import} == {("", 13),
                                                                         ("ai.onnx.ml", 2)}
    session = session_of(path)
    ins = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    assert ins == [("input", "tensor(float)", ["batch", 3]),
                   ("blood_type", "tensor(string)", ["batch", 1])]
    outs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    assert outs == [("label", "tensor(string)", ["batch"]),
                    ("probabilities", "tensor(float)", ["batch", 3])]
    meta = session.get_modelmeta().custom_metadata_map
    record = json.loads(meta["model"])
    assert record["onnx_inputs"] == {"input": ["smoker", "insured", "age"],
                                     "blood_type": "blood type"}
    assert record["target"] == {"task": "classification", "name": "outcome",
                                "classes": ["fair", "good", "poor"]}
    assert record["inputs"]["id"] == "patient id"
    assert [c["kind"] for c in record["inputs"]["columns"]] == ["category", "boolean", "number",
                                                                "number"]
    assert record["input_names"] == list(classifier.inputs.input_names)
    assert json.loads(meta["classes"]) == ["fair", "good", "poor"]
    assert "scaler" not in meta  # it scales only the number block: the record has it
    assert json.loads(meta["config"]) == classifier.net.config()

    rows = new_rows()
    label, proba = session.run(None, onnx_feeds(session, rows))
    expected = classifier.predict_proba(rows)
    assert proba.dtype == np.float32 and proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=PROBA_ATOL)
    assert_labels_decided(expected)
    assert label.dtype == object and label.tolist() == classifier.predict(rows).tolist()
    # The training rows too (their missing cells were imputed in training).
    train = table()
    label, proba = session.run(None, onnx_feeds(session, train))
    np.testing.assert_allclose(proba, classifier.predict_proba(train), rtol=0, atol=PROBA_ATOL)
    decided = decided_rows(proba)
    assert decided.mean() > 0.9
    assert label[decided].tolist() == classifier.predict(train)[decided].tolist()


def test_missing_cells_mean_what_they_mean_in_xpnet(classifier):
    """A missing number is its training mean, a missing boolean and a missing category the most
    frequent value; every missing-text marker as_frame knows is missing; an unseen category is
    none of them."""
    session = session_of(export_module.to_onnx(classifier))
    spec = {c.name: c for c in classifier.inputs.columns}
    filled = pd.DataFrame({
        "blood type": [spec["blood type"].fill] * 4 + ["AB"],
        "smoker": ["True" if spec["smoker"].fill else "False", "True", "True", "True", "True"],
        "insured": [True] * 5, "age": [spec["age"].fill, 40.0, 40.0, 40.0, 40.0]})
    holes = filled.copy()
    holes.loc[0, "smoker"], holes.loc[0, "age"] = None, np.nan
    feeds = onnx_feeds(session, holes)
    feeds["blood_type"][:4, 0] = ["", "NA", "null", "NaN"]
    feeds["blood_type"][4, 0] = "AB"
    _, proba = session.run(None, feeds)
    np.testing.assert_allclose(proba, classifier.predict_proba(filled), rtol=0, atol=PROBA_ATOL)
    unseen = filled.iloc[[4, 0]].assign(**{"blood type": ["never seen", "A"]})
    np.testing.assert_allclose(proba[4], classifier.predict_proba(unseen)[0], atol=PROBA_ATOL)


def test_regression_onnx_predicts_in_target_units(regressor, tmp_path):
    target = regressor.target
    assert target.mean > 1000  # the units are far from the standardised output
    session = session_of(xpnet.export(regressor, tmp_path / "cost.onnx"))
    assert [(o.name, o.type, o.shape) for o in session.get_outputs()] == \
        [("prediction", "tensor(float)", ["batch", 1])]
    rows = new_rows()
    (prediction,) = session.run(None, onnx_feeds(session, rows))
    assert prediction.dtype == np.float32 and prediction.shape == (len(rows), 1)
    np.testing.assert_allclose(prediction[:, 0], regressor.predict(rows), rtol=1e-5,
                               atol=1e-5 * target.scale)
    record = json.loads(session.get_modelmeta().custom_metadata_map["model"])
    assert record["target"] == {"task": "regression", "name": "cost", "mean": target.mean,
                                "scale": target.scale}
    assert "classes" not in session.get_modelmeta().custom_metadata_map


@pytest.mark.parametrize("classes, dtype", [
    ([3, 7, 11], np.int64), ([0.5, 1, 2.25], np.float64), (["low", 2, "high"], object),
], ids=["int", "float", "mixed"])
def test_label_types(classes, dtype):
    """``label`` is what ``model.predict`` returns: int64 for integer classes, float64 when
    one is fractional, else the labels' text."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2))
    inputs = InputSchema.fit(pd.DataFrame(X, columns=["a", "b"]))
    net = xpnet.MLP([2, 5, 3], device="cpu", seed=1)
    model = xpnet.Model(net, inputs, Target("classification", classes=classes))
    session = session_of(export_module.to_onnx(model))
    label, proba = session.run(None, {"input": X.astype(np.float32)})
    expected = model.predict(pd.DataFrame(X, columns=["a", "b"]))
    assert label.dtype == dtype and label.shape == (len(X),)
    decided = decided_rows(proba)
    assert decided.mean() > 0.8
    assert label[decided].tolist() == expected[decided].tolist()


def test_missing_error_policy_propagates_nan():
    """With missing="error" there is no imputer: a NaN number or a missing text cell makes its
    row's probabilities NaN (model.predict would refuse the row), the other rows are intact."""
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=60), "kind": rng.choice(["u", "v"], 60),
                       "y": rng.choice([0, 1], 60)})
    model = xpnet.Model.fit(df, target="y", missing="error", epochs=2, seed=0, device="cpu")
    proto = export_module.to_onnx(model)
    ops = [n.op_type for n in proto.graph.node]
    assert "Imputer" not in ops
    session = session_of(proto)
    feeds = {"input": np.array([[0.3], [np.nan], [0.1]], np.float32),
             "kind": np.array([["u"], ["v"], [""]], dtype=object)}
    label, proba = session.run(None, feeds)
    assert label.dtype == np.int64
    assert np.isnan(proba[1:]).all() and np.isfinite(proba[0]).all()
    np.testing.assert_allclose(proba[0], model.predict_proba(
        pd.DataFrame({"x": [0.3], "kind": ["u"]}))[0], atol=PROBA_ATOL)


def test_text_only_schema_and_graph_input_names():
    """Without number columns the graph has no ``input``; text columns become identifiers,
    distinct from the graph's own names, and the metadata maps them back."""
    rng = np.random.default_rng(6)
    n = 80
    df = pd.DataFrame({"input": rng.choice(["p", "q", "r"], n),
                       "2nd choice": rng.choice(["x", "y"], n),
                       "label": rng.choice(["s", "t"], n),
                       "label_2": rng.choice(["m", "n"], n),
                       "target": rng.choice(["yes", "no"], n)})
    model = xpnet.Model.fit(df, target="target", epochs=2, seed=0, device="cpu")
    session = session_of(export_module.to_onnx(model))
    names = [i.name for i in session.get_inputs()]
    assert names == ["input_2", "_2nd_choice", "label_3", "label_2"]
    record = json.loads(session.get_modelmeta().custom_metadata_map["model"])
    assert record["onnx_inputs"] == {"input_2": "input", "_2nd_choice": "2nd choice",
                                     "label_3": "label", "label_2": "label_2"}
    rows = df.drop(columns=["target"]).head(12)
    label, proba = session.run(None, onnx_feeds(session, rows))
    np.testing.assert_allclose(proba, model.predict_proba(rows), atol=PROBA_ATOL)
    decided = decided_rows(proba)
    assert label[decided].tolist() == model.predict(rows)[decided].tolist()


def test_what_the_graph_cannot_express_is_refused(classifier, tmp_path):
    with pytest.raises(TypeError, match="without scaler= and classes="):
        xpnet.export(classifier, tmp_path / "m.onnx", scaler=classifier.inputs.scaler)
    with pytest.raises(TypeError, match="without scaler= and classes="):
        xpnet.export(classifier, tmp_path / "m.safetensors", classes=["a", "b", "c"])
    X = np.random.default_rng(0).normal(size=(10, 2))
    inputs = InputSchema.fit(pd.DataFrame(X, columns=["a", "b"]))
    huge = xpnet.Model(xpnet.MLP([2, 2], device="cpu"), inputs,
                       Target("classification", classes=[2**70, 1]))
    with pytest.raises(ValueError, match="no ONNX tensor holds") as err:
        xpnet.export(huge, tmp_path / "m.onnx")
    assert "\n" not in str(err.value)
    odd = xpnet.Model(xpnet.MLP([2, 2], device="cpu"), inputs,
                      Target("classification", classes=[0, 1]))
    odd.inputs = InputSchema([ColumnSpec("a", "number", 0.0), ColumnSpec("b", "date", 0.0)],
                             inputs.scaler)
    with pytest.raises(ValueError, match=r"column 'b' is of kind 'date'"):
        xpnet.export(odd, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("which", ["classifier", "regressor"])
def test_safetensors_round_trip(which, request, tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    model = request.getfixturevalue(which)
    path = xpnet.export(model, tmp_path / "model.safetensors")
    assert set(st.load_file(str(path))) == set(model.net.state_dict())  # tensors only
    again = load_model(path, device="cpu")
    assert isinstance(again, xpnet.Model)
    assert [c.to_json() for c in again.inputs.columns] == \
        [c.to_json() for c in model.inputs.columns]
    assert again.inputs.id == "patient id" and again.target.state() == model.target.state()
    np.testing.assert_array_equal(again.inputs.scaler.offset, model.inputs.scaler.offset)
    np.testing.assert_array_equal(again.inputs.scaler.scale, model.inputs.scaler.scale)
    rows = new_rows()
    np.testing.assert_array_equal(again.predict(rows), model.predict(rows))
    if model.target.is_classifier:
        np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    net, scaler, classes = load_safetensors(path, device="cpu")
    assert scaler is None  # the scaler covers only the number block of a table with text
    assert classes == (model.target.classes if model.target.is_classifier else None)
    assert net.config() == model.net.config()


def test_load_model_refuses_bare_networks_and_damaged_records(tmp_path, classifier):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    bare = xpnet.export(xpnet.MLP([3, 2], device="cpu"), tmp_path / "bare.safetensors")
    with pytest.raises(ValueError, match="holds a bare network.*load_safetensors"):
        load_model(bare)
    path = xpnet.export(classifier, tmp_path / "model.safetensors")
    tensors = st.load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    record = json.loads(meta["model"])
    record["inputs"]["offset"] = [1.0]  # the wrong length for three number columns
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(st.save(tensors, metadata={**meta, "model": json.dumps(record)}))
    with pytest.raises(ValueError, match="damaged model record"):
        load_model(damaged)


@pytest.mark.parametrize("sizes, tensors, words", [
    ([60000, 60000, 10], {"0.weight": (1, 1)}, "more than the"),
    ([20000, 20000], {"0.weight": (2, 2), "0.bias": (2,)}, "of shape (2, 2), but its network "
                                                             "config needs (20000, 20000)"),
    ([20000, 20000], {"0.bias": (2,)}, "lacks the tensor '0.weight'"),
    ([2, 2], {"0.weight": (2, 2), "0.bias": (2,), "7.weight": (3,)}, "does not declare"),
], ids=["over-cap", "shape", "missing", "extra"])
def test_crafted_safetensors_are_refused_before_building(sizes, tensors, words, tmp_path,
                                                         monkeypatch):
    """A tiny file declaring a large network is refused from its header: nothing is built."""
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    config = xpnet.MLP([2, 2], device="cpu").config() | {"layer_sizes": sizes}
    meta = {"format": "xpnet", "format_version": "1", "architecture": "MLP",
            "config": json.dumps(config), "model": "{}"}
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(st.save({k: np.zeros(s, np.float32) for k, s in tensors.items()},
                             metadata=meta))
    assert path.stat().st_size < 1000

    def never(*args, **kwargs):
        raise AssertionError("the network was built before its tensors were checked")

    monkeypatch.setattr(export_module, "MLP", never)
    for load in (load_safetensors, load_model):
        with pytest.raises(ValueError) as err:
            load(path, device="cpu")
        assert words in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------- command line
def export_cli(capsys, argv):
    """(exit code, stdout, stderr lines) of an in-process run."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_cli_exports_a_saved_model(classifier, regressor, tmp_path, capsys):
    ckpt = classifier.save(tmp_path / "outcome.npz")
    code, out, err = export_cli(capsys, [ckpt, tmp_path / "outcome.onnx"])
    assert code == 0 and err == []
    assert out == (f"wrote {tmp_path / 'outcome.onnx'} (ONNX opset 13, ai.onnx.ml 2): inputs "
                   f"'input' float32 [batch, 3] (smoker, insured, age: raw values (booleans "
                   f"1/0), scaled in the graph (standard); NaN = missing), 'blood_type' string "
                   f"[batch, 1] (column 'blood type', 3 categories; '' = missing); outputs "
                   f"'label' string [batch] (classes fair, good, poor), 'probabilities' float32 "
                   f"[batch, 3] (one column per class, in that order)\n")
    loaded = xpnet.load(ckpt, device="cpu")
    session = session_of(tmp_path / "outcome.onnx")
    rows = new_rows()
    label, proba = session.run(None, onnx_feeds(session, rows))
    assert label.tolist() == loaded.predict(rows).tolist()
    np.testing.assert_allclose(proba, loaded.predict_proba(rows), atol=PROBA_ATOL)

    ckpt = regressor.save(tmp_path / "cost.npz")
    code, out, err = export_cli(capsys, [ckpt, tmp_path / "cost.onnx"])
    assert code == 0 and "outputs 'prediction' float32 [batch, 1] ('cost' in its units)" in out
    session = session_of(tmp_path / "cost.onnx")
    (prediction,) = session.run(None, onnx_feeds(session, rows))
    np.testing.assert_allclose(prediction[:, 0], regressor.predict(rows), rtol=1e-5,
                               atol=1e-5 * regressor.target.scale)

    code, out, err = export_cli(capsys, [ckpt, tmp_path / "cost.safetensors"])
    assert code == 0 and out.endswith("config, model in the metadata (xpnet.export.load_model "
                                      "reads the model)\n")
    np.testing.assert_array_equal(load_model(tmp_path / "cost.safetensors").predict(rows),
                                  regressor.predict(rows))


def test_cli_no_scaler_exports_the_bare_network(classifier, tmp_path, capsys):
    ckpt = classifier.save(tmp_path / "outcome.npz")
    code, out, _ = export_cli(capsys, [ckpt, tmp_path / "net.onnx", "--no-scaler"])
    assert code == 0
    assert "input 'input' float32 [batch, 6] of scaled values" in out
    assert "output 'output' float32 [batch, 3]: softmax probabilities of classes fair, good, " \
           "poor" in out
    session = session_of(tmp_path / "net.onnx")
    rows = new_rows()
    (proba,) = session.run(None, {"input": classifier.transform(rows)})
    np.testing.assert_allclose(proba, classifier.predict_proba(rows), atol=PROBA_ATOL)


def test_cli_refuses_to_overwrite_the_checkpoint(classifier, tmp_path, capsys):
    """The output is the checkpoint (by name, a symlink or a hard link): a usage error, exit 2,
    before anything is written."""
    ckpt = classifier.save(tmp_path / "model.onnx")  # a checkpoint with an .onnx name
    (tmp_path / "link.onnx").symlink_to(ckpt)
    os.link(ckpt, tmp_path / "hard.safetensors")
    npz = classifier.save(tmp_path / "outcome.npz")
    (tmp_path / "to_npz.safetensors").symlink_to(npz)
    before = {p: p.read_bytes() for p in (ckpt, npz)}
    listing = sorted(tmp_path.rglob("*"))
    for checkpoint, output in [(ckpt, ckpt), (ckpt, tmp_path / "link.onnx"),
                               (ckpt, tmp_path / "hard.safetensors"),
                               (tmp_path / "link.onnx", ckpt),
                               (npz, tmp_path / "to_npz.safetensors")]:
        code, out, err = export_cli(capsys, [checkpoint, output])
        assert code == 2 and out == "" and len(err) == 1, (checkpoint, output, err)
        assert err[0].startswith(f"{PROG}: error: ") and "is the checkpoint itself" in err[0]
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(tmp_path.rglob("*")) == listing
