"""A network never writes into the caller's input array.

``Sequential.check_X`` hands the caller's own array to the first layer when it already has the
net's dtype and device (``device.send`` does not copy), and activations built ``inplace=True``
overwrite their input. ``Sequential`` keeps ``inplace`` only after a layer whose output is its own
scratch buffer (``output_reusable``: Linear, BatchNorm1d), so an in-place activation first, or
after a pass-through (``Dropout`` in inference, or with p = 0), never reaches the caller's X.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.layers import BatchNorm1d, Dropout, Linear, ReLU, Tanh

STACKS = {
    "Linear first": lambda: [Linear(4, 5), Tanh(inplace=True), Linear(5, 3)],
    "BatchNorm1d first": lambda: [BatchNorm1d(4), ReLU(inplace=True), Linear(4, 3)],
    "ReLU(inplace) first": lambda: [ReLU(inplace=True), Linear(4, 3)],
    "Dropout, Tanh(inplace) first": lambda: [Dropout(0.5), Tanh(inplace=True), Linear(4, 3)],
    "Dropout(0), ReLU(inplace) first": lambda: [Dropout(0.0), ReLU(inplace=True),
                                                 Linear(4, 3)],
    "Tanh, ReLU(inplace) after it": lambda: [Linear(4, 4), Tanh(), ReLU(inplace=True),
                                             Linear(4, 3)],
}


@pytest.mark.parametrize("make", list(STACKS.values()), ids=list(STACKS))
def test_input_is_left_alone(make, rng):
    net = xpnet.Sequential(make(), head="softmax", dtype="float64", device="cpu", seed=0)
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, size=6)
    X_before = X.copy()
    net.forward(X)
    net.loss_and_grads(X, y)
    net.evaluate(X, y)
    np.testing.assert_array_equal(X, X_before)


def test_inplace_after_a_layer_that_keeps_its_output_is_turned_off(rng):
    """Tanh keeps its output for backward; a ReLU(inplace=True) after it would overwrite that
    output and corrupt Tanh's gradient, so Sequential turns inplace off there (gradients stay
    exact), and keeps it on right after a Linear."""
    layers = [Linear(4, 5), Tanh(), ReLU(inplace=True), Linear(5, 3), ReLU(inplace=True),
              Linear(3, 2)]
    net = xpnet.Sequential(layers, head="softmax", dtype="float64", device="cpu", seed=0)
    assert [getattr(layer, "inplace", None) for layer in layers] == \
        [None, False, False, None, True, None]
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 2, size=6)
    assert xpnet.gradcheck(net, X, y)
