"""Input normalisation and the dev/test splits (host NumPy; done once, before training).

    unit:      x' = (x - lo) / (hi - lo)          lo, hi: per-dataset min and max of the
                                                   training set (0 and 255 for uint8 images)
    standard:  x' = (x - mean_j) / std_j          per-feature statistics of the training set;
                                                   constant features get std 1

The statistics always come from the training set only, so no dev or test information leaks in.
"""

from __future__ import annotations

import numpy as np

from .backend import as_array

SCALINGS = ("none", "unit", "standard")


class Scaler:
    """Fitted input normalisation: ``X' = (X - offset) / scale``, with the statistics of the
    training set.

    ``unit`` maps the data's range to [0, 1] (uint8 data: its full 0..255 range, so every image
    maps the same way); ``standard`` subtracts each feature's mean and divides by its standard
    deviation (1 for a constant feature), computed in float64; ``none`` only casts.
    ``transform`` returns a new array and never modifies its input.

    Args:
        method: ``"unit"`` | ``"standard"`` | ``"none"``.

    Raises:
        ValueError: an unknown method.

    Example:
        ``X_train = Scaler("unit").fit(images).transform(images)`` gives float32 in [0, 1].
    """

    def __init__(self, method="unit"):
        if method not in SCALINGS:
            raise ValueError(f"unknown scaling {method!r}: choose one of {', '.join(SCALINGS)}")
        self.method = method
        self.offset = None  # subtracted, shape () or (n_features,)
        self.scale = None  # divided by

    def fit(self, X):
        """Compute the statistics from the training inputs.

        Args:
            X: ``(n_samples, n_features)`` array (NumPy, or anything ``np.asarray`` takes).

        Returns:
            The scaler itself, fitted (so ``Scaler().fit(X).transform(X)`` chains).
        """
        X = as_array(X, "X")
        if self.method == "unit":
            if X.dtype == np.uint8:
                lo, hi = 0.0, 255.0  # the full uint8 range, so every image maps the same way
            else:
                lo, hi = float(X.min()), float(X.max())
            self.offset = np.float64(lo)
            self.scale = np.float64(hi - lo if hi > lo else 1.0)
        elif self.method == "standard":
            Xf = X.astype(np.float64)
            self.offset = Xf.mean(axis=0)
            std = Xf.std(axis=0)
            self.scale = np.where(std > 0, std, 1.0)
        else:
            self.offset, self.scale = np.float64(0.0), np.float64(1.0)
        return self

    def transform(self, X, dtype="float32"):
        """Scale ``X`` with the fitted statistics.

        Args:
            X: ``(n_samples, n_features)`` array, with the features of the fitted data.
            dtype: the returned array's float dtype.

        Returns:
            A new ``(n_samples, n_features)`` host array of ``dtype``. The subtraction is done
            in float64 before the cast (unless the input is exact in ``dtype``, as pixels are),
            so a large offset such as a timestamp keeps its digits.

        Raises:
            RuntimeError: called before :meth:`fit`.
        """
        if self.offset is None:
            raise RuntimeError("Scaler.transform called before fit")
        X = as_array(X, "X")
        if self.method == "none":
            out = np.asarray(X, dtype=dtype)
            return out.copy() if out is X else out
        if _exact_in(X.dtype, dtype):
            # Small integers (pixels) are exact in the target dtype: no float64 copy needed.
            out = np.asarray(X, dtype=dtype) - np.asarray(self.offset, dtype=dtype)
            out /= np.asarray(self.scale, dtype=dtype)
            return out
        # Subtract in float64 before the cast, so an offset feature (a timestamp near 1.7e9)
        # keeps its digits: in float32 it would be rounded to 128 s before the subtraction.
        out = np.asarray(X, dtype=np.float64) - np.asarray(self.offset, dtype=np.float64)
        out /= np.asarray(self.scale, dtype=np.float64)
        return out.astype(dtype, copy=False)

    def fit_transform(self, X, dtype="float32"):
        """:meth:`fit` on ``X``, then :meth:`transform` it; returns the scaled array."""
        return self.fit(X).transform(X, dtype)

    def state(self) -> dict:
        """JSON description plus arrays, for checkpoints."""
        return {
            "json": {"method": self.method},
            "arrays": {"offset": np.asarray(self.offset), "scale": np.asarray(self.scale)},
        }

    @classmethod
    def from_state(cls, state) -> Scaler:
        """The scaler :meth:`state` described; ValueError when its statistics are not finite
        or a scale is not positive (an infinite scale would silently zero a feature)."""
        s = cls(state["json"]["method"])
        s.offset = np.asarray(state["arrays"]["offset"], dtype=np.float64)
        s.scale = np.asarray(state["arrays"]["scale"], dtype=np.float64)
        if not (np.isfinite(s.offset).all() and np.isfinite(s.scale).all()):
            raise ValueError("the scaler's statistics are not finite")
        if not (s.scale > 0).all():
            raise ValueError("the scaler's scale is not positive")
        return s


