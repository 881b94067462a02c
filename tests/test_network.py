"""The network's public contract: shapes and dtypes, seeding, argument validation, the semantics
of forward / predict / predict_proba / layer_outputs / evaluate, the flat parameter buffer, named
state (``state_dict`` with ``torch.nn.Sequential``'s names) and the generic ``Sequential``."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import make_masks, make_problem, rel_error, to_host

import xpnet
from xpnet import MLP, Sequential
from xpnet.layers import GELU, BatchNorm1d, Dropout, Linear, ReLU, SiLU, Tanh

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OUTPUTS = ("softmax", "sigmoid", "identity")
SIZES = [6, 5, 4, 3]


def host(net, a):
    """A host copy (on the CPU to_numpy returns the net's own array, which set_params mutates)."""
    return np.array(net.device.to_numpy(a), copy=True)


def bn_layers(net):
    return [layer for layer in net.layers if isinstance(layer, BatchNorm1d)]


def bn_arrays(net):
    """The batch-norm arrays by kind, one entry per hidden layer: gamma, its gradient, the
    running mean and the running variance."""
    bns = bn_layers(net)
    return {"gamma": [bn.params["weight"] for bn in bns],
            "gamma_grad": [bn.grads["weight"] for bn in bns],
            "running_mean": [bn.buffers["running_mean"] for bn in bns],
            "running_var": [bn.buffers["running_var"] for bn in bns]}


def randomize_params(net, rng, bias_scale=0.5):
    """Random non-zero biases and batch-norm scales, as in the first release's layout: where a
    batch norm follows a Linear, its beta takes the random bias (the Linear's own bias, which
    the batch norm cancels in training, stays 0), so ``(W, b)`` of :func:`effective_pairs`
    play the roles the first release's ``net.params`` did."""
    with net.device.activate():
        for i, layer in enumerate(net.layers):
            if not isinstance(layer, Linear):
                continue
            nxt = net.layers[i + 1] if i + 1 < len(net.layers) else None
            b = rng.uniform(0.1, 1.0, size=layer.out_features) * rng.choice(
                [-1.0, 1.0], size=layer.out_features)
            target = nxt.params["bias"] if isinstance(nxt, BatchNorm1d) else layer.params["bias"]
            target[...] = net.device.send(bias_scale * b, net.dtype)
        for bn in bn_layers(net):
            bn.params["weight"][...] = net.device.send(rng.uniform(0.5, 1.5, bn.num_features),
                                                       net.dtype)


def effective_pairs(net):
    """Host ``[(W, b), ...]`` per Linear, ``b`` being the following batch norm's beta when there
    is one (the bias that survives normalisation)."""
    out = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Linear):
            nxt = net.layers[i + 1] if i + 1 < len(net.layers) else None
            b = nxt.params["bias"] if isinstance(nxt, BatchNorm1d) else layer.params["bias"]
            out.append((host(net, layer.params["weight"]), host(net, b)))
    return out


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
    for arrays in bn_arrays(net).values():
        assert [a.shape for a in arrays] == [(n,) for n in hidden]
        assert all(a.dtype == want for a in arrays)
    # W, b per Linear; gamma and beta per batch norm (the Linear before it keeps its bias)
    assert len(net.parameters()) == len(net.gradients()) == 2 * net.n_layers + 2 * len(hidden)
    for p, g in zip(net.parameters(), net.gradients()):
        assert p.shape == g.shape and p.dtype == g.dtype == want

    # the same with random (not explicit) dropout masks
    loss2, grads2 = net.loss_and_grads(X, y)
    assert np.isfinite(loss2) and all(g.dtype == want for pair in grads2 for g in pair)

    out = net.forward(X)
    assert out.shape == (7, SIZES[-1]) and out.dtype == want
    layers = net.layer_outputs(X)  # (which arrays: see test_layer_outputs_per_linear_block)
    assert layers[-1].shape == (7, SIZES[-1])
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


@pytest.mark.parametrize("variant", [{}, {"batch_norm": True, "dropout": 0.25}])
def test_layer_outputs_per_linear_block(variant, rng):
    net = MLP(SIZES, activation="tanh", dtype="float64", device="cpu", seed=0, **variant)
    X, _ = make_problem(net, 7, rng)
    layers = net.layer_outputs(X)
    assert [a.shape for a in layers] == [(7, n) for n in SIZES[1:]]
    # A_1 is the first hidden block's activation output, whatever layers the block holds
    assert (np.abs(host(net, layers[0])) <= 1).all()


