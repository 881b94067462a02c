"""xpnet.sklearn: scikit-learn's estimator checks, and the same fits as sklearn.neural_network.

In float64 the estimators reproduce scikit-learn's MLP exactly (same Glorot start from
``random_state``, same shuffles, same losses, L2 term and updates), so most tests compare
``loss_curve_``, ``coefs_`` and predictions with scikit-learn's to ~1e-9. Everything runs on
the CPU.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6",
                              reason="xpnet.sklearn needs scikit-learn >= 1.6 (the test extra)")

from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

TIGHT = dict(rtol=1e-9, atol=1e-11)  # float64 against scikit-learn's float64


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _multiclass(n=240, classes=3, features=12, seed=0):
    return make_classification(n, features, n_informative=8, n_classes=classes,
                               random_state=seed)


def _pair(sk_cls, xp_cls, **params):
    """The scikit-learn estimator and ours, same parameters (ours in float64 on the CPU)."""
    return sk_cls(**params), xp_cls(**params, dtype="float64", device="cpu")


def _assert_same_fit(sk, xp, X):
    assert xp.n_iter_ == sk.n_iter_
    assert xp.t_ == sk.t_
    np.testing.assert_allclose(xp.loss_curve_, sk.loss_curve_, **TIGHT)
    assert len(xp.coefs_) == len(sk.coefs_) == xp.n_layers_ - 1
    for a, b in zip(xp.coefs_ + xp.intercepts_, sk.coefs_ + sk.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(xp.predict(X), sk.predict(X))


# ---------------------------------------------------------------------- scikit-learn's checks
# Every check passes with the defaults (dtype follows the data), the sample-weight and sparse
# checks included, so no expected_failed_checks are declared.
# max_iter=100 is what scikit-learn sets when it runs these checks on its own MLPs.
@parametrize_with_checks(
    [MLPClassifier(max_iter=100, device="cpu"), MLPRegressor(max_iter=100, device="cpu")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- same fit as sklearn
@pytest.mark.parametrize("params", [
    dict(solver="adam", hidden_layer_sizes=(20, 10), max_iter=15),
    dict(solver="adam", activation="tanh", alpha=0.5, learning_rate_init=0.01, max_iter=10),
    dict(solver="sgd", learning_rate_init=0.05, max_iter=12),  # nesterov
    dict(solver="sgd", nesterovs_momentum=False, learning_rate="invscaling",
         learning_rate_init=0.05, max_iter=10),
    dict(solver="sgd", momentum=0.0, activation="logistic", batch_size=32, shuffle=False,
         max_iter=8),
    dict(solver="adam", activation="identity", hidden_layer_sizes=(8, 6), max_iter=10),
    dict(solver="adam", hidden_layer_sizes=(), max_iter=10),  # no hidden layer
])
def test_multiclass_matches_sklearn(params):
    X, y = _multiclass()
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, random_state=0, **params)
    sk.fit(X, y)
    xp.fit(X, y)
    _assert_same_fit(sk, xp, X)
    assert xp.out_activation_ == "softmax" and xp.n_outputs_ == 3
    np.testing.assert_allclose(xp.predict_proba(X), sk.predict_proba(X), **TIGHT)


def test_binary_uses_one_logistic_output_like_sklearn():
    X, y = _multiclass(classes=2)
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(16,), max_iter=20,
                   random_state=1)
    sk.fit(X, y)
    xp.fit(X, y)
    _assert_same_fit(sk, xp, X)
    assert xp.out_activation_ == "logistic" and xp.n_outputs_ == 1
    assert xp.coefs_[-1].shape == (16, 1)
    proba = xp.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba, sk.predict_proba(X), **TIGHT)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(xp.predict_log_proba(X), np.log(proba))


def test_multilabel_matches_sklearn():
    X, _ = _multiclass()
    rng = np.random.default_rng(0)
    Y = (X[:, :3] + 0.3 * rng.standard_normal((len(X), 3)) > 0).astype(int)
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(15,), max_iter=15,
                   random_state=0)
    sk.fit(X, Y)
    xp.fit(X, Y)
    _assert_same_fit(sk, xp, X)
    assert xp.out_activation_ == "logistic" and xp.n_outputs_ == 3
    assert xp.predict(X).shape == (len(X), 3)
    np.testing.assert_allclose(xp.predict_proba(X), sk.predict_proba(X), **TIGHT)
    assert xp.score(X, Y) == sk.score(X, Y)  # subset accuracy


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_matches_sklearn(n_targets):
    X, y = make_regression(200, 8, n_targets=n_targets, noise=1.0, random_state=0)
    y = y / 50
    sk, xp = _pair(SkMLPRegressor, MLPRegressor, hidden_layer_sizes=(12,), solver="sgd",
                   learning_rate_init=0.01, max_iter=15, random_state=0)
    sk.fit(X, y)
    xp.fit(X, y)
    assert xp.n_iter_ == sk.n_iter_
    # scikit-learn reports the squared error averaged over outputs; so does xpnet.sklearn
    np.testing.assert_allclose(xp.loss_curve_, sk.loss_curve_, **TIGHT)
    for a, b in zip(xp.coefs_ + xp.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    pred = xp.predict(X)
    assert pred.shape == ((len(X),) if n_targets == 1 else (len(X), n_targets))
    np.testing.assert_allclose(pred, sk.predict(X), **TIGHT)
    assert xp.out_activation_ == "identity" and xp.n_outputs_ == n_targets
    assert xp.score(X, y) == pytest.approx(sk.score(X, y), rel=1e-9)


def test_alpha_is_xpnet_l2_per_batch():
    """scikit-learn's ``_backprop`` adds ``alpha / (2 n_batch) * sum ||W||^2``: xpnet's ``l2``."""
    X, y = _multiclass(n=50)
    xp = MLPClassifier(hidden_layer_sizes=(7,), alpha=3.0, max_iter=1, random_state=0,
                       dtype="float64", device="cpu").fit(X, y)
    sk = SkMLPClassifier(hidden_layer_sizes=(7,), alpha=3.0, max_iter=1, random_state=0)
    sk.fit(X, y)
    Xb, yb = X[:17], y[:17]
    Y = sk._label_binarizer.transform(yb)
    acts = [Xb] + [None] * (sk.n_layers_ - 1)
    deltas = [None] * (sk.n_layers_ - 1)
    cg = [np.empty_like(c) for c in sk.coefs_]
    ig = [np.empty_like(b) for b in sk.intercepts_]
    sk.coefs_, sk.intercepts_ = [c.copy() for c in xp.coefs_], [b.copy() for b in xp.intercepts_]
    sk_loss, sk_cg, sk_ig = sk._backprop(Xb, Y, None, acts, deltas, cg, ig)
    assert xp._net.l2 == 3.0
    loss, grads = xp._net.loss_and_grads(Xb, yb)
    assert loss == pytest.approx(sk_loss, rel=1e-12)
    for (dW, db), sk_dW, sk_db in zip(grads, sk_cg, sk_ig):
        np.testing.assert_allclose(dW.T, sk_dW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, sk_db, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------- stopping
def test_stops_on_training_loss_like_sklearn():
    X, y = _multiclass()
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(10,), tol=0.05,
                   n_iter_no_change=2, max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped, so no warning
        xp.fit(X, y)
    sk.fit(X, y)
    assert xp.n_iter_ < 200
    _assert_same_fit(sk, xp, X)
    assert xp.best_loss_ == pytest.approx(min(xp.loss_curve_))
    assert xp.validation_scores_ is None and xp.best_validation_score_ is None


def test_convergence_warning_at_max_iter():
    X, y = _multiclass()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        clf = MLPClassifier(max_iter=3, random_state=0, device="cpu").fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3


def test_early_stopping_binary_matches_sklearn():
    X, y = _multiclass(n=300, classes=2)
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(10,),
                   early_stopping=True, n_iter_no_change=3, max_iter=100, random_state=0)
    sk.fit(X, y)
    xp.fit(X, y)
    assert xp.n_iter_ < 100
    np.testing.assert_allclose(xp.validation_scores_, sk.validation_scores_)
    assert xp.best_validation_score_ == sk.best_validation_score_
    assert xp.best_loss_ is None
    _assert_same_fit(sk, xp, X)  # the restored best parameters too


def test_early_stopping_multiclass_restores_best():
    X, y = _multiclass(n=300, classes=3)
    clf = MLPClassifier(hidden_layer_sizes=(10,), early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=4, max_iter=100, random_state=0, dtype="float64",
                        device="cpu").fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ < 100
    assert clf.best_validation_score_ == max(scores)
    # 60 held-out samples: every score is a multiple of 1/60
    np.testing.assert_allclose(np.array(scores) * 60, np.round(np.array(scores) * 60))
    # the parameters are those of the best epoch: refit for exactly that many epochs
    best = int(np.argmax(scores)) + 1
    again = MLPClassifier(hidden_layer_sizes=(10,), max_iter=best, random_state=0,
                          dtype="float64", device="cpu", early_stopping=True,
                          validation_fraction=0.2, n_iter_no_change=1000).fit(X, y)
    for a, b in zip(clf.coefs_, again.coefs_):
        np.testing.assert_allclose(a, b, **TIGHT)


def test_early_stopping_regressor_scores_r2():
    X, y = make_regression(300, 6, noise=5.0, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, learning_rate_init=0.01,
                       max_iter=60, random_state=0, device="cpu").fit(X, y / 100)
    assert reg.validation_scores_[-1] > 0.5
    assert reg.best_validation_score_ == max(reg.validation_scores_)


def test_adaptive_learning_rate_divides_by_five_like_sklearn():
    X, y = _multiclass()
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, solver="sgd", learning_rate="adaptive",
                   learning_rate_init=0.2, tol=0.02, n_iter_no_change=1, max_iter=40,
                   random_state=0)
    sk.fit(X, y)
    xp.fit(X, y)
    _assert_same_fit(sk, xp, X)
    assert xp._optimizer.lr == pytest.approx(sk._optimizer.learning_rate)
    assert xp._optimizer.lr < 0.2


# ---------------------------------------------------------------------- incremental
def test_partial_fit_matches_sklearn_and_needs_classes():
    X, y = _multiclass()
    xp = MLPClassifier(hidden_layer_sizes=(10,), random_state=0, dtype="float64", device="cpu")
    with pytest.raises(ValueError, match="classes must be passed"):
        xp.partial_fit(X, y)
    sk = SkMLPClassifier(hidden_layer_sizes=(10,), random_state=0)
    for i in range(3):
        part = slice(80 * i, 80 * (i + 1))
        sk.partial_fit(X[part], y[part], classes=[0, 1, 2])
        xp.partial_fit(X[part], y[part], classes=[0, 1, 2])
    _assert_same_fit(sk, xp, X)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True, device="cpu").partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_matches_sklearn():
    X, y = _multiclass()
    sk, xp = _pair(SkMLPClassifier, MLPClassifier, hidden_layer_sizes=(10,), warm_start=True,
                   max_iter=4, random_state=0)
    for _ in range(2):
        sk.fit(X, y)
        xp.fit(X, y)
    assert len(xp.loss_curve_) == 8
    _assert_same_fit(sk, xp, X)


def test_pickle_round_trip_keeps_predictions_and_optimizer_state():
    X, y = _multiclass()
    clf = MLPClassifier(hidden_layer_sizes=(10,), random_state=0, device="cpu")
    clf.partial_fit(X, y, classes=[0, 1, 2])
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # Adam's moments and step count travelled with it
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy._optimizer.t == clf._optimizer.t == 4


# ---------------------------------------------------------------------- labels and inputs
def test_string_labels_and_classes_order():
    X, y = _multiclass()
    names = np.array(["cat", "dog", "emu"])[y]
    params = dict(hidden_layer_sizes=(10,), max_iter=20, random_state=0, device="cpu")
    by_name = MLPClassifier(**params).fit(X, names)
    by_int = MLPClassifier(**params).fit(X, y)  # the same model: classes_ are sorted alike
    np.testing.assert_array_equal(by_name.classes_, ["cat", "dog", "emu"])
    np.testing.assert_array_equal(by_name.predict_proba(X), by_int.predict_proba(X))
    np.testing.assert_array_equal(by_name.predict(X), by_name.classes_[by_int.predict(X)])
    assert by_name.score(X, names) == by_int.score(X, y)
    with pytest.raises(ValueError, match="classes not in"):
        by_name.partial_fit(X[:5], ["cat", "dog", "gnu", "cat", "cat"])


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _multiclass()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                        device="cpu").fit(df, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, df.columns)
    assert clf.n_features_in_ == X.shape[1]
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_array_equal(clf.predict(df), clf.predict(X))


@pytest.mark.parametrize("how", ["dtype", "input"])
def test_float32_tracks_sklearn_on_digits(how):
    """float32, asked for with dtype="float32" or given by float32 data, stays close to
    scikit-learn's float64 fit."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    params = dict(hidden_layer_sizes=(64,), max_iter=20, random_state=0)
    sk = SkMLPClassifier(**params).fit(X, y)
    if how == "dtype":
        xp = MLPClassifier(**params, device="cpu", dtype="float32").fit(X, y)
    else:
        xp = MLPClassifier(**params, device="cpu").fit(X.astype(np.float32), y)
    assert xp.coefs_[0].dtype == np.float32 and xp.device_ == "cpu"
    np.testing.assert_allclose(xp.loss_curve_, sk.loss_curve_, rtol=1e-3)
    assert xp.score(X, y) == pytest.approx(sk.score(X, y), abs=0.01)
    assert xp.score(X, y) > 0.9


