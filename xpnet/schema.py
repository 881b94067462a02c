"""The input schema of a model: which columns it reads, of which kind, and how each becomes numbers.

This is scikit-learn's ``ColumnTransformer`` with ``SimpleImputer``, ``OneHotEncoder
(handle_unknown="ignore")`` and ``StandardScaler``, fitted once on the training rows and saved
with the model. For a table of n rows it computes the network's input

    X = [ (N - offset) / scale  |  onehot(C_1)  |  ...  |  onehot(C_k) ]      (n, n_inputs)

where ``N`` (n, n_numeric) holds the **number** columns as they are and the **boolean** columns
as 1/0 (``True``/``False`` in any case), with a missing cell replaced by the training mean
(numbers) or the most frequent value (booleans), and ``offset``, ``scale`` are the
:class:`~xpnet.preprocessing.Scaler`'s statistics of the training rows, computed in float64
(``(x - offset) / scale`` is computed in float64 too and cast to the network's dtype last, so
a feature such as a timestamp keeps its digits). Each **category** column ``C_j`` (text) becomes
one 0/1 input per category seen in training, in sorted order; a missing cell counts as the
most frequent category, and a category never seen in training as none of them (all zeros).

Columns are matched by name, in any order. An ``id`` column and ``drop``-ped columns are kept
out of the inputs (and may be present when predicting); any other column the schema does not
know is refused, as scikit-learn refuses unseen feature names. Rows without names (a 2-D
array) are matched by position to :attr:`InputSchema.names`.

With ``missing="error"`` a missing cell is refused instead of imputed, at fit and predict time.
Every problem raises :class:`~xpnet.data.DataError` with one sentence that names the table,
the column and the fix.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .data.errors import DataError
from .data.frame import Frame, as_frame
from .data.tabular import column_mismatch
from .preprocessing import SCALINGS, Scaler

__all__ = ["COLUMN_KINDS", "MISSING_POLICIES", "ColumnSpec", "InputSchema"]

COLUMN_KINDS = ("number", "boolean", "category")
MISSING_POLICIES = ("impute", "error")
MAX_CATEGORIES = 1000  # one-hot inputs one text column may add
FEW_CATEGORIES = 20  # up to this many distinct values a text column is always a category
_TRUE, _FALSE = "true", "false"


@dataclass
class ColumnSpec:
    """One input column: its name, its kind, the value that replaces a missing cell (a number
    for numbers and booleans, a category for text), and a text column's categories."""

    name: str
    kind: str
    fill: float | str
    categories: list[str] | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "fill": self.fill}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json(cls, d) -> ColumnSpec:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) \
                or d.get("kind") not in COLUMN_KINDS:
            raise ValueError(f"column entry {d!r:.80} is not a column spec")
        if d["kind"] == "category":
            cats = d.get("categories")
            if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats) \
                    or not isinstance(d.get("fill"), str):
                raise ValueError(f"column {d['name']!r} has damaged categories")
            return cls(d["name"], "category", d["fill"], cats)
        fill = d.get("fill")
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) \
                or not math.isfinite(fill):
            raise ValueError(f"column {d['name']!r} has a damaged fill value {fill!r:.40}")
        return cls(d["name"], d["kind"], float(fill))


