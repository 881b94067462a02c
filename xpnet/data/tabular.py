"""Tables of numbers from files: ``.csv`` and ``.npz`` into a :class:`Table`.

``.csv``: a header row naming the columns, then one row per sample. One column is the target
(``target="label"`` by default: Kaggle's digit-recognizer ``train.csv`` works as it is); every
other column is a feature and must hold a finite number in every row. Quoted fields, a UTF-8
byte-order mark, CRLF line endings and blank lines are fine. Target values keep their kind:
a column of integers gives int64, of other numbers float64, of anything else strings.

``.npz`` (``numpy.savez``): arrays ``X`` (n_samples, n_features) and ``y`` (n_samples,), and
optionally ``X_test`` and ``y_test`` (a test split of the same features) and ``feature_names``
(n_features,). Nothing is unpickled (as with ``numpy.load(allow_pickle=False)``): an object
array is refused.

Rows to predict have no target: ``load_table(path, target=None)`` reads every column as a
feature; ``require_target=False`` drops the target column when it is there (its values become
``y``, or None when some are missing) and does not ask for it when it is not.
:func:`check_features` then checks the columns against those a model was trained on.

Nothing a file declares is trusted for a size: a CSV is read only up to ``max_bytes``
(:data:`MAX_CSV_BYTES` by default), and an ``.npz`` member only after its declared size, its
``.npy`` header (dtype, shape) and the sum of all members read have been checked against
``max_bytes`` (:data:`MAX_NPZ_BYTES`); reading a member stops at its declared size, and its
CRC-32 is checked. Only regular files are read (a FIFO is refused without blocking).

Every problem raises :class:`.errors.DataError` with one sentence: the file, what is wrong and
where (column, row, value), and the fix.

CSV speed: the numbers are parsed by ``numpy.loadtxt`` (C) in one pass over the text; only when
it fails does a slower pass with the ``csv`` module find the exact row and column to report
(and read files loadtxt cannot, such as ones with old Mac line endings).
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import math
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ..io import (
    FileTooLargeError,
    SpecialFileError,
    TrailingBytesError,
    open_regular,
    plain_zip_member,
    read_capped,
    read_npy_data,
)
from .errors import DataError
from .frame import Frame, is_missing_text

__all__ = ["MAX_CSV_BYTES", "MAX_NPZ_BYTES", "TABLE_FORMATS", "RawTable", "Table",
           "check_features", "load_frame", "load_table"]

TABLE_FORMATS = (".csv", ".npz")
MAX_CSV_BYTES = 1 << 30  # the text; its features take at most 4 bytes per byte (8 parsing)
MAX_NPZ_BYTES = 4 << 30  # the arrays read from an .npz, all together, decompressed
MAX_COLUMNS = 200_000  # a header of 2 million names took 450 MB to parse before any row
_SHOWN = 8  # column names listed in a message

# A number as numpy.loadtxt parses it (ASCII digits only; no "1_000", no other scripts).
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
                     r"|inf|infinity|nan)\s*", re.IGNORECASE | re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class Table:
    """A table read by :func:`load_table`.

    ``X``: float64, shape (n_samples, n_features), C-contiguous and writable.
    ``y``: shape (n_samples,), the target values as written: int64 when all are integers,
    float64 when all are numbers, else strings (an object array of ``str`` from a CSV; an
    NPZ's unicode array as saved); None without a target.
    ``feature_names``: n_features names (CSV: the header; NPZ: ``feature_names`` or
    ``x0``, ``x1``, ...). ``target``: the target column's name (``"y"`` for an NPZ), or None.
    ``X_test``/``y_test``: an NPZ's own test split (shapes (m, n_features) and (m,)), else None.
    ``path``: the file read.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list[str]
    target: str | None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    path: Path | None = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


def load_table(
    path: str | os.PathLike[str],
    target: str | None = "label",
    *,
    require_target: bool = True,
    max_bytes: int | None = None,
) -> Table:
    """Read a ``.csv`` or ``.npz`` table (see the module docstring for both formats).

    ``target``: the CSV column to predict (for an NPZ the target is always the array ``y``);
    None reads no target at all (every CSV column is a feature; an NPZ's ``y``, ``X_test`` and
    ``y_test`` are ignored). ``require_target=False`` (rows to predict): a missing target is
    no error (then ``y`` is None); a target present is still taken out of the features, so
    rows to predict may keep their label column, and becomes ``y`` when all its values are
    usable (else None); an NPZ's ``X_test``/``y_test`` are not read. ``max_bytes``: the most
    bytes read (CSV: the file; NPZ: the arrays decompressed), :data:`MAX_CSV_BYTES` /
    :data:`MAX_NPZ_BYTES` by default.

    Returns a :class:`Table`: ``X`` float64 (n_samples, n_features), ``y`` (n_samples,).
    Raises :class:`.errors.DataError` for anything it cannot use, with a one-sentence message.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, target, require_target,
                         MAX_CSV_BYTES if max_bytes is None else max_bytes)
    if suffix == ".npz":
        return _read_npz(path, target, require_target,
                         MAX_NPZ_BYTES if max_bytes is None else max_bytes)
    what = f"a {suffix} file" if suffix else "a file without an extension"
    hint = " (export it from the spreadsheet as CSV UTF-8)" if suffix in (".xls", ".xlsx",
                                                                        ".ods") else ""
    raise DataError(
        f"{path} is {what}, but tables are read from .csv (a header row, then one row per "
        f"sample) or .npz (arrays X and y, from numpy.savez) files only; save it in one of "
        f"those formats{hint}"
    )


def check_features(table: Table, expected: Sequence[str]) -> Table:
    """``table`` with its feature columns in the order of ``expected`` (the names a model was
    trained on); its ``X`` then has shape (n_samples, len(expected)).

    Columns may come in any order; a column missing or one the model does not know raises
    :class:`.errors.DataError` naming them. (Load rows to predict with
    ``require_target=False`` so that a target column present is dropped, not reported.)
    """
    expected = [str(n) for n in expected]
    have = list(table.feature_names)
    if have == expected:
        return table
    position = {name: i for i, name in enumerate(have)}
    where = table.path if table.path is not None else "the table"
    problem = column_mismatch(where, expected, have)
    if problem:
        raise DataError(problem)
    order = [position[n] for n in expected]
    return replace(table, X=np.ascontiguousarray(table.X[:, order]), feature_names=expected)


def column_mismatch(where, expected: Sequence[str], have: Sequence[str],
                    ignored=()) -> str | None:
    """The one sentence that says how the columns ``have`` of the table ``where`` differ from
    the ``expected`` feature columns a model was trained on (columns in ``ignored`` may be
    there too), or None when every expected column is there and no other."""
    position = set(have)
    missing = [n for n in expected if n not in position]
    known = set(expected) | set(ignored)
    extra = [n for n in have if n not in known]
    if not (missing or extra):
        return None
    parts = []
    if missing:
        parts.append(f"lacks {len(missing)} of the {len(expected)} feature columns the model "
                     f"was trained on ({_names(missing)})")
    if extra:
        parts.append(f"has {len(extra)} column{'s' if len(extra) > 1 else ''} the model "
                     f"does not know ({_names(extra)})")
    return (f"{where} {' and '.join(parts)}; give it the training data's feature columns, by "
            f"the same names (their order may differ)")


# ----------------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _reading(path: Path):
    """OS errors while opening or reading ``path`` as one-sentence :class:`DataError`s."""
    try:
        yield
    except SpecialFileError as exc:
        raise DataError(f"{path} is {exc.kind}, not a regular file; give the path of a .csv "
                        f"or .npz file") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist; check the path") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); check the path and its "
                        f"permissions") from exc


def _read_bytes(path: Path, limit: int) -> bytearray:
    with _reading(path):
        try:
            return read_capped(path, limit)
        except FileTooLargeError as exc:
            raise DataError(
                f"{path} holds {exc.size_text} bytes, more than the {limit} read from a table; "
                f"use a smaller file (or a sample of its rows)"
            ) from exc


def _names(names: Sequence[str], shown: int = _SHOWN) -> str:
    """``a, b, c`` or ``a, b, ... (785 in all)``."""
    text = ", ".join(repr(n) if not n or n != n.strip() else n for n in names[:shown])
    return text + (f", ... ({len(names)} in all)" if len(names) > shown else "")


# --------------------------------------------------------------------------------------- CSV
def _csv_header(path: Path, target: str | None, require_target: bool, limit: int):
    """``(raw, names, header_lines, t, features)`` of a CSV file: its bytes (checked to be
    UTF-8; the number parser reads them as they are, since through a text buffer it took 4
    bytes a character, and :func:`_text` decodes them for the cell-by-cell reader), the column
    names (checked), the lines the header takes, the target's index (or None) and the feature
    columns' indices."""
    raw = bytes(_read_bytes(path, limit))  # bytes: io.BytesIO shares them instead of copying
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02X} at offset {exc.start}); "
            f"save it as UTF-8 CSV"
        ) from None
    if not text.strip():
        raise DataError(f"{path} is empty; a CSV table needs a header row naming the columns, "
                        f"then one row per sample")
    first_line = text[:text.find("\n") + 1 or len(text)]
    if first_line.count(",") >= MAX_COLUMNS:
        raise DataError(f"{path} has more than {MAX_COLUMNS} columns in its first line; tables "
                        f"are read up to {MAX_COLUMNS} columns: keep the columns to learn from")
    reader = csv.reader(_lines(text))
    header = next((record for _, record in _records(path, reader)), None)
    if header is None:
        raise DataError(f"{path} is empty; a CSV table needs a header row naming the columns, "
                        f"then one row per sample")
    header_lines = reader.line_num
    names = [name.strip() for name in header]
    _check_header(path, names)
    t = _target_index(path, names, target, require_target)
    features = [i for i in range(len(names)) if i != t]
    if not features:
        raise DataError(f"{path} has no feature columns besides the target {target!r}; add the "
                        f"columns to learn from")
    return raw, names, header_lines, t, features


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _lines(text: str):
    """The lines of ``text`` with their endings (``\r\n``, ``\n`` or a lone ``\r``), one at
    a time, for the csv module: a StringIO of the whole text holds 4 bytes a character."""
    for match in _LINE.finditer(text):
        yield match.group()


