"""The MLP's public contract: shapes and dtypes, seeding, argument validation, and the semantics
of forward / predict / predict_proba / layer_outputs."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import make_masks, make_problem, randomize_params, rel_error, to_host

from xpnet import MLP

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OUTPUTS = ("softmax", "sigmoid", "identity")
SIZES = [6, 5, 4, 3]


def host(net, a):
    """A host copy (on the CPU to_numpy returns the net's own array, which set_params mutates)."""
    return np.array(net.device.to_numpy(a), copy=True)


# ------------------------------------------------------------------ shapes and dtypes
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("variant", ["plain", "bn+dropout+l2"])
def test_dtype_and_shapes_preserved(dtype, output, activation, variant, rng):
    extra = {"batch_norm": True, "dropout": 0.25, "l2": 0.1} if variant != "plain" else {}
    net = MLP(SIZES, activation=activation, output=output, dtype=dtype, device="cpu", seed=0,
              **extra)
    want = np.dtype(dtype)
    X, y = make_problem(net, 7, rng)  # float64 host X: must not promote a float32 net
    assert X.dtype == np.float64
    masks = make_masks(net, 7, rng) if net.dropout else None  # float64 masks, same test

    assert len(net.params) == len(SIZES) - 1 == net.n_layers
    for (W, b), n_in, n_out in zip(net.params, SIZES[:-1], SIZES[1:]):
        assert W.shape == (n_out, n_in) and b.shape == (n_out,)
        assert W.dtype == b.dtype == want

    loss, grads = net.loss_and_grads(X, y, dropout_masks=masks)
    assert type(loss) is float and np.isfinite(loss)
    assert grads is net.grads
    for (dW, db), (W, b) in zip(grads, net.params):
        assert dW.shape == W.shape and db.shape == b.shape
        assert dW.dtype == db.dtype == want
    hidden = SIZES[1:-1] if net.batch_norm else []
    for arrays in (net.bn_gamma, net.bn_gamma_grads, net.bn_running_mean, net.bn_running_var):
        assert [a.shape for a in arrays] == [(n,) for n in hidden]
        assert all(a.dtype == want for a in arrays)
    assert len(net.parameters()) == len(net.gradients()) == 2 * net.n_layers + len(hidden)
    for p, g in zip(net.parameters(), net.gradients()):
        assert p.shape == g.shape and p.dtype == g.dtype == want

    # the same with random (not explicit) dropout masks
    loss2, grads2 = net.loss_and_grads(X, y)
    assert np.isfinite(loss2) and all(g.dtype == want for pair in grads2 for g in pair)

    out = net.forward(X)
    assert out.shape == (7, SIZES[-1]) and out.dtype == want
    layers = net.layer_outputs(X)
    assert [a.shape for a in layers] == [(7, n) for n in SIZES[1:]]
    assert all(a.dtype == want for a in layers)
    pred = net.predict(X)
    if output == "softmax":
        assert pred.shape == (7,) and pred.dtype.kind == "i"
    elif output == "sigmoid":
        assert pred.shape == (7, SIZES[-1]) and pred.dtype.kind == "i"
    else:
        assert pred.shape == (7, SIZES[-1]) and pred.dtype == want
    if output != "identity":
        proba = net.predict_proba(X)
        assert proba.shape == (7, SIZES[-1]) and proba.dtype == want


def test_parameters_and_gradients_are_the_nets_own_arrays(rng):
    net = MLP(SIZES, batch_norm=True, dtype="float64", device="cpu", seed=0)
    flat = net.parameters()
    for l, (W, b) in enumerate(net.params):
        assert flat[2 * l] is W and flat[2 * l + 1] is b
    assert flat[2 * net.n_layers:] == net.bn_gamma
    net.loss_and_grads(*make_problem(net, 5, rng))
    gflat = net.gradients()
    for l, (dW, db) in enumerate(net.grads):
        assert gflat[2 * l] is dW and gflat[2 * l + 1] is db
    assert gflat[2 * net.n_layers:] == net.bn_gamma_grads
    assert net.buffers() == net.bn_running_mean + net.bn_running_var


@pytest.mark.parametrize("variant", [{}, {"batch_norm": True, "dropout": 0.3, "l2": 0.2}])
def test_float32_agrees_with_float64(variant, rng):
    """Same seed, same data: a float32 net computes what the float64 one does, to float32
    precision (catches a float32-only bug such as a wrong cast or a lossy buffer)."""
    nets = {d: MLP(SIZES, activation="tanh", dtype=d, device="cpu", seed=9, **variant)
            for d in ("float32", "float64")}
    randomize_params(nets["float64"], np.random.default_rng(1))
    randomize_params(nets["float32"], np.random.default_rng(1))
    X, y = make_problem(nets["float64"], 8, rng)
    masks = make_masks(nets["float64"], 8, rng) if variant else None
    res = {d: (net.loss_and_grads(X, y, dropout_masks=masks)[0], to_host(net, net.gradients()))
           for d, net in nets.items()}
    assert res["float32"][0] == pytest.approx(res["float64"][0], rel=1e-5)
    for g32, g64 in zip(res["float32"][1], res["float64"][1]):
        assert rel_error(g32, g64) < 1e-5
    np.testing.assert_allclose(host(nets["float32"], nets["float32"].forward(X)),
                               nets["float64"].forward(X), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ seeding
def test_same_seed_same_parameters():
    a = MLP(SIZES, seed=123, dtype="float64", device="cpu")
    b = MLP(SIZES, seed=123, dtype="float64", device="cpu")
    c = MLP(SIZES, seed=123, dtype="float32", device="cpu")
    for (Wa, ba), (Wb, bb), (Wc, bc) in zip(a.params, b.params, c.params):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
        # weights are drawn on the host in float64 and then cast, so dtypes agree too
        np.testing.assert_array_equal(Wc, Wa.astype(np.float32))
        np.testing.assert_array_equal(bc, 0.0)


def test_different_seed_different_parameters():
    a = MLP(SIZES, seed=1, device="cpu")
    b = MLP(SIZES, seed=2, device="cpu")
    for (Wa, _), (Wb, _) in zip(a.params, b.params):
        assert not np.array_equal(Wa, Wb)
    c, d = MLP(SIZES, device="cpu"), MLP(SIZES, device="cpu")  # seed=None: fresh entropy
    assert not np.array_equal(c.params[0][0], d.params[0][0])


def test_seed_fixes_the_dropout_stream(rng):
    kw = {"dropout": 0.5, "dtype": "float64", "device": "cpu"}
    a, b, c = MLP(SIZES, seed=4, **kw), MLP(SIZES, seed=4, **kw), MLP(SIZES, seed=5, **kw)
    c.set_params([(host(a, W), host(a, bb)) for W, bb in a.params])  # same weights, other stream
    X, y = make_problem(a, 16, rng)
    la = [a.loss_and_grads(X, y)[0] for _ in range(3)]
    lb = [b.loss_and_grads(X, y)[0] for _ in range(3)]
    lc = [c.loss_and_grads(X, y)[0] for _ in range(3)]
    assert la == lb
    assert len(set(la)) == 3  # a fresh mask each step
    assert la != lc
    a.reseed_dropout(77)
    b.reseed_dropout(77)
    assert a.loss_and_grads(X, y)[0] == b.loss_and_grads(X, y)[0]


def test_config_rebuilds_the_same_net():
    net = MLP(SIZES, activation="tanh", output="sigmoid", init="xavier", l2=0.5,
              dtype="float64", device="cpu", seed=8, batch_norm=True, dropout=0.2)
    cfg = net.config()
    assert cfg == {"layer_sizes": SIZES, "activation": "tanh", "output": "sigmoid",
                   "init": "xavier", "l2": 0.5, "dtype": "float64", "batch_norm": True,
                   "dropout": 0.2, "seed": 8}
    twin = MLP(**cfg, device="cpu")
    for p, q in zip(net.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p, q)


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "swish"}, r"unknown activation 'swish': choose one of 'relu'"),
        ({"output": "softplus"}, r"unknown output 'softplus': choose one of 'softmax'"),
        ({"init": "orthogonal"}, r"unknown init 'orthogonal': choose one of 'he'"),
        ({"dtype": "float16"}, r"unknown dtype 'float16': choose one of 'float32', 'float64'"),
        ({"dtype": "int32"}, r"unknown dtype 'int32'"),
        ({"dtype": "bogus"}, r"unknown dtype 'bogus'"),
        ({"dtype": None}, r"unknown dtype None"),
        ({"l2": -0.1}, r"l2 must be a finite number >= 0; got -0.1"),
        ({"l2": float("nan")}, r"l2 must be a finite number >= 0"),
        ({"l2": float("inf")}, r"l2 must be a finite number >= 0"),
        ({"l2": "0.1"}, r"l2 must be a finite number >= 0"),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\); got 1.0"),
        ({"dropout": 1.5}, r"dropout must be a rate in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout must be a rate in \[0, 1\)"),
        ({"dropout": float("nan")}, r"dropout must be a rate in \[0, 1\)"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP([4, 3], device="cpu", **kwargs)


def test_dtype_accepts_numpy_types():
    assert MLP([2, 2], dtype=np.float64, device="cpu").dtype == "float64"
    assert MLP([2, 2], dtype=np.dtype("float32"), device="cpu").dtype == "float32"


@pytest.mark.parametrize("sizes", [[], [5], 5, "784", None])
def test_layer_sizes_too_short(sizes):
    with pytest.raises(ValueError, match="layer_sizes must list at least an input and an output"):
        MLP(sizes, device="cpu")


@pytest.mark.parametrize("sizes", [[4, 0, 2], [4, -3, 2], [4, 2.5, 2], [4, 2.0, 2], [4, True, 2],
                                   [4, "5", 2], [4, None, 2]])
def test_layer_sizes_entries(sizes):
    with pytest.raises(ValueError, match="layer_sizes entries must be positive integers"):
        MLP(sizes, device="cpu")


def test_layer_sizes_accepts_numpy_integers():
    net = MLP(np.array([4, 3, 2]), device="cpu")
    assert net.layer_sizes == [4, 3, 2] and all(type(n) is int for n in net.layer_sizes)


def _inference_methods(net):
    return {"forward": net.forward, "predict": net.predict, "predict_proba": net.predict_proba,
            "layer_outputs": net.layer_outputs,
            "loss_and_grads": lambda X: net.loss_and_grads(X, np.zeros(len(X), dtype=int))}


@pytest.mark.parametrize("method", ["forward", "predict", "predict_proba", "layer_outputs",
                                    "loss_and_grads"])
@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((3, 5)), r"X has 5 features but the network's input layer has 4"),
        (np.zeros(4), r"X must be 2-D \(n_samples, n_features\); got shape \(4,\)"),
        (np.zeros((2, 2, 4)), r"X must be 2-D"),
        (np.zeros((0, 4)), r"X is empty \(0 samples\)"),
        (np.array([[0.0, np.nan, 1.0, 2.0]]), r"X contains NaN or infinity"),
        (np.array([[0.0, np.inf, 1.0, 2.0]]), r"X contains NaN or infinity"),
        (np.array([[0.0, -np.inf, 1.0, 2.0]]), r"X contains NaN or infinity"),
        (np.array([["a", "b", "c", "d"]]), r"X must hold numbers"),
        (np.ones((1, 4), dtype=complex), r"X must hold numbers"),
    ],
)
def test_bad_X(method, X, match):
    net = MLP([4, 3], device="cpu", seed=0)
    with pytest.raises(ValueError, match=match):
        _inference_methods(net)[method](X)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_X_too_large_for_float32():
    net = MLP([2, 2], dtype="float32", device="cpu")
    with pytest.raises(ValueError, match="NaN or infinity.*too large for float32"):
        net.forward(np.array([[1e39, 0.0]]))
    assert np.isfinite(MLP([2, 2], dtype="float64", device="cpu").forward([[1e39, 0.0]])).all()


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array([0, 3, 1]), r"y has labels in \[0, 3\] but the output layer has 3 classes, "
                              r"so labels must be in \[0, 2\]"),
        (np.array([-1, 0, 1]), r"y has labels in \[-1, 1\]"),
        (np.array([0.0, 1.5, 2.0]), r"y must hold integer class labels; got fractions"),
        (np.array([0.0, np.nan, 2.0]), r"y must hold integer class labels"),
        (np.array([0.0, np.inf, 2.0]), r"y must hold integer class labels"),
        (np.array(["0", "1", "2"]), r"y must hold integer class labels; got dtype"),
        (np.array([True, False, True]), r"y must hold integer class labels; got dtype bool"),
        (np.eye(3), r"y must be integer class labels of shape \(m,\) for a softmax output"),
        (np.array([0, 1]), r"y has 2 entries but X has 3 samples"),
        (np.array([0, 1, 2, 0]), r"y has 4 entries but X has 3 samples"),
        (np.array(1), r"y has 0 entries but X has 3 samples"),
    ],
)
def test_bad_softmax_labels(y, match):
    net = MLP([4, 3], device="cpu", seed=0)
    with pytest.raises(ValueError, match=match):
        net.loss_and_grads(np.zeros((3, 4)), y)