@dataclass
class InputSchema:
    """Fitted column handling; see the module docstring. Build one with :meth:`fit` (a table)
    or :meth:`numeric` (named number columns and a fitted scaler, e.g. MNIST's pixels)."""

    columns: list[ColumnSpec]
    scaler: Scaler
    id: str | None = None
    dropped: list[str] = field(default_factory=list)
    missing: str = "impute"
    imputed: dict = field(default_factory=dict)  # at fit: column -> cells imputed
    notes: list = field(default_factory=list)  # at fit: things worth a line

    # ----------------------------------------------------------------- building
    @classmethod
    def fit(cls, data, *, id=None, drop=(), missing="impute", scaling="standard",
            excluded=()) -> InputSchema:
        """The schema of the training rows ``data`` (anything :func:`~xpnet.data.as_frame`
        takes). ``id``: a column kept out of the inputs (an identifier, passed through to
        predictions). ``drop``: columns left out. ``missing``: ``"impute"`` or ``"error"``.
        ``scaling``: how the number block is scaled (``"standard"`` for tables).
        ``excluded``: other names the schema should accept and ignore later (the target)."""
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {', '.join(MISSING_POLICIES)}; got "
                             f"{missing!r}")
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {scaling!r}: choose one of {', '.join(SCALINGS)}")
        frame = as_frame(data)
        names = frame.names or [f"x{j}" for j in range(len(frame.columns))]
        drop = [drop] if isinstance(drop, str) else [str(d) for d in drop]
        for flag, wanted in (("--id", [id] if id is not None else []), ("--drop", drop)):
            unknown = [w for w in wanted if w not in names]
            if unknown:
                raise DataError(f"{frame.where} has no column {unknown[0]!r} ({flag}); its "
                                f"columns are {_listed(names)}")
        if id is not None and id in drop:
            raise DataError(f"the column {id!r} is both --id and in --drop; give it to one")
        if frame.n_rows == 0:
            raise DataError(f"{frame.where} has no rows to learn from")
        columns, imputed, notes, numeric = [], {}, [], []
        for name, values in zip(names, frame.columns):
            if name == id or name in drop:
                continue
            spec, block, n_missing = _fit_column(frame, name, values, missing, notes)
            columns.append(spec)
            if n_missing:
                imputed[name] = n_missing
            if block is not None:
                numeric.append(block)
        if not columns:
            raise DataError(f"{frame.where} has no feature columns left after --id and --drop; "
                            f"keep at least one column to learn from")
        N = np.column_stack(numeric) if numeric else np.zeros((frame.n_rows, 0))
        scaler = Scaler(scaling).fit(N) if N.shape[1] else _empty_scaler()
        return cls(columns, scaler, id, drop, missing, imputed, notes)

    @classmethod
    def numeric(cls, names, scaler: Scaler, missing="error") -> InputSchema:
        """A schema of number columns only, scaled by the fitted ``scaler`` (MNIST: 784 pixel
        columns ``pixel0..pixel783``, scaled from 0..255 to 0..1)."""
        return cls([ColumnSpec(str(n), "number", 0.0) for n in names], scaler, missing=missing)

    @classmethod
    def pixels(cls, n, scaler: Scaler) -> InputSchema:
        """The schema of an image model: ``n`` pixel columns ``pixel0..pixel{n-1}`` (Kaggle's
        MNIST CSV names), scaled by ``scaler``; a missing pixel is refused."""
        return cls.numeric([f"pixel{j}" for j in range(n)], scaler)

    # ----------------------------------------------------------------- reading
    @property
    def names(self) -> list[str]:
        """The input columns, in the order positional rows must give them."""
        return [c.name for c in self.columns]

    @property
    def n_inputs(self) -> int:
        """The network's input width: one per number or boolean, one per category."""
        return sum(len(c.categories) if c.kind == "category" else 1 for c in self.columns)

    @property
    def input_names(self) -> list[str]:
        """A name for each network input: the column, or ``column=category``."""
        numeric = [c.name for c in self.columns if c.kind != "category"]
        onehot = [f"{c.name}={v}" for c in self.columns if c.kind == "category"
                  for v in c.categories]
        return numeric + onehot

    @property
    def numeric_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.kind != "category"]

    @property
    def category_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.kind == "category"]

    def describe(self) -> list[str]:
        """One line on the columns (and one on the imputed cells, if any), as the CLI
        announces them."""
        kinds = Counter(c.kind for c in self.columns)
        parts = []
        if kinds["number"]:
            parts.append(f"{kinds['number']} number{'s' if kinds['number'] > 1 else ''}")
        if kinds["boolean"]:
            parts.append(f"{kinds['boolean']} boolean ({_listed(self._kind('boolean'), 4)}, "
                         f"as 1/0)")
        if kinds["category"]:
            shown = ", ".join(f"{c.name}: {len(c.categories)}"
                              for c in self.category_columns[:4])
            more = ", ..." if kinds["category"] > 4 else ""
            parts.append(f"{kinds['category']} text (one-hot; categories {shown}{more})")
        line = f"columns: {', '.join(parts)} -> {self.n_inputs} inputs"
        if self.id is not None:
            line += f"; id: {self.id}"
        if self.dropped:
            line += f"; dropped: {_listed(self.dropped, 4)}"
        lines = [line]
        if self.imputed:
            total = sum(self.imputed.values())
            shown = ", ".join(f"{name} {n}" for name, n in list(self.imputed.items())[:4])
            more = ", ..." if len(self.imputed) > 4 else ""
            lines.append(f"missing: {total} cell{'s' if total > 1 else ''} imputed from the "
                         f"training rows (mean for numbers, most frequent value otherwise: "
                         f"{shown}{more})")
        return lines + [f"note: {n}" for n in self.notes]

    def _kind(self, kind) -> list[str]:
        return [c.name for c in self.columns if c.kind == kind]

    # ----------------------------------------------------------------- transform
    def transform(self, data, dtype="float32", *, excluded=()) -> np.ndarray:
        """The network's inputs (n, :attr:`n_inputs`) in ``dtype`` for the rows ``data``
        (a frame, DataFrame, mapping or 2-D array). ``excluded``: more column names to
        ignore (the target)."""
        if isinstance(data, np.ndarray) and data.ndim == 2 and data.dtype.kind in "biuf" \
                and not self.category_columns and data.shape[1] == len(self.columns):
            numbers_only = all(c.kind == "number" for c in self.columns)
            if numbers_only and (data.dtype.kind != "f" or not np.isnan(data).any()):
                return self.scaler.transform(data, dtype)  # the fast path: images, arrays
        frame = as_frame(data)
        sources = self._match(frame, excluded)
        n = frame.n_rows
        numeric = self.numeric_columns
        parts = []
        if numeric:
            if frame.block is not None and all(c.kind == "number" for c in numeric):
                index = [sources[c.name] for c in numeric]
                block = frame.block if index == list(range(frame.block.shape[1])) \
                    else frame.block[:, index]
                block = self._filled_block(frame, block, numeric)
            else:
                block = np.empty((n, len(numeric)), dtype=np.float64)
                for j, spec in enumerate(numeric):
                    block[:, j] = self._numbers(frame, spec, frame.columns[sources[spec.name]])
            parts.append(self.scaler.transform(block, dtype))
        for spec in self.category_columns:
            parts.append(self._onehot(frame, spec, frame.columns[sources[spec.name]], dtype))
        return np.ascontiguousarray(np.hstack(parts)) if len(parts) > 1 else \
            np.ascontiguousarray(parts[0], dtype=dtype)

    def ids(self, data):
        """The values of the id column of ``data`` (as given), or None when the schema has
        none or ``data`` lacks it."""
        frame = as_frame(data)
        if self.id is None or frame.names is None or self.id not in frame.names:
            return None
        return frame.column(self.id)

    def _match(self, frame: Frame, excluded) -> dict:
        """Schema column name -> index of the frame column that holds it."""
        names = self.names
        if frame.names is None:
            if len(frame.columns) != len(names):
                raise DataError(f"{frame.where} has {len(frame.columns)} columns, but the model "
                                f"reads {len(names)} ({_listed(names)}); give them in that "
                                f"order, or as a DataFrame with those names")
            return {name: j for j, name in enumerate(names)}
        position = {name: j for j, name in enumerate(frame.names)}
        ignored = [*self.dropped, *excluded, *([self.id] if self.id is not None else [])]
        problem = column_mismatch(frame.where, names, frame.names, ignored)
        if problem:
            raise DataError(problem)
        return {name: position[name] for name in names}

    def _filled_block(self, frame, block, specs) -> np.ndarray:
        holes = np.isnan(block)
        if not holes.any():
            return block
        rows, cols = np.nonzero(holes)
        if self.missing == "error":
            raise _missing_error(frame, specs[int(cols[0])].name, int(rows[0]))
        block = block.copy()
        block[rows, cols] = np.array([specs[j].fill for j in range(len(specs))])[cols]
        return block

    def _numbers(self, frame, spec, values) -> np.ndarray:
        """A number or boolean column as float64, missing cells filled."""
        if values.dtype.kind == "O":
            values = _text_to_numbers(frame, spec, values)
        elif spec.kind == "boolean":
            bad = np.flatnonzero(~np.isnan(values) & (values != 0) & (values != 1))
            if bad.size:
                raise DataError(f"{frame.where}: column {spec.name!r} is {values[bad[0]]:g} in "
                                f"row {bad[0] + 1}, but the model was trained on True/False "
                                f"there; give True/False (or 1/0)")
        _check_missing(frame, spec.name, values, self.missing)
        holes = np.isnan(values)
        return np.where(holes, spec.fill, values) if holes.any() else values

    def _onehot(self, frame, spec, values, dtype) -> np.ndarray:
        """The 0/1 block of a category column: unseen categories give a row of zeros."""
        if values.dtype.kind != "O":
            values = np.array([None if math.isnan(v) else _number_text(v) for v in values],
                              dtype=object)
        index = {c: i for i, c in enumerate(spec.categories)}
        out = np.zeros((len(values), len(spec.categories)), dtype=dtype)
        unseen = []
        for r, v in enumerate(values):
            if v is None:
                if self.missing == "error":
                    raise _missing_error(frame, spec.name, r)
                v = spec.fill
            i = index.get(v)
            if i is None:
                unseen.append(v)
            else:
                out[r, i] = 1
        if unseen and len(unseen) == len(values):
            raise DataError(f"{frame.where}: every value of the text column {spec.name!r} is "
                            f"one the model never saw in training (such as {unseen[0][:40]!r}; "
                            f"it knows {_listed(spec.categories, 5)}); check that the column "
                            f"holds the same kind of values")
        return out

    # ----------------------------------------------------------------- saving
    def state(self) -> dict:
        """``{"json", "arrays"}`` for a checkpoint: the columns as JSON, the scaler's
        statistics as float64 arrays."""
        return {"json": {"columns": [c.to_json() for c in self.columns], "id": self.id,
                         "dropped": list(self.dropped), "missing": self.missing,
                         "scaling": self.scaler.method},
                "arrays": {"offset": np.asarray(self.scaler.offset, dtype=np.float64),
                           "scale": np.asarray(self.scaler.scale, dtype=np.float64)}}

    @classmethod
    def from_state(cls, state) -> InputSchema:
        """The schema :meth:`state` described; ValueError (or KeyError, TypeError) for a
        damaged one."""
        js, arrays = state["json"], state["arrays"]
        columns = [ColumnSpec.from_json(c) for c in js["columns"]]
        if not columns:
            raise ValueError("no input columns")
        scaler = Scaler(js["scaling"])
        scaler.offset = np.asarray(arrays["offset"], dtype=np.float64)
        scaler.scale = np.asarray(arrays["scale"], dtype=np.float64)
        n_numeric = sum(c.kind != "category" for c in columns)
        for name in ("offset", "scale"):
            shape = getattr(scaler, name).shape
            if shape not in ((), (n_numeric,)):
                raise ValueError(f"the scaler's {name} has shape {shape} for {n_numeric} "
                                 f"number columns")
            if not np.isfinite(getattr(scaler, name)).all():
                raise ValueError(f"the scaler's {name} is not finite")
        if not (scaler.scale > 0).all():
            raise ValueError("the scaler's scale is not positive")
        missing = js.get("missing", "impute")
        if missing not in MISSING_POLICIES:
            raise ValueError(f"unknown missing-value policy {missing!r:.40}")
        dropped = js.get("dropped") or []
        if not isinstance(dropped, list) or not all(isinstance(d, str) for d in dropped):
            raise ValueError("damaged list of dropped columns")
        ident = js.get("id")
        if ident is not None and not isinstance(ident, str):
            raise ValueError("damaged id column")
        return cls(columns, scaler, ident, dropped, missing)


