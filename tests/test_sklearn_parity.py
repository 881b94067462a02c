"""xpnet.sklearn beyond mini-batch training: L-BFGS, sample weights and metadata routing, sparse
X, the Poisson loss, dtypes, live weights, divergence and scikit-learn's messages.

scikit-learn's own estimators are the oracle wherever they compute the same thing: in float64
both start from the same weights (drawn from ``random_state``) and minimise the same
objective, so fits agree to rounding, amplified a little by L-BFGS's line searches.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6",
                              reason="xpnet.sklearn needs scikit-learn >= 1.6 (the test extra)")
sparse = pytest.importorskip("scipy.sparse", reason="xpnet.sklearn needs SciPy")

from sklearn import config_context  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, UnsetMetadataPassedError  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _data(kind, n=150, seed=0):
    if kind == "regression":
        X, y = make_regression(n, 6, n_informative=4, noise=5.0, random_state=seed)
        return X / X.std(), y / y.std()
    classes = {"binary": 2, "multiclass": 3}[kind]
    return make_classification(n, 8, n_informative=5, n_classes=classes, random_state=seed)


def _both(kind, **params):
    """scikit-learn's estimator and ours (float64 on the CPU), the same parameters."""
    sk_cls, xp_cls = ((SkMLPRegressor, MLPRegressor) if kind == "regression"
                      else (SkMLPClassifier, MLPClassifier))
    return sk_cls(**params), xp_cls(**params, device="cpu")


def _assert_same_params(ours, theirs, **tol):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


# ---------------------------------------------------------------------- L-BFGS
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_lbfgs_follows_sklearns_lbfgs(kind, activation):
    X, y = _data(kind)
    sk, ours = _both(kind, solver="lbfgs", hidden_layer_sizes=(7,), activation=activation,
                     alpha=1e-3, max_iter=25, random_state=0)
    sk.fit(X, y)
    ours.fit(X, y)
    assert ours.n_iter_ == sk.n_iter_ == 25
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-6)
    _assert_same_params(ours, sk, rtol=1e-4, atol=1e-6)
    assert not hasattr(ours, "loss_curve_")  # scikit-learn keeps none for L-BFGS


def test_lbfgs_max_fun_max_iter_and_convergence_warning():
    X, y = _data("multiclass")
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), max_fun=7, max_iter=500,
                        random_state=0, device="cpu")
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after \d+ "
                                                r"iteration\(s\) \(status=1\)"):
        clf.fit(X, y)
    assert 1 <= clf.n_iter_ <= 7
    clf.set_params(max_fun=15000, max_iter=3)
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3
    # a loose tol converges: no warning, fewer iterations than allowed
    clf.set_params(max_iter=500, tol=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ < 500


def test_lbfgs_multioutput_regression_reports_sklearns_loss_scale():
    X, _ = _data("regression")
    Y = np.column_stack([X[:, 0] - X[:, 1], X[:, 2] ** 2])
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=(12,), max_iter=300, tol=1e-6,
                       random_state=0, device="cpu").fit(X, Y)
    assert reg.score(X, Y) > 0.95
    # loss_ is scikit-learn's: squared error averaged over the 2 outputs, plus the L2 term
    P = reg.predict(X)
    l2 = reg.alpha / (2 * len(X)) * sum((c * c).sum() for c in reg.coefs_)
    assert reg.loss_ == pytest.approx(0.5 * ((P - Y) ** 2).mean() + l2, rel=1e-6)


def test_lbfgs_objective_gradient_is_right():
    """The private objective scikit-learn's test_gradient calls, against central differences."""
    X, y = _data("multiclass", n=12)
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=1, random_state=0,
                        alpha=0.3, device="cpu").fit(X, y)
    Y = clf._label_binarizer.transform(y)
    theta = np.hstack([a.ravel() for a in clf.coefs_ + clf.intercepts_])
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    _, grad = clf._loss_grad_lbfgs(theta, X, Y, w)
    eps = 1e-6
    num = np.array([(clf._loss_grad_lbfgs(theta + eps * e, X, Y, w)[0]
                     - clf._loss_grad_lbfgs(theta - eps * e, X, Y, w)[0]) / (2 * eps)
                    for e in np.eye(len(theta))])
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weight_matches_sklearn(kind, solver):
    X, y = _data(kind)
    sw = np.random.default_rng(1).uniform(0.0, 3.0, len(y))
    params = dict(solver=solver, hidden_layer_sizes=(6,), batch_size=40, alpha=0.01,
                  max_iter=12, random_state=0, learning_rate_init=0.01)
    sk, ours = _both(kind, **params)
    sk.fit(X, y, sample_weight=sw)
    ours.fit(X, y, sample_weight=sw)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-9)
    _assert_same_params(ours, sk, rtol=1e-5 if solver == "lbfgs" else 1e-8, atol=1e-9)


