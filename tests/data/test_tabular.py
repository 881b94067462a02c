"""Tables from .csv and .npz files (issue 12): scikit-learn's bundled datasets written out and
read back exactly, and every error a user can meet, asserted on its message."""

from __future__ import annotations

import csv
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import DataError, Table, check_features, load_table

sk_datasets = pytest.importorskip("sklearn.datasets")


def _bunch(name):
    return getattr(sk_datasets, f"load_{name}")()


def write_csv(path: Path, header, rows, *, encoding="utf-8", **writer_args) -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f, **writer_args)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sk_csv(path: Path, name: str, *, ints=False, target_names=False, **writer_args) -> tuple:
    """scikit-learn dataset ``name`` as a CSV with a ``label`` column last; returns (X, y, names)
    as they were written."""
    d = _bunch(name)
    X = d.data.astype(np.int64) if ints else d.data
    y = d.target_names[d.target] if target_names else d.target
    names = [str(n) for n in d.feature_names]
    rows = [[*map(_text, x), _text(t)] for x, t in zip(X.tolist(), y.tolist())]
    write_csv(path, [*names, "label"], rows, **writer_args)
    return d.data, y, names


def _text(v):
    return repr(v) if isinstance(v, float) else str(v)  # repr: the shortest exact form


# --- real data, read back exactly ------------------------------------------------------------


def test_breast_cancer_csv_floats(tmp_path):
    X, y, names = sk_csv(tmp_path / "bc.csv", "breast_cancer")
    table = load_table(tmp_path / "bc.csv")
    assert isinstance(table, Table)
    assert table.X.dtype == np.float64 and table.X.shape == (569, 30)
    np.testing.assert_array_equal(table.X, X)
    assert table.y.dtype == np.int64
    np.testing.assert_array_equal(table.y, y)
    assert table.feature_names == names and table.feature_names[0] == "mean radius"
    assert table.target == "label" and table.path == tmp_path / "bc.csv"
    assert table.X_test is None and table.y_test is None
    assert table.X.flags.c_contiguous and table.X.flags.writeable


def test_digits_csv_integers(tmp_path):
    X, y, names = sk_csv(tmp_path / "digits.csv", "digits", ints=True)
    table = load_table(tmp_path / "digits.csv")
    assert table.X.dtype == np.float64 and table.X.shape == (1797, 64)
    np.testing.assert_array_equal(table.X, X)
    np.testing.assert_array_equal(table.y, y)
    assert table.y.dtype == np.int64


def test_diabetes_csv_float_target(tmp_path):
    X, y, _ = sk_csv(tmp_path / "diabetes.csv", "diabetes")
    table = load_table(tmp_path / "diabetes.csv")
    assert table.y.dtype == np.float64  # written as 151.0: numbers, not integer text
    np.testing.assert_array_equal(table.y, y)
    np.testing.assert_array_equal(table.X, X)


def test_iris_csv_string_target(tmp_path):
    X, y, _ = sk_csv(tmp_path / "iris.csv", "iris", target_names=True)
    table = load_table(tmp_path / "iris.csv")
    assert table.y.dtype == object  # Python strings: no row is as wide as the longest label
    assert table.y.tolist() == y.tolist() and table.y[0] == "setosa"
    np.testing.assert_array_equal(table.X, X)


def test_iris_quoted_bom_crlf_and_target_first(tmp_path):
    d = _bunch("iris")
    species = d.target_names[d.target]
    rows = [[s, *map(repr, x)] for s, x in zip(species.tolist(), d.data.tolist())]
    write_csv(tmp_path / "q.csv", ["species", *d.feature_names], rows, encoding="utf-8-sig",
              quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    raw = (tmp_path / "q.csv").read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf"species"') and b'"5.1"' in raw and b"\r\n" in raw
    table = load_table(tmp_path / "q.csv", target="species")
    np.testing.assert_array_equal(table.X, d.data)
    assert table.y.tolist() == species.tolist()
    assert table.feature_names == list(d.feature_names)


def test_pandas_written_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    d = _bunch("breast_cancer")
    frame = pd.DataFrame(d.data, columns=d.feature_names).assign(label=d.target)
    frame.to_csv(tmp_path / "pd.csv", index=False)
    table = load_table(tmp_path / "pd.csv")
    np.testing.assert_array_equal(table.X, d.data)
    np.testing.assert_array_equal(table.y, d.target)
    frame.to_csv(tmp_path / "index.csv")  # the index as an unnamed first column
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "index.csv")
    assert str(info.value) == (
        f"{tmp_path / 'index.csv'}: column 1 has no name in the header row; name every column "
        f"(a pandas index is written as an unnamed first column: save with index=False)"
    )


