"""The input schema (xpnet/schema.py) against scikit-learn's ColumnTransformer, and its rules.

The oracle for the numbers is scikit-learn's own pipeline on the same table:
``ColumnTransformer([(num: SimpleImputer(mean) + StandardScaler), (cat: SimpleImputer(
most_frequent) + OneHotEncoder(handle_unknown="ignore"))])``. The schema computes in float64
and casts once, so in float64 the two agree to a few ulps (rtol 1e-12: the only differences are
the order of floating-point operations in the mean and standard deviation).
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.data import DataError, as_frame
from xpnet.schema import InputSchema

ROWS = {
    "pid": ["p1", "p2", "p3", "p4", "p5", "p6"],
    "age": [23.0, np.nan, 45.0, 31.0, 52.0, 37.0],
    "color": ["red", "blue", None, "red", "green", "blue"],
    "member": ["True", "False", "true", None, "FALSE", "True"],
    "score": [1.5, 2.5, 3.5, 0.5, 1.0, 2.0],
}


def test_kinds_ids_and_drops():
    schema = InputSchema.fit(ROWS, id="pid", drop=["score"])
    assert [(c.name, c.kind) for c in schema.columns] == [
        ("age", "number"), ("color", "category"), ("member", "boolean")]
    assert schema.columns[1].categories == ["blue", "green", "red"]
    assert schema.input_names == ["age", "member", "color=blue", "color=green", "color=red"]
    assert schema.n_inputs == 5
    assert schema.imputed == {"age": 1, "color": 1, "member": 1}
    lines = schema.describe()
    assert lines[0] == ("columns: 1 number, 1 boolean (member, as 1/0), 1 text (one-hot; "
                        "categories color: 3) -> 5 inputs; id: pid; dropped: score")
    assert lines[1].startswith("missing: 3 cells imputed from the training rows")


def test_the_numbers_equal_scikit_learns_pipeline():
    pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = pd.DataFrame({k: v for k, v in ROWS.items() if k not in ("pid", "member")})
    reference = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "score"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         ["color"])]).fit(df)
    schema = InputSchema.fit(df)
    new = pd.DataFrame({"color": ["green", "purple", None], "age": [np.nan, 40.0, 1e3],
                        "score": [2.0, np.nan, -1.0]})  # columns in another order
    for rows in (df, new):
        np.testing.assert_allclose(schema.transform(rows, "float64"), reference.transform(rows),
                                   rtol=1e-12, atol=1e-12)


def test_missing_cells_are_imputed_from_the_training_rows():
    schema = InputSchema.fit(ROWS, id="pid")
    age, color, member = schema.columns[0], schema.columns[1], schema.columns[2]
    assert age.fill == pytest.approx(np.mean([23, 45, 31, 52, 37]))
    assert color.fill == "blue"  # blue and red twice each: the first in sorted order
    assert member.fill == 1.0  # True three times, False twice
    x = schema.transform({"age": [np.nan], "color": [None], "member": [None], "score": [1.0]},
                         "float64")
    ref = schema.transform({"age": [age.fill], "color": ["blue"], "member": ["True"],
                            "score": [1.0]}, "float64")
    np.testing.assert_array_equal(x, ref)


def test_missing_error_refuses_at_fit_and_at_predict():
    with pytest.raises(DataError, match=r"column 'age' is missing in row 2.*--missing error"):
        InputSchema.fit(ROWS, id="pid", missing="error")
    full = {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]}
    schema = InputSchema.fit(full, missing="error")
    with pytest.raises(DataError, match=r"column 'b' is missing in row 1"):
        schema.transform({"a": [1.0], "b": [None]})


def test_unseen_categories_are_zeros_and_all_unseen_is_refused():
    schema = InputSchema.fit({"c": ["a", "b", "a"], "n": [1.0, 2.0, 3.0]})
    x = schema.transform({"c": ["b", "zzz"], "n": [1.0, 1.0]}, "float64")
    assert x[:, 1:].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(DataError, match=r"every value of the text column 'c' is one the model "
                                        r"never saw in training \(such as 'q'"):
        schema.transform({"c": ["q", "r"], "n": [1.0, 1.0]})


def test_columns_by_name_in_any_order_and_the_known_extras():
    schema = InputSchema.fit(ROWS, id="pid", drop=["score"])
    shuffled = {k: ROWS[k] for k in ("member", "score", "color", "pid", "age")}
    np.testing.assert_array_equal(schema.transform(shuffled), schema.transform(ROWS))
    no_extras = {k: ROWS[k] for k in ("age", "color", "member")}
    np.testing.assert_array_equal(schema.transform(no_extras), schema.transform(ROWS))
    np.testing.assert_array_equal(
        schema.transform({**no_extras, "label": [0] * 6}, excluded=["label"]),
        schema.transform(ROWS))
    with pytest.raises(DataError, match=r"lacks 1 of the 3 feature columns the model was "
                                        r"trained on \(color\)"):
        schema.transform({k: ROWS[k] for k in ("age", "member")})
    with pytest.raises(DataError, match=r"has 1 column the model does not know \(weight\)"):
        schema.transform({**no_extras, "weight": [1.0] * 6})


def test_positional_rows_follow_the_schema_order():
    schema = InputSchema.fit({"n": [1.0, 2.0, 4.0], "c": ["a", "b", "a"]})
    rows = np.array([[2.0, "b"], [4.0, "a"]], dtype=object)
    np.testing.assert_array_equal(schema.transform(rows),
                                  schema.transform({"n": [2.0, 4.0], "c": ["b", "a"]}))
    with pytest.raises(DataError, match=r"has 3 columns, but the model reads 2 \(n, c\)"):
        schema.transform(np.zeros((1, 3)))


def test_a_text_column_with_a_value_per_row_is_refused():
    rows = {"name": [f"person{i}" for i in range(40)], "n": list(range(40))}
    with pytest.raises(DataError, match=r"the text column 'name' has 40 different values in 40 "
                                        r"rows.*--drop name.*--id name"):
        InputSchema.fit(rows)
    assert InputSchema.fit(rows, id="name").names == ["n"]


@pytest.mark.parametrize("kwargs, words", [
    ({"id": "nope"}, r"has no column 'nope' \(--id\)"),
    ({"drop": ["age", "zip"]}, r"has no column 'zip' \(--drop\)"),
    ({"id": "pid", "drop": ["pid"]}, "both --id and in --drop"),
    ({"drop": ["pid", "age", "color", "member", "score"]}, "no feature columns left"),
])
def test_bad_column_choices_are_one_sentence(kwargs, words):
    with pytest.raises(DataError, match=words):
        InputSchema.fit(ROWS, **kwargs)


def test_an_empty_column_and_wrong_kinds_at_predict():
    with pytest.raises(DataError, match=r"column 'e' is empty in every row; leave it out with "
                                        r"--drop e"):
        InputSchema.fit({"e": [None, None], "n": [1.0, 2.0]})
    schema = InputSchema.fit({"n": [1.0, 2.0], "b": ["True", "False"]})
    with pytest.raises(DataError, match=r"column 'n' is 'abc' in row 2, but the model was "
                                        r"trained on numbers"):
        schema.transform({"n": ["1", "abc"], "b": ["True", "True"]})
    with pytest.raises(DataError, match=r"column 'b' is 2 in row 1, but the model was trained "
                                        r"on True/False"):
        schema.transform({"n": [1.0], "b": [2.0]})
    # text numbers where numbers were trained, and 1/0 where booleans were, are fine
    np.testing.assert_array_equal(schema.transform({"n": ["2"], "b": [0.0]}),
                                  schema.transform({"n": [2.0], "b": ["False"]}))


def test_a_numeric_identifier_gets_a_note():
    schema = InputSchema.fit({"customer_id": [10, 11, 12, 13], "n": [1.0, 2.0, 3.0, 4.0]})
    assert any("'customer_id' holds a different whole number in every row" in n
               and "--id customer_id" in n for n in schema.notes)


def test_offsets_are_subtracted_before_the_float32_cast():
    """Timestamps near 1.7e9 one second apart: rounded to float32 first, they would collapse
    onto multiples of 128 s; subtracted in float64 first, the standardised values are exact to
    float32's precision."""
    t = 1.7e9 + np.arange(10.0)
    schema = InputSchema.fit({"t": t})
    x = schema.transform({"t": t}, "float32")[:, 0]
    exact = (t - t.mean()) / t.std()
    np.testing.assert_allclose(x, exact, rtol=1e-6)
    assert len(np.unique(x)) == 10


def test_the_state_round_trips():
    schema = InputSchema.fit(ROWS, id="pid", drop=["score"], missing="impute")
    again = InputSchema.from_state(schema.state())
    assert again.names == schema.names and again.id == "pid" and again.dropped == ["score"]
    np.testing.assert_array_equal(again.transform(ROWS), schema.transform(ROWS))
    state = schema.state()
    state["arrays"]["scale"] = np.zeros(2)
    with pytest.raises(ValueError, match="scale is not positive"):
        InputSchema.from_state(state)


def test_a_frame_is_accepted_as_it_is():
    frame = as_frame(ROWS)
    schema = InputSchema.fit(frame, id="pid")
    np.testing.assert_array_equal(schema.transform(frame), schema.transform(ROWS))
