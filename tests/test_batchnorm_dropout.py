"""Batch normalisation (batch statistics in training, running statistics in inference) and
inverted dropout (active in training only, rate p, survivors scaled by 1 / (1 - p)).

The networks are ``MLP([4, 6, 3], batch_norm=True)``: layers ``0`` Linear (with its own bias,
as ``torch.nn.Linear``), ``1`` BatchNorm1d (weight gamma, bias beta, running statistics),
``2`` ReLU, ``3`` Linear. The Linear bias in front of the batch norm shifts the running mean
but cancels out of the training-mode normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.layers import BatchNorm1d, Dropout
from xpnet.network import MLP, Sequential
from xpnet.training import fit

BN_EPS = 1e-5  # torch.nn.BatchNorm1d's defaults, which xpnet's BatchNorm1d follows
BN_MOMENTUM = 0.1

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def relu(z):
    return np.maximum(z, 0.0)


def cross_entropy(Z, y):
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def bn_net(seed=0):
    """[4, 6, 3] with batch norm, non-trivial scale and shift, and a non-zero Linear bias."""
    net = MLP([4, 6, 3], dtype="float64", device="cpu", seed=seed, batch_norm=True)
    bn = net.layers[1]
    assert isinstance(bn, BatchNorm1d)
    assert (bn.eps, bn.momentum) == (BN_EPS, BN_MOMENTUM)
    rng = np.random.default_rng(seed + 100)
    bn.params["weight"][...] = rng.uniform(0.5, 2.0, 6)
    bn.params["bias"][...] = rng.standard_normal(6)  # the BN shift, beta
    net.params[1][1][...] = rng.standard_normal(3)
    net.params[0][1][...] = rng.standard_normal(6)  # the Linear bias: only the running mean sees it
    return net


def bn_state(net):
    """``(gamma, beta, running_mean, running_var)`` of the batch norm: views, not copies."""
    bn = net.layers[1]
    return bn.params["weight"], bn.params["bias"], bn.buffers["running_mean"], \
        bn.buffers["running_var"]


def batch(seed, m=32, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, 4)) * 2.0 + shift, rng.integers(0, 3, size=m)


def manual_bn_train_loss(net, X, y):
    """Training-mode loss computed plainly from the batch statistics."""
    W1, b1 = net.params[0]
    W2, b2 = net.params[1]
    gamma, beta, _, _ = bn_state(net)
    Z1 = X @ W1.T + b1
    xhat = (Z1 - Z1.mean(axis=0)) / np.sqrt(Z1.var(axis=0) + BN_EPS)
    A1 = relu(gamma * xhat + beta)
    return cross_entropy(A1 @ W2.T + b2, y)


# ---------------------------------------------------------------------------- batch norm
def test_running_statistics_follow_the_momentum_update():
    net = bn_net()
    W1, b1 = (a.copy() for a in net.params[0])
    _, _, running_mean, running_var = bn_state(net)
    np.testing.assert_array_equal(running_mean, 0.0)
    np.testing.assert_array_equal(running_var, 1.0)
    rm, rv = np.zeros(6), np.ones(6)
    for step in range(3):
        X, y = batch(step, shift=step)
        loss, _ = net.loss_and_grads(X, y)  # updates the running statistics, not the weights
        Z1 = X @ W1.T + b1
        rm = (1 - BN_MOMENTUM) * rm + BN_MOMENTUM * Z1.mean(axis=0)
        rv = (1 - BN_MOMENTUM) * rv + BN_MOMENTUM * Z1.var(axis=0, ddof=1)  # unbiased
        np.testing.assert_allclose(running_mean, rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(running_var, rv, rtol=1e-12)
        # the training forward pass normalised with the batch's own statistics
        assert loss == pytest.approx(manual_bn_train_loss(net, X, y), rel=1e-12)


@needs_torch
def test_batch_norm_matches_torch_functional():
    net = bn_net()
    W1, b1 = net.params[0]
    W2, b2 = net.params[1]
    gamma, beta, running_mean, running_var = bn_state(net)
    t_rm = torch.zeros(6, dtype=torch.float64)
    t_rv = torch.ones(6, dtype=torch.float64)
    for step in range(3):
        X, y = batch(step, m=17, shift=-step)
        loss, _ = net.loss_and_grads(X, y)
        Z1 = torch.from_numpy(X @ W1.T + b1)
        Y = F.batch_norm(Z1, t_rm, t_rv, weight=torch.from_numpy(gamma.copy()),
                         bias=torch.from_numpy(beta.copy()), training=True,
                         momentum=BN_MOMENTUM, eps=BN_EPS)
        logits = torch.relu(Y) @ torch.from_numpy(W2.T.copy()) + torch.from_numpy(b2.copy())
        t_loss = F.cross_entropy(logits, torch.from_numpy(y))
        np.testing.assert_allclose(running_mean, t_rm.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(running_var, t_rv.numpy(), rtol=1e-12)
        assert loss == pytest.approx(float(t_loss), rel=1e-12)
    # inference with running statistics, as torch's training=False
    Xt, _ = batch(9, m=11)
    Y = F.batch_norm(torch.from_numpy(Xt @ W1.T + b1), t_rm, t_rv,
                     weight=torch.from_numpy(gamma.copy()),
                     bias=torch.from_numpy(beta.copy()), training=False, eps=BN_EPS)
    np.testing.assert_allclose(net.layer_outputs(Xt)[0], torch.relu(Y).numpy(), rtol=1e-12,
                               atol=1e-14)


def test_inference_uses_running_statistics():
    net = bn_net()
    for step in range(4):  # move the running statistics away from (0, 1)
        net.loss_and_grads(*batch(step, shift=1.0))
    W1, b1 = net.params[0]
    W2, b2 = net.params[1]
    gamma, beta, rm, rv = bn_state(net)
    Xt, yt = batch(10, m=25, shift=-2.0)
    Z1 = Xt @ W1.T + b1
    A_running = relu(gamma * (Z1 - rm) / np.sqrt(rv + BN_EPS) + beta)
    A_batch = relu(gamma * (Z1 - Z1.mean(axis=0)) / np.sqrt(Z1.var(axis=0) + BN_EPS) + beta)
    assert not np.allclose(A_running, A_batch, atol=1e-3)  # the two modes really differ

    hidden, logits = net.layer_outputs(Xt)  # MLP: [A_1, Z_2]
    np.testing.assert_allclose(hidden, A_running, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(logits, A_running @ W2.T + b2, rtol=1e-12, atol=1e-14)
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(net.forward(Xt), P / P.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(net.predict(Xt), logits.argmax(axis=1))
    loss, _ = net.evaluate(Xt, yt)
    assert loss == pytest.approx(cross_entropy(logits, yt), rel=1e-12)

    # inference is per sample: one row alone gives the same output as inside the batch
    np.testing.assert_allclose(net.forward(Xt[3:4]), net.forward(Xt)[3:4], rtol=1e-12)
    # and it does not touch the running statistics
    before = (rm.copy(), rv.copy())
    net.forward(Xt)
    net.evaluate(Xt, yt)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_training_loss_uses_batch_not_running_statistics():
    net = bn_net()
    for step in range(4):
        net.loss_and_grads(*batch(step, shift=1.0))
    X, y = batch(20, shift=-2.0)
    eval_loss, _ = net.evaluate(X, y)
    train_loss, _ = net.loss_and_grads(X, y)
    assert train_loss != pytest.approx(eval_loss, rel=1e-3)


def test_fit_updates_running_statistics_once_per_step():
    X, y = batch(0, m=40)
    net = bn_net()
    W1, b1 = (a.copy() for a in net.params[0])
    fit(net, X, y, epochs=1, lr=0.1, optimizer="gd", seed=0)  # one full-batch step
    Z1 = X @ W1.T + b1  # statistics of the forward pass, taken before the update
    _, _, running_mean, running_var = bn_state(net)
    np.testing.assert_allclose(running_mean, BN_MOMENTUM * Z1.mean(axis=0),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(running_var,
                               (1 - BN_MOMENTUM) + BN_MOMENTUM * Z1.var(axis=0, ddof=1),
                               rtol=1e-12)


# ---------------------------------------------------------------------------- dropout
def dropout_pair(p=0.5, batch_norm=False):
    net = MLP([5, 20, 12, 3], dtype="float64", device="cpu", seed=1, dropout=p,
              batch_norm=batch_norm)
    plain = MLP([5, 20, 12, 3], dtype="float64", device="cpu", seed=2, batch_norm=batch_norm)
    for dst, src in zip(plain.parameters() + plain.buffers(), net.parameters() + net.buffers()):
        dst[...] = src
    return net, plain


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dropout_is_off_in_inference(batch_norm):
    net, plain = dropout_pair(0.5, batch_norm)
    X = np.random.default_rng(0).standard_normal((30, 5))
    y = np.arange(30) % 3
    first = net.forward(X).copy()
    for _ in range(3):
        np.testing.assert_array_equal(net.forward(X), first)
    np.testing.assert_array_equal(first, plain.forward(X))
    np.testing.assert_array_equal(net.predict(X), plain.predict(X))
    for a, b in zip(net.layer_outputs(X), plain.layer_outputs(X)):
        np.testing.assert_array_equal(a, b)
    # layer by layer (Sequential.layer_outputs): each Dropout passes its input through
    outputs = Sequential.layer_outputs(net, X)
    dropouts = [i for i, layer in enumerate(net.layers) if isinstance(layer, Dropout)]
    assert len(dropouts) == 2 and len(outputs) == len(net.layers)
    for i in dropouts:
        np.testing.assert_array_equal(outputs[i], outputs[i - 1])
    assert net.evaluate(X, y) == plain.evaluate(X, y)
    # training-mode losses do differ (dropout is active there), so the above is not vacuous
    assert net.loss_and_grads(X, y)[0] != pytest.approx(plain.loss_and_grads(X, y)[0])


def test_dropout_off_in_inference_after_fit():
    X = np.random.default_rng(0).standard_normal((60, 5))
    y = np.arange(60) % 3
    net, _ = dropout_pair(0.4, batch_norm=True)
    fit(net, X, y, epochs=3, lr=0.01, optimizer="adam", batch_size=16, seed=0)
    _, plain = dropout_pair(0.4, batch_norm=True)
    for dst, src in zip(plain.parameters() + plain.buffers(), net.parameters() + net.buffers()):
        dst[...] = src
    np.testing.assert_array_equal(net.forward(X), net.forward(X))
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))


def probe_net(p, h=50):
    """[h, h, h] with identity output: W_1 = 0, b_1 = 1 make every hidden activation 1, and
    W_2 = I, b_2 = 0 make the output equal the dropped-out hidden layer D. With targets 0 the
    squared-error gradients expose it: db_2 = mean_i D_i, dW_2 = D^T D / m."""
    net = MLP([h, h, h], output="identity", dtype="float64", device="cpu", seed=0, dropout=p)
    net.set_params([(np.zeros((h, h)), np.ones(h)), (np.eye(h), np.zeros(h))])
    return net


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_rate_and_scaling_in_training(p):
    h, m = 50, 2000
    net = probe_net(p, h)
    net.reseed_dropout(123)
    X = np.random.default_rng(0).standard_normal((m, h))
    loss, grads = net.loss_and_grads(X, np.zeros((m, h)))
    col_mean = grads[1][1]  # mean_i D_ij
    gram = grads[1][0]  # mean_i D_ij D_ik
    n = m * h
    scale = 1.0 / (1.0 - p)
    # surviving units carry exactly 1 / (1 - p): E[D^2] / E[D] = that value in every unit
    np.testing.assert_allclose(np.diag(gram) / col_mean, scale, rtol=1e-12)
    # fraction of dropped units ~ p (binomial, 5 standard deviations)
    zero_frac = 1.0 - col_mean.mean() / scale
    assert abs(zero_frac - p) < 5 * np.sqrt(p * (1 - p) / n)
    # inverted dropout keeps the expectation: E[D] = 1 (the activation without dropout)
    assert abs(col_mean.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)
    # masks are independent across units: E[D_j D_k] = 1 for j != k (a mask shared by all
    # units would give 1 / (1 - p)). The mean over pairs is (1/m) sum_i (S_i^2 - |D_i|^2) /
    # (h (h - 1)) with S_i = sum_j D_ij, whose standard deviation is ~2 sqrt(p / (1 - p) / n).
    off = gram[~np.eye(h, dtype=bool)]
    assert abs(off.mean() - 1.0) < 5 * 2 * np.sqrt(p / (1 - p) / n)
    # and the loss is half the mean squared norm of D
    assert loss == pytest.approx(0.5 * np.trace(gram), rel=1e-12)


def test_explicit_masks_are_applied_and_scaled():
    p, h, m = 0.3, 7, 9
    rng = np.random.default_rng(5)
    net = MLP([4, h, h], output="identity", dtype="float64", device="cpu", seed=0, dropout=p)
    W1, b1 = rng.standard_normal((h, 4)), rng.standard_normal(h)
    net.set_params([(W1, b1), (np.eye(h), np.zeros(h))])
    X, Y = rng.standard_normal((m, 4)), rng.standard_normal((m, h))
    mask = (rng.random((m, h)) >= p).astype(np.float64)
    loss, grads = net.loss_and_grads(X, Y, dropout_masks=[mask])
    D = relu(X @ W1.T + b1) * mask / (1 - p)
    assert loss == pytest.approx(0.5 * np.sum((D - Y) ** 2) / m, rel=1e-12)
    np.testing.assert_allclose(grads[1][1], (D - Y).sum(axis=0) / m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads[1][0], (D - Y).T @ D / m, rtol=1e-12, atol=1e-15)
    # the gradient flows only through the kept units, scaled the same way
    dA = (D - Y) / m * mask / (1 - p) * (X @ W1.T + b1 > 0)
    np.testing.assert_allclose(grads[0][0], dA.T @ X, rtol=1e-12, atol=1e-15)


def test_reseed_dropout_reproduces_masks():
    net = probe_net(0.5, h=20)
    X = np.zeros((40, 20))
    Y = np.zeros((40, 20))

    def draw(seed):
        if seed is not None:
            net.reseed_dropout(seed)
        _, grads = net.loss_and_grads(X, Y)
        return grads[1][0].copy()

    a = draw(7)
    b = draw(None)  # the stream moved on: new masks
    c = draw(7)  # restarted: the same masks as the first draw
    d = draw(8)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, d)


def test_fit_with_dropout_is_reproducible_and_seed_dependent():
    X = np.random.default_rng(0).standard_normal((50, 5))
    y = np.arange(50) % 3

    def run(seed):
        net, _ = dropout_pair(0.5)
        fit(net, X, y, epochs=3, lr=0.1, optimizer="gd", seed=seed)  # full batch: no shuffle
        return [a.copy() for a in net.parameters()]

    a, b, c = run(1), run(1), run(2)
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[0], c[0])  # only the dropout masks differ between seeds
