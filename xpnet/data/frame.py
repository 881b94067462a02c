"""Columns of a table as they were written: numbers, text and missing cells, before any encoding.

A :class:`Frame` is what the model's input schema (:mod:`xpnet.schema`) reads. Each column is
a 1-D NumPy array of one of two kinds:

* **numbers**: float64; a missing cell is NaN;
* **text**: an object array of ``str``; a missing cell is ``None``.

A missing cell is an empty one or one of :data:`MISSING_MARKERS` (``NA``, ``NaN``, ``null``...,
pandas' default markers less the exotic ones), after stripping spaces. Booleans (``True`` /
``False``) stay text here; the schema decides that a column of them is a boolean.

:func:`as_frame` turns what a Python user holds into a frame: a pandas ``DataFrame`` (no pandas
import: it is recognised by its attributes), a ``{name: values}`` mapping, or a 2-D array or
list of rows (columns then have no names and are matched by position). Files are read into
frames by :func:`xpnet.data.load_frame`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["MISSING_MARKERS", "Frame", "as_frame", "is_missing_text", "is_missing_value"]

MISSING_MARKERS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None",
                             "<NA>", "#N/A", "-nan", "-NaN"})


def is_missing_text(cell: str) -> bool:
    """Whether a text cell (already stripped) means "no value"."""
    return cell in MISSING_MARKERS


@dataclass(frozen=True, eq=False)
class Frame:
    """Named columns of equal length: float64 (NaN missing) or object ``str`` (None missing).

    ``names``: the column names in their order; None when the columns came without names (a
    bare 2-D array), so that they can only be matched by position. ``block``: for an all-number
    table, the same columns as one (n_rows, n_columns) float64 array, so that a large numeric
    table is never split into columns and stacked again. ``path``: the file read, for messages.
    """

    names: list[str] | None
    columns: list[np.ndarray]
    path: Path | None = None
    block: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(len(self.columns[0])) if self.columns else 0

    @property
    def where(self) -> str:
        """How messages name this table."""
        return str(self.path) if self.path is not None else "the data"

    def column(self, name: str) -> np.ndarray:
        return self.columns[self.names.index(name)]

    def take(self, rows) -> Frame:
        """The frame of the rows ``rows`` (an index array or a boolean mask)."""
        block = None if self.block is None else self.block[rows]
        if block is not None:
            return Frame(self.names, [block[:, j] for j in range(block.shape[1])], self.path,
                         block)
        return Frame(self.names, [c[rows] for c in self.columns], self.path)

    def without(self, names: Sequence[str]) -> Frame:
        """The frame less the columns ``names`` (which must exist)."""
        keep = [i for i, n in enumerate(self.names) if n not in set(names)]
        block = None if self.block is None else self.block[:, keep]
        return Frame([self.names[i] for i in keep], [self.columns[i] for i in keep], self.path,
                     block)

    @classmethod
    def from_block(cls, block: np.ndarray, names: list[str] | None, path=None) -> Frame:
        """An all-number frame over the 2-D float64 array ``block`` (columns are views)."""
        block = np.asarray(block, dtype=np.float64)
        return cls(names, [block[:, j] for j in range(block.shape[1])], path, block)


# ------------------------------------------------------------------------- from Python
def as_frame(data, names: Sequence[str] | None = None) -> Frame:
    """``data`` as a :class:`Frame`.

    ``data``: a :class:`Frame` (returned as is); a pandas ``DataFrame``; a mapping of column
    name to values; or a 2-D array / list of rows, whose columns are unnamed unless ``names``
    is given. Booleans become 0/1 numbers, integers and floats float64 (NaN, None and pandas'
    NA are missing), anything else text.
    """
    if isinstance(data, Frame):
        return data
    if _is_dataframe(data):
        cols = [str(c) for c in data.columns]
        _unique(cols)
        return Frame(cols, [_column(data[c].to_numpy(), c) for c in data.columns])
    if isinstance(data, Mapping):
        cols = [str(c) for c in data]
        _unique(cols)
        columns = [_column(data[c], c) for c in data]
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise DataError(f"the columns have different lengths ({sorted(lengths)}); give "
                            f"every column one value per row")
        return Frame(cols, columns)
    array = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if array.dtype.kind == "O" and array.ndim != 2:
        array = np.array(list(data), dtype=object)
    if array.ndim != 2:
        raise DataError(f"the data has shape {array.shape}, but rows of features must be 2-D "
                        f"(n_samples, n_features); reshape it, e.g. X.reshape(len(X), -1)")
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != array.shape[1]:
            raise DataError(f"{len(names)} names were given for {array.shape[1]} columns")
    if array.dtype.kind in "biuf":
        return Frame.from_block(array, names)
    return Frame(names, [_column(array[:, j], j) for j in range(array.shape[1])])


def _is_dataframe(data) -> bool:
    return all(hasattr(data, a) for a in ("columns", "dtypes", "iloc", "to_numpy"))


def _unique(names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"two columns are named {name!r}; give every column its own name")
        seen.add(name)


def is_missing_value(v) -> bool:
    """Whether a Python value means "no value": None, a float NaN, pandas' NA or NaT."""
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(v)
    return type(v).__name__ in ("NAType", "NaTType")  # pandas.NA, pandas.NaT


def _column(values, name) -> np.ndarray:
    """One column as float64 (numbers, booleans as 0/1) or object text (stripped; None for a
    missing cell)."""
    if isinstance(values, np.ndarray):
        a = values
    elif _plain_numbers(values):
        a = np.asarray(values)
    else:
        a = np.asarray(values, dtype=object)
    if a.ndim != 1:
        raise DataError(f"column {name!r} has shape {a.shape}; each column must be 1-D")
    if a.dtype.kind in "biuf":
        return a.astype(np.float64)
    if a.dtype.kind in "US":
        a = a.astype(object)
    if a.dtype.kind != "O":  # datetimes and the like: kept as their text
        a = a.astype(str).astype(object)
    cells = list(a)
    present = [v for v in cells if not is_missing_value(v)]
    if all(isinstance(v, (bool, np.bool_, numbers.Real)) and not isinstance(v, str)
           for v in present):
        return np.array([np.nan if is_missing_value(v) else float(v) for v in cells],
                        dtype=np.float64)
    out = np.empty(len(cells), dtype=object)
    for i, v in enumerate(cells):
        if is_missing_value(v):
            out[i] = None
            continue
        text = (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip()
        out[i] = None if is_missing_text(text) else text
    return out


def _plain_numbers(values) -> bool:
    """Whether a list can go through ``np.asarray`` as numbers without losing anything."""
    try:
        return all(isinstance(v, (bool, numbers.Real)) and not isinstance(v, str)
                   for v in values)
    except TypeError:
        return False