def test_sample_weight_partial_fit_and_early_stopping_match_sklearn():
    X, y = _data("binary", n=200)
    sw = np.random.default_rng(2).integers(0, 4, len(y)).astype(float)
    sk, ours = _both("binary", solver="sgd", hidden_layer_sizes=(5,), random_state=0)
    for _ in range(3):
        sk.partial_fit(X, y, sample_weight=sw, classes=[0, 1])
        ours.partial_fit(X, y, sample_weight=sw, classes=[0, 1])
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-9)
    _assert_same_params(ours, sk, rtol=1e-8, atol=1e-10)
    sk, ours = _both("regression", early_stopping=True, hidden_layer_sizes=(5,), max_iter=30,
                     n_iter_no_change=3, random_state=0, learning_rate_init=0.01)
    Xr, yr = _data("regression", n=200)
    sk.fit(Xr, yr, sample_weight=sw)
    ours.fit(Xr, yr, sample_weight=sw)
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=1e-8)
    _assert_same_params(ours, sk, rtol=1e-8, atol=1e-10)


def test_integer_weights_repeat_samples_and_zero_weights_remove_them():
    X, y = _data("multiclass", n=30)
    sw = np.random.default_rng(3).integers(0, 4, len(y))
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=40, random_state=0,
                  device="cpu")
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=sw)
    repeated = MLPClassifier(**params).fit(X.repeat(sw, axis=0), y.repeat(sw))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("sw, match", [
    (-np.ones(20), "negative"),
    (np.zeros(20), "at least one non-zero"),
    (np.ones(19), r"sample_weight.shape == \(19,\), expected \(20,\)"),
    (np.ones((20, 2)), "1D array or scalar"),
])
def test_bad_sample_weights_are_refused(sw, match):
    X, y = _data("binary", n=20)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(device="cpu", max_iter=1).fit(X, y, sample_weight=sw)


def test_metadata_routing_sends_sample_weight_where_requested():
    X, y = _data("binary", n=80)
    sw = np.random.default_rng(4).uniform(0.1, 2.0, len(y))
    params = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0, device="cpu")
    with config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             MLPClassifier(**params).set_fit_request(sample_weight=True))
        pipe.fit(X, y, sample_weight=sw)
        direct = MLPClassifier(**params).fit(StandardScaler().fit_transform(X), y,
                                             sample_weight=sw)
        _assert_same_params(pipe[-1], direct, rtol=0, atol=0)
        unset = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                              MLPClassifier(**params))
        with pytest.raises(UnsetMetadataPassedError):
            unset.fit(X, y, sample_weight=sw)
        assert MLPRegressor().set_partial_fit_request(sample_weight=True) is not None