def test_old_mac_line_endings_read_the_same(tmp_path):
    X, y, _ = sk_csv(tmp_path / "cr.csv", "iris", lineterminator="\r")
    table = load_table(tmp_path / "cr.csv")
    np.testing.assert_array_equal(table.X, X)
    np.testing.assert_array_equal(table.y, y)


def test_integers_then_floats_in_one_column(tmp_path):
    rows = [[str(i), str(i % 3)] for i in range(50)] + [["0.25", "1"], ["1e-3", "2"]]
    write_csv(tmp_path / "mix.csv", ["x", "label"], rows)
    table = load_table(tmp_path / "mix.csv")
    assert table.X[:, 0].tolist() == [float(i) for i in range(50)] + [0.25, 0.001]


def test_blank_lines_and_spaces_around_numbers(tmp_path):
    (tmp_path / "b.csv").write_text("\n a , b ,label\n 1 , 2.5 ,x\n\n3,4, y \n   \n")
    table = load_table(tmp_path / "b.csv")
    assert table.feature_names == ["a", "b"]
    assert table.X.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert table.y.tolist() == ["x", "y"]


def test_kaggle_digit_recognizer_layout(tmp_path, rng):
    pixels = rng.integers(0, 256, (20, 784))
    labels = rng.integers(0, 10, 20)
    header = ["label", *(f"pixel{i}" for i in range(784))]
    write_csv(tmp_path / "train.csv", header, [[t, *p] for t, p in zip(labels, pixels)])
    write_csv(tmp_path / "test.csv", header[1:], pixels.tolist())
    train = load_table(tmp_path / "train.csv")
    assert train.X.shape == (20, 784) and train.feature_names[0] == "pixel0"
    np.testing.assert_array_equal(train.X, pixels)
    np.testing.assert_array_equal(train.y, labels)
    rows = load_table(tmp_path / "test.csv", target=None)
    assert rows.y is None and rows.target is None and rows.feature_names == header[1:]
    np.testing.assert_array_equal(rows.X, pixels)
    same = check_features(rows, train.feature_names)
    np.testing.assert_array_equal(same.X, pixels)
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "test.csv")  # no label column, and one was asked for
    assert str(info.value) == (
        f"{tmp_path / 'test.csv'} has no column 'label'; its columns are pixel0, pixel1, pixel2, "
        f"pixel3, pixel4, pixel5, pixel6, pixel7, ... (784 in all); pass --target COLUMN "
        f"(target= in the library) to name the column to predict"
    )


@pytest.mark.parametrize(
    ("cells", "dtype", "values"),
    [
        (["1", "-2", "+3", " 4 "], np.int64, [1, -2, 3, 4]),
        (["1", "2.5", "3e2"], np.float64, [1.0, 2.5, 300.0]),
        (["1.0", "2.0"], np.float64, [1.0, 2.0]),
        (["1", "cat"], np.object_, ["1", "cat"]),  # text: Python strings
        (["99999999999999999999", "1"], np.float64, [1e20, 1.0]),
    ],
)
def test_target_kinds(tmp_path, cells, dtype, values):
    write_csv(tmp_path / "t.csv", ["x", "label"], [[i, c] for i, c in enumerate(cells)])
    y = load_table(tmp_path / "t.csv").y
    assert y.dtype.type is dtype and y.tolist() == values


# --- rows to predict ---------------------------------------------------------------------------


