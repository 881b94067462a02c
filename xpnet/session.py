"""A training run as ``python -m xpnet.train`` makes it, callable from Python: its data, from
the files to the device, its model, its trainer and its result.

    settings = fill_recipe({**DEFAULTS, "data": "patients.csv", "target": "diagnosis",
                            "task": "classification", "epochs": 20, ...})   # every setting
    run = TrainingRun(settings, device=xpnet.get_device("cpu"))
    run.load()                               # RunData on the host
    run.build()                              # the Model, and the RunArrays on the device
    run.make_trainer(callbacks=[EpochLog()])
    run.fit()
    scores = run.result()                    # TrainingDiverged if the result is not finite
    run.save("runs/patients.npz")            # resumable: runs.ResumedRun.read(...)

The parts are usable alone:

    data = RunData.table("patients.csv", target="diagnosis", test_fraction=0.2, seed=0)
    split = data.split_dev(0.1, seed=0)            # host rows: training part and dev set
    model = data.new_model(split, hidden=[100], device="cpu")   # schema, target, MLP
    arrays = data.device_arrays(model, split)          # encoded once, on the model's device

A run's data is an IDX image dataset (:meth:`RunData.images`: uint8 pixels, its own test
split, 10 classes) or a table (:meth:`RunData.table`: its columns as written, with a test file
of the same columns, an NPZ's own test split, or a held-out part as the test set). The splits
are :func:`~xpnet.preprocessing.holdout_split`: the test part with ``salt=1``, the dev part
with none, stratified by class for a classifier. A table's classes are fitted on every
training label (so the dev split can be stratified); a regression target's statistics on the
training part only. Problems are :class:`~xpnet.data.DataError` (:class:`RunDataError` when a
setting is the cause, :class:`~xpnet.targets.TargetError` for the target's values), each one
sentence.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from .checkpoint import MAX_NETWORK_BYTES, network_size
from .data import DATASETS, DataError, load_dataset, load_frame, resolve_data_dir
from .data.mnist import FILE_NAMES
from .metrics import eval_rows
from .model import Model
from .network import MLP
from .optimizers import OPTIMIZERS
from .preprocessing import Scaler, holdout_split
from .recipes import recipe_for
from .report import check_finite_state, metrics_json, score_run
from .schema import InputSchema
from .targets import Target
from .training import Trainer

__all__ = ["IMAGE_CLASSES", "SUBSET_ENV", "DevSplit", "RunArrays", "RunData", "RunDataError",
           "TrainingRun", "dataset_files", "subset_size"]

IMAGE_CLASSES = 10  # every IDX dataset xpnet reads has 10 classes of 784 pixels
SUBSET_ENV = "XPNET_MNIST_SUBSET"  # the CLI tests' hook: see subset_size
TEST_SALT = 1  # the test split's salt: independent of the dev split of the same seed


class RunDataError(DataError):
    """A run's setting does not fit its data. ``setting`` is the keyword at fault
    (``test_fraction``, ``dev_fraction``, ``test_data``, ``layers``) or None, ``detail`` the
    rest of the message, and ``usage`` True when the fix is another setting, not other data
    (the CLI then exits 2, naming the flag)."""

    def __init__(self, detail, setting=None, usage=False):
        super().__init__(detail if setting is None else f"{setting} {detail}")
        self.detail, self.setting, self.usage = detail, setting, usage


def dataset_files(dataset, data_dir=None) -> list:
    """Every file an IDX dataset may be read from (each file and its ``.gz``).

    Args:
        dataset: a name in :data:`~xpnet.data.DATASETS`.
        data_dir: its folder, or None for the default (``$XPNET_DATA_DIR`` for mnist, then
            ``~/.cache/xpnet/<dataset>``).

    Returns:
        The paths (:class:`pathlib.Path`), which need not exist.
    """
    folder = resolve_data_dir(data_dir, dataset)
    return [path for name in FILE_NAMES for path in (folder / name, folder / f"{name}.gz")]


def subset_size(environ=None) -> int | None:
    """The hidden test hook of ``xpnet.train``, not a user option: ``XPNET_MNIST_SUBSET=N``
    in the environment trains an image dataset on its first ``N`` training and ``N // 6``
    test images (:meth:`RunData.subset`), so that CLI tests train in seconds.

    Args:
        environ: the environment (default ``os.environ``).

    Returns:
        ``N``, or None when the variable is unset or empty.

    Raises:
        ValueError: ``N`` is not a whole number >= 60.
    """
    text = (os.environ if environ is None else environ).get(SUBSET_ENV, "").strip()
    if not text:
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 60:
        raise ValueError(f"{SUBSET_ENV} must be a whole number >= 60; got {text!r}")
    return n


def _split(y, fraction, seed, stratified, setting, salt):
    try:
        return holdout_split(y, fraction, seed, stratified, salt)
    except ValueError as exc:
        raise RunDataError(f"{fraction:g}: {exc}", setting) from None


def _take(rows, index):
    return rows.take(index) if hasattr(rows, "take") and not isinstance(rows, np.ndarray) \
        else rows[index]


@dataclasses.dataclass
class DevSplit:
    """The training rows of a run split into the part trained on (``X``, ``y``) and the dev
    set (``X_dev``, ``y_dev``; None when ``fraction`` is 0), on the host as read."""

    X: Any
    y: np.ndarray
    X_dev: Any
    y_dev: np.ndarray | None
    fraction: float


@dataclasses.dataclass
class RunArrays:
    """A run's data encoded by its model and on the model's device: inputs (n, n_inputs) in
    the network's dtype, targets as class indices (n,) or standardised values (n, 1).
    ``X_dev``/``y_dev`` are None without a dev set; ``train_samples`` counts the training rows
    before the dev split, ``dev_fraction`` is the split's."""

    X_train: Any
    y_train: Any
    X_dev: Any
    y_dev: Any
    X_test: Any
    y_test: Any
    train_samples: int
    dev_fraction: float

    @property
    def n_dev(self) -> int:
        return 0 if self.y_dev is None else len(self.y_dev)


