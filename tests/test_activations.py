"""Hidden activations: values, derivatives, in-place contract, and stability."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from xpnet import MLP
from xpnet.activations import ACTIVATIONS, LEAKY_SLOPE, sigmoid

REFERENCE = {  # written independently of xpnet
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}
REFERENCE_DERIVATIVE = {  # g'(z), also written independently
    "relu": lambda z: np.where(z > 0, 1.0, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "tanh": lambda z: 1.0 / np.cosh(z) ** 2,
    "sigmoid": lambda z: np.exp(-z) / (1.0 + np.exp(-z)) ** 2,
}
# Grid that avoids the ReLU kink at 0 (finite differences below straddle nothing).
GRID = np.array([[-6.0, -2.5, -1.0, -0.3, -1e-3], [1e-3, 0.2, 0.9, 3.0, 7.5]])


def test_known_values():
    assert LEAKY_SLOPE == 0.01
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(ACTIVATIONS["relu"][0](np, z.copy()), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"][0](np, z.copy()), [[-0.02, 0.0, 3.0]],
                               rtol=1e-15)
    # sigmoid(0) = 1/2; sigmoid(log 3) = 3 / (3 + 1) = 3/4; sigmoid(-log 3) = 1/4.
    s = ACTIVATIONS["sigmoid"][0](np, np.array([[0.0, math.log(3), -math.log(3)]]))
    np.testing.assert_allclose(s, [[0.5, 0.75, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(ACTIVATIONS["tanh"][0](np, np.array([[0.0, math.log(3)]])),
                               [[0.0, 0.8]], rtol=1e-15, atol=0)  # tanh(log 3) = (9-1)/(9+1)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference_in_place(name, dtype):
    forward, _ = ACTIVATIONS[name]
    Z = GRID.astype(dtype)
    expected = REFERENCE[name](GRID)
    A = forward(np, Z)
    assert A is Z, "activations work in place on Z and return it"
    assert A.dtype == dtype
    # float32: sigmoid is computed as (1 + tanh(z/2)) / 2, accurate to ~1e-7 absolute (not
    # relative) near 0, which is all float32 can promise for a probability.
    rtol, atol = (1e-6, 1e-7) if dtype == np.float32 else (1e-14, 1e-16)
    np.testing.assert_allclose(A, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_is_derivative_times_upstream(name, rng):
    forward, backward = ACTIVATIONS[name]
    dA = rng.standard_normal(GRID.shape)
    A = forward(np, GRID.copy())
    dZ = backward(np, A, dA.copy())
    # xpnet forms g' from the output A (1 - A^2, A (1 - A)); near saturation (g' ~ 1e-6 at
    # z = 7.5) that cancellation costs ~1e-16 / 1e-6 relative, hence rtol 1e-9.
    np.testing.assert_allclose(dZ, dA * REFERENCE_DERIVATIVE[name](GRID), rtol=1e-9, atol=0)
    # and a central difference of the reference forward agrees to its own accuracy (~1e-10 abs)
    h = 1e-6
    numeric = (REFERENCE[name](GRID + h) - REFERENCE[name](GRID - h)) / (2 * h)
    np.testing.assert_allclose(dZ, dA * numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, slope_at_zero", [("relu", 0.0), ("leaky_relu", LEAKY_SLOPE)])
def test_relu_derivative_at_zero_follows_pytorch(name, slope_at_zero):
    """At z = 0 the (sub)gradient is taken from the left, as PyTorch does."""
    forward, backward = ACTIVATIONS[name]
    A = forward(np, np.zeros((1, 3)))
    np.testing.assert_array_equal(backward(np, A, np.ones((1, 3))), [[slope_at_zero] * 3])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_preserves_float32(name, rng):
    forward, backward = ACTIVATIONS[name]
    A = forward(np, rng.standard_normal((3, 4)).astype(np.float32))
    dA = rng.standard_normal((3, 4)).astype(np.float32)
    out = backward(np, A, dA)
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
        expected = REFERENCE["sigmoid"](z.astype(np.float64))
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_network_applies_the_hidden_activation(name):
    """With W_1 = I and b_1 = 0 the first hidden layer's output is g(X) exactly."""
    net = MLP([4, 4, 2], activation=name, dtype="float64", device="cpu", seed=0)
    W2, b2 = (net.device.to_numpy(a) for a in net.params[1])
    net.set_params([(np.eye(4), np.zeros(4)), (W2, b2)])
    X = np.array([[-2.0, -0.5, 0.5, 2.0], [3.0, -3.0, 1e-3, -1e-3]])
    hidden = net.device.to_numpy(net.layer_outputs(X)[0])
    np.testing.assert_allclose(hidden, REFERENCE[name](X), rtol=1e-14, atol=1e-300)