# ------------------------------------------------------------------------- fitting columns
def _fit_column(frame, name, values, missing, notes):
    """``(spec, numeric block column or None, missing cells)`` of one training column."""
    if values.dtype.kind == "O":
        present = [v for v in values if v is not None]
        n_missing = len(values) - len(present)
        lowered = {v.lower() for v in present}
        if present and lowered <= {_TRUE, _FALSE}:
            numbers = np.array([np.nan if v is None else float(v.lower() == _TRUE)
                                for v in values])
            _check_missing(frame, name, numbers, missing)
            fill = _mode_number(numbers[~np.isnan(numbers)])
            return ColumnSpec(name, "boolean", fill), np.where(np.isnan(numbers), fill,
                                                                numbers), n_missing
        if not present:
            raise _empty_column(frame, name)
        if missing == "error" and n_missing:
            raise _missing_error(frame, name, next(i for i, v in enumerate(values) if v is None))
        counts = Counter(present)
        if len(counts) > MAX_CATEGORIES or (len(counts) > FEW_CATEGORIES
                                            and len(counts) > len(present) / 2):
            raise DataError(f"{frame.where}: the text column {name!r} has {len(counts)} "
                            f"different values in {len(present)} rows, too many to learn from "
                            f"as categories; leave it out with --drop {name} (drop= in Python), "
                            f"or name it with --id {name} if it identifies the rows")
        categories = sorted(counts)
        fill = min(categories, key=lambda c: (-counts[c], categories.index(c)))
        return ColumnSpec(name, "category", fill, categories), None, n_missing
    holes = np.isnan(values)
    if holes.all():
        raise _empty_column(frame, name)
    _check_missing(frame, name, values, missing)
    present = values[~holes]
    fill = float(np.mean(present, dtype=np.float64))
    if _looks_like_an_id(name, present, len(values)):
        notes.append(f"the column {name!r} holds a different whole number in every row, like "
                     f"an identifier, and is used as a feature; pass --id {name} (id= in "
                     f"Python) or --drop {name} if it is not a measurement")
    filled = np.where(holes, fill, values) if holes.any() else values
    return ColumnSpec(name, "number", fill), filled, int(holes.sum())


