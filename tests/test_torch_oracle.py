"""xpnet against PyTorch autograd as an independent oracle, float64 on the CPU.

Each xpnet network gets a twin: the equivalent ``torch.nn.Sequential`` built layer for layer
(``Linear`` with bias -> ``BatchNorm1d`` -> activation -> dropout with the same explicit masks
-> ... -> ``Linear``), loaded from ``net.state_dict()``; the two share every name (``0.weight``,
``1.running_mean``, ...). The loss and EVERY named parameter gradient must agree, compared by
name, as must the batch-norm running statistics (momentum 0.1, unbiased running variance), the
inference-mode outputs that use them, every layer's inference output (``Sequential.
layer_outputs``) and every hidden block's (``MLP.layer_outputs``). GELU is compared with
``torch.nn.GELU(approximate="tanh")`` (``F.gelu(x, approximate="tanh")``), SiLU with
``torch.nn.SiLU`` (``F.silu``).

Tolerances: both sides compute in float64 and differ only in the order of floating-point
operations, so agreement is ~1e-15 relative for most entries. The batch-norm backward subtracts
nearly equal terms (dY - mean(dY) - xhat * mean(dY * xhat)), which can inflate the *relative*
error of an individual small entry, so elementwise checks use rtol 1e-10 with an absolute floor
of 1e-12 times the array's largest entry; the normwise relative difference per array must be
below 1e-10. Both bounds are several orders above float64 rounding and far below any real bug.
The bias of a Linear in front of a batch norm has a true gradient of 0 on both sides (the
normalisation removes it); what each side computes is a rounding residue, so for those arrays
only ``max |g| <= 1e-12 * max |dW|`` of the same Linear is required, on both sides.
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
    zero_gradient_names,
)

from xpnet import MLP, Sequential
from xpnet.layers import GELU, BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, SiLU, Tanh

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is the gradient oracle and is not installed "
    "(`make test` installs it; or `pip install torch`)",
)
F = torch.nn.functional
nn = torch.nn

SIZES = {1: [4, 3], 2: [4, 5, 3], 3: [4, 6, 5, 3], 4: [4, 6, 5, 4, 3]}
RTOL = 1e-10
NORM_TOL = 1e-10
ZERO_FLOOR = 1e-12


class MaskedDropout(nn.Module):
    """``torch.nn.Dropout`` with the mask set explicitly (xpnet's ``dropout_masks``)."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return x * self.mask / (1.0 - self.p)


def torch_module(layer):
    """The ``torch.nn`` module equivalent to one xpnet layer, in float64."""
    f64 = torch.float64
    if isinstance(layer, Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=True, dtype=f64)
    if isinstance(layer, BatchNorm1d):
        return nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                              dtype=f64)
    if isinstance(layer, Dropout):
        return MaskedDropout(layer.p)
    if isinstance(layer, LeakyReLU):
        return nn.LeakyReLU(layer.negative_slope)
    if isinstance(layer, GELU):
        return nn.GELU(approximate="tanh")
    modules = {ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid, SiLU: nn.SiLU}
    return modules[type(layer)]()


class TorchTwin:
    """The same network as a ``torch.nn.Sequential``, loaded from ``net.state_dict()``; it
    keeps its own running statistics from then on."""

    def __init__(self, net):
        self.net = net
        self.model = nn.Sequential(*[torch_module(layer) for layer in net.layers])
        state = {k: torch.from_numpy(v) for k, v in net.state_dict().items()}
        result = self.model.load_state_dict(state, strict=False)
        assert not result.unexpected_keys
        assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)
        # the same names, in the same (buffer) order
        assert [n for n, _ in self.model.named_parameters()] == \
            [n for n, _ in net.named_parameters()]
        assert [n for n, _ in self.model.named_buffers() if "num_batches" not in n] == \
            [n for n, _ in net.named_buffers()]

    def logits(self, X, training, masks=None):
        self.model.train(training)
        masks = iter(masks or [])
        for module in self.model:
            if isinstance(module, MaskedDropout) and training and module.p:
                module.mask = torch.as_tensor(np.asarray(next(masks), dtype=np.float64))
        return self.model(torch.as_tensor(np.asarray(X, dtype=np.float64)))

    def loss_and_grads(self, X, y, masks=None):
        """``(loss, {name: gradient})`` of every named parameter."""
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
            weights = [mod.weight for mod in self.model if isinstance(mod, nn.Linear)]
            loss = loss + net.l2 / (2 * m) * sum((W * W).sum() for W in weights)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        return loss.item(), {n: p.grad.numpy().copy() for n, p in self.model.named_parameters()}

    def buffers(self):
        return {n: b.numpy() for n, b in self.model.named_buffers()}

    def forward(self, X):
        with torch.no_grad():
            Z = self.logits(X, training=False)
            if self.net.output == "softmax":
                Z = torch.softmax(Z, dim=1)
            elif self.net.output == "sigmoid":
                Z = torch.sigmoid(Z)
            return Z.numpy()

    def layer_outputs(self, X):
        """Every module's inference output, in order (as ``net.layer_outputs``)."""
        self.model.eval()
        out = []
        with torch.no_grad():
            A = torch.as_tensor(np.asarray(X, dtype=np.float64))
            for module in self.model:
                A = module(A)
                out.append(A.numpy().copy())
        return out


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