def test_parameters_and_gradients_are_the_nets_own_arrays(rng):
    net = MLP(SIZES, batch_norm=True, dtype="float64", device="cpu", seed=0)
    flat = net.parameters()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                     "4.weight", "4.bias", "6.weight", "6.bias"]
    layer_arrays = [a for layer in net.layers for a in layer.params.values()]
    assert len(flat) == len(layer_arrays) and all(p is q for p, q in zip(flat, layer_arrays))
    linear_pairs = [a for pair in net.params for a in pair]
    assert [id(a) for a in linear_pairs] == [id(p) for name, p in net.named_parameters()
                                             if name.split(".")[0] in ("0", "3", "6")]
    net.loss_and_grads(*make_problem(net, 5, rng))
    gflat = net.gradients()
    layer_grads = [g for layer in net.layers for g in layer.grads.values()]
    assert len(gflat) == len(layer_grads) and all(p is q for p, q in zip(gflat, layer_grads))
    assert [id(a) for pair in net.grads for a in pair] == [
        id(g) for g, (name, _) in zip(gflat, net.named_parameters())
        if name.split(".")[0] in ("0", "3", "6")]
    arrays = bn_arrays(net)
    assert all(x is y for x, y in zip(net.buffers(),
                                      arrays["running_mean"][:1] + arrays["running_var"][:1]
                                      + arrays["running_mean"][1:] + arrays["running_var"][1:]))
    assert [name for name, _ in net.named_buffers()] == [
        "1.running_mean", "1.running_var", "4.running_mean", "4.running_var"]


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
    # The bias of a Linear followed by a batch norm has a gradient of exactly 0 in exact
    # arithmetic (the normalisation cancels it): both dtypes give rounding noise there, which
    # has no relative error to speak of, so it is only checked to be negligible.
    cancelled = {f"{i}.bias" for i, layer in enumerate(nets["float64"].layers[:-1])
                 if isinstance(layer, Linear)
                 and isinstance(nets["float64"].layers[i + 1], BatchNorm1d)}
    names = [name for name, _ in nets["float64"].named_parameters()]
    assert len(cancelled) == (2 if variant else 0)
    for name, g32, g64 in zip(names, res["float32"][1], res["float64"][1]):
        if name in cancelled:
            assert np.abs(g32).max() < 1e-6 and np.abs(g64).max() < 1e-14, name
        else:
            assert rel_error(g32, g64) < 1e-5, name
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
        (np.array(["0", "1", "2"]),
         r"y must hold integer class labels 0..k-1; got dtype <U1 \(text labels: xpnet.Model.fit"),
        (np.array([True, False, True]),
         r"y must hold integer class labels 0..k-1; got dtype bool"),
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
    (W1, b1), (W2, b2) = effective_pairs(net)  # b1: the batch norm's beta
    assert not host(net, net.params[0][1]).any()  # the Linear's own bias stays 0
    g = host(net, bn_arrays(net)["gamma"][0])
    X, y = make_problem(net, 6, rng)

    def expected(mean, var):
        Z = (X @ W1.T - mean) / np.sqrt(var + 1e-5) * g + b1
        return np.tanh(Z) @ W2.T + b2

    np.testing.assert_allclose(net.forward(X), expected(0.0, 1.0), rtol=1e-13)
    net.loss_and_grads(X, y)
    Z = X @ W1.T
    mean, var_unbiased = 0.1 * Z.mean(axis=0), 0.9 + 0.1 * Z.var(axis=0, ddof=1)
    np.testing.assert_allclose(bn_arrays(net)["running_mean"][0], mean, rtol=1e-13)
    np.testing.assert_allclose(bn_arrays(net)["running_var"][0], var_unbiased, rtol=1e-13)
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


