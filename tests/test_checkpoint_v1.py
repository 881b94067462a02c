"""Format-v1 checkpoints, written by the v1 release (tests/fixtures/checkpoint_v1), still load and
give the probabilities and predictions that release computed.

Tolerance: the same float32 operations in the same order give the same bits, but the v2 code
may group a product differently (e.g. the batch-norm scale), so float32 outputs are compared to
1e-6 relative (a few ulps of a probability), float64 to 1e-12.
"""

from pathlib import Path

import numpy as np
import pytest

from xpnet.checkpoint import load_checkpoint, sub_state
from xpnet.preprocessing import Scaler

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoint_v1"
NAMES = ["softmax_bn_dropout", "sigmoid_l2", "identity_leaky", "plain_float64",
         "cli_mnist_bn_dropout"]


@pytest.mark.parametrize("name", NAMES)
def test_v1_checkpoint_predicts_as_the_release_did(name):
    net, state = load_checkpoint(FIXTURES / f"{name}.npz", device="cpu")
    expected = np.load(FIXTURES / f"{name}.expected.npz")
    X = expected["X_raw"]
    if state is not None and "scaler" in state["json"]:
        X = Scaler.from_state(sub_state(state, "scaler")).transform(X, net.dtype)
    tol = 1e-12 if net.dtype == "float64" else 1e-6
    np.testing.assert_allclose(net.forward(X), expected["expected_forward"], rtol=tol,
                               atol=tol)
    if "expected_predict" in expected.files:
        np.testing.assert_array_equal(net.predict(X), expected["expected_predict"])


@pytest.mark.parametrize("name", ["softmax_bn_dropout", "cli_mnist_bn_dropout"])
def test_v1_checkpoint_keeps_its_trainer_state(name):
    _, state = load_checkpoint(FIXTURES / f"{name}.npz", device="cpu")
    trainer = sub_state(state, "trainer")
    assert trainer["json"]["epoch"] >= 2
    assert trainer["json"]["optimizer"]["name"] == "adam"