def _text(raw: bytes) -> str:
    """The text of a CSV file's bytes, already checked by :func:`_csv_header`."""
    return raw.decode("utf-8-sig")


def _read_csv(path: Path, target: str | None, require_target: bool, limit: int) -> Table:
    raw, names, header_lines, t, features = _csv_header(path, target, require_target, limit)
    X = target_text = None
    # loadtxt splits lines at "\n" only: a file with old Mac line endings (a lone "\r") goes
    # to the csv module, which reads it right.
    if raw.count(b"\r") == raw.count(b"\r\n"):
        try:
            X, target_text = _parse_fast(raw, header_lines, len(names), features, t)
        except ValueError:
            pass
    if X is None or not np.isfinite(X).all():
        # Find what loadtxt refused (or the non-finite value) and say where, or read the
        # table cell by cell when nothing is wrong.
        X, target_text = _parse_slow(path, _text(raw), names, features, t)
    if X.shape[0] == 0:
        raise DataError(f"{path} has a header row but no data rows; add one row per sample")
    y = None if t is None else _typed_target(path, names[t], target_text, require_target)
    return Table(X=X, y=y, feature_names=[names[i] for i in features],
                 target=None if t is None else names[t], path=path)


@dataclass(frozen=True, eq=False)
class RawTable:
    """A table read by :func:`load_frame`: the feature columns as written (``frame``), the
    target values (``y``, typed as in :class:`Table`; None without a target), the target's
    name, an NPZ's own test split as another :class:`RawTable` (``test``), and the file."""

    frame: Frame
    y: np.ndarray | None
    target: str | None
    test: RawTable | None = None
    path: Path | None = None