@pytest.mark.parametrize("params, match", [
    (dict(solver="bfgs"), "solver"),
    (dict(dtype="float16"), "dtype"),
    (dict(device=0), "device"),
    (dict(alpha=-1.0), "alpha"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
])
def test_unsupported_or_bad_parameters_raise(params, match):
    X, y = _multiclass(n=40)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_values_too_large_for_float32_are_refused():
    X, y = _multiclass(n=40)
    X[3, 2] = 1e300
    with pytest.raises(ValueError, match="too large for float32"):
        MLPClassifier(device="cpu", dtype="float32").fit(X, y)
    MLPClassifier(max_iter=2, device="cpu").fit(X / 1e300, y)  # float64 data: float64 model


def test_verbose_prints_sklearn_lines(capsys):
    X, y = _multiclass(n=60)
    MLPClassifier(max_iter=2, verbose=True, random_state=0, device="cpu").fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Iteration 1, loss = ") and out[1].startswith("Iteration 2, ")


# ---------------------------------------------------------------------- the device path
def test_device_path_on_the_strict_cupy_stand_in(monkeypatch):
    """On ``tests/strict_device.py`` (a CPU stand-in that behaves like CuPy: no implicit
    conversion to NumPy, no host operands, transfers counted) the estimators give exactly the
    CPU results, with no implicit host conversion, and per epoch only the shuffle's index copy
    and the loss (plus the validation score with early stopping) crossing over."""
    strict_device = pytest.importorskip("strict_device")
    import xpnet.sklearn as xs

    X, y = _multiclass()
    params = dict(hidden_layer_sizes=(9,), early_stopping=True, max_iter=6,
                  n_iter_no_change=100, random_state=0)
    cpu = MLPClassifier(**params, device="cpu").fit(X, y)
    monkeypatch.setattr(xs, "get_device", lambda spec: strict_device.StrictDevice())
    xp = strict_device.xp
    before = dict(xp.counters)
    dev = MLPClassifier(**params).fit(X, y)
    counts = xp.counters.since(before)
    assert dev.device_ == "cuda:0"
    assert "implicit" not in counts, counts
    # per epoch: the permutation goes over, the loss and the validation score come back; plus
    # the data, targets and start (h2d) and the final finiteness check (get) once per fit
    assert counts["get"] == 2 * 6 + 1, counts
    np.testing.assert_array_equal(dev.predict_proba(X), cpu.predict_proba(X))
    for a, b in zip(dev.coefs_, cpu.coefs_):
        np.testing.assert_array_equal(a, b)
    copy = pickle.loads(pickle.dumps(dev))  # device -> host -> device
    assert copy.device_ == "cuda:0"
    np.testing.assert_array_equal(copy.predict(X), cpu.predict(X))
    Xr, yr = make_regression(120, 5, n_targets=2, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(7,), max_iter=4, random_state=0).fit(Xr, yr / 100)
    ref = MLPRegressor(hidden_layer_sizes=(7,), max_iter=4, random_state=0,
                       device="cpu").fit(Xr, yr / 100)
    np.testing.assert_array_equal(reg.predict(Xr), ref.predict(Xr))
    assert "implicit" not in xp.counters.since(before)


def test_momentum_of_one_is_accepted_as_scikit_learn_accepts_it():
    """scikit-learn's momentum is in [0, 1] (with 1 the velocity never decays): both fit, and
    outside the interval both refuse with scikit-learn's own message."""
    X, y = make_classification(n_samples=60, n_features=5, random_state=0)
    X = X / np.abs(X).max()
    kwargs = dict(hidden_layer_sizes=(4,), solver="sgd", momentum=1.0, learning_rate_init=1e-3,
                  max_iter=3, batch_size=20, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**kwargs).fit(X, y)
        theirs = SkMLPClassifier(**kwargs).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 3
    assert all(np.isfinite(c).all() for c in ours.coefs_)
    for cls in (MLPClassifier, SkMLPClassifier):
        with pytest.raises(ValueError, match=r"'momentum' parameter of MLPClassifier must be a "
                                             r"float in the range \[0.0, 1.0\]"):
            cls(solver="sgd", momentum=1.5, max_iter=1).fit(X, y)
