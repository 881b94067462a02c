"""Each layer on its own through the public :func:`xpnet.gradcheck.gradcheck`, float64.

For a layer the check compares ``d f / d x`` and ``d f / d param`` of ``f = sum(w * y)``,
``y = layer.forward(x, training=True)``, with a fixed random weighting ``w``, against central
differences. The measure per array is ``||num - ana|| / (||num|| + ||ana||)`` and the bound is
gradcheck's default ``rtol = 1e-6``: with eps = 1e-6 the truncation error is O(eps^2) ~ 1e-12
and the rounding error ~1e-16 * |f| / eps ~ 1e-10 for the O(1) values here, so correct
gradients land around 1e-9 or better (recorded in the terminal summary), and a wrong term far
above (the last tests). ReLU inputs are kept at least 0.1 from the kink, far beyond eps.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import RECORDS, rel_error

from xpnet.gradcheck import GradcheckError, gradcheck, gradcheck_arrays
from xpnet.layers import ACTIVATIONS, BatchNorm1d, Dropout, Layer, Linear

M, N = 6, 5
RTOL = 1e-6  # gradcheck's default, restated here so the records are checked against it


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Entries of random sign and magnitude in [low, high] (clear of the ReLU kink)."""
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def check(case, layer, x, **kwargs):
    """Record every array's error, then check with the public gradcheck."""
    arrays = gradcheck_arrays(layer, x, **kwargs)
    for name, (num, ana) in arrays.items():
        err = rel_error(num, ana)
        RECORDS["layers"].add(f"{case} :: {name}", err)
        assert err < RTOL, f"{case} {name}: {err:.3e}"
        assert np.linalg.norm(num) > 1e-3, f"{case} {name}: vacuous (zero gradient)"
    assert gradcheck(layer, x, **kwargs) is True
    return arrays


def test_linear(rng):
    layer = Linear(N, 3)  # unbound: gradcheck builds it on the CPU in float64
    x = rng.standard_normal((M, N))
    arrays = check("Linear", layer, x)
    assert set(arrays) == {"input", "weight", "bias"}
    assert layer.dtype == np.float64 and layer.params["weight"].shape == (3, N)


def test_linear_with_a_given_weighting_and_no_input_gradient(rng):
    layer = Linear(N, 3).build("cpu", "float64", seed=1)
    layer.params["bias"][...] = rng.standard_normal(3)
    layer.needs_input_grad = False  # as the first layer of a network: backward returns None
    w = rng.standard_normal((M, 3))
    arrays = check("Linear(no dx)", layer, rng.standard_normal((M, N)), y=w)
    assert set(arrays) == {"weight", "bias"}
    # with f = sum(w * (x W^T + b)), df/db = sum_i w_i exactly
    np.testing.assert_allclose(arrays["bias"][1], w.sum(axis=0), rtol=1e-14)


def test_batch_norm(rng):
    layer = BatchNorm1d(N).build("cpu", "float64", seed=2)
    layer.params["weight"][...] = rng.uniform(0.5, 1.5, N)
    layer.params["bias"][...] = rng.standard_normal(N)
    layer.buffers["running_mean"][...] = rng.standard_normal(N)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    params_before = {k: v.copy() for k, v in layer.params.items()}
    arrays = check("BatchNorm1d", layer, 3.0 * rng.standard_normal((M, N)) + 1.0)
    assert set(arrays) == {"input", "weight", "bias"}
    for name, value in before.items():  # the running statistics are put back
        np.testing.assert_array_equal(layer.buffers[name], value)
    for name, value in params_before.items():  # the parameters are restored exactly
        np.testing.assert_array_equal(layer.params[name], value)


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_with_an_explicit_mask(p, rng):
    layer = Dropout(p).build("cpu", "float64")
    x = rng.standard_normal((M, N))
    mask = (rng.random((M, N)) >= p).astype(np.float64)
    mask[0] = 0.0  # a fully dropped row
    w = rng.standard_normal((M, N))
    layer.next_mask = mask
    arrays = check(f"Dropout({p})", layer, x, y=w)
    assert layer.next_mask is mask  # left as the next forward's mask, as it was found
    # the gradient is exactly the weighting through the mask, scaled by 1 / (1 - p)
    np.testing.assert_allclose(arrays["input"][1], w * mask / (1 - p), rtol=1e-15)
    np.testing.assert_allclose(arrays["input"][0], w * mask / (1 - p), rtol=1e-8, atol=1e-9)


def test_dropout_without_a_mask_gets_a_fixed_one(rng):
    """An active Dropout with no ``next_mask`` is checked with a mask drawn from the seed."""
    layer = Dropout(0.5)
    arrays = check("Dropout(0.5, seed mask)", layer, rng.standard_normal((M, N)))
    ana = arrays["input"][1]
    assert (ana == 0).any() and (ana != 0).any()


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name, inplace, rng):
    layer = ACTIVATIONS[name](inplace=inplace)
    x = away_from_zero(rng, (M, N), high=3.0)
    x_before = x.copy()
    arrays = check(f"{name}(inplace={inplace})", layer, x)
    assert set(arrays) == {"input"}
    np.testing.assert_array_equal(x, x_before)  # gradcheck hands in copies


# ------------------------------------------------------------------ the check has teeth
class WrongSquare(Layer):
    """y = x^2 with the derivative x instead of 2x."""

    def forward(self, x, training=False):
        self._x = x.copy()
        return x * x

    def backward(self, dy):
        return dy * self._x


class WrongScale(Layer):
    """y = a x with a parameter ``a`` whose gradient misses one sample."""

    def parameter_shapes(self):
        return {"a": (1,)}

    def initial_parameters(self, rng):
        return {"a": np.array([1.5])}

    def forward(self, x, training=False):
        self._x = x.copy()
        return self.params["a"] * x

    def backward(self, dy):
        self.grads["a"][...] = (dy * self._x)[1:].sum()
        return dy * self.params["a"]


def test_a_wrong_input_gradient_is_caught(rng):
    x = rng.standard_normal((M, N))
    assert gradcheck(WrongSquare(), x, raise_exception=False) is False
    with pytest.raises(GradcheckError, match="'input'") as info:
        gradcheck(WrongSquare(), x)
    assert info.value.name == "input" and info.value.error > 0.1


def test_a_wrong_parameter_gradient_is_caught(rng):
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongScale(), rng.standard_normal((M, N)))
    assert info.value.failed == ["a"]
    assert "relative error" in str(info.value)


def test_a_float32_layer_is_refused(rng):
    layer = Linear(N, 3).build("cpu", "float32", seed=0)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(layer, rng.standard_normal((M, N)))