def test_softmax_labels_accept_integral_floats_and_lists():
    net = MLP([4, 3], dtype="float64", device="cpu", seed=0)
    X = np.ones((3, 4))
    loss_int, _ = net.loss_and_grads(X, np.array([0, 2, 1]))
    assert net.loss_and_grads(X, np.array([0.0, 2.0, 1.0]))[0] == loss_int
    assert net.loss_and_grads(X.tolist(), [0, 2, 1])[0] == loss_int
    assert net.loss_and_grads(X, np.array([0, 2, 1], dtype=np.uint8))[0] == loss_int


@pytest.mark.parametrize(
    "output, y, match",
    [
        ("sigmoid", np.array([[0.0, 0.5], [1.0, 0.0]]), r"y must hold 0/1 targets for a sigmoid"),
        ("sigmoid", np.array([[0.0, 2.0], [1.0, 0.0]]), r"y must hold 0/1 targets"),
        ("sigmoid", np.array([[0.0, -1.0], [1.0, 0.0]]), r"y must hold 0/1 targets"),
        ("sigmoid", np.array([0.0, 1.0]), r"y must have shape \(2, 2\) for a sigmoid output"),
        ("sigmoid", np.array([[0.0, 1.0]]), r"y has 1 entries but X has 2 samples"),
        ("sigmoid", np.array([[0.0, np.nan], [1.0, 0.0]]), r"y contains NaN or infinity"),
        ("identity", np.array([[0.0, np.inf], [1.0, 0.0]]), r"y contains NaN or infinity"),
        ("identity", np.zeros((2, 3)), r"y must have shape \(2, 2\) for a identity output"),
        ("identity", np.zeros(2), r"y must have shape \(2, 2\)"),
    ],
)
def test_bad_real_targets(output, y, match):
    net = MLP([4, 2], output=output, device="cpu", seed=0)
    with pytest.raises(ValueError, match=match):
        net.loss_and_grads(np.zeros((2, 4)), y)


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_single_output_accepts_flat_targets(output):
    net = MLP([4, 1], output=output, dtype="float64", device="cpu", seed=0)
    X = np.arange(12.0).reshape(3, 4) / 10
    y = np.array([1.0, 0.0, 1.0])
    assert net.loss_and_grads(X, y)[0] == net.loss_and_grads(X, y[:, None])[0]


