"""Scaler (statistics from the training set only) and the stratified dev split."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.preprocessing import SCALINGS, Scaler, stratified_split


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    train = rng.normal(loc=[1.0, -3.0, 10.0], scale=[0.5, 2.0, 4.0], size=(200, 3))
    other = rng.normal(loc=[5.0, 0.0, -2.0], scale=[3.0, 1.0, 1.0], size=(50, 3))
    return train, other


# ---------------------------------------------------------------------------- Scaler
def test_unit_uses_training_min_and_max(data):
    train, other = data
    s = Scaler("unit").fit(train)
    lo, hi = train.min(), train.max()
    np.testing.assert_allclose(s.transform(train), (train - lo) / (hi - lo), rtol=1e-6,
                               atol=1e-6)
    t = s.transform(train)
    assert t.min() == pytest.approx(0.0, abs=1e-7) and t.max() == pytest.approx(1.0, rel=1e-6)
    # another set is mapped with the *training* statistics, not its own
    got = s.transform(other)
    np.testing.assert_allclose(got, (other - lo) / (hi - lo), rtol=1e-6, atol=1e-6)
    own = (other - other.min()) / (other.max() - other.min())
    assert not np.allclose(got, own, atol=1e-3)


def test_unit_uint8_maps_the_full_byte_range():
    rng = np.random.default_rng(0)
    train = rng.integers(10, 200, size=(30, 8), dtype=np.uint8)  # never reaches 0 or 255
    s = Scaler("unit").fit(train)
    np.testing.assert_allclose(s.transform(train), train.astype(np.float64) / 255.0, rtol=1e-6)
    edge = np.array([[0] * 8, [255] * 8], dtype=np.uint8)
    np.testing.assert_array_equal(s.transform(edge), [[0.0] * 8, [1.0] * 8])


def test_standard_uses_training_mean_and_std(data):
    train, other = data
    s = Scaler("standard").fit(train)
    mean, std = train.mean(axis=0), train.std(axis=0)
    t = s.transform(train, dtype="float64")
    np.testing.assert_allclose(t, (train - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(t.std(axis=0), 1.0, rtol=1e-12)
    got = s.transform(other, dtype="float64")
    np.testing.assert_allclose(got, (other - mean) / std, rtol=1e-12, atol=1e-12)
    # the other set's own statistics would give mean 0; the train statistics do not
    assert np.all(np.abs(got.mean(axis=0)) > 0.5)


def test_constant_features_give_no_nan():
    X = np.array([[1.0, 5.0, 2.0], [1.0, 6.0, 2.0], [1.0, 7.0, 2.0]])
    std = Scaler("standard").fit(X)
    t = std.transform(X)
    assert np.all(np.isfinite(t))
    np.testing.assert_array_equal(t[:, 0], 0.0)  # (x - mean) / 1 for a constant column
    np.testing.assert_array_equal(t[:, 2], 0.0)
    np.testing.assert_allclose(t[:, 1], (X[:, 1] - 6.0) / X[:, 1].std(), rtol=1e-6)
    # a constant dataset for the unit scaler (hi == lo)
    const = np.full((4, 3), 3.5)
    u = Scaler("unit").fit(const)
    t = u.transform(const + np.array([0.0, 1.0, -1.0]))
    assert np.all(np.isfinite(t))
    np.testing.assert_allclose(t, np.tile([0.0, 1.0, -1.0], (4, 1)))


@pytest.mark.parametrize("method", SCALINGS)
def test_dtype_float32_by_default(method, data):
    train, _ = data
    s = Scaler(method).fit(train)
    assert s.transform(train).dtype == np.float32
    assert s.fit_transform(train).dtype == np.float32
    assert s.transform(train, dtype="float64").dtype == np.float64
    assert s.transform(train.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("method", SCALINGS)
def test_transform_returns_a_new_array(method, data):
    train, _ = data
    X = train.astype(np.float32)
    before = X.copy()
    out = Scaler(method).fit(X).transform(X)
    assert out is not X and not np.shares_memory(out, X)
    np.testing.assert_array_equal(X, before)  # input untouched


def test_none_is_identity(data):
    train, other = data
    s = Scaler("none").fit(train)
    np.testing.assert_array_equal(s.transform(other), other.astype(np.float32))


@pytest.mark.parametrize("method", SCALINGS)
def test_state_round_trip(method, data):
    train, other = data
    s = Scaler(method).fit(train)
    r = Scaler.from_state(s.state())
    assert r.method == method
    np.testing.assert_array_equal(r.transform(other), s.transform(other))


def test_scaler_errors():
    with pytest.raises(ValueError, match="unknown scaling"):
        Scaler("minmax")
    with pytest.raises(RuntimeError, match="before fit"):
        Scaler("standard").transform(np.zeros((2, 2)))


# ---------------------------------------------------------------------------- stratified split
@pytest.fixture
def labels():
    rng = np.random.default_rng(11)
    counts = {0: 100, 1: 37, 2: 9, 3: 2, 4: 1, 5: 250}
    y = np.concatenate([np.full(n, c) for c, n in counts.items()])
    return rng.permutation(y), counts


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_split_preserves_class_proportions(labels, fraction):
    y, counts = labels
    train_idx, dev_idx = stratified_split(y, fraction, seed=3)
    for cls, n in counts.items():
        n_dev = int(np.sum(y[dev_idx] == cls))
        n_train = int(np.sum(y[train_idx] == cls))
        assert n_dev + n_train == n
        if n >= 2:
            assert abs(n_dev - fraction * n) <= 1, (cls, n_dev, fraction * n)
            assert n_dev >= 1 and n_train >= 1  # every class on both sides
        else:
            assert n_dev == 0  # a singleton class stays in training


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_split_is_disjoint_covering_and_sorted(labels, fraction):
    y, _ = labels
    train_idx, dev_idx = stratified_split(y, fraction, seed=0)
    assert len(np.intersect1d(train_idx, dev_idx)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, dev_idx])),
                                  np.arange(len(y)))
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(dev_idx) > 0)
    assert train_idx.dtype.kind == "i" and dev_idx.dtype.kind == "i"


def test_split_seeded(labels):
    y, _ = labels
    a = stratified_split(y, 0.2, seed=5)
    b = stratified_split(y, 0.2, seed=5)
    c = stratified_split(y, 0.2, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(c[1]) == len(a[1])  # same sizes per class ...
    assert not np.array_equal(a[1], c[1])  # ... different members


def test_split_one_hot_labels(labels):
    y, counts = labels
    onehot = np.eye(max(counts) + 1)[y]
    t1, d1 = stratified_split(onehot, 0.3, seed=2)
    for cls, n in counts.items():
        if n >= 2:
            assert abs(int(np.sum(y[d1] == cls)) - 0.3 * n) <= 1


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.2, 1.5, float("nan")])
def test_split_bad_fraction(labels, fraction):
    y, _ = labels
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(y, fraction)


def test_split_empty_side_is_an_error():
    y = np.arange(10)  # every class a singleton: nothing can go to the dev set
    with pytest.raises(ValueError, match="empty"):
        stratified_split(y, 0.5)


@pytest.mark.parametrize("offset, scale, words", [
    (0.0, np.inf, "not finite"), (np.nan, 1.0, "not finite"), (0.0, 0.0, "not positive"),
    (0.0, -2.0, "not positive"),
])
def test_a_damaged_scaler_state_is_refused(offset, scale, words):
    """A stored scale of inf would silently zero its feature (issue 23, family 5)."""
    state = {"json": {"method": "standard"},
             "arrays": {"offset": np.array([offset, 0.0]), "scale": np.array([scale, 1.0])}}
    with pytest.raises(ValueError, match=words):
        Scaler.from_state(state)


def test_values_near_float32s_limit_standardise_without_overflow():
    """Statistics and the subtraction in float64: features near float32's largest value
    standardise to finite float32 values instead of overflowing or collapsing to zero."""
    X = np.array([[3.0e38], [3.2e38], [3.4e38]])
    out = Scaler("standard").fit(X).transform(X, "float32")
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-5)