def assert_zero_gradient(case, name, grad, weight_grad):
    """A structurally zero gradient: a rounding residue relative to its layer's weights."""
    bound = ZERO_FLOOR * float(np.abs(weight_grad).max())
    assert float(np.abs(grad).max()) <= bound, f"{case} {name}: {grad} (bound {bound:.1e})"


@pytest.mark.parametrize("activation, output, depth, variant", _cases())
def test_loss_and_gradients_match_torch(activation, output, depth, variant):
    case, net, rng = _build(activation, output, depth, variant)
    twin = TorchTwin(net)
    names = [name for name, _ in net.named_parameters()]
    zero = zero_gradient_names(net)
    # Two training steps on batches of different sizes (each updates the running statistics).
    for step, m in enumerate((8, 5)):
        X, y = make_problem(net, m, rng)
        masks = make_masks(net, m, rng) if net.dropout else None
        loss, _ = net.loss_and_grads(X, y, dropout_masks=masks)
        grads = dict(zip(names, to_host(net, net.gradients())))
        t_loss, t_grads = twin.loss_and_grads(X, y, masks)
        assert abs(loss - t_loss) <= 1e-12 * abs(t_loss), f"{case} step {step}: loss"
        assert list(grads) == list(t_grads) == names
        for name in names:
            if name in zero:
                weight = name.replace(".bias", ".weight")
                assert_zero_gradient(case, name, grads[name], grads[weight])
                assert_zero_gradient(case, f"torch {name}", t_grads[name], t_grads[weight])
                continue
            assert_close(case, f"step{step} d{name}", grads[name], t_grads[name])
        t_buffers = twin.buffers()
        for name, buf in net.named_buffers():
            assert_close(case, name, net.device.to_numpy(buf), t_buffers[name], record=False)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("variant", ["plain", "bn+dropout+l2"])
def test_inference_matches_torch(activation, output, variant):
    """Inference mode: no dropout, batch norm with the running statistics after training steps;
    the head's output and every layer's output (``net.layer_outputs``) agree."""
    case, net, rng = _build(activation, output, 3, variant)
    twin = TorchTwin(net)
    for m in (8, 6, 8):
        X, y = make_problem(net, m, rng)
        masks = make_masks(net, m, rng) if net.dropout else None
        net.loss_and_grads(X, y, dropout_masks=masks)
        twin.loss_and_grads(X, y, masks)
    if net.batch_norm:  # the running stats moved away from their (0, 1) start
        assert not np.allclose(net.device.to_numpy(dict(net.named_buffers())["1.running_var"]),
                               1.0)
    X_test, _ = make_problem(net, 9, rng)
    out, t_out = net.forward(X_test), twin.forward(X_test)
    assert_close(case, "forward", net.device.to_numpy(out), t_out, record=False)
    # every layer's output (Sequential.layer_outputs) against every module's
    outputs, t_outputs = Sequential.layer_outputs(net, X_test), twin.layer_outputs(X_test)
    assert len(outputs) == len(t_outputs) == len(net.layers)
    for i, (a, t) in enumerate(zip(outputs, t_outputs)):
        assert_close(case, f"layer_output {i} {net.layers[i]!r}", net.device.to_numpy(a), t,
                     record=False)
    # MLP.layer_outputs: [A_1, ..., A_{L-1}, Z_L], each hidden block's output then the logits
    ends = [i - 1 for i, layer in enumerate(net.layers) if isinstance(layer, Linear) and i]
    blocks = net.layer_outputs(X_test)
    assert len(blocks) == net.n_layers
    for l, (a, i) in enumerate(zip(blocks, ends + [len(net.layers) - 1])):
        assert_close(case, f"block output {l + 1}", net.device.to_numpy(a), t_outputs[i],
                     record=False)
    if output == "softmax":
        np.testing.assert_array_equal(net.device.to_numpy(net.predict(X_test)),
                                      t_out.argmax(axis=1))