# ------------------------------------------------------------------ the flat parameter buffer
@pytest.mark.parametrize("variant", [{}, {"batch_norm": True, "dropout": 0.2}])
def test_every_parameter_and_gradient_is_a_view_of_the_flat_buffers(variant, rng):
    net = MLP(SIZES, dtype="float64", device="cpu", seed=0, **variant)
    data, grad = net.flat.data, net.flat.grad
    assert data.ndim == grad.ndim == 1 and data.size == grad.size == sum(
        p.size for p in net.parameters())
    for (name, p), g in zip(net.named_parameters(), net.gradients()):
        assert np.shares_memory(p, data) and np.shares_memory(g, grad), name
        assert not np.shares_memory(p, grad) and not np.shares_memory(g, data), name
        assert p.base is not None and g.base is not None
    for layer in net.layers:
        for a in layer.params.values():
            assert np.shares_memory(a, data)
        for a in layer.grads.values():
            assert np.shares_memory(a, grad)
    for W, b in net.params:
        assert np.shares_memory(W, data) and np.shares_memory(b, data)
    for _, a in net.named_buffers():  # running statistics are not trained: not in the buffer
        assert not np.shares_memory(a, data)

    # writing the flat buffer is writing the parameters, and the other way round
    s = net.flat.slices["0.weight"]
    net.flat.data[s] = np.arange(s.stop - s.start)
    np.testing.assert_array_equal(net.params[0][0].ravel(), np.arange(s.stop - s.start))
    net.params[-1][1][...] = 7.0
    np.testing.assert_array_equal(data[net.flat.slices[f"{len(net.layers) - 1}.bias"]], 7.0)

    # a backward pass writes the flat gradient buffer, and training keeps the views
    X, y = make_problem(net, 6, rng)
    masks = make_masks(net, 6, rng) if net.dropout else None
    net.loss_and_grads(X, y, dropout_masks=masks)
    np.testing.assert_array_equal(np.concatenate([g.ravel() for g in net.gradients()]), grad)
    from xpnet import fit

    fit(net, X, y, epochs=2, lr=0.01, optimizer="adam", batch_size=4, seed=0)
    assert net.flat.data is data and all(np.shares_memory(p, data) for p in net.parameters())
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in net.parameters()]), data)


# ------------------------------------------------------------------ named state
def _trained_net(sizes=SIZES, seed=0, steps=3, **kw):
    """A float64 net whose parameters and running statistics are all away from their init."""
    net = MLP(sizes, dtype="float64", device="cpu", seed=seed, **kw)
    rng = np.random.default_rng(seed)
    randomize_params(net, rng)
    for _ in range(steps):
        X, y = make_problem(net, 16, rng)
        net.loss_and_grads(X, y)
        net.flat.data -= 0.1 * net.flat.grad
    return net


def test_state_dict_is_host_copies_in_torch_order():
    net = _trained_net(batch_norm=True)
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "3.weight", "3.bias", "4.weight", "4.bias",
                        "4.running_mean", "4.running_var", "6.weight", "6.bias"]
    named = dict(net.named_parameters()) | dict(net.named_buffers())
    for name, a in sd.items():
        assert type(a) is np.ndarray and a.dtype == np.float64
        np.testing.assert_array_equal(a, named[name])
        assert not np.shares_memory(a, named[name]), name  # a snapshot, not a view
    sd["0.weight"][...] = 0
    assert net.params[0][0].any()


TORCH_ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh",
                     "sigmoid": "Sigmoid", "gelu": "GELU", "silu": "SiLU"}


def _torch_sequential(torch, sizes, activation, batch_norm, dropout):
    """The same stack written directly in PyTorch: Linear -> BatchNorm1d -> activation ->
    Dropout per hidden layer, then Linear."""
    nn = torch.nn
    act = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01), "tanh": nn.Tanh,
           "sigmoid": nn.Sigmoid, "gelu": lambda: nn.GELU(approximate="tanh"),
           "silu": nn.SiLU}[activation]
    modules = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        modules.append(nn.Linear(n_in, n_out))
        if batch_norm:
            modules.append(nn.BatchNorm1d(n_out))
        modules.append(act())
        if dropout:
            modules.append(nn.Dropout(dropout))
    modules.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*modules).double()


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
@pytest.mark.parametrize("variant", [{}, {"batch_norm": True}, {"dropout": 0.3},
                                     {"batch_norm": True, "dropout": 0.3}],
                         ids=["plain", "bn", "dropout", "bn+dropout"])