def test_predict_proba_on_identity():
    net = MLP([4, 2], output="identity", device="cpu")
    with pytest.raises(ValueError, match="predict_proba needs a softmax or sigmoid output"):
        net.predict_proba(np.zeros((1, 4)))


def test_set_params_validation():
    net = MLP([4, 3, 2], device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"expected 2 \(W, b\) pairs, got 1"):
        net.set_params([(np.zeros((3, 4)), np.zeros(3))])
    with pytest.raises(ValueError, match=r"W has shape \(4, 3\), expected \(3, 4\)"):
        net.set_params([(np.zeros((4, 3)), np.zeros(3)), (np.zeros((2, 3)), np.zeros(2))])
    with pytest.raises(ValueError, match=r"b has shape \(2,\), expected \(3,\)"):
        net.set_params([(np.zeros((3, 4)), np.zeros(2)), (np.zeros((2, 3)), np.zeros(2))])


# ------------------------------------------------------------------ prediction semantics
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_predictions(dtype, rng):
    net = MLP([5, 8, 4], dtype=dtype, device="cpu", seed=3)
    randomize_params(net, rng, bias_scale=2.0)
    X = rng.standard_normal((50, 5))
    P = host(net, net.predict_proba(X))
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=tol)
    assert (P >= 0).all() and (P <= 1).all()
    pred = host(net, net.predict(X))
    np.testing.assert_array_equal(pred, P.argmax(axis=1))
    assert len(set(pred.tolist())) > 1  # not a degenerate constant prediction
    np.testing.assert_array_equal(host(net, net.forward(X)), P)
    # the probabilities are the softmax of the logits from layer_outputs
    Z = host(net, net.layer_outputs(X)[-1]).astype(np.float64)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(P, E / E.sum(axis=1, keepdims=True), rtol=10 * tol, atol=tol)


