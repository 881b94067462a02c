"""A model that carries its own data handling: input schema -> network -> target decoding.

    model = xpnet.Model.fit(df, target="diagnosis", id="patient_id")   # one call, any table
    model.predict(new_df)            # original labels (or values in the target's units)
    model.predict_proba(new_df)      # (n, k) class probabilities, columns in model.classes_
    model.save("runs/cancer.npz")    # one file: network, schema, labels / target statistics
    model = xpnet.load("runs/cancer.npz")

A :class:`Model` is three parts, each fitted on the training rows and saved with the network:

* ``inputs``, an :class:`~xpnet.schema.InputSchema`: the feature columns, their kinds and
  order, imputation, one-hot encoding and scaling (scikit-learn's ``ColumnTransformer``);
* ``net``, the :class:`~xpnet.network.Sequential` network;
* ``target``, a :class:`~xpnet.targets.Target`: the class labels, or the regression target's
  mean and scale, so that outputs come back in the user's terms.

It is what ``python -m xpnet.train`` trains and saves, what ``xpnet.predict`` and
``xpnet.export`` read, and what :func:`load` returns for such a file.

**The saved record** (this module writes and reads it, nowhere else): a checkpoint
(:mod:`xpnet.checkpoint`) whose JSON holds ``model = {"format": 1, "inputs": {...},
"target": {...}}`` and whose arrays hold ``model/inputs/offset`` and ``model/inputs/scale``
(float64). Checkpoints written before the model existed (format 1 and 2 files of
``xpnet.train``: ``run.source`` and ``scaler``) are read into the same object by
:func:`_from_legacy`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .data.errors import DataError
from .data.frame import as_frame
from .preprocessing import Scaler
from .schema import InputSchema
from .targets import Target

__all__ = ["MODEL_FORMAT", "Model", "ModelRecordError", "load"]

MODEL_FORMAT = 1
MNIST_PIXELS = 784
_BATCH = 4096  # rows per forward pass when predicting


class ModelRecordError(ValueError):
    """A checkpoint's model record (schema, labels, statistics) is damaged."""


