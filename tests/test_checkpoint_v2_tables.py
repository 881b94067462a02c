"""Table checkpoints written before the model record (format 2 of commit 47df681, in
tests/fixtures/checkpoint_v2/) load as models and predict what that xpnet predicted.

The expected files hold 6 significant digits (labels exactly); the old scaler cast to float32
before subtracting and the new one subtracts in float64, so values agree to about 1e-6
relative: rtol 1e-4 covers the printed digits with room.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_module

import xpnet

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoint_v2"


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def rows():
    header, body = read_csv(FIXTURES / "rows_v2.csv")
    return {name: [float(r[j]) for r in body] for j, name in enumerate(header)}


def test_a_v2_classifier_loads_as_a_model_with_its_labels():
    model = xpnet.load(FIXTURES / "table_classifier_v2.npz", device="cpu")
    assert isinstance(model, xpnet.Model)
    assert model.classes_.tolist() == ["high", "low"] and model.target.name == "kind"
    assert model.feature_names_in_.tolist() == ["a", "b", "c"]
    header, expected = read_csv(FIXTURES / "table_classifier_v2.expected.csv")
    assert header == ["prediction", "p_high", "p_low"]
    np.testing.assert_allclose(model.predict_proba(rows()),
                               np.array([r[1:] for r in expected], dtype=float), rtol=1e-4)
    assert model.predict(rows()).tolist() == [r[0] for r in expected]


def test_a_v2_regressor_predicts_in_the_targets_units():
    model = xpnet.load(FIXTURES / "table_regressor_v2.npz", device="cpu")
    assert model.task == "regression" and model.target.name == "value"
    _, expected = read_csv(FIXTURES / "table_regressor_v2.expected.csv")
    np.testing.assert_allclose(model.predict(rows()), [float(r[0]) for r in expected],
                               rtol=1e-4)


@pytest.mark.parametrize("name", ["table_classifier_v2", "table_regressor_v2"])
def test_predict_reads_a_v2_table_checkpoint_as_before(name, tmp_path):
    result = run_module("xpnet.predict", [FIXTURES / f"{name}.npz", "--data",
                                          FIXTURES / "rows_v2.csv", "--out", "p.csv"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, got = read_csv(tmp_path / "p.csv")
    want_header, want = read_csv(FIXTURES / f"{name}.expected.csv")
    assert header == want_header
    numbers = 1 if name == "table_classifier_v2" else 0
    assert [r[:numbers] for r in got] == [r[:numbers] for r in want]
    np.testing.assert_allclose(np.array([r[numbers:] for r in got], dtype=float),
                               np.array([r[numbers:] for r in want], dtype=float), rtol=1e-4)


def test_a_v2_regressor_exports_in_the_targets_units(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph")
    pytest.importorskip("onnx")
    model = xpnet.load(FIXTURES / "table_regressor_v2.npz", device="cpu")
    xpnet.export(model, tmp_path / "r.onnx")
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    x = np.column_stack([rows()[n] for n in ("a", "b", "c")]).astype(np.float32)
    (prediction,) = session.run(["prediction"], {"input": x})
    # float32 graph against float64 scaling: ~1e-7 relative; 1e-5 with room
    np.testing.assert_allclose(prediction.reshape(-1), model.predict(rows()), rtol=1e-5)
