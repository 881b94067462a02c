"""xpnet against PyTorch autograd as an independent oracle, float64 on the CPU.

The same weights go into a network written with ``torch.nn.functional`` ops; loss and every
gradient (W, b, batch-norm gamma) must agree, as must the batch-norm running statistics
(momentum 0.1, unbiased running variance) and the inference-mode outputs that use them.

Tolerances: both sides compute in float64 and differ only in the order of floating-point
operations, so agreement is ~1e-15 relative for most entries. The batch-norm backward subtracts
nearly equal terms (dY - mean(dY) - xhat * mean(dY * xhat)), which can inflate the *relative*
error of an individual small entry, so elementwise checks use rtol 1e-10 with an absolute floor
of 1e-12 times the array's largest entry; the normwise relative difference per array must be
below 1e-10. Both bounds are several orders above float64 rounding and far below any real bug.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from gradcheck import (
    ACTIVATIONS,
    OUTPUTS,
    RECORDS,
    VARIANTS,
    make_masks,
    make_problem,
    randomize_params,
    rel_error,
    to_host,
)

from xpnet import MLP

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is the gradient oracle and is not installed "
    "(`make test` installs it; or `pip install torch`)",
)
F = torch.nn.functional

SIZES = {1: [4, 3], 2: [4, 5, 3], 3: [4, 6, 5, 3], 4: [4, 6, 5, 4, 3]}
RTOL = 1e-10
NORM_TOL = 1e-10

TORCH_ACT = {
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class TorchTwin:
    """The same network in PyTorch: parameters copied from an xpnet net, own running stats."""

    def __init__(self, net):
        self.net = net
        self.W = [torch.tensor(a, requires_grad=True) for a in to_host(net, [W for W, _ in
                                                                             net.params])]
        self.b = [torch.tensor(a, requires_grad=True) for a in to_host(net, [b for _, b in
                                                                             net.params])]
        self.gamma = [torch.tensor(a, requires_grad=True) for a in to_host(net, net.bn_gamma)]
        hidden = net.layer_sizes[1:-1]
        self.running_mean = [torch.zeros(n, dtype=torch.float64) for n in hidden]
        self.running_var = [torch.ones(n, dtype=torch.float64) for n in hidden]

    def logits(self, X, training, masks=None, keep=None):
        net = self.net
        A = torch.as_tensor(np.asarray(X, dtype=np.float64))
        last = net.n_layers - 1
        for l in range(net.n_layers):
            if l == last:
                return A @ self.W[l].T + self.b[l]
            Z = A @ self.W[l].T
            if net.batch_norm:
                Z = F.batch_norm(Z, self.running_mean[l], self.running_var[l],
                                 weight=self.gamma[l], bias=self.b[l], training=training,
                                 momentum=0.1, eps=1e-5)
            else:
                Z = Z + self.b[l]
            A = TORCH_ACT[net.activation](Z)
            if keep is not None:
                keep.append(A)
            if training and net.dropout:
                A = A * torch.as_tensor(np.asarray(masks[l])) / (1.0 - net.dropout)
        raise AssertionError("unreachable")

    def loss_and_grads(self, X, y, masks=None):
        net = self.net
        m = X.shape[0]
        Z = self.logits(X, training=True, masks=masks)
        if net.output == "softmax":
            loss = F.cross_entropy(Z, torch.as_tensor(np.asarray(y), dtype=torch.long))
        else:
            Y = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(Z.shape)
            if net.output == "sigmoid":
                loss = F.binary_cross_entropy_with_logits(Z, Y, reduction="sum") / m
            else:
                loss = 0.5 * F.mse_loss(Z, Y, reduction="sum") / m
        if net.l2:
            loss = loss + net.l2 / (2 * m) * sum((W * W).sum() for W in self.W)
        params = [t for pair in zip(self.W, self.b) for t in pair] + self.gamma
        for t in params:
            t.grad = None
        loss.backward()
        return loss.item(), [t.grad.numpy().copy() for t in params]

    def forward(self, X):
        with torch.no_grad():
            Z = self.logits(X, training=False)
            if self.net.output == "softmax":
                Z = torch.softmax(Z, dim=1)
            elif self.net.output == "sigmoid":
                Z = torch.sigmoid(Z)
            return Z.numpy()

    def hidden(self, X):
        keep = []
        with torch.no_grad():
            Z = self.logits(X, training=False, keep=keep)
        return [a.numpy() for a in keep] + [Z.numpy()]


def assert_close(case, name, actual, expected, record=True):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{case} {name}: shape"
    floor = 1e-12 * max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=floor, err_msg=f"{case} {name}")
    err = rel_error(actual, expected)
    if record:
        RECORDS["torch"].add(f"{case} :: {name}", err)
    assert err < NORM_TOL, f"{case} {name}: normwise relative difference {err:.3e}"


def _cases():
    cases = []
    for act in ACTIVATIONS:
        for out in OUTPUTS:
            for variant in VARIANTS:
                cases.append(pytest.param(act, out, 3, variant, id=f"{act}-{out}-d3-{variant}"))
    for depth in (1, 2, 4):
        for variant in ("plain", "bn+dropout+l2") if depth > 1 else ("plain", "l2"):
            cases.append(pytest.param("relu", "softmax", depth, variant,
                                      id=f"relu-softmax-d{depth}-{variant}"))
    return cases


def _build(activation, output, depth, variant):
    case = f"{activation}/{output}/depth{depth}/{variant}"
    seed = zlib.crc32(case.encode())
    rng = np.random.default_rng(seed)
    net = MLP(SIZES[depth], activation=activation, output=output, dtype="float64",
              device="cpu", seed=seed, **VARIANTS[variant])
    randomize_params(net, rng)
    return case, net, rng


@pytest.mark.parametrize("activation, output, depth, variant", _cases())
def test_loss_and_gradients_match_torch(activation, output, depth, variant):
    case, net, rng = _build(activation, output, depth, variant)
    twin = TorchTwin(net)
    names = [f"{p}{l + 1}" for l in range(net.n_layers) for p in ("dW", "db")]
    names += [f"dgamma{l + 1}" for l in range(len(net.bn_gamma))]
    # Two training steps on batches of different sizes (each updates the running statistics).
    for step, m in enumerate((8, 5)):
        X, y = make_problem(net, m, rng)
        masks = make_masks(net, m, rng) if net.dropout else None
        loss, _ = net.loss_and_grads(X, y, dropout_masks=masks)
        grads = to_host(net, net.gradients())
        t_loss, t_grads = twin.loss_and_grads(X, y, masks)
        assert abs(loss - t_loss) <= 1e-12 * abs(t_loss), f"{case} step {step}: loss"
        assert len(grads) == len(t_grads) == len(names)
        for name, g, t in zip(names, grads, t_grads):
            assert_close(case, f"step{step} {name}", g, t)
        for l in range(len(net.bn_running_mean)):
            assert_close(case, f"running_mean{l + 1}", net.device.to_numpy(net.bn_running_mean[l]),
                         twin.running_mean[l].numpy(), record=False)
            assert_close(case, f"running_var{l + 1}", net.device.to_numpy(net.bn_running_var[l]),
                         twin.running_var[l].numpy(), record=False)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("variant", ["plain", "bn+dropout+l2"])
def test_inference_matches_torch(activation, output, variant):
    """Inference mode: no dropout, batch norm with the running statistics after training steps."""
    case, net, rng = _build(activation, output, 3, variant)
    twin = TorchTwin(net)
    for m in (8, 6, 8):
        X, y = make_problem(net, m, rng)
        masks = make_masks(net, m, rng) if net.dropout else None
        net.loss_and_grads(X, y, dropout_masks=masks)
        twin.loss_and_grads(X, y, masks)
    if net.batch_norm:  # the running stats moved away from their (0, 1) start
        assert not np.allclose(net.device.to_numpy(net.bn_running_var[0]), 1.0)
    X_test, _ = make_problem(net, 9, rng)
    out, t_out = net.forward(X_test), twin.forward(X_test)
    assert_close(case, "forward", net.device.to_numpy(out), t_out, record=False)
    for l, (a, t) in enumerate(zip(net.layer_outputs(X_test), twin.hidden(X_test))):
        assert_close(case, f"layer_output{l + 1}", net.device.to_numpy(a), t, record=False)
    if output == "softmax":
        np.testing.assert_array_equal(net.device.to_numpy(net.predict(X_test)),
                                      t_out.argmax(axis=1))
