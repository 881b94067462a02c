"""Tables as written (xpnet/data/frame.py and ``load_frame``): numbers, text and missing cells.

Contract: a column whose present cells are all numbers is float64 with NaN for a missing cell;
any other column is text (``str``) with None for a missing cell; missing means empty or one of
the pandas-like markers; an infinite number is refused, naming the cell. An all-number CSV is
parsed in one pass and keeps its 2-D block. ``as_frame`` gives the same kinds for a DataFrame,
a mapping and arrays.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpnet.data import DataError, Frame, as_frame, load_frame


def write(path, text):
    path.write_text(text)
    return path


def test_a_mixed_csv_keeps_numbers_text_and_missing_cells(tmp_path):
    path = write(tmp_path / "t.csv", "id,age,color,member,label\n"
                                     "r1,23,red,True,yes\n"
                                     "r2,,blue,False,no\n"
                                     "r3,45, NA ,true,yes\n"
                                     "r4,3.5e1,red,null,no\n")
    table = load_frame(path, target="label")
    frame = table.frame
    assert frame.names == ["id", "age", "color", "member"]
    assert frame.block is None  # text columns: no 2-D block
    assert frame.column("id").tolist() == ["r1", "r2", "r3", "r4"]
    age = frame.column("age")
    assert age.dtype == np.float64 and math.isnan(age[1])
    assert age[[0, 2, 3]].tolist() == [23.0, 45.0, 35.0]
    assert frame.column("color").tolist() == ["red", "blue", None, "red"]
    assert frame.column("member").tolist() == ["True", "False", "true", None]
    assert table.y.tolist() == ["yes", "no", "yes", "no"]


def test_an_all_number_csv_keeps_one_block(tmp_path):
    path = write(tmp_path / "n.csv", "a,b,label\n1,2.5,0\n3,4,1\n")
    table = load_frame(path, target="label")
    assert table.frame.block.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert table.frame.column("b").tolist() == [2.5, 4.0]
    assert table.y.dtype == np.int64


@pytest.mark.parametrize("marker", ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])
def test_missing_markers_in_a_number_column(tmp_path, marker):
    path = write(tmp_path / "m.csv", f"a,label\n1,0\n{marker},1\n3,0\n")
    assert np.isnan(load_frame(path).frame.column("a")).tolist() == [False, True, False]


def test_an_infinite_number_names_its_cell(tmp_path):
    path = write(tmp_path / "i.csv", "a,b,c,label\n1,1,x,0\n2,inf,y,1\n")
    with pytest.raises(DataError, match=r"column 'b' is 'inf' in row 2 \(line 3\)"):
        load_frame(path)


def test_a_row_with_too_few_fields_names_its_line(tmp_path):
    path = write(tmp_path / "r.csv", "a,b,label\n1,x,0\n2,1\n")
    with pytest.raises(DataError, match=r"line 3 \(row 2\) has 2 fields but the header has 3"):
        load_frame(path)


def test_an_npz_may_hold_nan_as_missing_but_not_infinity(tmp_path):
    X = np.array([[1.0, np.nan], [2.0, 3.0]])
    np.savez(tmp_path / "ok.npz", X=X, y=np.array([0, 1]))
    frame = load_frame(tmp_path / "ok.npz").frame
    assert np.isnan(frame.block[0, 1]) and frame.names == ["x0", "x1"]
    np.savez(tmp_path / "bad.npz", X=np.array([[1.0, np.inf]]), y=np.array([0]))
    with pytest.raises(DataError, match="finite"):
        load_frame(tmp_path / "bad.npz")


def test_other_file_kinds_get_the_table_error(tmp_path):
    with pytest.raises(DataError, match=r"\.xlsx file.*CSV UTF-8"):
        load_frame(tmp_path / "t.xlsx")


def test_as_frame_of_a_dataframe():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"n": [1, None, 3], "flag": [True, False, True],
                       "c": ["a", None, " b "], "s": pd.array(["x", pd.NA, "y"])})
    frame = as_frame(df)
    assert frame.names == ["n", "flag", "c", "s"]
    assert np.isnan(frame.column("n")[1]) and frame.column("n")[2] == 3.0
    assert frame.column("flag").tolist() == [1.0, 0.0, 1.0]  # booleans: 1/0 numbers
    assert frame.column("c").tolist() == ["a", None, "b"]
    assert frame.column("s").tolist() == ["x", None, "y"]


def test_as_frame_of_a_mapping_and_of_arrays():
    frame = as_frame({"a": [1, 2], "b": ["u", "NA"]})
    assert frame.column("a").dtype == np.float64 and frame.column("b").tolist() == ["u", None]
    block = as_frame(np.arange(6, dtype=np.uint8).reshape(3, 2))
    assert block.names is None and block.block.dtype == np.float64
    rows = as_frame([["a", 1.0], ["b", None]])
    assert rows.columns[0].tolist() == ["a", "b"] and np.isnan(rows.columns[1][1])
    assert isinstance(as_frame(frame), Frame) and as_frame(frame) is frame


@pytest.mark.parametrize("data, words", [
    ({"a": [1, 2], "b": [1]}, "different lengths"),
    (np.zeros(3), "must be 2-D"),
])
def test_as_frame_refuses_what_is_not_a_table(data, words):
    with pytest.raises(DataError, match=words):
        as_frame(data)


def test_take_and_without_keep_the_kinds():
    frame = as_frame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", None]})
    part = frame.take(np.array([2, 0]))
    assert part.column("a").tolist() == [3.0, 1.0] and part.column("b").tolist() == [None, "x"]
    assert frame.without(["a"]).names == ["b"]
    block = as_frame(np.arange(6.0).reshape(3, 2), names=["p", "q"])
    assert block.take(np.array([1])).block.tolist() == [[2.0, 3.0]]
    assert block.without(["p"]).block.tolist() == [[1.0], [3.0], [5.0]]


def test_the_npz_cap_counts_the_float64_features_it_will_allocate(tmp_path):
    """A uint8 X becomes float64: the cap counts those 8 bytes a value, not the file's 1
    (issue 23, family 3)."""
    from xpnet.data import load_table

    np.savez(tmp_path / "u8.npz", X=np.zeros((1000, 100), dtype=np.uint8),
             y=np.zeros(1000, dtype=np.int64))
    # 100 kB of file, 800 kB once converted: a 200 kB cap refuses it before converting
    with pytest.raises(DataError, match=r"needs 100000 bytes \(800000 as float64\), more than"):
        load_table(tmp_path / "u8.npz", max_bytes=200_000)
    assert load_table(tmp_path / "u8.npz", max_bytes=900_000).X.dtype == np.float64


def test_a_header_of_too_many_columns_is_refused_before_it_is_parsed(tmp_path):
    """2 million column names took 450 MB to parse before a row was read (issue 23, family 4);
    more than MAX_COLUMNS are refused from the first line."""
    from xpnet.data.tabular import MAX_COLUMNS

    (tmp_path / "wide.csv").write_text(",".join(f"c{j}" for j in range(MAX_COLUMNS + 1)) + "\n")
    with pytest.raises(DataError, match=f"has more than {MAX_COLUMNS} columns in its first line"):
        load_frame(tmp_path / "wide.csv")


def test_old_mac_line_endings_and_quoted_newlines_are_still_read(tmp_path):
    (tmp_path / "mac.csv").write_bytes(b"a,b,label\r1,x,0\r2,y,1\r")
    table = load_frame(tmp_path / "mac.csv")
    assert table.frame.column("b").tolist() == ["x", "y"] and table.y.tolist() == [0, 1]
    (tmp_path / "q.csv").write_text('a,"two\nlines",label\n1,"x\ny",0\n2,z,1\n')
    table = load_frame(tmp_path / "q.csv")
    assert table.frame.names == ["a", "two\nlines"]
    assert table.frame.column("two\nlines").tolist() == ["x\ny", "z"]
