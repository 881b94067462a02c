"""Test metrics of a trained network, computed where its data lives (one inference pass).

    accuracy  = mean(argmax(p_i) == y_i)
    confusion = C[i, j]: samples of class i predicted as j                       (k, k) int
                (up to DENSE_CONFUSION_CLASSES classes; beyond, only its nonzero cells, as
                (i, j, count) rows: at most one per test sample, never k^2)
    R^2       = 1 - sum (yhat - y)^2 / sum (y - mean(y))^2        (the scale of y cancels)
    RMSE      = sqrt(mean (yhat - y)^2) * scale                   in the target's units

Regression targets are compared as the network sees them, standardised; ``target_scale`` maps
the RMSE back to the target's units. ``loss`` is the mean data loss of the head (cross-entropy,
or squared error on the standardised targets), without the L2 term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DENSE_CONFUSION_CLASSES", "Scores", "confusion_matrix", "eval_rows",
           "score_network"]

DENSE_CONFUSION_CLASSES = 100  # 10,000 classes would make a 10,000^2 matrix (800 MB)


@dataclass
class Scores:
    """The result of :func:`score_network`, on the host: classification fills ``accuracy`` and
    ``confusion``, regression ``r2`` and ``rmse``."""

    loss: float
    accuracy: float | None = None
    confusion: np.ndarray | None = None  # (k, k) int64, up to DENSE_CONFUSION_CLASSES
    r2: float | None = None
    rmse: float | None = None
    confusion_cells: np.ndarray | None = None  # (c, 3) int64 rows (i, j, count) beyond it

    def as_dict(self) -> dict:
        if self.accuracy is not None:
            return {"test_accuracy": self.accuracy, "test_loss": self.loss}
        return {"test_r2": self.r2, "test_rmse": self.rmse, "test_loss": self.loss}


def confusion_matrix(xp, y_true, y_pred, k):
    """``C[i, j]`` = samples of class ``i`` predicted as ``j``, computed by ``xp`` (on the
    device that holds the labels)."""
    return xp.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


EVAL_VALUES = 4_000_000  # outputs of one evaluation chunk: 16 MB of float32 logits


def eval_rows(n_outputs, limit=10000) -> int:
    """Rows per evaluation chunk: ``limit``, fewer for wide outputs, so that a chunk's logits
    and probabilities stay about :data:`EVAL_VALUES` values (10,000 classes: 400 rows, where
    10,000 rows took 800 MB)."""
    return max(1, min(limit, EVAL_VALUES // max(1, n_outputs)))


def score_network(net, X, y, *, target_scale=1.0, batch_size=10000) -> Scores:
    """Loss and metrics of ``net`` on the device arrays ``X`` (n, d) and ``y`` (class indices,
    or standardised regression targets), in chunks of ``batch_size`` rows; only the scalars and
    the confusion matrix come back to the host."""
    device = net.device
    with device.activate(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        loss_sum, correct, pred = net.evaluate_device(
            X, y, batch_size=eval_rows(net.n_outputs, batch_size), predictions=True)
        m = len(y)
        if net.head.is_classifier:
            k = net.n_outputs
            if k > DENSE_CONFUSION_CLASSES:
                codes = device.to_numpy(y * k + pred).astype(np.int64)
                cells, counts = np.unique(codes, return_counts=True)
                return Scores(float(loss_sum) / m, float(correct) / m, confusion_cells=(
                    np.column_stack([cells // k, cells % k, counts]).astype(np.int64)))
            confusion = device.to_numpy(confusion_matrix(device.xp, y, pred, k))
            return Scores(float(loss_sum) / m, float(correct) / m,
                          np.asarray(confusion, dtype=np.int64))
        truth = device.to_numpy(y).reshape(-1).astype(np.float64)
        error = device.to_numpy(pred).reshape(-1).astype(np.float64) - truth
        sse = float(np.sum(error ** 2))
        sst = float(np.sum((truth - truth.mean()) ** 2))
        r2 = 1.0 - sse / sst if sst > 0 else float("nan")
        return Scores(float(loss_sum) / m, r2=r2, rmse=math.sqrt(sse / m) * target_scale)