# ---------------------------------------------------------------------- sparse X
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_x_fits_as_dense_does(fmt, solver):
    X, y = _data("multiclass")
    X[np.abs(X) < 1.0] = 0.0  # about two thirds zeros
    Xs = sparse.csr_matrix(X).asformat(fmt)
    params = dict(solver=solver, hidden_layer_sizes=(6,), max_iter=15, random_state=0,
                  device="cpu")
    dense = MLPClassifier(**params).fit(X, y)
    sp = MLPClassifier(**params).fit(Xs, y)
    _assert_same_params(sp, dense, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sp.predict_proba(Xs), dense.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(sp.predict(X), dense.predict(X))


def test_sparse_x_is_never_densified():
    """10,000 x 500,000 with 5 nonzeros a row: 40 GB dense in float64, more than this
    machine's memory, so only a fit that stays sparse can run."""
    rng = np.random.default_rng(0)
    n, d = 10_000, 500_000
    rows = np.repeat(np.arange(n), 5)
    cols = rng.integers(0, d, rows.size)
    X = sparse.csr_matrix((rng.uniform(0.5, 1.5, rows.size), (rows, cols)), shape=(n, d))
    y = (np.asarray(X[:, : d // 2].sum(axis=1)).ravel() > 2.5).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(2,), max_iter=2, batch_size=1000, random_state=0,
                        device="cpu").fit(X, y)
    assert clf.coefs_[0].shape == (d, 2) and clf.predict(X[:10]).shape == (10,)


# ---------------------------------------------------------------------- the Poisson loss
def test_poisson_regressor_matches_sklearn():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 3))
    y = rng.poisson(np.exp(X @ [0.5, -0.3, 0.8] + 0.5)).astype(float)
    for solver in ("adam", "lbfgs"):
        sk, ours = _both("regression", loss="poisson", solver=solver, hidden_layer_sizes=(5,),
                         max_iter=20, random_state=0, learning_rate_init=0.01)
        sk.fit(X, y)
        ours.fit(X, y)
        assert ours.out_activation_ == "exp"
        assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-6)
        np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-4)
        assert (ours.predict(X) > 0).all()
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson", device="cpu").fit(X, y - 1.0)


# ---------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("data_dtype, dtype, want", [
    (np.float32, None, np.float32), (np.float64, None, np.float64),
    (np.int64, None, np.float64), (np.float64, "float32", np.float32),
    (np.float32, "float64", np.float64)])
def test_dtype_follows_the_data_unless_given(data_dtype, dtype, want):
    X, y = _data("regression", n=60)
    X = (X * 10).astype(data_dtype)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype=dtype, device="cpu").fit(X, y)
    assert all(a.dtype == want for a in reg.coefs_ + reg.intercepts_)
    assert reg.predict(X).dtype == want
    assert reg.predict(X.astype(np.float64)).dtype == want


@pytest.mark.parametrize("classes", [2, 3])
def test_predict_log_proba_is_finite_where_float32_probabilities_underflow(classes):
    X, y = _data("binary" if classes == 2 else "multiclass", n=60)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, device="cpu",
                        dtype="float32").fit(X, y)
    clf.coefs_[-1][...] *= 1e3  # logits of a few hundred: exp underflows in float32
    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)
    assert (proba == 0).any() and np.isfinite(log_proba).all()
    # the oracle: the same logits, log-softmax in float64
    H = np.maximum(X @ clf.coefs_[0].astype(np.float64) + clf.intercepts_[0], 0)
    Z = H @ clf.coefs_[1].astype(np.float64) + clf.intercepts_[1]
    if classes == 2:
        Z = np.column_stack([np.zeros(len(Z)), Z[:, 0]])
    want = Z - Z.max(axis=1, keepdims=True)
    want -= np.log(np.exp(want).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_proba, want, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(log_proba.argmax(axis=1), proba.argmax(axis=1))


# ---------------------------------------------------------------------- live weights
def test_coefs_and_intercepts_are_live_views_on_the_cpu():
    X, y = _data("regression", n=50)
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0, device="cpu")
    reg.fit(X, y)
    before = reg.predict(X)
    reg.intercepts_[-1][...] += 1.0  # write into the view: the model changes
    np.testing.assert_allclose(reg.predict(X), before + 1.0, rtol=1e-12)
    reg.coefs_[1] = np.zeros((3, 1))  # item assignment copies in
    np.testing.assert_allclose(reg.predict(X), reg.intercepts_[1][0], rtol=1e-12)
    reg.coefs_ = [np.ones((6, 3)), np.ones((3, 1))]  # so does a whole list
    assert (reg.coefs_[0] == 1).all() and reg.coefs_[0].flags.writeable
    np.testing.assert_allclose(reg.predict(X[:1]), np.maximum(X[:1].sum() + reg.intercepts_[0],
                                                              0).sum() + reg.intercepts_[1])
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(6, 3\)"):
        reg.coefs_[0] = np.ones((3, 6))
    copy = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))