def test_rows_to_predict_drop_their_target_column(tmp_path):
    X, species, names = sk_csv(tmp_path / "iris.csv", "iris", target_names=True)
    rows = load_table(tmp_path / "iris.csv", target="label", require_target=False)
    assert rows.feature_names == names and rows.y.tolist() == species.tolist()
    write_csv(tmp_path / "plain.csv", names, X.tolist())
    plain = load_table(tmp_path / "plain.csv", target="label", require_target=False)
    assert plain.y is None and plain.target is None
    np.testing.assert_array_equal(plain.X, X)
    write_csv(tmp_path / "blank.csv", [*names, "label"], [[*x, ""] for x in X.tolist()])
    assert load_table(tmp_path / "blank.csv", require_target=False).y is None
    partly = [[*x, "" if i % 2 else "nan"] for i, x in enumerate(X.tolist())]
    write_csv(tmp_path / "partly.csv", [*names, "label"], partly)
    rows = load_table(tmp_path / "partly.csv", require_target=False)
    assert rows.y is None and rows.feature_names == names  # dropped all the same
    write_csv(tmp_path / "nan.csv", [*names, "label"], [[*x, "nan"] for x in X.tolist()])
    assert load_table(tmp_path / "nan.csv", require_target=False).y is None
    with pytest.raises(DataError, match=r"the target column 'label' is empty in row 1 \(and "
                                        r"149 more\), and every row needs a target value"):
        load_table(tmp_path / "blank.csv")


def test_check_features_reorders_and_names_what_differs(tmp_path):
    write_csv(tmp_path / "a.csv", ["b", "a", "c"], [[2, 1, 3], [5, 4, 6]])
    table = load_table(tmp_path / "a.csv", target=None)
    ordered = check_features(table, ["a", "b", "c"])
    assert ordered.feature_names == ["a", "b", "c"]
    assert ordered.X.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert check_features(table, ["b", "a", "c"]) is table
    with pytest.raises(DataError) as info:
        check_features(table, ["a", "b", "d", "e"])
    assert str(info.value) == (
        f"{tmp_path / 'a.csv'} lacks 2 of the 4 feature columns the model was trained on (d, e) "
        f"and has 1 column the model does not know (c); give it the training data's feature "
        f"columns, by the same names (their order may differ)"
    )
    with pytest.raises(DataError, match=r"has 1 column the model does not know \(c\); give"):
        check_features(table, ["a", "b"])


# --- .npz --------------------------------------------------------------------------------------


def test_npz_round_trip_with_test_split(tmp_path):
    d = _bunch("breast_cancer")
    X, y = d.data, d.target
    np.savez_compressed(tmp_path / "bc.npz", X=X[:400], y=y[:400], X_test=X[400:],
                        y_test=y[400:], feature_names=np.array(d.feature_names))
    table = load_table(tmp_path / "bc.npz")
    np.testing.assert_array_equal(table.X, X[:400])
    np.testing.assert_array_equal(table.X_test, X[400:])
    np.testing.assert_array_equal(table.y, y[:400])
    np.testing.assert_array_equal(table.y_test, y[400:])
    assert table.y.dtype == np.int64 and table.target == "y"
    assert table.feature_names == list(d.feature_names)
    rows = load_table(tmp_path / "bc.npz", target=None)
    assert rows.y is None and rows.X_test is None


@pytest.mark.parametrize("name", ["iris", "diabetes", "digits"])
def test_npz_targets_keep_their_kind(tmp_path, name):
    d = _bunch(name)
    y = d.target_names[d.target] if name == "iris" else d.target
    X = d.data.astype(np.float32) if name == "digits" else d.data
    np.savez(tmp_path / "d.npz", X=X, y=y)
    table = load_table(tmp_path / "d.npz")
    np.testing.assert_array_equal(table.X, d.data)  # float32 digits are exact in float64
    assert table.X.dtype == np.float64
    assert table.y.dtype.kind == {"iris": "U", "diabetes": "f", "digits": "i"}[name]
    assert table.y.tolist() == y.tolist()
    assert table.feature_names == [f"x{i}" for i in range(d.data.shape[1])]


def test_npz_fortran_order_and_bool_targets(tmp_path):
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    np.savez(tmp_path / "f.npz", X=X, y=np.array([True, False, True, True]))
    table = load_table(tmp_path / "f.npz")
    np.testing.assert_array_equal(table.X, X)
    assert table.X.flags.c_contiguous and table.y.tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros(3), "y": np.zeros(3)},
         "X has shape (3,), but it must be 2-D (n_samples, n_features); reshape it, e.g. "
         "X.reshape(len(X), -1)"),
        ({"X": np.zeros((3, 2)), "y": np.zeros((3, 1))},
         "y has shape (3, 1), but it must be 1-D (n_samples,); save y.ravel()"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(4)},
         "y has 4 values but X has 3 rows; save one target per row"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(3), "X_test": np.zeros((2, 5)),
          "y_test": np.zeros(2)},
         "X_test has 5 columns but X has 2; the test split needs the same features as X"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(3), "X_test": np.zeros((2, 2))},
         "has X_test but no y_test; save both (a test split) or neither"),
        ({"X": np.array([["a", "b"]]), "y": np.zeros(1)},
         "X has dtype <U1, but features must be numbers; convert it, e.g. X.astype(float)"),
        ({"X": np.array([[1.0, np.nan]]), "y": np.zeros(1)},
         "X holds nan at row 0, column 1, and features must be finite numbers"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)},
         "X has no rows (shape (0, 2)); save at least one sample"),
        ({"X": np.zeros((3, 2)), "y": np.array([1.0, np.inf, 2.0])},
         "y holds inf at index 1, and numeric targets must be finite"),
        ({"X": np.zeros((2, 2)), "y": np.zeros(2), "feature_names": np.array(["a"])},
         "feature_names has dtype <U1 and shape (1,), but it must hold 2 strings"),
    ],
)
def test_npz_shape_and_kind_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "bad.npz")
    assert str(info.value).startswith(f"{tmp_path / 'bad.npz'}")
    assert message in str(info.value)