def test_state_dict_loads_into_the_equivalent_torch_sequential(activation, variant, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for the state-dict names")
    sizes = [6, 5, 4, 3]
    net = _trained_net(sizes, activation=activation, output="identity", **variant)
    module = _torch_sequential(torch, sizes, activation, variant.get("batch_norm", False),
                               variant.get("dropout", 0.0))
    sd = net.state_dict()
    theirs = {k: v for k, v in module.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    assert set(sd) == set(theirs)
    assert list(sd) == list(theirs)  # the same order too
    for name, t in theirs.items():
        assert sd[name].shape == tuple(t.shape), name
    missing, unexpected = module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
                                                 strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    module.eval()
    X = rng.standard_normal((9, sizes[0]))
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.forward(X), want, rtol=1e-12, atol=1e-12)
    # and back: a torch state dict (num_batches_tracked included) loads into a fresh net
    twin = MLP(sizes, activation=activation, output="identity", dtype="float64", device="cpu",
               seed=123, **variant)
    twin.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    np.testing.assert_allclose(twin.forward(X), want, rtol=1e-12, atol=1e-12)


def test_load_state_dict_round_trip(rng):
    src = _trained_net(batch_norm=True, dropout=0.2)
    dst = MLP(SIZES, dtype="float64", device="cpu", seed=99, batch_norm=True, dropout=0.2)
    flat, views = dst.flat.data, dst.parameters()
    dst.load_state_dict(src.state_dict())
    for name, a in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], a)
    assert dst.flat.data is flat and all(p is q for p, q in zip(dst.parameters(), views))
    X = rng.standard_normal((5, SIZES[0]))
    np.testing.assert_array_equal(dst.forward(X), src.forward(X))
    # float64 values into a float32 net are cast; lists and scalars' shapes are checked
    f32 = MLP(SIZES, dtype="float32", device="cpu", seed=1, batch_norm=True, dropout=0.2)
    f32.load_state_dict(src.state_dict())
    assert all(a.dtype == np.float32 for a in f32.state_dict().values())
    np.testing.assert_allclose(f32.forward(X), src.forward(X), rtol=1e-5, atol=1e-6)


def test_load_state_dict_errors():
    net = MLP([4, 3, 2], batch_norm=True, dtype="float64", device="cpu", seed=0)
    good = net.state_dict()
    before = net.state_dict()

    def unchanged():
        for name, a in net.state_dict().items():
            np.testing.assert_array_equal(a, before[name])

    missing = {k: v for k, v in good.items() if k != "1.running_var"}
    with pytest.raises(ValueError, match=r"missing \['1.running_var'\], unexpected \[\]"):
        net.load_state_dict(missing)
    unchanged()
    extra = {**good, "7.weight": np.zeros(2)}
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['7.weight'\]"):
        net.load_state_dict(extra)
    unchanged()
    for strict in (True, False):
        bad = {**{k: v + 1 for k, v in good.items()}, "3.weight": np.zeros((3, 2))}
        with pytest.raises(ValueError, match=r"entry '3.weight' has shape \(3, 2\), the "
                                             r"network needs \(2, 3\)"):
            net.load_state_dict(bad, strict=strict)
        unchanged()  # checked before anything is written
    # strict=False: missing names keep their values, unexpected ones are ignored
    net.load_state_dict({"1.weight": np.full(3, 2.0), "9.bias": np.ones(4),
                         "1.num_batches_tracked": np.array(5)}, strict=False)
    np.testing.assert_array_equal(net.state_dict()["1.weight"], 2.0)
    np.testing.assert_array_equal(net.state_dict()["0.weight"], good["0.weight"])
    # num_batches_tracked (PyTorch's) is accepted even with strict=True
    net.load_state_dict({**good, "1.num_batches_tracked": np.array(3)})