class Model:
    """Raw rows in, labels or values out; see the module docstring.

    Args:
        net: the network; its input width must be ``inputs.n_inputs`` and its outputs those
            of ``target`` (k softmax outputs, or one identity output).
        inputs: the fitted :class:`~xpnet.schema.InputSchema`.
        target: the fitted :class:`~xpnet.targets.Target`.
    """

    def __init__(self, net, inputs: InputSchema, target: Target):
        if net.n_features_in != inputs.n_inputs:
            raise ValueError(f"the network takes {net.n_features_in} inputs but the schema "
                             f"gives {inputs.n_inputs}")
        if net.n_outputs != target.n_outputs or net.head.name != target.head:
            raise ValueError(f"the network has {net.n_outputs} {net.head.name} outputs but the "
                             f"target needs {target.n_outputs} {target.head} outputs")
        self.net, self.inputs, self.target = net, inputs, target
        self.history = None

    def __repr__(self) -> str:
        return (f"Model({self.target.describe()}, {len(self.inputs.columns)} columns -> "
                f"{self.inputs.n_inputs} inputs, {self.net!r})")

    # ----------------------------------------------------------------- scikit-learn-like names
    @property
    def classes_(self):
        """The class labels, in the order of :meth:`predict_proba`'s columns (None for
        regression)."""
        return None if not self.target.is_classifier else np.asarray(self.target.classes)

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.inputs.names, dtype=object)

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def id_column(self) -> str | None:
        return self.inputs.id

    # ----------------------------------------------------------------- predicting
    def transform(self, X) -> np.ndarray:
        """The network's inputs for the rows ``X`` (host array, the network's dtype)."""
        excluded = [self.target.name] if self.target.name else []
        return self.inputs.transform(X, self.net.dtype, excluded=excluded)

    def _outputs(self, X) -> np.ndarray:
        x = self.transform(X)
        out = []
        net = self.net
        for start in range(0, len(x), _BATCH):
            chunk = x[start:start + _BATCH]
            y = net.predict_proba(chunk) if net.head.is_classifier else net.forward(chunk)
            out.append(np.asarray(net.device.to_numpy(y), dtype=np.float64))
        return np.concatenate(out) if out else np.zeros((0, net.n_outputs))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of the rows ``X``.

        Args:
            X: a DataFrame, a ``{column: values}`` mapping, or a 2-D array whose columns are in
                the order of :attr:`feature_names_in_`.

        Returns:
            ``(n, k)`` float64 host array; columns in the order of :attr:`classes_`.

        Raises:
            ValueError: the model is a regression, or ``X`` lacks a column the model needs.
        """
        if not self.target.is_classifier:
            raise ValueError("predict_proba is for classifiers; this model predicts numbers "
                             "(use predict)")
        return self._outputs(X)

    def predict(self, X) -> np.ndarray:
        """The original labels (classification) or values in the target's units (regression)
        of the rows ``X``.

        Args:
            X: a DataFrame, a ``{column: values}`` mapping, or a 2-D array whose columns are in
                the order of :attr:`feature_names_in_`; columns are matched by name, in any
                order, and a target column is ignored.

        Returns:
            ``(n,)`` host array of labels as they were in training (text stays text), or
            ``(n,)`` / ``(n, k)`` float64 values for a regression.

        Raises:
            ValueError: ``X`` lacks a column the model needs, or has a missing cell under
                ``missing="error"``.
        """
        return self.target.decode(self._outputs(X))

    def score(self, X, y) -> float:
        """Accuracy (classification) or R^2 (regression) on ``(X, y)``, as scikit-learn's
        ``score``.

        Args:
            X: rows, as for :meth:`predict`.
            y: their true labels or values, ``(n,)``.

        Returns:
            The fraction of correct labels, or the coefficient of determination (NaN when
            ``y`` is constant).
        """
        pred = self.predict(X)
        if self.target.is_classifier:
            codes = self.target.encode(y)
            return float(np.mean(self.target.encode(pred) == codes))
        truth = np.asarray(y, dtype=np.float64).reshape(-1)
        sst = float(np.sum((truth - truth.mean()) ** 2))
        sse = float(np.sum((pred - truth) ** 2))
        return 1.0 - sse / sst if sst > 0 else float("nan")

    # ----------------------------------------------------------------- fitting from Python
    @classmethod
    def fit(cls, X, y=None, *, target=None, task="classification", id=None, drop=(),
            missing="impute", hidden=(100,), activation="relu", init=None, l2=0.0,
            dropout=0.0, batch_norm=False, dtype="float32", device="auto", seed=0,
            optimizer="adam", lr=None, epochs=None, batch_size="recipe", patience=None,
            **fit_options) -> Model:
        """Build and train a model on a table in one call; returns the fitted model (its
        training :class:`~xpnet.History` in ``model.history``).

        ``X``: a DataFrame, a ``{column: values}`` mapping or a 2-D array; ``y``: the targets
        (labels of any kind, or numbers), or None with ``target`` naming the column of ``X``
        that holds them. ``id``, ``drop``, ``missing``: see
        :meth:`xpnet.schema.InputSchema.fit`. ``task``: ``"classification"`` or
        ``"regression"``. The network is ``MLP([n_inputs, *hidden, n_outputs])``; the other
        settings default to the table recipe (:data:`xpnet.recipes.RECIPES`, scikit-learn's
        MLP defaults); ``fit_options`` go to :func:`xpnet.fit` (``verbose=True``,
        ``validation_fraction=0.1``, ...).

        Args:
            X: the table: a DataFrame, a ``{column: values}`` mapping or a 2-D array.
            y: the targets ``(n,)``, or None when ``target`` names a column of ``X``.
            target: the column of ``X`` to predict (with ``y=None``).
            task: ``"classification"`` | ``"regression"``.
            id: a column kept out of the features (an identifier).
            drop: columns to leave out.
            missing: ``"impute"`` (mean / most frequent value) | ``"error"``.
            hidden: the hidden layer sizes.
            activation, init, l2, dropout, batch_norm, dtype, device, seed: as for
                :class:`~xpnet.MLP` (``init=None``: the recipe's).
            optimizer, lr, epochs, batch_size, patience: as for :func:`xpnet.fit`; None or
                ``"recipe"`` takes the table recipe's value.
            **fit_options: further keywords for :func:`xpnet.fit`.

        Returns:
            The fitted :class:`Model`.

        Raises:
            ValueError: a target or column that does not exist, targets that do not fit the
                task, or a bad setting (each named in one sentence with the fix).
        """
        from .network import MLP
        from .recipes import RECIPES
        from .training import fit

        recipe = RECIPES["table"]
        frame = as_frame(X)
        if y is None:
            if target is None:
                raise TypeError("give the targets as y, or name their column with target=")
            if frame.names is None or target not in frame.names:
                raise DataError(f"the data has no column {target!r} to predict")
            y = frame.column(target)  # (Target.fit names a missing cell in it)
            frame = frame.without([target])
        elif target is None:
            target = getattr(y, "name", None)
            target = str(target) if target is not None else None
        goal = Target.fit(y, task, name=target)
        inputs = InputSchema.fit(frame, id=id, drop=drop, missing=missing)
        if isinstance(hidden, int):
            hidden = (hidden,)
        net = MLP([inputs.n_inputs, *hidden, goal.n_outputs], activation=activation,
                  output=goal.head, init=init or recipe["init"], l2=l2, dropout=dropout,
                  batch_norm=batch_norm, dtype=dtype, device=device, seed=seed)
        model = cls(net, inputs, goal)
        features = model.transform(frame)
        codes = goal.encode(y)
        if not goal.is_classifier:
            codes = codes.astype(net.dtype).reshape(-1, 1)
        fit_options.setdefault("min_delta", recipe["min_delta"])
        model.history = fit(
            net, features, codes, optimizer=optimizer,
            lr=lr if lr is not None else recipe["lr"].get(optimizer),
            epochs=epochs or recipe["epochs"],
            batch_size=recipe["batch_size"] if batch_size == "recipe" else batch_size,
            patience=recipe["patience"] if patience is None else patience, seed=seed,
            **fit_options)
        return model

    # ----------------------------------------------------------------- saving
    def state(self) -> dict:
        """The model record ``{"json", "arrays"}`` (schema and target; the network is saved
        by :func:`xpnet.checkpoint.save` itself)."""
        inputs, target = self.inputs.state(), self.target.state()
        return {"json": {"format": MODEL_FORMAT, "inputs": inputs["json"],
                         "target": target["json"]},
                "arrays": {f"inputs/{k}": v for k, v in inputs["arrays"].items()}}

    def save(self, path, training_state=None) -> Path:
        """Write the model atomically to the ``.npz`` checkpoint ``path`` (with
        ``training_state``, ``{"json", "arrays"}`` from a trainer, if given);
        :func:`load` reads it back.

        Args:
            path: the file to write; missing parent folders are created.
            training_state: optional trainer state, for an exact resume.

        Returns:
            The :class:`~pathlib.Path` written.

        Raises:
            CheckpointError: writing failed; an existing file at ``path`` is left as it was.
        """
        from .checkpoint import nest_states, save

        state = nest_states(model=self.state())
        if training_state is not None:
            state["json"].update(training_state["json"])
            state["arrays"].update(training_state["arrays"])
        return save(self.net, path, training_state=state)

    @classmethod
    def from_state(cls, net, state) -> Model | None:
        """The model recorded in a checkpoint's training state (as :func:`load_checkpoint`
        returns it) for ``net``; None when the file records none (a bare network). A damaged
        record raises :class:`ModelRecordError`."""
        if state is None:
            return None
        js = state["json"]
        try:
            if isinstance(js.get("model"), dict):
                return _from_record(net, js["model"], state["arrays"])
            if "scaler" in js:  # every checkpoint xpnet.train wrote before the model record
                return _from_legacy(net, state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if isinstance(exc, ModelRecordError):
                raise
            raise ModelRecordError(f"its record of the training data is damaged ({exc})"
                                   ) from None
        return None


def _from_record(net, record, arrays) -> Model:
    if record.get("format") != MODEL_FORMAT:
        raise ModelRecordError(f"its model record has format {record.get('format')!r:.20}, "
                               f"which this xpnet does not read; upgrade xpnet")
    inputs = InputSchema.from_state({
        "json": record["inputs"],
        "arrays": {"offset": arrays["model/inputs/offset"],
                   "scale": arrays["model/inputs/scale"]}})
    target = Target.from_state({"json": record["target"], "arrays": {}})
    return Model(net, inputs, target)


def _from_legacy(net, state) -> Model | None:
    """A model from the record of a checkpoint written before :class:`Model` (format 1 and 2
    files of ``xpnet.train``): ``run.source`` (the data, the labels or target statistics, the
    feature names) and the ``scaler`` state."""
    from .checkpoint import sub_state

    js = state["json"]
    source = (js.get("run") or {}).get("source")
    scaler = Scaler.from_state(sub_state(state, "scaler"))  # finite, positive scale
    if not isinstance(source, dict) or source.get("kind") != "table":
        if net.head.name != "softmax":
            return None  # not a classifier of images: the bare network, as it always was
        dataset = source.get("dataset") if isinstance(source, dict) else None
        classes = source.get("classes") if isinstance(source, dict) else None
        classes = classes if isinstance(classes, list) else list(range(net.n_outputs))
        names = None
        if isinstance(source, dict) and dataset not in (None, "mnist"):
            names = source.get("class_names")
        _check_scaler(scaler, net.n_features_in)
        inputs = InputSchema.pixels(net.n_features_in, scaler)
        return Model(net, inputs, Target("classification", classes=classes,
                                         class_names=names))
    names = [str(n) for n in source["feature_names"]]
    _check_scaler(scaler, len(names))
    inputs = InputSchema.numeric(names, scaler, missing="impute")
    for spec, mean in zip(inputs.columns, np.broadcast_to(scaler.offset, (len(names),))):
        spec.fill = float(mean)  # a missing cell becomes the training mean (0 once scaled)
    if source["classes"] is None:
        mean, scale = float(source["target_mean"]), float(source["target_scale"])
        if not (math.isfinite(mean) and math.isfinite(scale) and scale > 0):
            raise ModelRecordError("its target statistics are damaged")
        target = Target("regression", mean=mean, scale=scale, name=source.get("target"))
    else:
        target = Target("classification", classes=source["classes"], name=source.get("target"))
    return Model(net, inputs, target)


def _check_scaler(scaler, n):
    """A legacy scaler's statistics must fit the ``n`` inputs (Scaler.from_state checked their
    values)."""
    for name in ("offset", "scale"):
        shape = np.shape(getattr(scaler, name))
        if shape not in ((), (n,)):
            raise ModelRecordError(f"its input scaler is damaged ({name} of shape {shape})")


def load(path, device="auto"):
    """What was saved in the checkpoint ``path``: a :class:`Model` for files written by
    ``python -m xpnet.train --save`` or :meth:`Model.save` (any version), the bare network for
    files written by :func:`xpnet.save`.

    Args:
        path: a ``.npz`` checkpoint.
        device: where the network goes: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"``.

    Returns:
        A :class:`Model`, or a :class:`~xpnet.Sequential` / :class:`~xpnet.MLP`.

    Raises:
        CheckpointError: the file is missing, damaged or not an xpnet checkpoint (the message
            names it and the fix).
        DeviceUnavailableError: ``device`` names a GPU that cannot be used.
    """
    from .checkpoint import CheckpointError, load_checkpoint

    net, state = load_checkpoint(path, device=device, read_state=("model/", "scaler/"))
    try:
        model = Model.from_state(net, state)
    except (ModelRecordError, DataError) as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}; re-train and save it") from None
    return net if model is None else model