def test_npz_missing_arrays_are_listed(tmp_path):
    np.savez(tmp_path / "m.npz", features=np.zeros((2, 2)), labels=np.zeros(2))
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "m.npz")
    assert str(info.value) == (
        f"{tmp_path / 'm.npz'} has no array 'X' (it holds: features, labels); save the features "
        f"as X and the targets as y, e.g. numpy.savez(path, X=X, y=y)"
    )
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"has no array 'y' \(it holds: X\)"):
        load_table(tmp_path / "x.npz")
    assert load_table(tmp_path / "x.npz", require_target=False).y is None
    np.savez(tmp_path / "rows.npz", X=np.ones((2, 2)), y=np.array([1.0, np.nan]),
             X_test=np.ones((1, 3)))
    rows = load_table(tmp_path / "rows.npz", require_target=False)  # only X matters
    assert rows.y is None and rows.X_test is None and rows.X.tolist() == [[1, 1], [1, 1]]


def test_npz_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "o.npz", X=np.zeros((2, 2)), y=np.array(["a", None], dtype=object))
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "o.npz")
    assert str(info.value) == (
        f"{tmp_path / 'o.npz'}: array 'y' holds Python objects (dtype object), which would need "
        f"pickle to load and are refused for safety; save numbers or strings (e.g. "
        f"y.astype(float) or y.astype(str))"
    )


def _npy(shape, descr="<f8", data=b"") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_npz_declared_sizes_are_not_trusted(tmp_path):
    y = _npy((2,), data=bytes(16))
    # A header promising 8 MB of data that is not there.
    short = _zip(tmp_path / "short.npz", {"X.npy": _npy((1000, 1000), data=bytes(80)),
                                          "y.npy": y})
    with pytest.raises(DataError, match=r"array 'X' holds 80 data bytes where its header "
                                        r"promises 8000000, so the file is damaged"):
        load_table(short)
    # A header promising 8 TB: refused before anything is allocated.
    huge = _zip(tmp_path / "huge.npz", {"X.npy": _npy((10**12, 1000), data=bytes(80)),
                                        "y.npy": y})
    with pytest.raises(DataError, match=r"array 'X' of shape \(1000000000000, 1000\) and dtype "
                                        r"float64 needs 8000000000000000 bytes, more than the"):
        load_table(huge)
    # A small file that inflates to more than the cap: refused from the zip's declared sizes.
    np.savez_compressed(tmp_path / "zeros.npz", X=np.zeros((1000, 100)), y=np.zeros(1000))
    assert (tmp_path / "zeros.npz").stat().st_size < 20_000
    with pytest.raises(DataError, match=r"declares 80\d{4} bytes of arrays, more than the 100000 "
                                        r"read from a table"):
        load_table(tmp_path / "zeros.npz", max_bytes=100_000)
    with pytest.raises(DataError, match=r"zeros.npz holds \d+ bytes, more than the 1000 read "):
        load_table(tmp_path / "zeros.npz", max_bytes=1000)