# ------------------------------------------------------------------ evaluate
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("batch_size", [1, 4, 10000])
def test_evaluate_device_with_predictions_equals_predict_and_evaluate(output, batch_size, rng):
    net = _trained_net(output=output, batch_norm=True, dropout=0.2)
    X, y = make_problem(net, 23, rng)
    Xd, yd = net.check_X(X), net.check_y(y, len(X))
    loss_sum, correct, preds = net.evaluate_device(Xd, yd, batch_size, predictions=True)
    assert preds.dtype == net.predict(X).dtype and preds.shape == net.predict(X).shape
    if batch_size >= len(X) or output != "identity":
        np.testing.assert_array_equal(preds, net.predict(X))
    else:  # values from row chunks: a matrix product of fewer rows may round differently
        np.testing.assert_allclose(preds, net.predict(X), rtol=1e-12, atol=1e-14)
    loss, acc = net.evaluate(X, y)
    assert float(loss_sum) / len(X) == pytest.approx(loss, rel=1e-12)
    if output == "identity":
        assert acc is None and int(correct) == 0
    else:
        assert int(correct) / len(X) == acc
    again = net.evaluate_device(Xd, yd, batch_size)
    assert (float(again[0]), int(again[1])) == (float(loss_sum), int(correct))
    # chunking changes nothing but the order of a sum
    assert net.evaluate(X, y, batch_size=batch_size)[0] == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True, "10", None])
def test_evaluate_rejects_bad_batch_sizes(batch_size):
    net = MLP([4, 3], device="cpu", seed=0)
    X, y = np.zeros((3, 4)), np.zeros(3, dtype=int)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        net.evaluate(X, y, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        net.evaluate_device(net.check_X(X), net.check_y(y, 3), batch_size)


# ------------------------------------------------------------------ generic Sequential
def _sequential(seed=0, device="cpu", dtype="float64"):
    return Sequential([Linear(6, 8), GELU(), Dropout(0.1), Linear(8, 5, init="xavier"),
                       BatchNorm1d(5), SiLU(), Linear(5, 3)],
                      head="softmax", l2=1e-3, dtype=dtype, device=device, seed=seed)


def test_sequential_config_and_from_config():
    net = _sequential(seed=4)
    cfg = net.config()
    assert cfg == {
        "layers": [{"type": "Linear", "in_features": 6, "out_features": 8, "init": "he"},
                   {"type": "GELU"}, {"type": "Dropout", "p": 0.1},
                   {"type": "Linear", "in_features": 8, "out_features": 5, "init": "xavier"},
                   {"type": "BatchNorm1d", "num_features": 5, "eps": 1e-5, "momentum": 0.1},
                   {"type": "SiLU"},
                   {"type": "Linear", "in_features": 5, "out_features": 3, "init": "he"}],
        "head": "softmax", "l2": 1e-3, "dtype": "float64", "seed": 4}
    import json

    twin = Sequential.from_config(json.loads(json.dumps(cfg)), device="cpu")
    assert type(twin) is Sequential and twin.config() == cfg
    assert [type(a) for a in twin.layers] == [type(a) for a in net.layers]
    for (name, p), (name2, q) in zip(net.named_parameters(), twin.named_parameters()):
        assert name == name2
        np.testing.assert_array_equal(p, q)  # same seed, same weights
    # MLP.config is its constructor's; its Sequential config lists the layers it built
    mlp = MLP([4, 3, 2], activation="tanh", batch_norm=True, dropout=0.5, device="cpu", seed=0)
    rebuilt = Sequential.from_config(Sequential.config(mlp), device="cpu")
    assert [repr(a) for a in rebuilt.layers] == [repr(a) for a in mlp.layers]
    X = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_array_equal(rebuilt.forward(X), mlp.forward(X))
    with pytest.raises(ValueError, match="unknown layer type 'Conv2d'"):
        Sequential.from_config({"layers": [{"type": "Conv2d"}], "head": "softmax"})


def test_sequential_argument_checks():
    with pytest.raises(ValueError, match="non-empty list of xpnet.layers.Layer"):
        Sequential([], device="cpu")
    with pytest.raises(ValueError, match="non-empty list of xpnet.layers.Layer"):
        Sequential([Linear(2, 2), "relu"], device="cpu")
    with pytest.raises(ValueError, match="at least one Linear"):
        Sequential([ReLU()], device="cpu")
    net = Sequential([Linear(3, 4), Tanh(), Linear(4, 2)], head="identity", device="cpu")
    assert (net.n_features_in, net.n_outputs, net.n_layers) == (3, 2, 2)
    assert "head='identity'" in repr(net)


def test_sequential_with_gelu_and_silu_trains_and_round_trips(tmp_path, rng):
    from xpnet import checkpoint, fit

    net = _sequential(seed=1)
    X = rng.standard_normal((120, 6))
    y = (X[:, :3] + 0.3 * rng.standard_normal((120, 3))).argmax(axis=1)
    before = net.evaluate(X, y)[0]
    hist = fit(net, X, y, epochs=15, lr=1e-2, optimizer="adam", batch_size=16, seed=2)
    assert hist.loss[-1] < 0.7 * hist.loss[0]
    after, acc = net.evaluate(X, y)
    assert after < 0.7 * before and acc > 0.8

    path = checkpoint.save(net, tmp_path / "seq.npz",
                           checkpoint.nest_states(trainer=net.trainer_.state_dict()))
    with np.load(path, allow_pickle=False) as z:
        import json

        meta = json.loads(checkpoint.meta_text(z["__meta__"]))
        names = set(z.files)
    assert meta["format_version"] == 2 and meta["architecture"] == "Sequential"
    assert meta["config"] == net.config()
    assert set(net.state_dict()) <= names
    loaded, state = checkpoint.load_checkpoint(path, device="cpu")
    assert type(loaded) is Sequential and loaded.config() == net.config()
    for name, a in net.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], a)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    # the trainer state resumes on the loaded Sequential as on the original
    fit(net, X, y, epochs=18, lr=1e-2, optimizer="adam", batch_size=16,
        resume=net.trainer_.state_dict())
    fit(loaded, X, y, epochs=18, lr=1e-2, optimizer="adam", batch_size=16,
        resume=checkpoint.sub_state(state, "trainer"))
    for name, a in net.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], a)