@dataclasses.dataclass
class RunData:
    """A run's data on the host, before any encoding.

    Attributes:
        train, test: the training and test rows: uint8 pixels (n, 784) for an image dataset,
            a :class:`~xpnet.data.Frame` of columns for a table.
        y_train, y_test: their raw targets (n,).
        kind: ``"image"`` or ``"table"``.
        name: the dataset, or the table's file name (for messages).
        target: the :class:`~xpnet.targets.Target` fitted on every training label
            (classification); None for regression (fitted on the training part by
            :meth:`new_model`).
        codes: the training rows' class indices (for stratified splits); None for regression.
        test_source: ``"given"`` (the dataset's or the NPZ's own), ``"file"`` (``test_data``)
            or ``"held out"`` (``test_fraction`` of the table).
        path, test_path, test_fraction, target_name: a table's settings, as given.
    """

    train: Any
    y_train: np.ndarray
    test: Any
    y_test: np.ndarray
    kind: str
    name: str
    target: Target | None
    codes: np.ndarray | None
    test_source: str
    path: str | None = None
    test_path: str | None = None
    test_fraction: float | None = None
    target_name: str | None = None

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    # ----------------------------------------------------------------- reading
    @classmethod
    def images(cls, dataset="mnist", data_dir=None, progress=True) -> RunData:
        """An IDX image dataset with its own test split (downloaded and verified first if
        missing; see :func:`~xpnet.data.load_dataset`).

        Args:
            dataset: a name in :data:`~xpnet.data.DATASETS`.
            data_dir: the folder of its files (None: the default).
            progress: show download progress bars.

        Returns:
            The :class:`RunData`, its target the dataset's 10 classes and their names.

        Raises:
            MnistDataError: the files are missing and cannot be downloaded, or are damaged.
        """
        data = load_dataset(dataset, data_dir, progress=progress)
        names = list(getattr(DATASETS[dataset], "classes", range(IMAGE_CLASSES)))
        target = Target("classification", classes=list(range(IMAGE_CLASSES)),
                        class_names=[str(n) for n in names])
        return cls(data.X_train, data.y_train, data.X_test, data.y_test, "image", dataset,
                   target, data.y_train, "given")

    @classmethod
    def table(cls, path, target="label", task="classification", test_data=None,
              test_fraction=0.2, seed=0) -> RunData:
        """A ``.csv`` or ``.npz`` table as written (:func:`~xpnet.data.load_frame`) and its
        test set: the ``test_data`` file (the same columns, in any order), else an NPZ's own
        test split, else ``test_fraction`` of the rows held out (stratified by class for a
        classifier, seeded by ``seed``).

        Args:
            path: the training table.
            target: the column to predict.
            task: ``"classification"`` or ``"regression"``.
            test_data: a test table with the same columns, or None.
            test_fraction: the share held out when there is no test set, in (0, 1).
            seed: seeds the held-out split.

        Returns:
            The :class:`RunData`.

        Raises:
            DataError: the file cannot be read, or lacks the target column.
            RunDataError: ``test_data``'s columns differ, or ``test_fraction`` leaves a part
                (or a class) empty.
            TargetError: the target's values do not fit ``task`` (``usage`` when another task
                would fit them).
        """
        table = load_frame(path, target=target)
        test = load_frame(test_data, target=target) if test_data else table.test
        if test_data:
            _check_same_columns(path, test_data, table.frame.names, test.frame.names)
        what = f"the target column {target!r} of {path}"
        # Classification: the classes of every training label. Regression: a first fit only
        # checks the values (the statistics come from the training part, once it is split off).
        checked = Target.fit(table.y, task, name=target, what=what)
        goal = checked if checked.is_classifier else None
        codes = None if goal is None else goal.encode(table.y)
        settings = {"path": path, "test_path": test_data, "test_fraction": test_fraction,
                    "target_name": target}
        if test is not None:
            checked.encode(test.y, what=f"the target column {target!r} of {test.path}")
            return cls(table.frame, table.y, test.frame, test.y, "table",
                       os.path.basename(path), goal, codes, "file" if test_data else "given",
                       **settings)
        keep, held = _split(codes if codes is not None else table.y, test_fraction, seed,
                            codes is not None, "test_fraction", TEST_SALT)
        return cls(table.frame.take(keep), table.y[keep], table.frame.take(held),
                   table.y[held], "table", os.path.basename(path), goal,
                   None if codes is None else codes[keep], "held out", **settings)

    def subset(self, n) -> RunData:
        """The first ``n`` training rows and the first ``n // 6`` test rows (MNIST's ratio), for
        a quick run.

        Args:
            n: training rows to keep.

        Returns:
            A new :class:`RunData`; this one is unchanged.
        """
        return dataclasses.replace(
            self, train=_take(self.train, slice(0, n)), y_train=self.y_train[:n],
            test=_take(self.test, slice(0, n // 6)), y_test=self.y_test[:n // 6],
            codes=None if self.codes is None else self.codes[:n])

    # ----------------------------------------------------------------- the run's parts
    def split_dev(self, fraction, seed=0) -> DevSplit:
        """Hold out ``fraction`` of the training rows as the dev set (stratified by class
        for a classifier, seeded by ``seed``; 0: no dev set).

        Args:
            fraction: the dev share, in [0, 1).
            seed: seeds the split.

        Returns:
            The :class:`DevSplit`.

        Raises:
            RunDataError: the split would leave a part (or a class) empty.
        """
        if not fraction > 0:
            return DevSplit(self.train, self.y_train, None, None, fraction)
        stratified = self.codes is not None
        train_idx, dev_idx = _split(self.codes if stratified else self.y_train, fraction, seed,
                                    stratified, "dev_fraction", None)
        return DevSplit(_take(self.train, train_idx), self.y_train[train_idx],
                        _take(self.train, dev_idx), self.y_train[dev_idx], fraction)

    def new_model(self, split, hidden=(100,), *, layers=None, standardize=False, id=None,
                  drop=(), missing="impute", activation="relu", init="he", l2=0.0,
                  dropout=0.0, batch_norm=False, dtype="float32", device="auto",
                  seed=0) -> Model:
        """A new :class:`~xpnet.Model` fitted on ``split``'s training part: images keep their
        pixel columns scaled to [0, 1] (or standardised per feature); a table gets its columns'
        schema (``id``, ``drop``, kinds, ``missing`` cells, one-hot). The network is
        ``MLP([n_inputs, *hidden, n_outputs])``, or ``MLP(layers)``.

        Args:
            split: the :class:`DevSplit` of these data.
            hidden: hidden layer sizes (unless ``layers``).
            layers: every layer size, inputs through outputs; None to use ``hidden``.
            standardize: images: standardise the pixels with the training statistics.
            id, drop, missing: a table's schema (:meth:`~xpnet.schema.InputSchema.fit`).
            activation, init, l2, dropout, batch_norm, dtype, device, seed: the
                :class:`~xpnet.network.MLP`'s.

        Returns:
            The untrained model.

        Raises:
            RunDataError: ``layers`` does not start with the inputs' count and end with the
                outputs' (``usage``), or the network is too large for a checkpoint.
            DataError: a column the schema cannot use.
        """
        X, y = split.X, split.y
        if self.kind == "image":
            inputs = InputSchema.pixels(X.shape[1], Scaler("standard" if standardize
                                                           else "unit").fit(X))
        else:
            inputs = InputSchema.fit(X, id=id, drop=drop or (), missing=missing)
        target = self.target or Target.fit(y, "regression", name=self.target_name)
        n_in, n_out = inputs.n_inputs, target.n_outputs
        if layers is not None and (layers[0] != n_in or layers[-1] != n_out):
            outputs = ("one output for regression" if not target.is_classifier else
                       f"one output per class: {n_out}")
            raise RunDataError(f"must start with {n_in} (the inputs of {self.name}) and end "
                               f"with {n_out} ({outputs}); got {','.join(map(str, layers))}",
                               "layers", usage=True)
        layers = list(layers) if layers is not None else [n_in, *hidden, n_out]
        n = network_size("MLP", {"layer_sizes": layers})
        if n is None or n * np.dtype(dtype).itemsize > MAX_NETWORK_BYTES:
            raise RunDataError(f"the network {','.join(map(str, layers))} would need more "
                               f"than the {MAX_NETWORK_BYTES} bytes of parameters a checkpoint "
                               f"may hold; use fewer or smaller hidden layers", usage=True)
        net = MLP(layers, activation=activation, output=target.head, init=init, l2=l2,
                  dtype=dtype, device=device, seed=seed, batch_norm=batch_norm,
                  dropout=dropout)
        return Model(net, inputs, target)

    def device_arrays(self, model, split) -> RunArrays:
        """Encode every part with ``model`` (inputs by its schema, targets by its target) and
        send it to the model's device, once, before training.

        Args:
            model: the run's :class:`~xpnet.Model` (new, or resumed).
            split: the :class:`DevSplit` of these data.

        Returns:
            The :class:`RunArrays`.

        Raises:
            DataError: rows the schema refuses (a missing cell under ``missing="error"``).
            TargetError: a label the model's classes do not hold.
        """
        net = model.net

        def encode(rows, values, what):
            inputs = model.transform(rows)
            targets = model.target.encode(values, what=what)
            if not model.target.is_classifier:
                targets = targets.astype(net.dtype)
            return net.device.send(inputs), net.device.send(targets)

        where = f"the target of {self.name}"
        X_train, y_train = encode(split.X, split.y, where)
        X_dev = y_dev = None
        if split.X_dev is not None:
            X_dev, y_dev = encode(split.X_dev, split.y_dev, where)
        X_test, y_test = encode(self.test, self.y_test, f"the test set's target ({self.name})")
        return RunArrays(X_train, y_train, X_dev, y_dev, X_test, y_test, self.n_train,
                         split.fraction)

    def describe(self, model) -> list:
        """What ``xpnet.train`` says about a table before training: its rows, target and
        test set, its columns, and the target's notes (nothing for an image dataset).

        Args:
            model: the run's :class:`~xpnet.Model`.

        Returns:
            The lines, without newlines.
        """
        if self.kind != "table":
            return []
        rows = self.n_train + (len(self.y_test) if self.test_source == "held out" else 0)
        held = {"held out": f", test set: {self.test_fraction:g} held out",
                "file": f", test set: {self.test_path} ({len(self.y_test)} rows)",
                "given": f", test set: its own ({len(self.y_test)} rows)"}[self.test_source]
        return [f"data: {self.path}: {rows} rows, {model.target.describe()}{held}",
                *model.inputs.describe(), *(f"note: {note}" for note in model.target.notes)]


def _check_same_columns(path, test_path, train, test):
    missing = [n for n in train if n not in set(test)]
    extra = [n for n in test if n not in set(train)]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing[:5])}"] if missing else []) + \
            ([f"has {', '.join(extra[:5])} besides"] if extra else [])
        raise RunDataError(f"{test_path} {' and '.join(parts)} the columns of {path}; the test "
                           f"file needs the same columns as the training file (in any order)",
                           "test_data")


