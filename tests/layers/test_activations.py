"""Hidden activation layers: values, derivatives, the in-place contract, and stability.

Each activation is a :class:`xpnet.layers.Layer` (``forward(x, training)`` / ``backward(dy)``),
built on its own with ``layer.build("cpu", dtype)``. The references below are written
independently of xpnet (GELU in the form ``z * sigmoid(2u)``, SiLU as ``z / (1 + exp(-z))``),
so a shared formula cannot hide a shared mistake.

Tolerances (float64 unless said otherwise):

* forward: rtol 1e-14, atol 1e-16. Each value is a handful of correctly rounded operations, so
  it is good to a few ulp. GELU at very negative z is ``z (1 + tanh u) / 2`` with ``tanh u ->
  -1``: ``1 + tanh u`` keeps an *absolute* error of ~1e-16, so its relative error grows (2.7e-7
  at z = -6, where GELU(z) = -8.4e-11) while its absolute error stays ~2e-17; the atol covers it.
* backward vs the reference derivative: rtol 1e-9. Tanh and sigmoid form g' from their output
  (1 - a^2, a (1 - a)); near saturation (g' ~ 1e-6 at z = 7.5) that cancellation costs ~1e-16 /
  1e-6 relative. GELU's derivative adds (1 + tanh u) / 2 to a second small term, with the same
  absolute error of ~1e-16 as its forward (g'(-6) = -7.7e-10, seen off by 1.3e-16), hence
  atol 1e-15 for GELU.
* backward vs a central difference of the reference (h = 1e-6): rtol 1e-6, atol 1e-9, the
  accuracy of the difference itself (truncation ~h^2, rounding ~1e-16 / h).
* float32 forward: rtol 1e-6, atol 1e-7 (float32's epsilon is 1.2e-7; sigmoid and SiLU go
  through (1 + tanh(z/2)) / 2, accurate to ~1e-7 absolute near 0, which is all float32 can
  promise for a probability).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from xpnet import MLP
from xpnet.layers import ACTIVATIONS, LeakyReLU
from xpnet.layers.activations import sigmoid

_C = math.sqrt(2.0 / math.pi)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _gelu_u(z):
    return _C * (z + 0.044715 * z**3)


REFERENCE = {  # written independently of xpnet
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": _sig,
    "gelu": lambda z: z * _sig(2.0 * _gelu_u(z)),  # 0.5 z (1 + tanh u) = z sigmoid(2u)
    "silu": lambda z: z * _sig(z),
}
REFERENCE_DERIVATIVE = {  # g'(z), also written independently
    "relu": lambda z: np.where(z > 0, 1.0, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "tanh": lambda z: 1.0 / np.cosh(z) ** 2,
    "sigmoid": lambda z: np.exp(-z) / (1.0 + np.exp(-z)) ** 2,
    "gelu": lambda z: (_sig(2 * _gelu_u(z)) + z * 2 * _C * (1 + 3 * 0.044715 * z**2)
                       * _sig(2 * _gelu_u(z)) * _sig(-2 * _gelu_u(z))),
    "silu": lambda z: _sig(z) * (1.0 + z * _sig(-z)),
}
IN_PLACE = {"relu", "leaky_relu", "tanh", "sigmoid"}  # GELU and SiLU keep their input
BACKWARD_ATOL = {"gelu": 1e-15}
# Grid that avoids the ReLU kink at 0 (finite differences below straddle nothing).
GRID = np.array([[-6.0, -2.5, -1.0, -0.3, -1e-3], [1e-3, 0.2, 0.9, 3.0, 7.5]])


def make(name, dtype=np.float64, inplace=False):
    """A built activation layer, on its own."""
    return ACTIVATIONS[name](inplace=inplace).build("cpu", np.dtype(dtype).name)


def test_registry_names():
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu"}


def test_known_values():
    assert LeakyReLU().negative_slope == 0.01
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(make("relu").forward(z.copy()), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(make("leaky_relu").forward(z.copy()), [[-0.02, 0.0, 3.0]],
                               rtol=1e-15)
    # sigmoid(0) = 1/2; sigmoid(log 3) = 3 / (3 + 1) = 3/4; sigmoid(-log 3) = 1/4.
    s = make("sigmoid").forward(np.array([[0.0, math.log(3), -math.log(3)]]))
    np.testing.assert_allclose(s, [[0.5, 0.75, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(make("tanh").forward(np.array([[0.0, math.log(3)]])),
                               [[0.0, 0.8]], rtol=1e-15, atol=0)  # tanh(log 3) = (9-1)/(9+1)
    # silu(log 3) = log 3 * 3/4; silu(0) = gelu(0) = 0
    np.testing.assert_allclose(make("silu").forward(np.array([[0.0, math.log(3)]])),
                               [[0.0, 0.75 * math.log(3)]], rtol=1e-15, atol=0)
    assert make("gelu").forward(np.zeros((1, 1)))[0, 0] == 0.0
    # both are z * (an odd-symmetric gate): g(z) - g(-z) = z exactly in exact arithmetic
    for name in ("gelu", "silu"):
        layer = make(name)
        diff = layer.forward(GRID.copy()) - layer.forward(-GRID)
        np.testing.assert_allclose(diff, GRID, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
def test_forward_matches_reference(name, dtype, inplace):
    layer = make(name, dtype, inplace)
    Z = GRID.astype(dtype)
    Z_before = Z.copy()
    expected = REFERENCE[name](GRID)
    A = layer.forward(Z, training=True)
    if inplace and name in IN_PLACE:
        assert A is Z, "an in-place activation writes over its input and returns it"
    else:
        assert A is not Z and not np.shares_memory(A, Z)
        np.testing.assert_array_equal(Z, Z_before)  # the input is left alone
    assert A.dtype == dtype
    if dtype == np.float32:
        rtol, atol = 1e-6, 1e-7
    else:
        rtol, atol = 1e-14, 1e-16
    np.testing.assert_allclose(A, expected, rtol=rtol, atol=atol)
    # inference gives the same values, in a fresh array
    A_inf = layer.forward(Z_before.copy(), training=False)
    np.testing.assert_array_equal(A_inf, A)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("inplace", [False, True])
def test_backward_is_derivative_times_upstream(name, inplace, rng):
    layer = make(name, inplace=inplace)
    dA = rng.standard_normal(GRID.shape)
    layer.forward(GRID.copy(), training=True)
    dZ = layer.backward(dA.copy())
    np.testing.assert_allclose(dZ, dA * REFERENCE_DERIVATIVE[name](GRID), rtol=1e-9,
                               atol=BACKWARD_ATOL.get(name, 0.0))
    # and a central difference of the reference forward agrees to its own accuracy (~1e-10 abs)
    h = 1e-6
    numeric = (REFERENCE[name](GRID + h) - REFERENCE[name](GRID - h)) / (2 * h)
    np.testing.assert_allclose(dZ, dA * numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, slope_at_zero", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_relu_derivative_at_zero_follows_pytorch(name, slope_at_zero):
    """At z = 0 the (sub)gradient is taken from the left, as PyTorch does."""
    layer = make(name)
    layer.forward(np.zeros((1, 3)), training=True)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[slope_at_zero] * 3])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_overwrites_dy_and_preserves_float32(name, rng):
    layer = make(name, np.float32, inplace=True)
    layer.forward(rng.standard_normal((3, 4)).astype(np.float32), training=True)
    dA = rng.standard_normal((3, 4)).astype(np.float32)
    out = layer.backward(dA)
    assert out is dA and out.dtype == np.float32


def test_sigmoid_is_stable_and_symmetric():
    z = np.array([-1e4, -100.0, -88.0, -20.0, 0.0, 20.0, 88.0, 100.0, 1e4], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s = sigmoid(np, z)
        s_neg = sigmoid(np, -z)
    assert s.dtype == np.float32
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    assert s[0] == 0.0 and s[-1] == 1.0
    np.testing.assert_allclose(s + s_neg, 1.0, rtol=1e-7)
    with np.errstate(over="ignore"):  # the naive reference overflows exp(1e4) to inf -> 0
        expected = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_and_silu_are_stable(name, dtype):
    """No overflow for large |z|: g(z) -> z for z >> 0 and -> 0 for z << 0, derivatives -> 1
    and 0, all finite."""
    z = np.array([[-1e4, -100.0, -30.0, 30.0, 100.0, 1e4]], dtype=dtype)
    layer = make(name, dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        a = layer.forward(z.copy(), training=True)
        d = layer.backward(np.ones_like(z))
    assert np.isfinite(a).all() and np.isfinite(d).all()
    np.testing.assert_allclose(a[0, 3:], z[0, 3:], rtol=1e-6)
    np.testing.assert_allclose(a[0, :3], 0.0, atol=1e-10)
    np.testing.assert_allclose(d[0], [0, 0, 0, 1, 1, 1], atol=1e-10)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_network_applies_the_hidden_activation(name):
    """With W_1 = I and b_1 = 0 the first hidden layer's output is g(X) exactly."""
    net = MLP([4, 4, 2], activation=name, dtype="float64", device="cpu", seed=0)
    assert isinstance(net.layers[1], ACTIVATIONS[name])
    W2, b2 = (net.device.to_numpy(a) for a in net.params[1])
    net.set_params([(np.eye(4), np.zeros(4)), (W2, b2)])
    X = np.array([[-2.0, -0.5, 0.5, 2.0], [3.0, -3.0, 1e-3, -1e-3]])
    hidden = net.device.to_numpy(net.layer_outputs(X)[0])  # MLP: [A_1, Z_2]
    np.testing.assert_allclose(hidden, REFERENCE[name](X), rtol=1e-14, atol=1e-300)
