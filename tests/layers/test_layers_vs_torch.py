"""Each layer on its own against its ``torch.nn`` counterpart, float64 on the CPU.

Forward in training and in inference mode, backward (``dx`` and every parameter gradient, of
``sum(w * y)`` by torch autograd), and the batch-norm running statistics. The layers are built
with ``layer.build("cpu", "float64", seed)``; the torch module gets the same parameters and
buffers by name (``weight``, ``bias``, ``running_mean``, ``running_var``).

Tolerance: elementwise rtol 1e-12 with an absolute floor of 1e-14 times the array's largest
entry. Both sides compute in float64 and differ only in the order of operations (a few dozen at
most per value, each rounding by ~1.1e-16), so agreement is ~1e-15 relative; the floor keeps the
cancellation of the batch-norm backward (``dy - mean(dy) - xhat mean(dy xhat)``) and of GELU
near -6 (``1 + tanh u`` with ``tanh u -> -1``) from inflating the relative error of an entry
that is tiny next to the others. A real bug is off by far more than 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import RECORDS, rel_error

from xpnet.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    SiLU,
    Tanh,
)

torch = pytest.importorskip("torch", reason="PyTorch is the oracle and is not installed")
nn = torch.nn
F = torch.nn.functional

M, N = 8, 5
RTOL = 1e-12
FLOOR = 1e-14

CASES = {  # id: (xpnet layer factory, torch module factory)
    "Linear": (lambda: Linear(N, 3), lambda: nn.Linear(N, 3, dtype=torch.float64)),
    "BatchNorm1d": (lambda: BatchNorm1d(N),
                    lambda: nn.BatchNorm1d(N, eps=1e-5, momentum=0.1, dtype=torch.float64)),
    "BatchNorm1d(eps=1e-3, momentum=0.3)": (
        lambda: BatchNorm1d(N, eps=1e-3, momentum=0.3),
        lambda: nn.BatchNorm1d(N, eps=1e-3, momentum=0.3, dtype=torch.float64)),
    "ReLU": (ReLU, nn.ReLU),
    "ReLU(inplace)": (lambda: ReLU(inplace=True), nn.ReLU),
    "LeakyReLU": (LeakyReLU, nn.LeakyReLU),  # both default to slope 0.01
    "LeakyReLU(0.2)": (lambda: LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2)),
    "Tanh": (Tanh, nn.Tanh),
    "Sigmoid": (Sigmoid, nn.Sigmoid),
    "Sigmoid(inplace)": (lambda: Sigmoid(inplace=True), nn.Sigmoid),
    "GELU": (GELU, lambda: nn.GELU(approximate="tanh")),
    "SiLU": (SiLU, nn.SiLU),
}


def assert_close(case, name, actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{case} {name}: shape"
    floor = FLOOR * max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=floor, err_msg=f"{case} {name}")
    RECORDS["torch"].add(f"layer {case} :: {name}", rel_error(actual, expected))


def make_pair(case, rng):
    """The xpnet layer (built, with random parameters and buffers) and its torch twin."""
    make_layer, make_module = CASES[case]
    layer = make_layer().build("cpu", "float64", seed=3)
    for name, p in layer.params.items():
        p[...] = rng.uniform(0.5, 1.5, p.shape) if name == "weight" and p.ndim == 1 \
            else rng.standard_normal(p.shape)
    if "running_var" in layer.buffers:
        layer.buffers["running_mean"][...] = rng.standard_normal(N)
        layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, N)
    module = make_module()
    state = {k: torch.from_numpy(v.copy()) for k, v in {**layer.params, **layer.buffers}.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    assert not unexpected and all("num_batches" in k for k in missing)
    return layer, module


def inputs(rng):
    x = 2.0 * rng.standard_normal((M, N)) + 0.3
    x[0, :2] = 0.0  # the ReLU kink: both follow the same subgradient convention
    x[1, 2] = -6.0  # GELU's cancellation region
    return x


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_torch(case, rng):
    layer, module = make_pair(case, rng)
    for step in range(2):  # two training steps: the running statistics move twice
        x = inputs(rng)
        w = rng.standard_normal((M, layer.output_features(N)))
        xt = torch.tensor(x, requires_grad=True)
        module.train()
        yt = module(xt)
        (yt * torch.from_numpy(w)).sum().backward()

        y = layer.forward(x.copy(), training=True)
        assert_close(case, f"step{step} train forward", y, yt.detach().numpy())
        dx = layer.backward(w.copy())
        assert_close(case, f"step{step} dx", dx, xt.grad.numpy())
        for name, p in module.named_parameters():
            assert_close(case, f"step{step} d{name}", layer.grads[name], p.grad.numpy())
            p.grad = None
        for name, b in module.named_buffers():
            if name in layer.buffers:
                assert_close(case, f"step{step} {name}", layer.buffers[name], b.numpy())
    # inference mode (batch norm with the running statistics)
    x = inputs(rng)
    module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(x.copy())).numpy()
    assert_close(case, "eval forward", layer.forward(x.copy(), training=False), expected)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_matches_torch_with_the_same_mask(p, rng):
    """torch draws the mask; it is read back from ``F.dropout`` of ones (kept entries are
    1 / (1 - p), dropped ones 0) and handed to xpnet's Dropout as ``next_mask``. Same seed, same
    mask: the outputs and gradients must agree, and inference must be the identity in both."""
    layer = Dropout(p).build("cpu", "float64")
    x = inputs(rng)
    w = rng.standard_normal((M, N))
    torch.manual_seed(7)
    mask = (F.dropout(torch.ones(M, N, dtype=torch.float64), p, training=True) != 0).numpy()
    assert mask.any() and not mask.all()
    torch.manual_seed(7)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.dropout(xt, p, training=True)
    (yt * torch.from_numpy(w)).sum().backward()
    layer.next_mask = mask
    y = layer.forward(x.copy(), training=True)
    assert_close("Dropout", "train forward", y, yt.detach().numpy())
    assert_close("Dropout", "dx", layer.backward(w.copy()), xt.grad.numpy())
    np.testing.assert_array_equal(layer.forward(x.copy(), training=False),
                                  F.dropout(torch.from_numpy(x), p, training=False).numpy())