def test_sigmoid_predictions_threshold_at_half(rng):
    # W = I, b = 0: logits = X; sigmoid(0) = 0.5 exactly, which is not above the threshold.
    net = MLP([5, 5], output="sigmoid", dtype="float64", device="cpu")
    net.set_params([(np.eye(5), np.zeros(5))])
    X = np.array([[-3.0, -1e-3, 0.0, 1e-3, 3.0]])
    P = host(net, net.predict_proba(X))
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-X)), rtol=1e-14)
    np.testing.assert_array_equal(host(net, net.predict(X)), [[0, 0, 0, 1, 1]])
    # and generally predict == (proba > 0.5)
    net = MLP([5, 8, 3], output="sigmoid", device="cpu", seed=0)
    X = rng.standard_normal((40, 5))
    pred = host(net, net.predict(X))
    np.testing.assert_array_equal(pred, (host(net, net.predict_proba(X)) > 0.5).astype(int))
    assert set(np.unique(pred)) == {0, 1}


def test_identity_predictions(rng):
    net = MLP([5, 8, 3], output="identity", dtype="float64", device="cpu", seed=0)
    X = rng.standard_normal((10, 5))
    out = host(net, net.forward(X))
    np.testing.assert_array_equal(host(net, net.predict(X)), out)
    np.testing.assert_array_equal(host(net, net.layer_outputs(X)[-1]), out)
    W1, b1 = (host(net, a) for a in net.params[0])
    W2, b2 = (host(net, a) for a in net.params[1])
    np.testing.assert_allclose(out, np.maximum(X @ W1.T + b1, 0) @ W2.T + b2, rtol=1e-13)


