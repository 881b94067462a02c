"""The target of a model: what its outputs mean, and the way from the user's values to the
network's and back.

* **classification**: the sorted distinct labels are the classes (numbers or text, as
  scikit-learn's ``LabelEncoder``); a label becomes its class index ``0..k-1``, and the
  network's ``k`` softmax outputs are the class probabilities. ``decode`` gives back labels.
* **regression**: the network learns the standardised value ``(y - mean) / scale`` (statistics
  of the training rows, float64; ``scale`` is the standard deviation, 1 when it is 0) on one
  identity output, and ``decode`` maps its output back to the target's units,
  ``output * scale + mean``.

Every problem raises :class:`TargetError` (a :class:`~xpnet.data.DataError`) with one sentence.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .data.errors import DataError
from .data.frame import is_missing_value

__all__ = ["MAX_CLASSES", "TASKS", "Target", "TargetError", "label_value"]

TASKS = ("classification", "regression")
MAX_CLASSES = 10_000
MANY_CLASSES = 30  # an integer target with more distinct values gets a note: regression?


class TargetError(DataError):
    """Target values the task cannot use. ``usage`` is True when the fix is another task (the
    CLI then exits 2, as for a bad flag)."""

    def __init__(self, message, usage=False):
        super().__init__(message)
        self.usage = usage


def label_value(value):
    """A label as JSON stores it: int, float or str."""
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def _values(y, what) -> np.ndarray:
    """``y`` as a 1-D array: int64, float64 or text (object -> str)."""
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    a = np.asarray(y)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise TargetError(f"{what} has shape {a.shape}; give one target value per row")
    if a.dtype.kind == "b":
        a = a.astype(object)
    if a.dtype.kind in "iuf":
        if a.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(a))
            if bad.size:
                raise TargetError(f"{what} is {a[bad[0]]} in row {bad[0] + 1}; every row needs "
                                  f"a finite target value: fill it in or remove the row")
        return a.astype(np.int64) if a.dtype.kind in "iu" else a.astype(np.float64)
    cells = list(a)
    missing = [i for i, v in enumerate(cells) if is_missing_value(v)]
    if missing:
        raise TargetError(f"{what} is missing in row {missing[0] + 1}; every row needs a target "
                          f"value: fill it in or remove the row")
    if cells and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                     for v in cells):
        return _values(np.array(cells, dtype=np.float64), what)
    labels = np.empty(len(cells), dtype=object)  # Python strings: no row is as wide as the
    labels[:] = [str(v) for v in cells]          # longest label
    return labels


class Target:
    """What the network's outputs stand for; build one with :meth:`fit`.

    ``task``: ``"classification"`` or ``"regression"``. ``classes``: the labels, JSON-ready
    (classification). ``mean``, ``scale``: the regression statistics. ``name``: the target
    column, if known. ``class_names``: display names of the classes (Fashion-MNIST's), or None.
    """

    def __init__(self, task, *, classes=None, mean=0.0, scale=1.0, name=None, class_names=None):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        self.task, self.name = task, name
        self.classes = None if classes is None else [label_value(c) for c in classes]
        self.mean, self.scale = float(mean), float(scale)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.notes: list[str] = []

    @classmethod
    def fit(cls, y, task="classification", *, name=None, what=None) -> Target:
        """The target of the values ``y`` (an array, list or pandas Series of labels or
        numbers); ``what`` names them in messages."""
        what = what or (f"the target column {name!r}" if name else "the target")
        y = _values(y, what)
        if len(y) == 0:
            raise TargetError(f"{what} has no values")
        if task == "regression":
            if y.dtype.kind not in "iuf" and all(_is_number_text(v) for v in y):
                y = np.array([float(v) for v in y])  # numbers given as text (a str column)
            if y.dtype.kind not in "iuf":
                example = next(v for v in y if not _is_number_text(v))
                raise TargetError(f"{what} holds text such as {str(example)[:20]!r}; regression "
                                  f"needs numbers (use classification to predict the labels)")
            values = y.astype(np.float64)
            std = float(np.std(values))
            return cls("regression", mean=float(np.mean(values)), scale=std if std > 0 else 1.0,
                       name=name)
        if task != "classification":
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        if y.dtype.kind == "f":
            fractional = y[y != np.round(y)]
            if fractional.size:
                raise TargetError(f"{what} holds non-integer numbers such as "
                                  f"{fractional[0]:g}; predict numbers with regression "
                                  f"(--task regression)", usage=True)
        classes = np.unique(y)
        if len(classes) < 2:
            raise TargetError(f"{what} has a single class ({label_value(classes[0])}); "
                              f"classification needs at least two")
        if len(classes) > MAX_CLASSES:
            raise TargetError(f"{what} has {len(classes)} different values, more than the "
                              f"{MAX_CLASSES} classes a classifier may have; use regression "
                              f"(--task regression) if they are numbers to predict")
        target = cls("classification", classes=classes.tolist(), name=name)
        if y.dtype.kind in "iuf" and len(classes) > MANY_CLASSES:
            target.notes.append(f"{what} has {len(classes)} different whole numbers; if they "
                                f"are quantities rather than labels, pass --task regression")
        return target

    # ----------------------------------------------------------------- reading
    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.is_classifier else 1

    @property
    def head(self) -> str:
        """The network's output head for this target."""
        return "softmax" if self.is_classifier else "identity"

    def describe(self) -> str:
        if self.is_classifier:
            return f"{len(self.classes)} classes"
        return f"regression of {self.name!r}" if self.name else "regression"

    # ----------------------------------------------------------------- encoding
    def encode(self, y, what=None) -> np.ndarray:
        """Class indices (int64) of the labels ``y``, or the standardised values (float64).
        A label the classes do not hold raises :class:`TargetError` naming it."""
        what = what or "the target"
        y = _values(y, what)
        if not self.is_classifier:
            if y.dtype.kind not in "iuf" and all(_is_number_text(v) for v in y):
                y = np.array([float(v) for v in y])
            if y.dtype.kind not in "iuf":
                example = next(v for v in y if not _is_number_text(v))
                raise TargetError(f"{what} holds text such as {str(example)[:20]!r}; this model "
                                  f"predicts numbers")
            return (y.astype(np.float64) - self.mean) / self.scale
        lookup = {self._key(c): i for i, c in enumerate(self.classes)}
        codes = np.empty(len(y), dtype=np.int64)
        for r, v in enumerate(y.tolist()):
            i = lookup.get(self._key(v))
            if i is None:
                raise TargetError(f"{what} has labels the training set lacks, such as "
                                  f"{label_value(v)!r} (row {r + 1}); every label must be one "
                                  f"of the model's classes")
            codes[r] = i
        return codes

    @staticmethod
    def _key(value):
        v = label_value(value)
        return ("n", float(v)) if isinstance(v, (int, float)) else ("s", v)

    def decode(self, outputs) -> np.ndarray:
        """Labels for class indices (classification; an int64 array when every class is an
        integer, else an array of the labels), or values in the target's units for the
        network's (n, 1) or (n,) regression outputs (float64)."""
        outputs = np.asarray(outputs)
        if self.is_classifier:
            labels = np.asarray(self.classes)
            if labels.dtype.kind == "U":  # Python strings: rows share them, whatever their width
                labels = np.array([str(c) for c in self.classes], dtype=object)
            if outputs.ndim == 2:
                outputs = outputs.argmax(axis=1)
            return labels[outputs.astype(np.int64)]
        return np.asarray(outputs, dtype=np.float64).reshape(-1) * self.scale + self.mean

    # ----------------------------------------------------------------- saving
    def state(self) -> dict:
        js = {"task": self.task, "name": self.name}
        if self.is_classifier:
            js["classes"] = list(self.classes)
            if self.class_names is not None:
                js["class_names"] = list(self.class_names)
        else:
            js.update(mean=self.mean, scale=self.scale)
        return {"json": js, "arrays": {}}

    @classmethod
    def from_state(cls, state) -> Target:
        js = state["json"]
        task = js["task"]
        name = js.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError("damaged target name")
        if task == "classification":
            classes = js["classes"]
            if not isinstance(classes, list) or len(classes) < 1 or not all(
                    isinstance(c, (int, float, str)) and not isinstance(c, bool)
                    for c in classes):
                raise ValueError("damaged class labels")
            names = js.get("class_names")
            if names is not None and (not isinstance(names, list) or len(names) != len(classes)):
                raise ValueError("damaged class names")
            return cls(task, classes=classes, name=name, class_names=names)
        if task != "regression":
            raise ValueError(f"unknown task {task!r:.40}")
        mean, scale = js["mean"], js["scale"]
        for v in (mean, scale):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError("damaged target statistics")
        if not scale > 0:
            raise ValueError("damaged target statistics")
        return cls(task, mean=mean, scale=scale, name=name)


def _is_number_text(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