def test_weights_on_the_strict_device_are_read_only_copies_assignable(monkeypatch):
    strict_device = pytest.importorskip("strict_device")
    import xpnet.sklearn as xs

    monkeypatch.setattr(xs, "get_device", lambda spec: strict_device.StrictDevice())
    X, y = _data("binary", n=60)
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    assert clf.device_ == "cuda:0"
    with pytest.raises(ValueError, match="read-only"):
        clf.coefs_[0][0, 0] = 1.0
    clf.coefs_[1] = np.zeros((3, 1))
    clf.intercepts_ = [np.zeros(3), np.array([2.0])]
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-2.0)))
    # L-BFGS and sample weights on the device path give the CPU's numbers
    ref = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(3,), max_iter=10, random_state=0,
                        device="cpu").fit(X, y, sample_weight=np.arange(60) % 3)
    dev = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(3,), max_iter=10,
                        random_state=0).fit(X, y, sample_weight=np.arange(60) % 3)
    _assert_same_params(dev, ref, rtol=0, atol=0)


# ---------------------------------------------------------------------- divergence, messages
def test_divergence_raises_sklearns_message_without_early_stopping():
    X, y = load_digits(return_X_y=True)
    reg = MLPRegressor(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.5,
                       activation="identity", max_iter=15, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="^Solver produced non-finite parameter weights"):
            reg.fit(X, y)


def test_divergence_with_early_stopping_restores_the_best_like_sklearn():
    X, y = load_digits(return_X_y=True)
    params = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.5,
                  activation="identity", early_stopping=True, max_iter=15, random_state=0)
    sk, ours = _both("regression", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sk.fit(X, y)
        ours.fit(X, y)
    assert np.isnan(ours.validation_scores_[-1]) and len(ours.validation_scores_) == 15
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=1e-6)
    assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=1e-6)
    assert all(np.isfinite(c).all() for c in ours.coefs_)
    _assert_same_params(ours, sk, rtol=1e-6, atol=1e-9)


def test_early_stopping_split_is_sklearns():
    """Stratified for a binary target, not for a multiclass one, as scikit-learn splits; a
    one-member class gets scikit-learn's own message."""
    for kind in ("binary", "multiclass"):
        X, y = _data(kind, n=120)
        sk, ours = _both(kind, early_stopping=True, hidden_layer_sizes=(5,), max_iter=8,
                         n_iter_no_change=100, random_state=0)
        sk.fit(X, y)
        ours.fit(X, y)
        np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_)
    with pytest.raises(ValueError, match=r"The least populated classes in y have only 1 "
                                         r"member.*Classes with too few members are: "
                                         r"\['True'\]"):
        MLPClassifier(early_stopping=True, device="cpu").fit(
            [[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1])


# ---------------------------------------------------------------------------- class_weight
def _imbalanced(seed=0):
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3,
                               weights=[0.6, 0.3, 0.1], random_state=seed)
    return StandardScaler().fit_transform(X), np.array(["a", "b", "c"])[y]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_class_weight_is_the_per_class_sample_weight(solver, _quiet_convergence):
    """class_weight (a dict, or 'balanced' as in LogisticRegression) trains exactly as the
    sample weights it stands for, and multiplies given sample weights."""
    from sklearn.utils.class_weight import compute_sample_weight

    X, y = _imbalanced()
    kw = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0, solver=solver,
              dtype="float64", device="cpu")
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    for class_weight in ({"a": 1.0, "b": 2.0, "c": 5.0}, "balanced"):
        by_class = MLPClassifier(class_weight=class_weight, **kw).fit(X, y, sample_weight=sw)
        by_sample = MLPClassifier(**kw).fit(
            X, y, sample_weight=sw * compute_sample_weight(class_weight, y))
        for a, b in zip(by_class.coefs_, by_sample.coefs_):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    plain = MLPClassifier(**kw).fit(X, y)
    assert np.abs(plain.coefs_[0] - by_class.coefs_[0]).max() > 1e-3  # the weights mattered
    assert MLPClassifier().get_params()["class_weight"] is None


def test_balanced_class_weight_is_refused_by_partial_fit():
    X, y = _imbalanced()
    with pytest.raises(ValueError, match=r"^class_weight 'balanced' is not supported for "
                                         r"partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=["a", "b", "c"])
    MLPClassifier(class_weight={"c": 3.0}, hidden_layer_sizes=(4,), device="cpu").partial_fit(
        X, y, classes=["a", "b", "c"])  # a dict works
