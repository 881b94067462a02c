"""What a finished training run reports: whether its result is usable, its test scores, the
confusion matrix and the summary line as ``python -m xpnet.train`` prints them, and its metrics
record (``--metrics-json``).

    check_finite_state(trainer)                     # TrainingDiverged if NaN/inf crept in
    scores = score_run(model, X_test, y_test, trainer)
    print("\\n".join(confusion_lines(scores, model.target)))
    print(summary_line(scores, trainer, has_dev=False, device_name="cpu"))

A run is refused (:class:`~xpnet.loop.TrainingDiverged`) when its final parameters, batch-norm
statistics or optimizer state are not finite (the loop checks each epoch's loss, but the last
update comes after the last loss it sees), or when they give a test loss that is not finite.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .cli import printable
from .loop import TrainingDiverged
from .metrics import Scores, score_network

__all__ = ["MAX_CONFUSION_CLASSES", "check_finite_state", "confusion_lines", "json_ready",
           "metrics_json", "summary_line", "score_run", "train_seconds", "weights_used"]

MAX_CONFUSION_CLASSES = 20  # wider matrices do not fit a terminal; the metrics JSON has them


def _advice(trainer) -> str:
    return (f"lower the learning rate (now {trainer.schedule_args['lr']:g}) or standardise the "
            f"inputs.")


def check_finite_state(trainer) -> None:
    """Refuse a run whose final state is not finite.

    Args:
        trainer: the :class:`~xpnet.training.Trainer` after ``fit``; its network's parameters
            and buffers and its optimizer's state are checked on their device.

    Raises:
        TrainingDiverged: some value is NaN or infinite.
    """
    net = trainer.net
    xp = net.device.xp
    state = [net.flat.data, *net.buffers(), *trainer.optimizer.state.values()]
    with net.device.activate(), np.errstate(invalid="ignore", over="ignore"):
        finite = all(bool(xp.isfinite(a).all()) for a in state)
    if not finite:
        raise TrainingDiverged(f"training diverged in the last update: the final parameters "
                               f"are not finite (NaN or infinity); {_advice(trainer)}",
                               trainer.history)


def score_run(model, X, y, trainer) -> Scores:
    """The test metrics of ``model`` from one inference pass on the device
    (:func:`~xpnet.metrics.score_network`, the RMSE in the target's units).

    Args:
        model: the trained :class:`~xpnet.Model`.
        X: the encoded test inputs (n, n_inputs), on the model's device.
        y: the encoded test targets (class indices, or standardised values).
        trainer: the trainer that trained it (for the message).

    Returns:
        The :class:`~xpnet.metrics.Scores`.

    Raises:
        TrainingDiverged: the test loss is not finite.
    """
    scores = score_network(model.net, X, y, target_scale=model.target.scale)
    if not math.isfinite(scores.loss):
        raise TrainingDiverged(f"training diverged: the final parameters give a test loss of "
                               f"{scores.loss}; {_advice(trainer)}", trainer.history)
    return scores


def _short(label) -> str:
    text = printable(label)  # a label's escape sequences must not reach the terminal
    return text if len(text) <= 10 else text[:9] + "~"


def confusion_lines(scores, target, max_classes=MAX_CONFUSION_CLASSES) -> list:
    """The confusion matrix as text: a title, the predicted classes' header, and one row per
    true class (names escaped and cut to 10 characters, columns at least 5 wide).

    Args:
        scores: the :class:`~xpnet.metrics.Scores` of a classifier.
        target: the model's :class:`~xpnet.targets.Target` (class names, or the classes).
        max_classes: more classes than this give no lines (too wide for a terminal).

    Returns:
        The lines, without newlines; none for regression or too many classes.
    """
    if scores.confusion is None or len(scores.confusion) > max_classes:
        return []
    names = [_short(c) for c in (target.class_names or target.classes)]
    width = max(5, *(len(n) for n in names))
    return ["confusion matrix (rows: true class, columns: predicted):",
            " " * (width + 3) + " ".join(f"{n:>{width}}" for n in names),
            *(f"  {name:>{width}} " + " ".join(f"{v:>{width}}" for v in row)
              for name, row in zip(names, scores.confusion))]


def train_seconds(history) -> float:
    """Training wall time: the epochs only, data loading and the test pass excluded.

    Args:
        history: the run's :class:`~xpnet.History`.

    Returns:
        The sum of its epochs' seconds.
    """
    return float(sum(history.seconds))


def weights_used(trainer, has_dev) -> str:
    """Which weights the test (and a save) used: the last epoch's, or the best dev epoch's
    when early stopping on a dev set restored them. Without a dev set nothing is restored (as
    in scikit-learn, which keeps the last weights when it stops on the training loss). With a
    ``min_delta``, the best epoch is the last one that improved by more than it.

    Args:
        trainer: the :class:`~xpnet.training.Trainer` after ``fit``.
        has_dev: whether it monitored a dev set.

    Returns:
        ``tested the weights of epoch N`` and why.
    """
    history = trainer.history
    last = history.epoch[-1] if len(history) else trainer.epoch
    best = history.best_epoch
    restored = has_dev and trainer.restore_best and best is not None and best != last \
        and not history.interrupted
    loss = "dev loss" if has_dev else "training loss"
    where = f"lowest {loss}" if trainer.min_delta == 0 else \
        f"last {loss} improvement of more than {trainer.min_delta:g}"
    if restored:
        return f"tested the weights of epoch {best} ({where}; restored)"
    if best is not None and best != last:
        return f"tested the last epoch's weights (epoch {last}; {where} at epoch {best})"
    return f"tested the weights of epoch {last}"


def summary_line(scores, trainer, has_dev, device_name) -> str:
    """The one line ``xpnet.train`` always prints at the end.

    Args:
        scores: the test :class:`~xpnet.metrics.Scores`.
        trainer: the :class:`~xpnet.training.Trainer` after ``fit``.
        has_dev: whether it monitored a dev set.
        device_name: where it trained (``cpu``, ``cuda:0``).

    Returns:
        ``test accuracy A  test loss L  epochs N  tested the weights of ...  train time Ts on
        DEVICE`` (``test r2``/``test rmse`` for regression, `` (early stop)`` after the
        epochs when early stopping ended the run).
    """
    history = trainer.history
    if scores.accuracy is not None:
        text = f"test accuracy {scores.accuracy:.4f}  test loss {scores.loss:.4f}"
    else:
        text = f"test r2 {scores.r2:.4f}  test rmse {scores.rmse:.4g}"
    stopped = " (early stop)" if history.stopped_early else ""
    return (f"{text}  epochs {len(history)}{stopped}  {weights_used(trainer, has_dev)}  "
            f"train time {train_seconds(history):.1f}s on {device_name}")


def json_ready(value):
    """``value`` with every float that is not finite replaced by None: strict JSON.

    Args:
        value: floats, dicts, lists and tuples of them, and anything else (kept).

    Returns:
        The same structure (dicts and lists rebuilt).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def metrics_json(scores, trainer, model, device_name, *, source, dev_fraction, dtype,
                 tf32=False) -> str:
    """The run's metrics record as strict JSON (never NaN): the device, the test scores, the
    training seconds, epochs run and best epoch, the confusion matrix (or, beyond
    :data:`~xpnet.metrics.DENSE_CONFUSION_CLASSES` classes, its nonzero cells as
    ``[true, predicted, count]``) with the classes, the configuration and the history.

    Args:
        scores: the test :class:`~xpnet.metrics.Scores`.
        trainer: the :class:`~xpnet.training.Trainer` after ``fit``.
        model: the trained :class:`~xpnet.Model`.
        device_name: where it trained.
        source: the data trained on (:func:`~xpnet.runs.source_record`).
        dev_fraction: the dev split's share.
        dtype: the parameters' floating-point type (``"float32"``).
        tf32: whether TF32 tensor cores were allowed.

    Returns:
        The JSON text, indented by 2.
    """
    history, classes = trainer.history, model.target.classes
    metrics = {
        "device": device_name, **scores.as_dict(),
        "train_seconds": train_seconds(history), "epochs_run": len(history),
        "best_epoch": history.best_epoch,
        **({"confusion_matrix": scores.confusion.tolist(), "classes": classes}
           if scores.confusion is not None else {}),
        # many classes: only the nonzero cells, [true, predicted, count] (never k^2)
        **({"confusion_cells": scores.confusion_cells.tolist(), "classes": classes}
           if scores.confusion_cells is not None else {}),
        "config": {"net": model.net.config(), "trainer": trainer.config(), "source": source,
                   "scaling": model.inputs.scaler.method, "dev_fraction": dev_fraction,
                   "dtype": dtype, "tf32": tf32},
        "history": history.to_dict(),
    }
    return json.dumps(json_ready(metrics), indent=2, allow_nan=False)
