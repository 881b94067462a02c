"""docs/extending.md runs as written, and does what it says.

Its python code blocks are extracted and executed in order in one fresh namespace per test
(they build on each other, as a reader would type them). The registries they extend
(``ACTIVATIONS``, ``OPTIMIZERS``, ``HEADS``) are module-level dictionaries, so each test puts
them back as they were, and other tests never see ``softplus``, ``lion`` or ``huber``.

The assertions are on values: gradcheck returns True for the user's layer, for networks built
with it and for the user's head; training with the user's activation and optimizer lowers the
loss to under half its first-epoch value (the blobs are well separated: ~1.06 -> ~0.24 with
SGD, ~3.7 -> ~0.31 and ~3.8 -> ~0.36 with Lion today, so the factor of two is a wide margin,
not a tuned threshold); one Lion step matches the formula to float64 rounding (rtol 1e-15, a
handful of operations per entry).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.gradcheck import GradcheckError, gradcheck
from xpnet.heads import HEADS
from xpnet.layers import ACTIVATIONS, LAYERS, Layer
from xpnet.optimizers import OPTIMIZERS, Optimizer
from xpnet.parameters import FlatParameters

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def code_blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def doc():
    """The namespace after running every block of the guide; the registries are restored."""
    saved = [(registry, dict(registry))
             for registry in (ACTIVATIONS, OPTIMIZERS, HEADS, LAYERS)]
    namespace = {"__name__": "extending_md"}
    try:
        for i, block in enumerate(code_blocks()):
            exec(compile(block, f"{DOC}:block{i}", "exec"), namespace)  # noqa: S102
        yield namespace
    finally:
        for registry, contents in saved:
            registry.clear()
            registry.update(contents)


def test_the_guide_has_its_parts():
    text = DOC.read_text(encoding="utf-8")
    blocks = code_blocks()
    assert len(blocks) >= 5
    layer_block = next(b for b in blocks if "class Softplus(Layer)" in b)
    assert len(layer_block.strip().splitlines()) <= 25  # the user's activation, imports included
    assert "two places: one class and one registry line" in text
    for line in ('ACTIVATIONS["softplus"] = Softplus', 'OPTIMIZERS["lion"] = Lion',
                 'HEADS["huber"] = Huber'):
        assert line in text


def test_user_activation_passes_gradcheck_and_trains(doc):
    Softplus = doc["Softplus"]
    assert issubclass(Softplus, Layer) and Softplus.__module__ == "extending_md"
    X, y = doc["X"], doc["y"]
    assert gradcheck(Softplus(), X[:8]) is True
    seq = xpnet.Sequential([xpnet.layers.Linear(4, 6), Softplus(), xpnet.layers.Linear(6, 3)],
                           head="softmax", dtype="float64", device="cpu", seed=1)
    assert gradcheck(seq, X[:8], y[:8]) is True
    # values: softplus(0) = log 2, and its derivative there is 1/2
    layer = Softplus().build("cpu", "float64")
    np.testing.assert_allclose(layer.forward(np.zeros((1, 2)), training=True), math.log(2.0),
                               rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones((1, 2))), 0.5, rtol=1e-15)
    # registered by name: MLP built Softplus layers, and training lowered the loss
    mlp = doc["mlp"]
    assert sum(isinstance(layer, Softplus) for layer in mlp.layers) == 2
    curve = mlp.trainer_.history.loss_curve_
    assert curve[-1] < 0.5 * curve[0]
    curve2 = doc["history2"].loss_curve_  # Softplus MLP trained by the registered "lion"
    assert curve2[-1] < 0.5 * curve2[0]


def test_a_broken_user_activation_fails_gradcheck(doc):
    class BrokenSoftplus(doc["Softplus"]):
        def backward(self, dy):
            dy *= 0.5  # sigmoid(0) everywhere: right only at z = 0
            return dy

    rng = np.random.default_rng(3)
    assert gradcheck(BrokenSoftplus(), rng.standard_normal((6, 4)),
                     raise_exception=False) is False
    with pytest.raises(GradcheckError, match="'input'"):
        gradcheck(BrokenSoftplus(), rng.standard_normal((6, 4)))


def test_user_optimizer_trains_by_class_and_by_name(doc):
    Lion = doc["Lion"]
    assert issubclass(Lion, Optimizer)
    opt = doc["net"].trainer_.optimizer
    assert isinstance(opt, Lion)
    assert opt.hyperparameters() == {"lr": 3e-3, "beta1": 0.9, "beta2": 0.99,
                                     "weight_decay": 0.1}
    assert opt.t == 15 * math.ceil(300 / 32)
    curve = doc["history"].loss_curve_
    assert curve[-1] < 0.5 * curve[0]
    assert isinstance(doc["net2"].trainer_.optimizer, Lion)  # by the registered name
    with pytest.raises(ValueError, match="no option 'beta3'"):
        Lion(doc["net2"], beta3=0.5)


def test_one_lion_step_matches_the_formula(doc):
    rng = np.random.default_rng(4)
    p0, g, m0 = (rng.standard_normal(7) for _ in range(3))
    flat = FlatParameters.from_arrays({"w": p0.copy()})
    opt = doc["Lion"](flat, lr=0.01, beta1=0.8, beta2=0.95, weight_decay=0.2)
    opt.state["m"][...] = m0
    flat.grad[...] = g
    opt.step()
    c = 0.8 * m0 + 0.2 * g
    np.testing.assert_allclose(flat.data, p0 * (1 - 0.01 * 0.2) - 0.01 * np.sign(c),
                               rtol=1e-15)
    np.testing.assert_allclose(opt.state["m"], 0.95 * m0 + 0.05 * g, rtol=1e-15)


def test_user_head(doc):
    reg, Huber = doc["reg"], doc["Huber"]
    assert isinstance(reg.head, Huber)
    assert gradcheck(reg, doc["X"][:8], doc["Y"][:8]) is True
    # values: a residual of 0.5 costs 0.125, one of 3 costs 2.5; the gradient is clipped at 1
    loss, grad = Huber().loss_and_grad(np.array([[0.5, 3.0]]), np.zeros((1, 2)))
    assert float(loss) == pytest.approx(0.125 + 2.5, rel=1e-15)
    np.testing.assert_array_equal(grad, [[0.5, 1.0]])


def test_the_registries_were_restored():
    assert "softplus" not in ACTIVATIONS and "lion" not in OPTIMIZERS and "huber" not in HEADS
    assert "LayerNorm" not in LAYERS and "GaussianDropout" not in LAYERS


def test_user_layers_with_parameters_and_randomness_save_load_and_resume_exactly(doc):
    LayerNorm, straight = doc["LayerNorm"], doc["straight"]
    assert gradcheck(LayerNorm(4), doc["X"][:8]) is True
    net = xpnet.Sequential([xpnet.layers.Linear(4, 6), LayerNorm(6), xpnet.layers.Linear(6, 3)],
                           head="softmax", dtype="float64", device="cpu", seed=1)
    assert gradcheck(net, doc["X"][:8], doc["y"][:8]) is True
    # values: each row of the normalised output has mean 0 and variance 1/(1 + eps/var)
    out = LayerNorm(4).build("cpu", "float64").forward(doc["X"][:5])
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(out.var(axis=1), 1.0, rtol=1e-4)
    assert straight.state_dict()["1.weight"].shape == (16,)  # in the flat buffer, named
    loaded = doc["loaded"]
    assert [type(layer).__name__ for layer in loaded.layers] == \
        ["Linear", "LayerNorm", "Softplus", "GaussianDropout", "Linear"]
    np.testing.assert_array_equal(loaded.flat.data, straight.flat.data)
    # the reseeded noise: the resumed run equals the straight one bit for bit ...
    np.testing.assert_array_equal(doc["resumed"].flat.data, straight.flat.data)
    # ... and the noise mattered (another seed draws other noise and ends elsewhere)
    other = doc["build"]()
    xpnet.fit(other, doc["X"], doc["y"], **{**doc["settings"], "seed": 4})
    assert np.abs(other.flat.data - straight.flat.data).max() > 1e-6


def test_user_callback_halves_the_rate_when_the_dev_loss_rises(doc):
    halve, history = doc["halve"], doc["history3"]
    rises = [e + 1 for e in range(1, len(history.val_loss))
             if history.val_loss[e] > history.val_loss[e - 1]]
    assert halve.halvings == rises and rises  # lr 0.5 on 16-row batches overshoots at times
    assert history.lr[-1] == pytest.approx(0.5 * 0.5 ** len(rises), rel=1e-15)