def test_npz_damage_is_reported(tmp_path):
    np.savez(tmp_path / "ok.npz", X=np.arange(64.0).reshape(8, 8), y=np.arange(8))
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[data.index(b"\x93NUMPY") + 200] ^= 0xFF  # inside X's data: only the CRC-32 can tell
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"array 'X' is damaged or not a .npy array \(BadZipFile: "
                                        r"Bad CRC-32"):
        load_table(tmp_path / "crc.npz")
    (tmp_path / "cut.npz").write_bytes(bytes(data[:100]))
    with pytest.raises(DataError, match="cut.npz is not a valid .npz file"):
        load_table(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("X,y\n1,2\n")
    with pytest.raises(DataError, match=r"text.npz is not an .npz file \(it does not start like "
                                        r"a zip\); save the arrays with numpy.savez"):
        load_table(tmp_path / "text.npz")
    _zip(tmp_path / "v3.npz", {"X.npy": b"\x93NUMPY\x03\x00" + bytes(8), "y.npy": b""})
    with pytest.raises(DataError, match=r"array 'X' is in .npy format 3.0, which is not read"):
        load_table(tmp_path / "v3.npz")


# --- CSV errors --------------------------------------------------------------------------------


def _csv_error(tmp_path, text, name="t.csv", **kwargs) -> str:
    (tmp_path / name).write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(DataError) as info:
        load_table(tmp_path / name, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message.replace(str(tmp_path / name), "FILE")


def test_csv_empty_cell(tmp_path):
    assert _csv_error(tmp_path, "a,b,label\n1,2,0\n3,,1\n") == (
        "FILE: column 'b' is empty in row 2 (line 3), and every feature needs a number in every "
        "row; fill in the missing values or remove those rows")


def test_csv_not_a_number(tmp_path):
    assert _csv_error(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,abc,2\n") == (
        "FILE: column 'b' is 'abc' in row 3 (line 4), which is not a number; features must be "
        "numbers: convert or drop that column, or pass --target b if it is the one to predict")
    for cell in ("1_000", "0x1F", "\u0661", "1,5"):  # Python's float() takes the first three
        message = _csv_error(tmp_path, f'a,label\n"{cell}",0\n')
        assert f"column 'a' is {cell!r} in row 1 (line 2), which is not a number" in message


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_csv_non_finite(tmp_path, cell):
    assert _csv_error(tmp_path, f"a,label\n1,0\n{cell},1\n") == (
        f"FILE: column 'a' is {cell!r} in row 2 (line 3), and features must be finite numbers; "
        f"replace the missing or infinite values or remove those rows")


def test_csv_ragged_rows(tmp_path):
    expected = ("FILE line {line} (row {row}) has {n} fields but the header has 3 columns; every "
                "row needs one value per column (look for a missing or extra comma, or a comma "
                "inside a value that needs quotes)")
    assert _csv_error(tmp_path, "a,b,label\n1,2,0\n\n3,4\n") == \
        expected.format(line=4, row=2, n=2)
    assert _csv_error(tmp_path, "a,b,label\n1,2,0,9\n3,4,5,6\n") == \
        expected.format(line=2, row=1, n=4)
    assert _csv_error(tmp_path, "a,b,label\n1,2,3\n,,\n") == (
        "FILE: column 'a' is empty in row 2 (line 3), and every feature needs a number in every "
        "row; fill in the missing values or remove those rows")


def test_csv_missing_target_suggests_a_column(tmp_path):
    assert _csv_error(tmp_path, "sepal,petal,Species\n1,2,x\n", target="species") == (
        "FILE has no column 'species' (did you mean 'Species'?); its columns are sepal, petal, "
        "Species; pass --target COLUMN (target= in the library) to name the column to predict")
    assert "did you mean 'labels'?" in _csv_error(tmp_path, "x,labels\n1,2\n")
    assert _csv_error(tmp_path, "a;b;label\n1;2;3\n") == (
        "FILE has no column 'label'; its columns are a;b;label (it looks ';'-separated: save it "
        "with commas); pass --target COLUMN (target= in the library) to name the column to "
        "predict")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "FILE is empty; a CSV table needs a header row naming the columns, then one row per "
             "sample"),
        ("\n \n", "FILE is empty; a CSV table needs a header row naming the columns, then one "
                  "row per sample"),
        ("a,b,label\n", "FILE has a header row but no data rows; add one row per sample"),
        ("a,b,label\n\n\n", "FILE has a header row but no data rows; add one row per sample"),
        ("label\n1\n", "FILE has no feature columns besides the target 'label'; add the columns "
                       "to learn from"),
        ("a,a,label\n1,2,3\n", "FILE: the header row names two columns 'a' (columns 1 and 2); "
                               "give every column its own name"),
        ("a,b,label\n1,2,\n", "FILE: the target column 'label' is empty in row 1, and every row "
                              "needs a target value; fill them in or remove those rows"),
        ("a,label\n1,nan\n", "FILE: the target column 'label' is 'nan' in row 1, and numeric "
                             "targets must be finite; fill in the missing values or remove "
                             "those rows"),
        ('a,label\n"1,0\n', "FILE line 2 (row 1) has 1 field but the header has 2 columns; "
                            "every row needs one value per column (look for a missing or extra "
                            "comma, or a comma inside a value that needs quotes)"),
    ],
)
def test_csv_structure_errors(tmp_path, text, message):
    assert _csv_error(tmp_path, text) == message