def _exact_in(source, dtype) -> bool:
    """Whether every value of dtype ``source`` is exact in the float dtype ``dtype``, and the
    scaling may therefore be computed in ``dtype`` directly."""
    source, dtype = np.dtype(source), np.dtype(dtype)
    if source == dtype:
        return source.itemsize >= 8  # float64 data into float64: nothing is lost either way
    return source.kind in "bu" and source.itemsize <= 2 or source.kind == "i" and \
        source.itemsize <= 2


def stratified_split(y, fraction, seed=0):
    """Indices ``(train_idx, dev_idx)`` with ``fraction`` of each class in the dev set.

    Each class contributes ``round(fraction * n_class)`` samples (at least one when the class
    has two or more), chosen at random with ``seed``; both index arrays are sorted.

    Args:
        y: class labels ``(n,)`` (rows of a 2-D ``y`` count as one class each).
        fraction: the dev set's share, in (0, 1).
        seed: seeds the choice; the same seed gives the same split.

    Returns:
        ``(train_idx, dev_idx)``: sorted int64 index arrays that together cover ``0..n-1``.

    Raises:
        ValueError: ``fraction`` is not in (0, 1).
    """
    y = as_array(y, "y")
    if not 0 < fraction < 1:
        raise ValueError(f"dev fraction must be in (0, 1); got {fraction!r}")
    if y.ndim != 1:
        y = y.reshape(len(y), -1)
        _, y = np.unique(y, axis=0, return_inverse=True)
        y = y.reshape(-1)
    rng = np.random.default_rng(seed)
    dev = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        k = int(round(fraction * len(idx)))
        if k == 0 and len(idx) >= 2:
            k = 1
        k = min(k, len(idx) - 1) if len(idx) > 1 else 0
        dev.append(rng.choice(idx, size=k, replace=False))
    dev_idx = np.sort(np.concatenate(dev)) if dev else np.array([], dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[dev_idx] = False
    train_idx = np.flatnonzero(mask)
    if len(dev_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"dev fraction {fraction} leaves an empty train or dev set for {len(y)} samples; "
            f"use more data or a different fraction."
        )
    return train_idx, dev_idx


def random_split(n, fraction, seed=0):
    """Indices ``(train_idx, held_idx)``: ``round(fraction * n)`` of ``n`` samples held out
    at random with ``seed`` (for regression, where there are no classes to stratify by); both
    index arrays are sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f"the fraction must be in (0, 1); got {fraction!r}")
    k = int(round(fraction * n))
    if k == 0 or k == n:
        raise ValueError(f"fraction {fraction} leaves an empty part of {n} samples; use more "
                         f"data or a different fraction.")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def holdout_split(y, fraction, seed=0, stratified=True, salt=None):
    """Indices ``(keep_idx, held_idx)``: :func:`stratified_split` by class when ``stratified``
    (classification: ``y`` holds class indices), else :func:`random_split`. ``salt`` makes two
    splits of one seed independent: ``xpnet.train`` holds out its test set with ``salt=1`` and
    its dev set with none (the plain seed, as MNIST runs always had)."""
    seed = seed if salt is None else [seed, salt]
    if stratified:
        return stratified_split(y, fraction, seed)
    return random_split(len(y), fraction, seed)