def test_accepts_host_lists_and_integer_arrays(rng):
    net = MLP([3, 4, 2], dtype="float32", device="cpu", seed=0)
    X = rng.integers(-3, 4, size=(5, 3))
    expected = host(net, net.forward(X.astype(np.float32)))
    for variant in (X, X.tolist(), X.astype(np.float64), X.astype(np.int8)):
        out = net.forward(variant)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(host(net, out), expected)


def test_forward_is_inference_mode_without_dropout(rng):
    """Dropout is off at inference: outputs are deterministic and equal a dropout-free twin's."""
    net = MLP(SIZES, dropout=0.5, dtype="float64", device="cpu", seed=0)
    twin = MLP(SIZES, dtype="float64", device="cpu", seed=0)
    X, y = make_problem(net, 9, rng)
    first = net.forward(X).copy()
    net.loss_and_grads(X, y)  # a training step does not change the parameters
    np.testing.assert_array_equal(net.forward(X), first)
    np.testing.assert_array_equal(twin.forward(X), first)


def test_inference_batch_norm_uses_running_statistics(rng):
    """Fresh running stats are mean 0, var 1: inference BN is Z / sqrt(1 + eps) * gamma + b.
    After one training step of m samples: mean = 0.1 * mu, var = 0.9 + 0.1 * var_unbiased."""
    net = MLP([4, 5, 2], activation="tanh", output="identity", batch_norm=True,
              dtype="float64", device="cpu", seed=0)
    randomize_params(net, rng)
    (W1, b1), (W2, b2) = [(host(net, W), host(net, b)) for W, b in net.params]
    g = host(net, net.bn_gamma[0])
    X, y = make_problem(net, 6, rng)

    def expected(mean, var):
        Z = (X @ W1.T - mean) / np.sqrt(var + 1e-5) * g + b1
        return np.tanh(Z) @ W2.T + b2

    np.testing.assert_allclose(net.forward(X), expected(0.0, 1.0), rtol=1e-13)
    net.loss_and_grads(X, y)
    Z = X @ W1.T
    mean, var_unbiased = 0.1 * Z.mean(axis=0), 0.9 + 0.1 * Z.var(axis=0, ddof=1)
    np.testing.assert_allclose(net.bn_running_mean[0], mean, rtol=1e-13)
    np.testing.assert_allclose(net.bn_running_var[0], var_unbiased, rtol=1e-13)
    np.testing.assert_allclose(net.forward(X), expected(mean, var_unbiased), rtol=1e-12)


def test_training_batch_norm_normalises_over_the_batch(rng):
    """In training mode BN uses batch statistics, so the loss ignores a per-feature shift of the
    pre-activations exactly and a rescaling up to eps: scaling W_1 by s acts like eps / s^2."""
    net = MLP([3, 4, 2], activation="tanh", output="identity", batch_norm=True,
              dtype="float64", device="cpu", seed=0)
    X, y = make_problem(net, 8, rng)
    W1, b1 = (host(net, a) for a in net.params[0])
    W2, b2 = (host(net, a) for a in net.params[1])
    net.set_params([(100.0 * W1, b1), (W2, b2)])  # eps / 1e4: negligible
    loss = net.loss_and_grads(X, y)[0]
    shifted = X + np.array([5.0, -3.0, 7.0])  # shifts each pre-activation by a constant
    assert net.loss_and_grads(shifted, y)[0] == pytest.approx(loss, rel=1e-10)
    net.set_params([(1000.0 * W1, b1), (W2, b2)])
    assert net.loss_and_grads(X, y)[0] == pytest.approx(loss, rel=1e-7)
    net.set_params([(W1, b1), (W2, b2)])  # the eps term is visible at scale 1
    assert net.loss_and_grads(X, y)[0] != pytest.approx(loss, rel=1e-7)
