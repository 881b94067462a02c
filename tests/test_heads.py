"""Output heads (xpnet/heads.py): losses on tiny hand-derived cases, L2, and numerical stability
at huge logits.

Many tests use a one-layer net with W = I and b = 0, so the logits equal X exactly and the loss
is tested through the public API with values derived by hand in the comments.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from xpnet import MLP
from xpnet.heads import (
    HEADS,
    Head,
    PoissonLog,
    SigmoidBCE,
    SoftmaxCrossEntropy,
    SquaredError,
    log_softmax,
    softmax,
)

LN2, LN3, LN4 = math.log(2.0), math.log(3.0), math.log(4.0)


def identity_net(k, output, dtype="float64", l2=0.0):
    """One layer k -> k with W = I, b = 0: the logits are X itself."""
    net = MLP([k, k], output=output, dtype=dtype, device="cpu", l2=l2, seed=0)
    net.set_params([(np.eye(k), np.zeros(k))])
    return net


def grads_host(net):
    return [net.device.to_numpy(g).copy() for g in net.gradients()]


# ------------------------------------------------------------------ softmax cross-entropy
def test_softmax_ce_uniform_rows_is_log2():
    # Each row has equal logits, so softmax = [1/2, 1/2] and CE = -log(1/2) = log 2 for either
    # label; the mean over the 2 samples is log 2. dZ = (P - onehot) / m:
    # row 0 (y=0): ([1/2, 1/2] - [1, 0]) / 2 = [-1/4, 1/4]; row 1 (y=1): [1/4, -1/4].
    # With X = Z: dW = dZ^T X, db = sum_i dZ_i = [0, 0].
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    net = identity_net(2, "softmax")
    loss, grads = net.loss_and_grads(X, np.array([0, 1]))
    assert loss == pytest.approx(LN2, rel=1e-15)
    dZ = np.array([[-0.25, 0.25], [0.25, -0.25]])
    np.testing.assert_allclose(grads[0][0], dZ.T @ X, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(grads[0][1], [0.0, 0.0], atol=1e-16)


@pytest.mark.parametrize("label, expected", [(0, math.log(4 / 3)), (1, LN4)])
def test_softmax_ce_log3_logit(label, expected):
    # Z = [log 3, 0]: softmax = [3/(3+1), 1/(3+1)] = [3/4, 1/4].
    # CE = -log(3/4) = log(4/3) for label 0, -log(1/4) = log 4 for label 1.
    net = identity_net(2, "softmax")
    loss, grads = net.loss_and_grads(np.array([[LN3, 0.0]]), np.array([label]))
    assert loss == pytest.approx(expected, rel=1e-14)
    # db = dZ = softmax - onehot (m = 1).
    np.testing.assert_allclose(grads[0][1], np.array([0.75, 0.25]) - np.eye(2)[label],
                               rtol=1e-14)


def test_softmax_ce_three_equal_logits_is_log3():
    net = identity_net(3, "softmax")  # softmax = [1/3]*3, CE = log 3
    loss, _ = net.loss_and_grads(np.full((4, 3), 7.5), np.array([0, 1, 2, 1]))
    assert loss == pytest.approx(LN3, rel=1e-14)


def test_softmax_function():
    Z = np.array([[0.0, LN3], [5.0, 5.0 + LN3], [-2.0, 1.0]])
    P = softmax(np, Z.copy())
    np.testing.assert_allclose(P[0], [0.25, 0.75], rtol=1e-15)  # 1/(1+3), 3/(1+3)
    np.testing.assert_allclose(P[1], P[0], rtol=1e-15)  # invariant to a shift of the row
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-15)


def head(output):
    """A head from the registry, computing with NumPy (a network sets ``xp`` for its device)."""
    h = HEADS[output]()
    h.xp = np
    return h


@pytest.mark.parametrize("output", sorted(HEADS))
def test_loss_functions_may_overwrite_their_input(output, rng):
    """``out=Z`` (what the net does) must give the same loss and dZ as a separate buffer."""
    Z = rng.standard_normal((5, 3))
    y = rng.integers(0, 3, 5) if output == "softmax" else (rng.random((5, 3)) < 0.5) * 1.0
    loss_a, dZ_a = head(output).loss_and_grad(Z.copy(), y, out=None)
    Z_alias = Z.copy()
    loss_b, dZ_b = head(output).loss_and_grad(Z_alias, y, out=Z_alias)
    assert float(loss_a) == float(loss_b)
    np.testing.assert_array_equal(dZ_a, dZ_b)


# ------------------------------------------------------------------ sigmoid BCE
def test_sigmoid_bce_zero_logits():
    # sigmoid(0) = 1/2, and BCE = -log(1/2) = log 2 for a 0 or a 1 target. Summed over 2 outputs
    # and averaged over 2 samples: (4 * log 2) / 2 = 2 log 2. dZ = (1/2 - Y) / m.
    net = identity_net(2, "sigmoid")
    Y = np.array([[0.0, 1.0], [1.0, 1.0]])
    loss, grads = net.loss_and_grads(np.zeros((2, 2)), Y)
    assert loss == pytest.approx(2 * LN2, rel=1e-15)
    np.testing.assert_allclose(grads[0][1], ((0.5 - Y) / 2).sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("target, expected", [(1.0, math.log(4 / 3)), (0.0, LN4)])
def test_sigmoid_bce_log3_logit(target, expected):
    # sigmoid(log 3) = 3/(3+1) = 3/4: BCE = -log(3/4) for target 1, -log(1 - 3/4) = log 4 for 0.
    net = identity_net(1, "sigmoid")
    loss, grads = net.loss_and_grads(np.array([[LN3]]), np.array([target]))  # (m,) accepted, k=1
    assert loss == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(grads[0][1], [0.75 - target], rtol=1e-14)


# ------------------------------------------------------------------ squared error
def test_identity_half_squared_error():
    # 0.5 * (1 + 4 + 9 + 16) / 2 samples = 7.5; dZ = (Z - Y) / m = Z / 2.
    net = identity_net(2, "identity")
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    loss, grads = net.loss_and_grads(X, np.zeros((2, 2)))
    assert loss == pytest.approx(7.5, rel=1e-15)
    np.testing.assert_allclose(grads[0][1], (X / 2).sum(axis=0), rtol=1e-15)
    np.testing.assert_allclose(grads[0][0], (X / 2).T @ X, rtol=1e-15)


# ------------------------------------------------------------------ L2
def test_l2_term_and_gradient_hand_computed():
    # W = [[1, 2], [3, 4]] (||W||^2 = 1 + 4 + 9 + 16 = 30), b = 0, X = 0 so Z = 0 and the CE is
    # log 2 per sample. L2 adds l2 / (2 m) * 30 = 0.1 / 4 * 30 = 0.75.
    # dZ rows (y = 0, 0) are [-1/4, 1/4] each; dW = dZ^T X + (l2 / m) W = 0 + 0.05 W;
    # db = [-1/2, 1/2] (biases are not penalised).
    net = MLP([2, 2], output="softmax", l2=0.1, dtype="float64", device="cpu", seed=0)
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    net.set_params([(W, np.zeros(2))])
    loss, grads = net.loss_and_grads(np.zeros((2, 2)), np.array([0, 0]))
    assert loss == pytest.approx(LN2 + 0.75, rel=1e-15)
    np.testing.assert_allclose(grads[0][0], 0.05 * W, rtol=1e-15)
    np.testing.assert_allclose(grads[0][1], [-0.5, 0.5], rtol=1e-15)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_l2_sums_over_all_layers(output, rng):
    kwargs = {"activation": "tanh", "output": output, "dtype": "float64", "device": "cpu"}
    plain = MLP([3, 4, 5, 2], seed=5, **kwargs)
    reg = MLP([3, 4, 5, 2], seed=5, l2=0.7, **kwargs)
    X = rng.standard_normal((6, 3))
    y = {"softmax": rng.integers(0, 2, 6), "sigmoid": (rng.random((6, 2)) < 0.5) * 1.0,
         "identity": rng.standard_normal((6, 2))}[output]
    loss0, _ = plain.loss_and_grads(X, y)
    g0 = grads_host(plain)
    loss1, _ = reg.loss_and_grads(X, y)
    g1 = grads_host(reg)
    sq = sum(float((W * W).sum()) for W, _ in reg.params)
    assert loss1 - loss0 == pytest.approx(0.7 / (2 * 6) * sq, rel=1e-12)
    for l, (W, _) in enumerate(reg.params):
        np.testing.assert_allclose(g1[2 * l] - g0[2 * l], 0.7 / 6 * W, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(g1[2 * l + 1], g0[2 * l + 1])


# ------------------------------------------------------------------ stability
@pytest.fixture
def strict():
    """Warnings become errors and overflow / invalid / divide-by-zero raise. Underflow stays
    ignored (NumPy's default): exp(-2e4) flushing to 0 is the correct, intended result."""
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        yield


def test_strict_fixture_has_teeth(strict):
    with pytest.raises(FloatingPointError):
        np.float32(3e38) * np.float32(10)
    with pytest.raises(FloatingPointError):
        np.log(np.zeros(1))


@pytest.mark.parametrize("s", [1e4, 1e30])
def test_softmax_huge_float32_logits(s, strict):
    # Rows (logits, label):
    #   [ s, -s], y=1: logsumexp = s + log(1 + e^{-2s}) = s, minus z_y = -s  ->  2s
    #   [-s,  s], y=1: s - s                                                  ->  0
    #   [ s,  s], y=0: s + log 2 - s                                          ->  log 2
    # mean = (2s + log 2) / 3. P = [[1, 0], [0, 1], [1/2, 1/2]], dZ = (P - onehot) / 3.
    net = identity_net(2, "softmax", dtype="float32")
    X = np.array([[s, -s], [-s, s], [s, s]], dtype=np.float32)
    y = np.array([1, 1, 0])
    loss, grads = net.loss_and_grads(X, y)
    assert math.isfinite(loss)
    assert loss == pytest.approx((2 * s + LN2) / 3, rel=1e-6)
    dZ = (np.array([[1, 0], [0, 1], [0.5, 0.5]]) - np.eye(2)[y]) / 3
    dW, db = grads[0]
    assert dW.dtype == db.dtype == np.float32
    assert np.isfinite(dW).all() and np.isfinite(db).all()
    np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(dW, dZ.T @ X.astype(np.float64), rtol=1e-6)
    P = net.predict_proba(X)
    np.testing.assert_array_equal(P, [[1, 0], [0, 1], [0.5, 0.5]])


@pytest.mark.parametrize("s", [1e4, 1e30])
def test_sigmoid_huge_float32_logits(s, strict):
    # Per entry BCE = max(z, 0) - z y + log(1 + e^{-|z|}); at |z| = s the log term is 0:
    #   z= s, y=0: s       z=-s, y=1: s       z=-s, y=1: s       z= s, y=1: 0
    # summed 3s over m = 2 samples -> 1.5 s. sigmoid(+-s) is exactly 1 / 0, so
    # dZ = (sigmoid(Z) - Y) / 2 = [[1, -1], [-1, 0]] / 2.
    net = identity_net(2, "sigmoid", dtype="float32")
    X = np.array([[s, -s], [-s, s]], dtype=np.float32)
    Y = np.array([[0.0, 1.0], [1.0, 1.0]])
    loss, grads = net.loss_and_grads(X, Y)
    assert math.isfinite(loss)
    assert loss == pytest.approx(1.5 * s, rel=1e-6)
    dZ = np.array([[1.0, -1.0], [-1.0, 0.0]]) / 2
    dW, db = grads[0]
    assert np.isfinite(dW).all() and np.isfinite(db).all()
    np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(dW, dZ.T @ X.astype(np.float64), rtol=1e-6)
    np.testing.assert_array_equal(net.predict_proba(X), [[1, 0], [0, 1]])
    # Logits on the right side of their targets cost nothing: the loss limit is exactly 0.
    loss0, _ = net.loss_and_grads(X, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert loss0 == 0.0


def test_softmax_ce_function_at_float32_extremes(strict):
    # The largest spread that float32 can represent: max - min = 2e38 < 3.4e38.
    Z = np.array([[1e38, -1e38, 0.0]], dtype=np.float32)
    loss, dZ = head("softmax").loss_and_grad(Z.copy(), np.array([2]))
    # logsumexp = 1e38 (the other terms vanish), minus z_2 = 0 -> 1e38, still finite in float32.
    assert np.isfinite(loss) and float(loss) == pytest.approx(1e38, rel=1e-6)
    np.testing.assert_array_equal(dZ, [[1.0, 0.0, -1.0]])


# ------------------------------------------------------------------ the head objects
def test_registry_names_and_kinds():
    assert HEADS == {"softmax": SoftmaxCrossEntropy, "sigmoid": SigmoidBCE,
                     "identity": SquaredError, "poisson": PoissonLog}
    for name, cls in HEADS.items():
        assert issubclass(cls, Head) and cls.name == name
    assert SoftmaxCrossEntropy.is_classifier and SigmoidBCE.is_classifier
    assert not SquaredError.is_classifier and not PoissonLog.is_classifier
    assert SquaredError().count_correct(np.zeros((2, 2)), np.zeros((2, 2))) is None


def test_softmax_head_predict_count_and_activate():
    Z = np.array([[0.0, LN3], [2.0, 1.0], [-1.0, 5.0]])
    h = head("softmax")
    np.testing.assert_array_equal(h.predict(Z), [1, 0, 1])
    assert int(h.count_correct(Z, np.array([1, 1, 1]))) == 2
    loss = h.loss(Z.copy(), np.array([1, 0, 1]))
    assert float(loss) == pytest.approx(float(h.loss_and_grad(Z.copy(), np.array([1, 0, 1]))[0]))
    np.testing.assert_allclose(h.activate(Z.copy())[0], [0.25, 0.75], rtol=1e-15)


def test_sigmoid_head_counts_a_sample_only_when_all_outputs_are_right():
    Z = np.array([[1.0, -1.0], [1.0, 1.0], [-2.0, -3.0]])
    Y = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    h = head("sigmoid")
    np.testing.assert_array_equal(h.predict(Z), [[1, 0], [1, 1], [0, 0]])
    assert int(h.count_correct(Z, Y)) == 2
    np.testing.assert_allclose(h.activate(np.array([[0.0, LN3]])), [[0.5, 0.75]], rtol=1e-15)


def test_a_head_instance_can_be_given_to_a_network():
    from xpnet import Sequential
    from xpnet.layers import Linear

    net = Sequential([Linear(2, 2)], head=SquaredError(), dtype="float64", device="cpu", seed=0)
    assert net.head.name == "identity" and net.head.xp is np
    net.set_params([(np.eye(2), np.zeros(2))])
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert net.loss_and_grads(X, np.zeros((2, 2)))[0] == pytest.approx(7.5, rel=1e-15)
    with pytest.raises(ValueError, match="head must be an xpnet.heads.Head"):
        Sequential([Linear(2, 2)], head=object(), device="cpu")
    with pytest.raises(ValueError, match="unknown output 'softplus'"):
        Sequential([Linear(2, 2)], head="softplus", device="cpu")


# ------------------------------------------------------------------ sample weights, Poisson
def _targets_for(output, rng, m, k):
    return {"softmax": rng.integers(0, k, m),
            "sigmoid": rng.integers(0, 2, (m, k)).astype(float),
            "identity": rng.normal(size=(m, k)),
            "poisson": rng.poisson(2.0, (m, k)).astype(float)}[output]


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity", "poisson"])
def test_weighted_loss_gradient_matches_finite_differences(output, rng):
    m, k = 7, 3
    Z = rng.normal(size=(m, k))
    y = _targets_for(output, rng, m, k)
    w = rng.uniform(0.0, 3.0, m)
    w[2] = 0.0
    h = head(output)
    loss, dZ = h.loss_and_grad(Z.copy(), y, sample_weight=w)
    eps = 1e-6
    num = np.zeros_like(Z)
    for idx in np.ndindex(*Z.shape):
        e = np.zeros_like(Z)
        e[idx] = eps
        num[idx] = (h.loss(Z + e, y, sample_weight=w) - h.loss(Z - e, y, sample_weight=w)) / (
            2 * eps)
    np.testing.assert_allclose(dZ, num, rtol=1e-7, atol=1e-10)
    assert (dZ[2] == 0).all()  # a zero weight removes the sample
    # the definition: the weighted mean of the per-sample losses
    per_sample = np.array([h.loss(Z[i:i + 1].copy(), y[i:i + 1]) for i in range(m)])
    assert float(loss) == pytest.approx((w * per_sample).sum() / w.sum(), rel=1e-12)
    # ones are the unweighted loss; scaling every weight changes nothing
    plain, dplain = h.loss_and_grad(Z.copy(), y)
    ones, dones = h.loss_and_grad(Z.copy(), y, sample_weight=np.ones(m))
    assert float(ones) == pytest.approx(float(plain), rel=1e-14)
    np.testing.assert_allclose(dones, dplain, rtol=1e-14)
    scaled, dscaled = h.loss_and_grad(Z.copy(), y, sample_weight=5 * w)
    assert float(scaled) == pytest.approx(float(loss), rel=1e-14)
    np.testing.assert_allclose(dscaled, dZ, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity", "poisson"])
def test_weighted_losses_match_torch(output, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle (the bench extra)")
    F = torch.nn.functional
    m, k = 9, 4
    Z = rng.normal(size=(m, k))
    y = _targets_for(output, rng, m, k)
    w = rng.uniform(0.0, 2.0, m)
    loss, dZ = head(output).loss_and_grad(Z.copy(), y, sample_weight=w)
    z = torch.tensor(Z, requires_grad=True)
    t, tw = torch.tensor(y), torch.tensor(w)
    if output == "softmax":
        per = F.cross_entropy(z, t, reduction="none")
    elif output == "sigmoid":
        per = F.binary_cross_entropy_with_logits(z, t, reduction="none").sum(dim=1)
    elif output == "identity":
        per = 0.5 * F.mse_loss(z, t, reduction="none").sum(dim=1)
    else:  # exp(z) - y z (torch) plus the constant y log y - y of the half deviance
        const = torch.special.xlogy(t, t) - t
        per = (F.poisson_nll_loss(z, t, log_input=True, full=False, reduction="none")
               + const).sum(dim=1)
    ref = (tw * per).sum() / tw.sum()
    ref.backward()
    assert float(loss) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dZ, z.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_poisson_head_hand_computed():
    # z = log 2 (prediction 2), y = 2: 2 log 2 - 2 log 2 + 2 - 2 = 0, dZ = 2 - 2 = 0;
    # z = 0 (prediction 1), y = 0: 0 - 0 + 1 - 0 = 1, dZ = 1 - 0 = 1. Mean over 2 samples.
    h = head("poisson")
    loss, dZ = h.loss_and_grad(np.array([[LN2], [0.0]]), np.array([[2.0], [0.0]]))
    assert float(loss) == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_allclose(dZ, [[0.0], [0.5]], atol=1e-16)
    np.testing.assert_allclose(h.predict(np.array([[LN2]])), [[2.0]])
    net = MLP([2, 2], output="poisson", dtype="float64", device="cpu", seed=0)
    with pytest.raises(ValueError, match="negative"):
        net.loss_and_grads(np.ones((2, 2)), np.array([[1.0, -1.0], [0.0, 0.0]]))


def test_log_activate_is_finite_where_probabilities_underflow(strict):
    Z = np.array([[300.0, -300.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    want = Z.astype(np.float64) - np.log(np.exp(Z.astype(np.float64) - Z.max(axis=1,
                                         keepdims=True)).sum(axis=1, keepdims=True)) - Z.max(
        axis=1, keepdims=True)
    got = head("softmax").log_activate(Z.copy())
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(log_softmax(np, Z.astype(np.float64)), want, rtol=1e-12)
    zs = np.array([[-200.0, 0.0, 200.0]], dtype=np.float32)
    np.testing.assert_allclose(head("sigmoid").log_activate(zs.copy()),
                               -np.logaddexp(0.0, -zs.astype(np.float64)), rtol=1e-6, atol=1e-30)
    # sigmoid probabilities keep their relative precision far into the lower tail
    p = head("sigmoid").activate(np.array([[-44.0, 44.0]]))
    np.testing.assert_allclose(p, [[np.exp(-44.0) / (1 + np.exp(-44.0)),
                                    1 / (1 + np.exp(-44.0))]], rtol=1e-15)
