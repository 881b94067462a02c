"""The target (xpnet/targets.py): labels to class indices and back, regression units.

Classification follows scikit-learn's LabelEncoder (the sorted distinct labels are the
classes); regression standardises with the training rows' mean and standard deviation and
maps the network's outputs back exactly (``output * scale + mean``).
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.targets import Target, TargetError


def test_text_labels_round_trip():
    target = Target.fit(["malignant", "benign", "benign"], name="diagnosis")
    assert target.classes == ["benign", "malignant"] and target.head == "softmax"
    assert target.encode(["malignant", "benign"]).tolist() == [1, 0]
    assert target.decode(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist() == ["malignant", "benign"]
    assert target.describe() == "2 classes"


def test_the_same_classes_as_labelencoder():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    y = np.array([3, 1, 7, 1, 3, -2])
    assert Target.fit(y).classes == preprocessing.LabelEncoder().fit(y).classes_.tolist()
    np.testing.assert_array_equal(Target.fit(y).encode(y),
                                  preprocessing.LabelEncoder().fit_transform(y))


def test_integer_labels_decode_as_integers():
    target = Target.fit(np.array([5, 7, 5]))
    out = target.decode(np.array([1, 0]))
    assert out.dtype.kind == "i" and out.tolist() == [7, 5]
    assert target.encode([7.0]).tolist() == [1]  # 7.0 is the label 7


def test_unseen_labels_are_named():
    target = Target.fit(["a", "b"])
    with pytest.raises(TargetError, match=r"labels the training set lacks, such as 'c' \(row 2\)"):
        target.encode(["a", "c"])


@pytest.mark.parametrize("y, words, usage", [
    ([0.5, 1.5, 2.0], "non-integer numbers such as 0.5; predict numbers with regression", True),
    (["a", "a"], r"a single class \(a\)", False),
    ([1.0, np.nan], "in row 2; every row needs a finite target value", False),
    (np.array(["a", None], dtype=object), "is missing in row 2", False),
])
def test_bad_labels(y, words, usage):
    with pytest.raises(TargetError, match=words) as info:
        Target.fit(y)
    assert info.value.usage is usage


def test_many_whole_numbers_suggest_regression():
    target = Target.fit(np.arange(100) % 40)
    assert any("40 different whole numbers" in n and "--task regression" in n
               for n in target.notes)


def test_regression_maps_back_to_the_targets_units():
    y = np.array([25.0, 100.0, 346.0, 151.0])
    target = Target.fit(y, "regression", name="progression")
    assert target.mean == pytest.approx(y.mean()) and target.scale == pytest.approx(y.std())
    z = target.encode(y)
    np.testing.assert_allclose(z.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(target.decode(z.reshape(-1, 1)), y, rtol=1e-12)
    assert target.n_outputs == 1 and target.head == "identity"
    with pytest.raises(TargetError, match="holds text such as 'x'; regression needs numbers"):
        Target.fit(["x", "1"], "regression")
    assert Target.fit([3.0, 3.0], "regression").scale == 1.0  # constant: scale 1


def test_pandas_series_and_state_round_trip():
    pd = pytest.importorskip("pandas")
    target = Target.fit(pd.Series(["b", "a", "b"], name="y"), name="y")
    again = Target.from_state(target.state())
    assert again.classes == ["a", "b"] and again.name == "y"
    reg = Target.fit(pd.Series([1.0, 2.0, 4.0]), "regression")
    back = Target.from_state(reg.state())
    assert (back.mean, back.scale) == (reg.mean, reg.scale)
    with pytest.raises(ValueError, match="damaged target statistics"):
        Target.from_state({"json": {"task": "regression", "mean": 0.0, "scale": -1.0}})


def test_one_long_label_does_not_widen_every_row(tmp_path):
    """Labels are Python strings (issue 23, family 4): with one 20,000-character label among
    20,000 rows, the labels and the decoded predictions take 8 bytes a row, where a unicode
    array would take 80,000 (1.6 GB in all)."""
    from xpnet.data import load_frame

    rows = ["x,label"] + [f"{i},{'b' if i % 2 else 'a'}" for i in range(20_000)]
    rows.append("0," + "z" * 20_000)
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    y = load_frame(tmp_path / "t.csv").y
    assert y.dtype == object and y.nbytes == 8 * len(y)
    target = Target.fit(y)
    decoded = target.decode(np.zeros(len(y), dtype=np.int64))
    assert decoded.dtype == object and decoded.nbytes == 8 * len(y)
    assert target.decode(np.array([2]))[0] == "z" * 20_000


def test_numbers_given_as_text_are_numbers_for_regression():
    """A text column of numbers (a y_test saved as strings) regresses as numbers, and text
    that is not a number is named, never a StopIteration (issue 23, family 7)."""
    target = Target.fit(np.array(["1.5", "2.5", "3"], dtype=object), "regression")
    assert target.mean == pytest.approx(7 / 3)
    np.testing.assert_allclose(target.encode(["1.5"]), (1.5 - target.mean) / target.scale)
    with pytest.raises(TargetError, match="holds text such as 'x'; this model predicts numbers"):
        target.encode(["1", "x"])