def _mode_number(values) -> float:
    counts = Counter(values.tolist())
    return float(max(sorted(counts), key=lambda v: counts[v]))


def _check_missing(frame, name, numbers, missing):
    if missing == "error":
        holes = np.flatnonzero(np.isnan(numbers))
        if holes.size:
            raise _missing_error(frame, name, int(holes[0]))


def _looks_like_an_id(name, present, n_rows) -> bool:
    lowered = name.lower()
    named = lowered == "id" or lowered.endswith(("_id", " id", "-id")) or lowered in (
        "index", "row", "key", "uuid")
    return named and len(present) == n_rows and n_rows > 2 and \
        bool(np.all(present == np.round(present))) and len(np.unique(present)) == n_rows


def _text_to_numbers(frame, spec, values) -> np.ndarray:
    """A text column given where the model was trained on numbers or booleans."""
    out = np.empty(len(values), dtype=np.float64)
    for r, v in enumerate(values):
        if v is None:
            out[r] = np.nan
        elif spec.kind == "boolean" and v.lower() in (_TRUE, _FALSE):
            out[r] = float(v.lower() == _TRUE)
        else:
            try:
                out[r] = float(v)
            except ValueError:
                out[r] = np.nan
                kind = "True/False" if spec.kind == "boolean" else "numbers"
                raise DataError(f"{frame.where}: column {spec.name!r} is {v[:40]!r} in row "
                                f"{r + 1}, but the model was trained on {kind} there; fix the "
                                f"value or the column") from None
            if spec.kind == "boolean" and out[r] not in (0.0, 1.0):
                raise DataError(f"{frame.where}: column {spec.name!r} is {v[:40]!r} in row "
                                f"{r + 1}, but the model was trained on True/False there")
            if math.isinf(out[r]):
                raise DataError(f"{frame.where}: column {spec.name!r} is {v!r} in row {r + 1}, "
                                f"and features must be finite numbers")
    return out


def _number_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _missing_error(frame, name, row) -> DataError:
    return DataError(f"{frame.where}: column {name!r} is missing in row {row + 1}, and missing "
                     f"values are refused (--missing error); fill them in, or let xpnet impute "
                     f"them (--missing impute, the default)")


def _empty_column(frame, name) -> DataError:
    return DataError(f"{frame.where}: column {name!r} is empty in every row; leave it out with "
                     f"--drop {name} (drop= in Python)")


def _empty_scaler() -> Scaler:
    s = Scaler("none")
    s.offset, s.scale = np.float64(0.0), np.float64(1.0)
    return s


def _listed(names, shown=8) -> str:
    names = list(names)
    text = ", ".join(str(n) for n in names[:shown])
    return text + (f", ... ({len(names)} in all)" if len(names) > shown else "")