# ------------------------------------------------------------------ pickling
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_networks_pickle_and_deepcopy_with_their_state(dtype):
    import copy  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    from xpnet.layers import GELU, Linear  # noqa: PLC0415

    X = np.random.default_rng(0).standard_normal((20, 6))
    mlp = xpnet.MLP([6, 8, 3], dtype=dtype, seed=0, batch_norm=True, dropout=0.1)
    xpnet.fit(mlp, X, np.arange(20) % 3, epochs=2, batch_size=8, optimizer="adam", seed=1)
    seq = xpnet.Sequential([Linear(6, 5), GELU(), Linear(5, 2)], head="identity", dtype=dtype,
                           seed=2)
    for net in (mlp, seq):
        for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
            assert type(clone) is type(net) and clone.config() == net.config()
            np.testing.assert_array_equal(clone.predict_proba(X) if net.head.is_classifier
                                          else clone.forward(X), net.predict_proba(X)
                                          if net.head.is_classifier else net.forward(X))
            for (name, a), (_, b) in zip(clone.named_buffers(), net.named_buffers()):
                np.testing.assert_array_equal(a, b, err_msg=name)
            assert not np.shares_memory(clone.flat.data, net.flat.data)
    assert pickle.loads(pickle.dumps(mlp)).history_.loss == mlp.history_.loss


def test_a_pickle_of_a_gpu_network_unpickles_on_the_cpu_where_there_is_no_gpu():
    from xpnet.network import _unpickle  # noqa: PLC0415

    net = xpnet.MLP([4, 3, 2], seed=0)
    if xpnet.backend.cuda_status(0)[0]:
        pytest.skip("this machine has a usable GPU, so the fallback cannot be seen")
    with pytest.warns(UserWarning, match=r"the unpickled network runs on the CPU instead"):
        clone = _unpickle(type(net), net.config(), net.state_dict(), "cuda:0", {})
    assert clone.device.name == "cpu"
    np.testing.assert_array_equal(clone.flat.data, net.flat.data)


@pytest.mark.parametrize("layers, words", [
    (lambda: [Linear(4, 3), ReLU(), Linear(5, 2)], r"layer 2 \(Linear\(in_features=5"),
    (lambda: [Linear(4, 3), BatchNorm1d(5), Linear(3, 2)], r"layer 1 \(BatchNorm1d"),
])
def test_layers_whose_sizes_do_not_chain_are_refused(layers, words):
    """A stack whose sizes do not chain is refused when built (issue 23, family 7: from_torch
    took Sequential(Linear(4, 3), Linear(5, 2)) and export failed later with a traceback)."""
    with pytest.raises(ValueError, match=words + r".*but the layer before it gives 3"):
        Sequential(layers(), device="cpu")