class TrainingRun:
    """One run as ``python -m xpnet.train`` makes it: :meth:`load` the data, :meth:`build`
    the model and the device arrays, :meth:`make_trainer` and :meth:`fit`, then
    :meth:`result`, :meth:`save` and :meth:`metrics_json`. Each step keeps what it made
    (:attr:`data`, :attr:`model`, :attr:`arrays`, :attr:`trainer`).

    Args:
        settings: the run's settings by keyword, complete: xpnet.train's options (``dataset``
            or ``data``, ``target``, ``task``, ``test_data``, ``test_fraction``, ``data_dir``,
            ``id``, ``drop``, ``missing``, ``hidden`` or ``layers``, ``activation``, ``init``,
            ``l2``, ``dropout``, ``batch_norm``, ``optimizer``, ``lr`` (None: the optimizer's
            default), ``schedule``, ``step_size``, ``batch_size``, ``epochs``, ``patience``,
            ``dev_fraction``, ``standardize``, ``seed``, ``dtype``); see
            :data:`~xpnet.recipes.DEFAULTS`, :func:`~xpnet.recipes.fill_recipe` and
            :func:`~xpnet.runs.check_settings`.
        device: the :class:`~xpnet.backend.Device` to train on.
        resume: a :class:`~xpnet.runs.ResumedRun` to continue (its settings applied to
            ``settings`` by :meth:`~xpnet.runs.ResumedRun.apply_settings`), or None.
    """

    def __init__(self, settings, device, resume=None):
        self.settings, self.device, self.resume = settings, device, resume
        self.data: RunData | None = None
        self.model: Model | None = None
        self.arrays: RunArrays | None = None
        self.trainer: Trainer | None = None

    @property
    def lr(self) -> float:
        """The base learning rate: the setting, or the optimizer's ``default_lr``."""
        s = self.settings
        return s["lr"] if s.get("lr") is not None else OPTIMIZERS[s["optimizer"]].default_lr

    def load(self, progress=True) -> RunData:
        """Read the data (:meth:`RunData.table` or :meth:`RunData.images`) into :attr:`data`.

        Args:
            progress: show download progress bars (image datasets).

        Returns:
            The :class:`RunData`.

        Raises:
            DataError: as :meth:`RunData.table` and :meth:`RunData.images`.
        """
        s = self.settings
        if s.get("data") is not None:
            self.data = RunData.table(s["data"], s["target"], s["task"], s.get("test_data"),
                                      s["test_fraction"], s["seed"])
        else:
            self.data = RunData.images(s.get("dataset") or "mnist", s.get("data_dir"),
                                       progress=progress)
        return self.data

    def build(self) -> Model:
        """Split off the dev set; fit a new model on the training part (or take the resumed
        run's, checked to have trained on as many samples); encode every part onto the
        device once (:attr:`arrays`).

        Returns:
            The :class:`~xpnet.Model` (also :attr:`model`).

        Raises:
            RunDataError, DataError, TargetError: as :meth:`RunData.split_dev`,
                :meth:`RunData.new_model` and :meth:`RunData.device_arrays`.
            RunRecordError: the resumed run trained on another number of samples.
        """
        s, data = self.settings, self.data
        if self.resume is not None:
            self.resume.check_train_samples(data.n_train)
        split = data.split_dev(s["dev_fraction"], s["seed"])
        self.model = self.resume.model if self.resume is not None else data.new_model(
            split, s.get("hidden"), layers=s.get("layers"), standardize=s["standardize"],
            id=s.get("id"), drop=s.get("drop"), missing=s["missing"],
            activation=s["activation"], init=s["init"], l2=s["l2"], dropout=s["dropout"],
            batch_norm=s["batch_norm"], dtype=s["dtype"], device=self.device, seed=s["seed"])
        self.arrays = data.device_arrays(self.model, split)
        return self.model

    def describe(self) -> list:
        """What xpnet.train says before the first epoch: the table (:meth:`RunData.describe`),
        the model and the training plan.

        Returns:
            The lines, without newlines.
        """
        s, arrays, n_dev = self.settings, self.arrays, self.arrays.n_dev
        stop = (f" (early stop after {s['patience']} without a lower "
                f"{'dev' if n_dev else 'training'} loss)" if s["patience"] else "")
        return [*self.data.describe(self.model), f"model: {self.model.net}",
                f"train: {len(arrays.y_train)} samples, dev: {n_dev}, test: "
                f"{len(arrays.y_test)}; optimizer {s['optimizer']} lr {self.lr:g} schedule "
                f"{s['schedule']} batch {s['batch_size'] or 'full'} epochs {s['epochs']}{stop}"]

    def make_trainer(self, callbacks=(), progress=False, comm=None) -> Trainer:
        """The run's :class:`~xpnet.training.Trainer` (:attr:`trainer`): new, with the
        settings and the recipe's ``min_delta``, or the resumed run's, after its last epoch.

        Args:
            callbacks: :class:`~xpnet.callbacks.Callback` objects, after the built-in ones.
            progress: a progress bar per epoch.
            comm: an MPI communicator for data-parallel training, or None.

        Returns:
            The trainer.

        Raises:
            RunRecordError: the resumed run's saved settings or state are damaged.
        """
        s, net = self.settings, self.model.net
        options = {"progress": progress, "callbacks": list(callbacks), "comm": comm,
                   "eval_batch_size": eval_rows(net.n_outputs)}
        if self.resume is not None:
            self.trainer = self.resume.trainer(s["epochs"], **options)
        else:
            kind = "table" if s.get("data") is not None else "image"
            self.trainer = Trainer(net, optimizer=s["optimizer"], lr=self.lr,
                                   epochs=s["epochs"], batch_size=s["batch_size"],
                                   schedule=s["schedule"], patience=s["patience"],
                                   seed=s["seed"], step_size=s.get("step_size"),
                                   min_delta=recipe_for(kind)["min_delta"], **options)
        return self.trainer

    def fit(self):
        """Train on :attr:`arrays` (the dev set monitored when there is one).

        Returns:
            The :class:`~xpnet.History`.

        Raises:
            TrainingDiverged: the loss became NaN or infinite.
        """
        a = self.arrays
        return self.trainer.fit(a.X_train, a.y_train, a.X_dev, a.y_dev)

    def result(self):
        """Check the trained state and score the test set (none for an interrupted run).

        Returns:
            The test :class:`~xpnet.metrics.Scores`, or None when the run was interrupted.

        Raises:
            TrainingDiverged: the final state or the test loss is not finite.
        """
        check_finite_state(self.trainer)
        if self.trainer.history.interrupted:
            return None
        return score_run(self.model, self.arrays.X_test, self.arrays.y_test, self.trainer)

    def source(self, digests=False) -> dict:
        """What the run trained on (:func:`~xpnet.runs.source_record`).

        Args:
            digests: record a table's SHA-256 (and its test file's).

        Returns:
            The ``run.source`` record.
        """
        from .runs import source_record

        s = self.settings
        return source_record(dataset=s.get("dataset"), data=s.get("data"), task=s["task"],
                             target=s.get("target"), test_fraction=s.get("test_fraction"),
                             id=s.get("id"), drop=s.get("drop"), missing=s["missing"],
                             test_data=s.get("test_data"), digests=digests)

    def save(self, path, source=None):
        """Write the model with its run state (:func:`~xpnet.runs.save_run`).

        Args:
            path: the checkpoint.
            source: :meth:`source` with digests (computed now when None).

        Returns:
            The path written.

        Raises:
            CheckpointError: the file cannot be written.
        """
        from .runs import save_run

        return save_run(path, self.model, self.trainer,
                        source=source if source is not None else self.source(digests=True),
                        dev_fraction=self.arrays.dev_fraction,
                        train_samples=self.arrays.train_samples)

    def metrics_json(self, scores, device_name, tf32=False) -> str:
        """The run's metrics record as strict JSON (:func:`~xpnet.report.metrics_json`).

        Args:
            scores: :meth:`result`'s scores.
            device_name: where it trained.
            tf32: whether TF32 was allowed.

        Returns:
            The JSON text.
        """
        s = self.settings
        return metrics_json(scores, self.trainer, self.model, device_name,
                            source=self.source(), dev_fraction=s["dev_fraction"],
                            dtype=s["dtype"], tf32=tf32)
