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

from .optimizers import OPTIMIZERS, optimizer_options
from .targets import TASKS

__all__ = ["IMAGE_DATASETS", "RunRecord", "RunRecordError", "source_record", "verified_file"]

IMAGE_DATASETS = ("mnist", "fashion-mnist", "kmnist")


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
