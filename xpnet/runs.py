"""The record of a training run in a checkpoint: what ``python -m xpnet.train --resume``
needs to continue it with every setting it was started with.

A checkpoint written by ``xpnet.train --save`` holds, besides the network and the model record
(:mod:`xpnet.model`), a run state in three parts:

    trainer   the :class:`~xpnet.training.Trainer`'s state: its settings (``trainer.trainer``:
              optimizer, schedule, batch size, patience, seed, ...), the epoch reached, the
              history and the optimizer's moments
    run       ``dev_fraction``, ``train_samples`` and ``source``: the data (an image dataset's
              name, or a table's absolute path and SHA-256, its test file, target, task, id,
              dropped columns and missing-value policy) and the test fraction

:func:`source_record` writes ``source``; :meth:`RunRecord.read` reads all of it back as the
settings of the command line, each checked (a missing or damaged entry is a
:class:`RunRecordError` naming it), and :func:`verified_file` finds a table by its recorded path
(or a moved copy) and checks its SHA-256. Checkpoints from before the table source, or before
the dev fraction was recorded, read as they always did.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .checkpoint import load_checkpoint, nest_states, sub_state
from .cli import same_file
from .model import Model, ModelRecordError
from .optimizers import OPTIMIZERS, optimizer_options
from .targets import TASKS

__all__ = ["IMAGE_DATASETS", "OLD_DEV_FRACTION", "RUN_SETTINGS", "ResumedRun", "RunRecord",
           "RunRecordError", "RunSettingsError", "check_settings", "save_run", "setting_name",
           "setting_text", "source_record", "verified_file"]

IMAGE_DATASETS = ("mnist", "fashion-mnist", "kmnist")
IMAGE_PIXELS, IMAGE_CLASSES = 784, 10
OLD_DEV_FRACTION = 0.1  # the dev fraction of checkpoints that do not record theirs

# The settings that define a run, by keyword (xpnet.train's flags: "--" and the name with "-"
# for "_"): a resumed run takes them all from its checkpoint.
RUN_SETTINGS = ("dataset", "data", "target", "id", "drop", "missing", "test_data", "task",
                "test_fraction", "layers", "activation", "init", "l2", "dropout", "batch_norm",
                "optimizer", "lr", "schedule", "step_size", "batch_size", "patience",
                "dev_fraction", "standardize", "seed", "dtype")


class RunSettingsError(ValueError):
    """Settings that contradict each other or the run being resumed; the fix is another
    setting (the CLI exits 2)."""


def setting_name(key, flags=False) -> str:
    """How messages name a setting.

    Args:
        key: the keyword (``test_data``).
        flags: name it as xpnet.train's flag (``--test-data``).

    Returns:
        The name.
    """
    return "--" + key.replace("_", "-") if flags else key


def setting_text(value) -> str:
    """A setting's value as a message shows it: ``full`` for None (the batch size), ``on`` or
    ``off``, a list comma-separated, a float by ``:g``, anything cut to 40 characters.

    Args:
        value: the value.

    Returns:
        The text.
    """
    if value is None:
        return "full"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_settings(settings, given=(), flags=False) -> None:
    """Refuse settings of a run that contradict each other (before any data is read).

    Args:
        settings: the run's settings by keyword: ``dataset``, ``data``, ``target``, ``id``,
            ``drop``, ``test_data``, ``task``, ``layers``, ``hidden``, ``schedule``,
            ``step_size`` and ``resume`` (a checkpoint to continue, whose settings come later).
        given: the keys given explicitly (not defaults).
        flags: name the settings as xpnet.train's flags in the message.

    Raises:
        RunSettingsError: ``layers`` and ``hidden`` both given; image ``layers`` that do not
            start with 784 and end with 10; ``id``/``drop``/``test_data`` without a table;
            ``id`` or ``drop`` naming the target; ``step_size`` without the step schedule;
            ``test_data`` with an explicit ``test_fraction``; regression on an image dataset.
    """
    def n(key):
        return setting_name(key, flags)

    s, fresh = settings, settings.get("resume") is None
    layers, data, target = s.get("layers"), s.get("data"), s.get("target")
    if layers is not None and s.get("hidden") is not None:
        raise RunSettingsError(f"{n('layers')} and {n('hidden')} both give the hidden sizes; "
                               f"give one of them ({n('hidden')} takes the input and output "
                               f"sizes from the data)")
    if layers is not None and data is None and fresh and \
            (layers[0] != IMAGE_PIXELS or layers[-1] != IMAGE_CLASSES):
        raise RunSettingsError(f"{n('layers')} must start with {IMAGE_PIXELS} (pixels) and end "
                               f"with {IMAGE_CLASSES} (classes) for "
                               f"{s.get('dataset') or 'mnist'}; got {setting_text(layers)} (or "
                               f"give only the hidden sizes with {n('hidden')})")
    table_only = [key for key in ("id", "drop", "test_data") if key in given]
    if data is None and table_only and fresh:
        raise RunSettingsError(f"{n(table_only[0])} is for your own table ({n('data')} FILE); "
                               f"the image datasets have no columns")
    if s.get("drop") and target in s["drop"]:
        raise RunSettingsError(f"{n('drop')} names the target column {target!r}; the target is "
                               f"never a feature, so leave it out of {n('drop')} (or choose "
                               f"another {n('target')})")
    if s.get("id") is not None and s["id"] == target:
        raise RunSettingsError(f"{n('id')} names the target column {target!r}; give the column "
                               f"that identifies the rows")
    if s.get("step_size") is not None and s.get("schedule") != "step" and fresh:
        # (no recipe's schedule is step: without the step schedule the setting would do nothing)
        raise RunSettingsError(f"{n('step_size')} {s['step_size']} sets the drops of "
                               f"{n('schedule')} step; add {n('schedule')} step")
    if s.get("test_data") and "test_fraction" in given:
        raise RunSettingsError(f"{n('test_data')} and {n('test_fraction')} both give the test "
                               f"set; give one of them")
    if data is None and s.get("task") == "regression" and fresh:
        raise RunSettingsError(f"{n('task')} regression needs your own numeric targets "
                               f"({n('data')} FILE {n('target')} COLUMN); the image datasets "
                               f"are classification")


class RunRecordError(ValueError):
    """A run record that is missing, damaged or does not match its data; the message is one
    sentence that names the checkpoint and the fix."""


@dataclass
class RunRecord:
    """A run as recorded: ``settings`` named as ``xpnet.train``'s options (``layers``,
    ``optimizer``, ``lr``, ``schedule``, ``batch_size``, ``patience``, ``seed``, ``dtype``,
    ``dataset``, ``data``, ``task``, ``target``, ``dev_fraction`` when recorded, ...), the
    epochs done and planned, the Trainer options no flag sets (``min_delta``, the schedule's
    shape, the optimizer's own), and the training samples before the dev split."""

    settings: dict
    epochs_done: int
    epochs_planned: int
    trainer_options: dict
    train_samples: int | None

    @classmethod
    def read(cls, path, net, model, state, given_files=None) -> RunRecord:
        """The run recorded in checkpoint ``path`` for ``net`` and ``model`` (as loaded from
        it; None when it records none) with its training ``state``. ``given_files``:
        ``{"data": path, "test_data": path}`` given on the command line, for a table that
        moved (checked by SHA-256)."""
        if state is None or not isinstance(state["json"].get("trainer"), dict):
            raise RunRecordError(f"{path} holds a model but no run state, so it cannot be "
                                 f"resumed; train from scratch or pass a checkpoint saved by "
                                 f"xpnet.train --save")
        if model is None:
            raise RunRecordError(f"{path} holds no record of its training data, so it cannot "
                                 f"be resumed; train from scratch")
        js = state["json"]
        field = _field_reader(path)
        tcfg = field(js, "trainer.trainer", dict)
        schedule = field(js, "trainer.trainer.schedule", dict)
        config = net.config()
        settings = {
            "layers": config["layer_sizes"], "activation": config["activation"],
            "init": config["init"], "l2": config["l2"], "dropout": config["dropout"],
            "batch_norm": config["batch_norm"], "dtype": config["dtype"],
            "optimizer": field(js, "trainer.trainer.optimizer", str),
            "lr": field(js, "trainer.trainer.schedule.lr", float),
            "schedule": field(js, "trainer.trainer.schedule.kind", str),
            "batch_size": field(js, "trainer.trainer.batch_size", (int, type(None))),
            "patience": field(js, "trainer.trainer.patience", int),
            "seed": field(js, "trainer.trainer.seed", int),
            "standardize": model.inputs.scaler.method == "standard",
        }
        if settings["optimizer"] not in OPTIMIZERS:
            raise RunRecordError(f"{path} has run state for an unknown optimizer "
                                 f"{settings['optimizer']!r:.40}; it cannot be resumed")
        run_info = js.get("run") if isinstance(js.get("run"), dict) else {}
        settings.update(_source_settings(path, run_info, given_files or {}))
        dev_fraction = run_info.get("dev_fraction")
        if isinstance(dev_fraction, (int, float)) and not isinstance(dev_fraction, bool) \
                and 0 <= dev_fraction < 1:
            settings["dev_fraction"] = float(dev_fraction)
        elif _history_without_dev(js):
            settings["dev_fraction"] = 0.0
        names = optimizer_options(settings["optimizer"])[1:]
        options = {"min_delta": field(js, "trainer.trainer.min_delta", float),
                   "restore_best": field(js, "trainer.trainer.restore_best", bool),
                   "step_size": schedule.get("step_size"), "gamma": schedule.get("gamma", 0.1),
                   **{name: tcfg[name] for name in names if name in tcfg}}
        samples = run_info.get("train_samples")
        return cls(settings, field(js, "trainer.epoch", int),
                   field(js, "trainer.trainer.epochs", int), options,
                   samples if isinstance(samples, int) and not isinstance(samples, bool)
                   else None)


@dataclass
class ResumedRun:
    """A saved run to continue: the checkpoint's ``path``, its :class:`~xpnet.Model` (the
    network included, on the device it was read to), its training ``state`` and its
    :class:`RunRecord`.

        run = ResumedRun.read("runs/m.npz", device="cpu")
        trainer = run.trainer(epochs=20)       # after the saved epoch, to 20 in total
        trainer.fit(X, y)                      # the run's data, encoded by run.model
    """

    path: str
    model: Model
    state: dict
    record: RunRecord

    @classmethod
    def read(cls, path, device="auto", given_files=None) -> ResumedRun:
        """Read the run saved in checkpoint ``path`` by ``xpnet.train --save`` (or
        :func:`save_run`).

        Args:
            path: the checkpoint.
            device: where to put the network (a name or a :class:`~xpnet.backend.Device`).
            given_files: ``{"data": path, "test_data": path}``: where a table moved (checked
                by SHA-256).

        Returns:
            The :class:`ResumedRun`.

        Raises:
            CheckpointError: the file cannot be read as a checkpoint.
            RunRecordError: it holds no resumable MLP, or its model record or run record is
                missing, damaged or does not match its data.
        """
        net, state = load_checkpoint(path, device=device)
        if getattr(net, "layer_sizes", None) is None or \
                net.head.name not in ("softmax", "identity"):
            raise RunRecordError(f"{path} does not hold a model xpnet.train trains (an MLP with "
                                 f"softmax outputs, or one identity output for regression), so "
                                 f"it cannot be resumed")
        try:
            model = Model.from_state(net, state)
        except ModelRecordError as exc:
            raise RunRecordError(f"{path}: {exc}, so it cannot be resumed") from None
        return cls(path, model, state, RunRecord.read(path, net, model, state, given_files))

    def apply_settings(self, settings, given=(), flags=False, say=None) -> None:
        """Make ``settings`` the run's own: each of :data:`RUN_SETTINGS` comes from the
        checkpoint; only ``epochs`` (default: the run's own plan) may change, with the device,
        the outputs and the path of a moved table.

        Args:
            settings: the settings by keyword, updated in place.
            given: the keys given explicitly; one that disagrees with the run is an error.
            flags: name the settings as xpnet.train's flags in messages.
            say: ``say(line)`` for a note (a checkpoint too old to record its dev fraction
                gets :data:`OLD_DEV_FRACTION`).

        Raises:
            RunSettingsError: a given setting disagrees with the run, or ``epochs`` is not
                more than the epochs it has trained.
        """
        def n(key):
            return setting_name(key, flags)

        path, record, s = self.path, self.record, settings
        saved = dict(record.settings, step_size=record.trainer_options.get("step_size"))
        if "dev_fraction" not in saved and "dev_fraction" not in given:
            s["dev_fraction"] = OLD_DEV_FRACTION
            if say is not None:
                say(f"note: {path} does not record its {n('dev_fraction')} (it was saved by an "
                    f"older xpnet); assuming {OLD_DEV_FRACTION}")
        for key in ("data", "test_data"):
            if key in given and saved.get(key) and same_file(s[key], saved[key]):
                saved[key] = s[key]  # the same file, named another way
        keep = f"a resumed run keeps the settings of the run in {path}; leave"
        if "hidden" in given and s["hidden"] != saved["layers"][1:-1]:
            raise RunSettingsError(f"{n('hidden')} {setting_text(s['hidden'])} (the run used "
                                   f"{setting_text(saved['layers'][1:-1])}): {keep} it out, or "
                                   f"train from scratch")
        conflicts = [f"{n(key)} {setting_text(s[key])} (the run used "
                     f"{setting_text(saved[key])})"
                     for key in RUN_SETTINGS
                     if key in given and key in saved and s[key] != saved[key]]
        if conflicts:
            these = f"these {'flags' if flags else 'settings'}" if len(conflicts) > 1 else "it"
            raise RunSettingsError(f"{'; '.join(conflicts)}: {keep} {these} out, or train from "
                                   f"scratch")
        s.update(saved)
        if "epochs" not in given:
            s["epochs"] = record.epochs_planned
        if s["epochs"] <= record.epochs_done:
            how = (f"pass a larger {n('epochs')}" if "epochs" in given else
                   f"pass {n('epochs')} N with N > {record.epochs_done}")
            raise RunSettingsError(f"{n('epochs')} {s['epochs']}: the run in {path} has "
                                   f"already trained {record.epochs_done} epochs; {how} to "
                                   f"train it further")

    def check_train_samples(self, n) -> None:
        """Refuse to continue the run on other data than it trained on.

        Args:
            n: the training samples (before the dev split) of the data at hand.

        Raises:
            RunRecordError: the run recorded another number.
        """
        done = self.record.train_samples
        if done is not None and done != n:
            raise RunRecordError(f"the run in {self.path} trained on {done} training samples "
                                 f"but this one has {n} (XPNET_MNIST_SUBSET, or other data); "
                                 f"resume it with the same data")

    TRAINER_SETTINGS = ("optimizer", "lr", "batch_size", "schedule", "patience", "seed")

    def trainer(self, epochs=None, **options):
        """The :class:`~xpnet.training.Trainer` of the run, with the run's settings
        (:data:`TRAINER_SETTINGS` of :attr:`RunRecord.settings` and its
        :attr:`RunRecord.trainer_options`), positioned after its last saved epoch (optimizer
        state, history and best epoch restored).

        Args:
            epochs: the epochs in total; None for the run's own plan.
            **options: other Trainer keywords (``progress``, ``callbacks``, ``comm``,
                ``eval_batch_size``, ...), not the run's settings.

        Returns:
            The trainer, ready for ``fit``.

        Raises:
            RunRecordError: the saved settings or state are damaged or do not fit.
        """
        from .training import Trainer

        try:
            settings = {key: self.record.settings[key] for key in self.TRAINER_SETTINGS}
            trainer = Trainer(self.model.net, epochs=epochs or self.record.epochs_planned,
                              **settings, **options, **self.record.trainer_options)
        except (TypeError, ValueError) as exc:
            raise RunRecordError(f"{self.path} has damaged run-state settings ({exc}), so it "
                                 f"cannot be resumed") from None
        try:
            trainer.load_state_dict(sub_state(self.state, "trainer"))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise RunRecordError(f"{self.path} has damaged run state ({exc}), so it cannot be "
                                 f"resumed") from None
        return trainer


def save_run(path, model, trainer, *, source, dev_fraction, train_samples):
    """Write ``model`` with its run state, so that ``xpnet.train --resume`` (or
    :meth:`ResumedRun.read`) continues it with every setting it was started with and
    ``xpnet.predict`` gives back the original labels.

    Args:
        path: the ``.npz`` checkpoint, written atomically.
        model: the trained :class:`~xpnet.Model`.
        trainer: its :class:`~xpnet.training.Trainer` (settings, epoch, history, optimizer
            and best-epoch state).
        source: the data trained on (:func:`source_record`, with digests).
        dev_fraction: the dev split's share.
        train_samples: the training samples before the dev split.

    Returns:
        The path written (:class:`pathlib.Path`).

    Raises:
        CheckpointError: the file cannot be written.
    """
    run = {"json": {"dev_fraction": dev_fraction, "train_samples": train_samples,
                    "source": source}, "arrays": {}}
    return model.save(path, training_state=nest_states(trainer=trainer.state_dict(), run=run))


def source_record(*, dataset=None, data=None, task="classification", target=None,
                  test_fraction=None, id=None, drop=(), missing="impute", test_data=None,
                  digests=True) -> dict:
    """The ``run.source`` entry of a run on the image ``dataset`` or on the table ``data``
    (recorded by absolute path, with its SHA-256 and that of ``test_data`` when
    ``digests``)."""
    if data is None:
        return {"dataset": dataset, "data": None, "task": task, "kind": "image"}
    from .data import sha256_file

    record = {"dataset": None, "data": os.path.abspath(data), "task": task, "kind": "table",
              "target": target, "test_fraction": test_fraction, "id": id,
              "drop": list(drop or []), "missing": missing,
              "test_data": os.path.abspath(test_data) if test_data else None}
    if digests:
        record["data_sha256"] = sha256_file(data)
        if test_data:
            record["test_data_sha256"] = sha256_file(test_data)
    return record


def verified_file(path, flag, recorded, digest, given=None) -> str:
    """The data file to continue the run of checkpoint ``path`` with: ``given`` (a moved
    copy) or the ``recorded`` path, whose SHA-256 must be ``digest``; a
    :class:`RunRecordError` naming both files otherwise."""
    from .data import sha256_file

    candidate = given or recorded
    try:
        actual = sha256_file(candidate)
    except FileNotFoundError:
        hint = "" if given else f"; if it moved, pass {flag} NEW_PATH"
        raise RunRecordError(f"the run in {path} was trained on {candidate}, which does not "
                             f"exist{hint}") from None
    except OSError as exc:
        raise RunRecordError(f"cannot read {candidate} ({exc.strerror or exc}) to check it is "
                             f"the file the run in {path} was trained on") from None
    if actual != digest and not given:
        raise RunRecordError(f"{candidate} has changed since the run in {path} was trained on "
                             f"it (its SHA-256 differs); resume with the original file ({flag} "
                             f"PATH if it is elsewhere), or train from scratch")
    if actual != digest:
        raise RunRecordError(f"{candidate} is not the file the run in {path} was trained on "
                             f"({recorded}): their SHA-256 differ; resume with that file, or "
                             f"train from scratch")
    return candidate


def _source_settings(path, run_info, given_files) -> dict:
    """The data settings of a run (a checkpoint from before ``--data`` trained MNIST)."""
    source = run_info.get("source")
    if source is None:
        return {"dataset": "mnist", "data": None, "task": "classification"}
    ok = isinstance(source, dict) and source.get("task") in TASKS and (
        source.get("dataset") in IMAGE_DATASETS and source.get("data") is None
        or isinstance(source.get("data"), str) and source.get("dataset") is None)
    if not ok:
        raise RunRecordError(f"{path} has a damaged run-state entry 'run.source', so it cannot "
                             f"be resumed")
    out = {"dataset": source.get("dataset"), "data": source.get("data"),
           "task": source["task"]}
    if isinstance(source.get("target"), str):
        out["target"] = source["target"]
    fraction = source.get("test_fraction")
    if isinstance(fraction, float) and 0 < fraction < 1:
        out["test_fraction"] = fraction
    for key in ("id", "missing", "test_data"):
        if isinstance(source.get(key), str):
            out[key] = source[key]
    if isinstance(source.get("drop"), list):
        out["drop"] = [str(d) for d in source["drop"]] or None
    for flag, key in (("--data", "data"), ("--test-data", "test_data")):
        digest = source.get(f"{key}_sha256")
        if out.get(key) is not None and isinstance(digest, str):
            out[key] = verified_file(path, flag, out[key], digest, given_files.get(key))
    return out


def _field_reader(path):
    """``field(d, "a.b.c", types)``: a value of the run state, or a one-line error saying which
    entry is missing or damaged (the checkpoint was then not written by xpnet.train)."""
    def field(d, dotted, types):
        value = d
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise RunRecordError(f"{path} lacks the run-state entry {dotted!r}, so it cannot "
                                     f"be resumed; it is damaged or was not saved by xpnet.train "
                                     f"--save")
            value = value[part]
        allowed = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise RunRecordError(f"{path} has a damaged run-state entry {dotted!r} ({shown}), "
                                 f"so it cannot be resumed")
        return value

    return field


def _history_without_dev(js) -> bool:
    history = js.get("trainer", {}).get("history") if isinstance(js.get("trainer"), dict) \
        else None
    values = history.get("val_loss") if isinstance(history, dict) else None
    return isinstance(values, list) and all(v is None for v in values)