def load_frame(
    path: str | os.PathLike[str],
    target: str | None = "label",
    *,
    require_target: bool = True,
    max_bytes: int | None = None,
) -> RawTable:
    """Read a ``.csv`` or ``.npz`` table as it was written: numbers, text and missing cells.

    As :func:`load_table` (same arguments, bounds and errors), except that a feature column
    may hold text (any cell that is not a number makes the column text) and missing cells
    (empty, or one of :data:`~xpnet.data.frame.MISSING_MARKERS`: NaN in a number column, None
    in a text one); only an infinite number is refused. The feature columns come back as a
    :class:`~xpnet.data.frame.Frame`; an all-number CSV is parsed in one ``numpy.loadtxt`` pass
    and never split into Python strings.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        table = _read_npz(path, target, require_target,
                          MAX_NPZ_BYTES if max_bytes is None else max_bytes, allow_missing=True)
        test = None
        if table.X_test is not None:
            test = RawTable(Frame.from_block(table.X_test, list(table.feature_names), path),
                            table.y_test, table.target, None, path)
        return RawTable(Frame.from_block(table.X, list(table.feature_names), path), table.y,
                        table.target, test, path)
    if suffix != ".csv":
        load_table(path)  # raises the one-sentence error for every other kind of file
    limit = MAX_CSV_BYTES if max_bytes is None else max_bytes
    raw, names, header_lines, t, features = _csv_header(path, target, require_target, limit)
    X = target_text = None
    if raw.count(b"\r") == raw.count(b"\r\n"):
        try:
            X, target_text = _parse_fast(raw, header_lines, len(names), features, t)
        except ValueError:
            X = None
    if X is not None and X.shape[0] and np.isfinite(X).all():
        frame = Frame.from_block(X, [names[i] for i in features], path)
    else:
        cells, lines = _parse_cells(path, _text(raw), names)
        if not lines:
            raise DataError(f"{path} has a header row but no data rows; add one row per sample")
        frame = Frame([names[i] for i in features],
                      [_typed_feature(path, names[i], cells[i], lines) for i in features], path)
        target_text = None if t is None else cells[t]
    y = None if t is None else _typed_target(path, names[t], target_text, require_target)
    return RawTable(frame, y, None if t is None else names[t], None, path)


def _parse_cells(path: Path, text: str, names: list[str]) -> tuple[list[list[str]], list[int]]:
    """Every cell of the table, column by column, and the line each row starts on."""
    records = _records(path, csv.reader(_lines(text)))
    next(records, None)  # the header
    cells: list[list[str]] = [[] for _ in names]
    lines: list[int] = []
    for line, record in records:
        if len(record) != len(names):
            raise _field_count_error(path, line, len(lines) + 1, len(record), len(names))
        for column, cell in zip(cells, record):
            column.append(cell)
        lines.append(line)
    return cells, lines


def _typed_feature(path: Path, name: str, cells: list[str], lines: list[int]) -> np.ndarray:
    """A feature column: float64 (NaN for a missing cell) when every present cell is a number,
    else text (None for a missing cell). An infinite number is refused, naming the cell."""
    stripped = [cell.strip() for cell in cells]
    missing = [is_missing_text(cell) for cell in stripped]
    if all(m or _NUMBER.fullmatch(cell) for cell, m in zip(stripped, missing)):
        values = np.array([math.nan if m else float(cell) for cell, m in zip(stripped, missing)],
                          dtype=np.float64)
        bad = np.flatnonzero(np.isinf(values))
        if bad.size:
            r = int(bad[0])
            raise DataError(_bad_cell(path, name, stripped[r], r + 1, lines[r], values[r]))
        return values
    return np.array([None if m else cell for cell, m in zip(stripped, missing)], dtype=object)


def _check_header(path: Path, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise DataError(
                f"{path}: column {i + 1} has no name in the header row; name every column (a "
                f"pandas index is written as an unnamed first column: save with index=False)"
            )
        if name in seen:
            raise DataError(f"{path}: the header row names two columns {name!r} (columns "
                            f"{seen[name] + 1} and {i + 1}); give every column its own name")
        seen[name] = i


def _target_index(path: Path, names: list[str], target: str | None,
                  require_target: bool) -> int | None:
    if target is None:
        return None
    if target in names:
        return names.index(target)
    if not require_target:
        return None
    semicolons = len(names) == 1 and ";" in names[0]
    same = [n for n in names if n.lower() == target.lower()]
    close = same or difflib.get_close_matches(target, names, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]!r}?)" if close and not semicolons else ""
    semicolons = " (it looks ';'-separated: save it with commas)" if semicolons else ""
    raise DataError(
        f"{path} has no column {target!r}{guess}; its columns are {_names(names)}{semicolons}; "
        f"pass --target COLUMN (target= in the library) to name the column to predict"
    )


def _parse_fast(raw: bytes, skip: int, n_columns: int, features: list[int],
                t: int | None) -> tuple[np.ndarray | None, list[str] | None]:
    """One ``numpy.loadtxt`` pass over every column (which checks that all rows have the same
    number of fields), as int64 first (five times faster to parse than floats, and exactly
    the same values once converted: both round the exact integer to the nearest float64),
    then, when a cell is not an integer, as float64. The target column's text is collected by
    a converter. ``(None, None)`` when the rows do not have the header's number of fields;
    ValueError from loadtxt for anything else it refuses; ``(None, None)`` too for no rows at
    all (then the slow pass makes sure)."""
    target_text: list[str] = []

    def collect(cell: str) -> int:
        target_text.append(cell)
        return len(target_text) - 1

    def parse(dtype) -> np.ndarray:
        target_text.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            return np.loadtxt(io.BytesIO(raw), dtype=dtype, delimiter=",", quotechar='"',
                              comments=None, skiprows=skip, ndmin=2, encoding="utf-8-sig",
                              converters=None if t is None else {t: collect})

    try:
        values = parse(np.int64)
    except (ValueError, OverflowError):
        values = parse(np.float64)
    if values.shape[0] == 0 or values.shape[1] != n_columns:
        return None, None
    if t is None:
        block = values
    elif t == 0:
        block = values[:, 1:]
    elif t == n_columns - 1:
        block = values[:, :-1]
    else:
        block = np.delete(values, t, axis=1)
    X = np.ascontiguousarray(block, dtype=np.float64)
    if t is None:
        return X, None
    return X, [target_text[int(i)] for i in values[:, t]]


def _parse_slow(path: Path, text: str, names: list[str], features: list[int],
                t: int | None) -> tuple[np.ndarray, list[str] | None]:
    """The table through the ``csv`` module, cell by cell; the first problem raises a
    :class:`DataError` naming its row, line, column and value."""
    records = _records(path, csv.reader(_lines(text)))
    next(records, None)  # the header
    rows: list[list[float]] = []
    target_text: list[str] | None = None if t is None else []
    for line, record in records:
        row = len(rows) + 1
        if len(record) != len(names):
            raise _field_count_error(path, line, row, len(record), len(names))
        values = []
        for i in features:
            cell = record[i]
            number = float(cell) if _NUMBER.fullmatch(cell) else None
            if number is None or not math.isfinite(number):
                raise DataError(_bad_cell(path, names[i], cell, row, line, number))
            values.append(number)
        rows.append(values)
        if target_text is not None:
            target_text.append(record[t])
    X = np.array(rows, dtype=np.float64).reshape(len(rows), len(features))
    return X, target_text


def _field_count_error(path: Path, line: int, row: int, fields: int, columns: int) -> DataError:
    return DataError(
        f"{path} line {line} (row {row}) has {fields} field{'s' if fields != 1 else ''} but the "
        f"header has {columns} columns; every row needs one value per column (look for a "
        f"missing or extra comma, or a comma inside a value that needs quotes)"
    )


def _records(path: Path, reader):
    """``(line, record)`` for each record of a ``csv.reader``, ``line`` the one it starts on;
    blank lines (empty, or spaces only) are skipped, but a row of empty fields is a record.
    :class:`DataError` naming the line where the csv module gives up."""
    start = 1
    try:
        for record in reader:
            if record and (len(record) > 1 or record[0].strip()):
                yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path} line {start} is not valid CSV ({exc}); fix the quoting on "
                        f"that line") from None


def _bad_cell(path: Path, column: str, cell: str, row: int, line: int,
              number: float | None) -> str:
    where = f"{path}: column {column!r} is"
    at = f"in row {row} (line {line})"
    if not cell.strip():
        return (f"{where} empty {at}, and every feature needs a number in every row; fill in "
                f"the missing values or remove those rows")
    if number is not None:
        return (f"{where} {cell.strip()!r} {at}, and features must be finite numbers; replace "
                f"the missing or infinite values or remove those rows")
    return (f"{where} {cell.strip()[:40]!r} {at}, which is not a number; features must be "
            f"numbers: convert or drop that column, or pass --target {column} if it is the one "
            f"to predict")


def _typed_target(path: Path, column: str, cells: list[str],
                  require_target: bool) -> np.ndarray | None:
    """The target column as int64 (all integers), float64 (all numbers) or strings. With
    ``require_target=False`` (rows to predict, whose target column is only dropped) a column
    with missing or non-finite values gives None instead of an error."""
    values = [cell.strip() for cell in cells]
    empty = [i for i, v in enumerate(values) if not v]
    if empty:
        if not require_target:
            return None
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise DataError(
            f"{path}: the target column {column!r} is empty in row {empty[0] + 1}{more}, and "
            f"every row needs a target value; fill them in or remove those rows"
        )
    if all(_INTEGER.fullmatch(v) for v in values):
        ints = [int(v) for v in values]
        if all(-_INT64_MAX - 1 <= v <= _INT64_MAX for v in ints):
            return np.array(ints, dtype=np.int64)
    if all(_NUMBER.fullmatch(v) for v in values):
        floats = np.array([float(v) for v in values], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(floats))
        if bad.size and not require_target:
            return None
        if bad.size:
            raise DataError(
                f"{path}: the target column {column!r} is {values[bad[0]]!r} in row "
                f"{bad[0] + 1}, and numeric targets must be finite; fill in the missing values "
                f"or remove those rows"
            )
        return floats
    # Python strings in an object array: a unicode array would give every row the width of the
    # longest label (one 20,000-character label made a 100 KB file take 4.6 GB).
    labels = np.empty(len(values), dtype=object)
    labels[:] = values
    return labels


# --------------------------------------------------------------------------------------- NPZ
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_X_KINDS, _Y_KINDS = "biuf", "biufUS"


def _read_npz(path: Path, target: str | None, require_target: bool, limit: int,
              allow_missing: bool = False) -> Table:
    with _reading(path):
        f = open_regular(path)
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise DataError(f"{path} holds {size} bytes, more than the {limit} read from a "
                            f"table; use a smaller file (or a sample of its rows)")
        if f.read(4) not in _ZIP_MAGIC:
            raise DataError(f"{path} is not an .npz file (it does not start like a zip); save "
                            f"the arrays with numpy.savez(path, X=X, y=y)")
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path} is not a valid .npz file ({exc}); save the arrays again "
                            f"with numpy.savez(path, X=X, y=y)") from exc
        with zf:
            return _npz_table(path, zf, target, require_target, limit, allow_missing)


def _npz_table(path: Path, zf: zipfile.ZipFile, target: str | None, require_target: bool,
               limit: int, allow_missing: bool = False) -> Table:
    members = {info.filename[:-4]: info for info in zf.infolist()
               if info.filename.endswith(".npy")}
    present = _names(sorted(members)) or "no arrays"
    wants_y = target is not None
    needed = ["X"] + (["y"] if wants_y and require_target else [])
    for key in needed:
        if key not in members:
            raise DataError(
                f"{path} has no array {key!r} (it holds: {present}); save the features as X "
                f"and the targets as y, e.g. numpy.savez(path, X=X, y=y)"
            )
    keys = ["X", "feature_names"] + (["y"] if wants_y else []) \
        + (["X_test", "y_test"] if wants_y and require_target else [])
    keys = [k for k in keys if k in members]
    if ("X_test" in keys) != ("y_test" in keys):
        have, lack = ("X_test", "y_test") if "X_test" in keys else ("y_test", "X_test")
        raise DataError(f"{path} has {have} but no {lack}; save both (a test split) or neither")
    declared = sum(members[k].file_size for k in keys)
    if declared > limit:
        raise DataError(f"{path} declares {declared} bytes of arrays, more than the {limit} read "
                        f"from a table; use a smaller file (or a sample of its rows)")
    arrays = {}
    budget = limit
    for key in keys:
        # Features become float64: the budget counts what that will allocate (a uint8 X of
        # 512 MB is 4 GB once converted), not the bytes the file declares.
        widen = 8 if key in ("X", "X_test") else 1
        arrays[key] = _read_member(path, zf, members[key], key, budget, widen)
        budget -= arrays[key].size * max(arrays[key].itemsize, widen)

    X = _features(path, "X", arrays["X"], None, allow_missing)
    n = X.shape[0]
    names = _feature_names(path, arrays.get("feature_names"), X.shape[1])
    y = None
    if "y" in arrays:
        try:
            y = _targets(path, "y", arrays["y"], n)
        except DataError:
            if require_target:
                raise  # rows to predict: a y that is not usable is only dropped
    X_test = y_test = None
    if "X_test" in arrays:
        X_test = _features(path, "X_test", arrays["X_test"], X.shape[1], allow_missing)
        y_test = _targets(path, "y_test", arrays["y_test"], X_test.shape[0])
    return Table(X=X, y=y, feature_names=names, target="y" if y is not None else None,
                 X_test=X_test, y_test=y_test, path=path)


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str,
                 budget: int, widen: int = 1) -> np.ndarray:
    """One ``.npy`` member, its header checked before any data is read and at most ``budget``
    data bytes read."""
    fix = "save the arrays again with numpy.savez(path, X=X, y=y)"
    if not plain_zip_member(info):
        raise DataError(f"{path}: array {key!r} is encrypted or compressed with a method "
                        f"numpy does not write; {fix}")
    try:
        with zf.open(info) as f:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f)
            else:
                raise DataError(f"{path}: array {key!r} is in .npy format {version[0]}."
                                f"{version[1]}, which is not read here; {fix}")
            header_bytes = f.tell()
            if dtype.hasobject:
                raise DataError(
                    f"{path}: array {key!r} holds Python objects (dtype {dtype}), which would "
                    f"need pickle to load and are refused for safety; save numbers or strings "
                    f"(e.g. {key}.astype(float) or {key}.astype(str))"
                )
            nbytes = math.prod(shape) * dtype.itemsize
            needed = math.prod(shape) * max(dtype.itemsize, widen)
            if needed > budget:
                widened = f" ({needed} as float64)" if needed > nbytes else ""
                raise DataError(f"{path}: array {key!r} of shape {shape} and dtype {dtype} "
                                f"needs {nbytes} bytes{widened}, more than the {budget} still "
                                f"allowed; use a smaller file (or a sample of its rows)")
            if info.file_size != header_bytes + nbytes:
                raise DataError(f"{path}: array {key!r} holds {info.file_size - header_bytes} "
                                f"data bytes where its header promises {nbytes}, so the file is "
                                f"damaged; {fix}")
            return read_npy_data(f, shape, fortran, dtype)
    except DataError:
        raise
    except TrailingBytesError:
        raise DataError(f"{path}: array {key!r} is longer than its header says, so the file is "
                        f"damaged; {fix}") from None
    except Exception as exc:  # BadZipFile (CRC), zlib.error, EOFError, ValueError (header)
        raise DataError(f"{path}: array {key!r} is damaged or not a .npy array "
                        f"({type(exc).__name__}: {exc}); {fix}") from exc


def _features(path: Path, key: str, a: np.ndarray, n_features: int | None,
              allow_missing: bool = False) -> np.ndarray:
    if a.dtype.kind not in _X_KINDS or a.dtype.names is not None:
        raise DataError(f"{path}: {key} has dtype {a.dtype}, but features must be numbers; "
                        f"convert it, e.g. {key}.astype(float)")
    if a.ndim != 2:
        raise DataError(f"{path}: {key} has shape {a.shape}, but it must be 2-D (n_samples, "
                        f"n_features); reshape it, e.g. {key}.reshape(len({key}), -1)")
    if key == "X" and a.shape[0] == 0:
        raise DataError(f"{path}: X has no rows (shape {a.shape}); save at least one sample")
    if a.shape[1] == 0:
        raise DataError(f"{path}: {key} has no columns (shape {a.shape}); save the features")
    if n_features is not None and a.shape[1] != n_features:
        raise DataError(f"{path}: {key} has {a.shape[1]} columns but X has {n_features}; the "
                        f"test split needs the same features as X")
    X = np.ascontiguousarray(a, dtype=np.float64)
    bad = np.argwhere(~np.isfinite(X) & (~np.isnan(X) if allow_missing else True))
    if bad.size:
        r, c = (int(v) for v in bad[0])
        raise DataError(f"{path}: {key} holds {X[r, c]} at row {r}, column {c}, and features "
                        f"must be finite numbers; replace the missing or infinite values")
    if not X.flags.writeable:
        X = X.copy()
    return X


def _targets(path: Path, key: str, a: np.ndarray, n: int) -> np.ndarray:
    if a.dtype.kind not in _Y_KINDS or a.dtype.names is not None:
        raise DataError(f"{path}: {key} has dtype {a.dtype}; targets must be numbers or "
                        f"strings, e.g. {key}.astype(str)")
    if a.ndim != 1:
        hint = f"{key}.ravel()" if a.ndim == 2 and 1 in a.shape else "one value per row of X"
        raise DataError(f"{path}: {key} has shape {a.shape}, but it must be 1-D (n_samples,); "
                        f"save {hint}")
    x_key = "X" if key == "y" else "X_test"
    if a.shape[0] != n:
        raise DataError(f"{path}: {key} has {a.shape[0]} values but {x_key} has {n} rows; "
                        f"save one target per row")
    kind = a.dtype.kind
    if kind == "b":
        return a.astype(np.int64)
    if kind in "iu":
        if kind == "u" and a.size and int(a.max()) > _INT64_MAX:
            return a.astype(np.float64)
        return a.astype(np.int64)
    if kind == "f":
        y = a.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DataError(f"{path}: {key} holds {y[bad[0]]} at index {bad[0]}, and numeric "
                            f"targets must be finite; fill in or drop those rows")
        return y
    if kind == "S":
        try:
            return np.char.decode(a, "utf-8").astype(str)
        except UnicodeDecodeError:
            raise DataError(f"{path}: {key} holds bytes that are not UTF-8 text; save it as "
                            f"strings ({key}.astype(str))") from None
    return a.copy()


def _feature_names(path: Path, a: np.ndarray | None, n_features: int) -> list[str]:
    if a is None:
        return [f"x{i}" for i in range(n_features)]
    if a.dtype.kind not in "US" or a.shape != (n_features,):
        raise DataError(f"{path}: feature_names has dtype {a.dtype} and shape {a.shape}, but it "
                        f"must hold {n_features} strings, one per column of X")
    names = [str(v.decode() if isinstance(v, bytes) else v) for v in a.tolist()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: feature_names holds a name twice; give every column its own "
                        f"name")
    return names