def test_csv_not_utf8(tmp_path):
    assert _csv_error(tmp_path, "a,label\n\xe9,1\n".encode("latin-1")) == (
        "FILE is not UTF-8 text (byte 0xE9 at offset 8); save it as UTF-8 CSV")


def test_csv_size_is_capped(tmp_path):
    assert _csv_error(tmp_path, "a,label\n1,2\n" * 10, max_bytes=50) == (
        "FILE holds 120 bytes, more than the 50 read from a table; use a smaller file (or a "
        "sample of its rows)")


@pytest.mark.parametrize("name", ["data.txt", "data.xlsx", "data"])
def test_other_formats_are_named(tmp_path, name):
    (tmp_path / name).write_text("a,label\n1,2\n")
    with pytest.raises(DataError) as info:
        load_table(tmp_path / name)
    message = str(info.value)
    assert ".csv (a header row, then one row per sample) or .npz (arrays X and y, from " \
           "numpy.savez) files only; save it in one of those formats" in message
    what = {"data.txt": "a .txt file", "data.xlsx": "a .xlsx file",
            "data": "a file without an extension"}[name]
    assert message.startswith(f"{tmp_path / name} is {what}, but tables are read from ")
    assert ("export it from the spreadsheet as CSV UTF-8" in message) == (name == "data.xlsx")


def test_paths_that_are_not_files(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv does not exist; check the path$"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"nope.npz does not exist; check the path$"):
        load_table(tmp_path / "nope.npz")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir.csv is a directory, not a regular file"):
        load_table(tmp_path / "dir.csv")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.npz")  # refused without opening it (which would block)
        with pytest.raises(DataError, match=r"fifo.npz is a FIFO \(named pipe\), not a regular"):
            load_table(tmp_path / "fifo.npz")


def test_same_values_through_both_csv_paths(tmp_path, rng):
    """The fast path (numpy.loadtxt) and the cell-by-cell path (csv module; here because of the
    old Mac line endings) agree exactly on awkward numbers."""
    X = np.concatenate([rng.normal(size=(30, 3)) * 10.0 ** rng.integers(-300, 300, (30, 3)),
                        rng.integers(-2**62, 2**62, (30, 1)).astype(np.float64)], axis=1)
    rows = [[*map(repr, x), i % 2] for i, x in enumerate(X.tolist())]
    write_csv(tmp_path / "lf.csv", ["a", "b", "c", "d", "label"], rows)
    write_csv(tmp_path / "cr.csv", ["a", "b", "c", "d", "label"], rows, lineterminator="\r")
    lf, cr = load_table(tmp_path / "lf.csv"), load_table(tmp_path / "cr.csv")
    np.testing.assert_array_equal(lf.X, X)
    np.testing.assert_array_equal(cr.X, X)
    big = [str(v) for v in rng.integers(-2**62, 2**62, 10)]
    write_csv(tmp_path / "int.csv", ["a", "label"], [[v, 0] for v in big])
    assert load_table(tmp_path / "int.csv").X[:, 0].tolist() == [float(v) for v in big]


def test_one_row_one_feature(tmp_path):
    (tmp_path / "one.csv").write_text("x,label\n0.5,a\n")
    table = load_table(str(tmp_path / "one.csv"))
    assert table.X.shape == (1, 1) and table.y.tolist() == ["a"]
    assert table.n_samples == 1 and table.n_features == 1


def test_csv_module_errors_name_the_line(tmp_path):
    """An unclosed quote swallows the rest of the file into one field; the csv module refuses a
    field that long."""
    text = 'a,label\n1,0\n"2,1\n' + "3,0\n" * 40000
    assert _csv_error(tmp_path, text) == (
        "FILE line 3 is not valid CSV (field larger than field limit (131072)); fix the "
        "quoting on that line")
