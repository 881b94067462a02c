"""Backpropagation against central finite differences, float64 on the CPU.

Every hidden activation (relu, leaky_relu, tanh, sigmoid, gelu, silu) x output head, depths 1
to 4, each with plain / L2 / batch norm / dropout (explicit masks, including a fully dropped row)
/ all three together. The measure is ``||num - ana|| / (||num|| + ||ana||)`` per named
parameter array (every ``i.weight`` and ``i.bias`` of ``net.named_parameters()``: Linear weights
and biases, batch-norm weights and biases), and must stay below 1e-6. With eps = 1e-6 the
truncation error is O(eps^2) ~ 1e-12 and rounding is ~1e-16 * |loss| / eps ~ 1e-10, so correct
gradients land around 1e-8 or better; a wrong term lands far above (see the sensitivity tests at
the bottom).

One kind of array is checked differently: the bias of a Linear that feeds a batch norm. Its
true gradient is exactly 0 (the normalisation subtracts the batch mean, bias included), so a
relative error of two rounding residues means nothing. Instead its analytic gradient must be
below ``ZERO_ANALYTIC`` = 1e-12 (it is a sum of m = 7 terms that cancel exactly, so rounding
leaves ~1e-16 times the O(1) terms) and its central difference below ``ZERO_NUMERICAL`` = 1e-8
(the loss does not depend on it at all, so the difference is rounding noise, ~1e-16 * |loss| /
eps ~ 1e-10 per entry).

The public :func:`xpnet.gradcheck.gradcheck` is exercised on networks at the end of this file,
and on each layer alone in ``tests/layers/test_layer_gradcheck.py``.
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
    analytic_grads,
    hidden_preactivations,
    make_masks,
    make_problem,
    numerical_grads,
    randomize_params,
    rel_error,
    to_host,
    zero_gradient_names,
)

from xpnet import MLP, Sequential
from xpnet.gradcheck import GradcheckError, gradcheck
from xpnet.layers import GELU, BatchNorm1d, Dropout, Linear, SiLU

SIZES = {1: [4, 3], 2: [4, 5, 3], 3: [4, 5, 4, 3], 4: [4, 5, 4, 3, 3]}
M = 7
TOL = 1e-6
EPS = 1e-6
ZERO_ANALYTIC = 1e-12
ZERO_NUMERICAL = 1e-8
# A ReLU pre-activation must be this far from 0 for the check to be valid. Nudging one parameter
# by eps = 1e-6 moves a pre-activation by about eps * |input to that layer| plus what the nudge
# of an earlier layer propagates through O(1) weights; with the O(1) inputs and weights used
# here that is ~1e-5 at most, so a margin of 1e-4 keeps every finite difference on one side of
# the kink with room to spare.
KINK_MARGIN = 1e-4


def _cases():
    cases = []
    for act in ACTIVATIONS:
        for out in OUTPUTS:
            for depth in SIZES:
                for variant in VARIANTS:
                    if depth == 1 and variant not in ("plain", "l2"):
                        continue  # no hidden layer: batch norm and dropout do not apply
                    cases.append(pytest.param(act, out, depth, variant,
                                              id=f"{act}-{out}-d{depth}-{variant}"))
    return cases


def _build(activation, output, depth, variant, seed):
    rng = np.random.default_rng(seed)
    net = MLP(SIZES[depth], activation=activation, output=output, init="xavier",
              dtype="float64", device="cpu", seed=seed, **VARIANTS[variant])
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    masks = make_masks(net, M, rng) if net.dropout else None
    return net, X, y, masks


def _assert_clear_of_kinks(net, X, masks):
    if net.activation not in ("relu", "leaky_relu"):
        return  # tanh and sigmoid are smooth
    Zs = hidden_preactivations(net, X, masks)
    if not Zs:
        return  # no hidden layer
    closest = min(float(np.abs(Z).min()) for Z in Zs)
    assert closest > KINK_MARGIN, f"a ReLU pre-activation is {closest:.2e} from the kink"


def _names(net):
    return [name for name, _ in net.named_parameters()]


def _check_arrays(case, names, zero, num, ana, record=True):
    """Relative error of each array (absolute bounds for the structurally zero ones); returns
    ``{name: relative error}`` of the others."""
    errors = {}
    for name, n, a in zip(names, num, ana):
        assert n.shape == a.shape
        if name in zero:
            assert np.linalg.norm(a) < ZERO_ANALYTIC, f"{case}: {name} analytic {a}"
            assert np.linalg.norm(n) < ZERO_NUMERICAL, f"{case}: {name} numerical {n}"
            continue
        errors[name] = rel_error(n, a)
        if record:
            RECORDS["gradcheck"].add(f"{case} :: {name}", errors[name])
    return errors


@pytest.mark.parametrize("activation, output, depth, variant", _cases())
def test_gradients_match_finite_differences(activation, output, depth, variant):
    case = f"{activation}/{output}/depth{depth}/{variant}"
    net, X, y, masks = _build(activation, output, depth, variant, zlib.crc32(case.encode()))
    _assert_clear_of_kinks(net, X, masks)

    loss, ana = analytic_grads(net, X, y, masks)
    num = numerical_grads(net, X, y, masks, eps=EPS)

    names = _names(net)
    n_hidden = depth - 1
    assert len(ana) == len(num) == len(names) == 2 * depth + (2 * n_hidden if net.batch_norm
                                                               else 0)
    zero = zero_gradient_names(net)
    assert len(zero) == (n_hidden if net.batch_norm else 0)
    # numerical_grads restored every parameter exactly: the loss is reproduced bit for bit.
    assert net.loss_and_grads(X, y, dropout_masks=masks)[0] == loss
    # Guard against a vacuous pass (both sides zero).
    assert sum(np.linalg.norm(g) for g in num) > 1e-3

    errors = _check_arrays(case, names, zero, num, ana)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"{case}: {worst} relative error {errors[worst]:.3e}; {errors}"


def test_bn_parameters_are_checked(rng):
    """The batch-norm weights and biases are in named_parameters() (views of the BN layers' own
    arrays) and their gradients, written by the BN layers, match finite differences."""
    net = MLP([4, 5, 4, 3], activation="tanh", batch_norm=True, dtype="float64", device="cpu",
              seed=1)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    bns = [(i, layer) for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm1d)]
    assert [i for i, _ in bns] == [1, 4]
    names = _names(net)
    params, grads = dict(net.named_parameters()), dict(zip(names, net.gradients()))
    for i, bn in bns:
        for p in ("weight", "bias"):
            assert np.shares_memory(params[f"{i}.{p}"], bn.params[p])
            assert np.shares_memory(grads[f"{i}.{p}"], bn.grads[p])
    net.loss_and_grads(X, y)
    ana = {f"{i}.{p}": to_host(net, [bn.grads[p]])[0] for i, bn in bns for p in ("weight", "bias")}
    num = dict(zip(names, numerical_grads(net, X, y)))
    assert len(num) == 2 * net.n_layers + 2 * len(bns)
    for name, a in ana.items():
        assert np.linalg.norm(num[name]) > 1e-3
        assert rel_error(num[name], a) < TOL, name


def test_numerical_grads_leaves_net_unchanged(rng):
    net = MLP([4, 5, 3], batch_norm=True, dropout=0.3, dtype="float64", device="cpu", seed=2)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    masks = make_masks(net, M, rng)
    before = to_host(net, net.parameters() + net.buffers())
    numerical_grads(net, X, y, masks)
    after = to_host(net, net.parameters() + net.buffers())
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ the check has teeth
def _worst_error(net, X, y, masks=None):
    """The worst relative error over the arrays with a non-zero true gradient; the others must
    stay within their absolute bounds, or count as an error of 1."""
    _, ana = analytic_grads(net, X, y, masks)
    num = numerical_grads(net, X, y, masks)
    zero = zero_gradient_names(net)
    worst = 0.0
    for name, n, a in zip(_names(net), num, ana):
        if name in zero:
            ok = np.linalg.norm(a) < ZERO_ANALYTIC and np.linalg.norm(n) < ZERO_NUMERICAL
            worst = max(worst, 0.0 if ok else 1.0)
        else:
            worst = max(worst, rel_error(n, a))
    return worst


def _break_tanh_derivative(net):
    """Patch the tanh layer's backward to use 1 - a instead of 1 - a^2 (its forward is wrapped
    to keep the output ``a``; only public methods are replaced)."""
    act = net.layers[1]
    forward, saved = act.forward, {}

    def forward_keeping_output(x, training=False):
        saved["a"] = forward(x, training)
        return saved["a"]

    def wrong_tanh_backward(dy):  # 1 - a instead of 1 - a^2
        dy *= 1 - saved["a"]
        return dy

    act.forward, act.backward = forward_keeping_output, wrong_tanh_backward


def _drop_batch_norm_coupling(net):
    """Patch the BN layer's backward to treat the batch mean and variance as constants."""
    bn = net.layers[1]
    assert isinstance(bn, BatchNorm1d)
    forward, saved = bn.forward, {}

    def forward_keeping_input(x, training=False):
        if training:
            saved["x"] = x.copy()
        return forward(x, training)

    def bn_backward_without_coupling(dy):
        x = saved["x"]
        inv_std = 1.0 / np.sqrt(x.var(axis=0) + bn.eps)
        xhat = (x - x.mean(axis=0)) * inv_std
        bn.grads["weight"][...] = (dy * xhat).sum(axis=0)
        bn.grads["bias"][...] = dy.sum(axis=0)
        dy *= bn.params["weight"] * inv_std
        return dy

    bn.forward, bn.backward = forward_keeping_input, bn_backward_without_coupling


def test_check_detects_a_wrong_activation_derivative(rng):
    net = MLP([4, 5, 3], activation="tanh", dtype="float64", device="cpu", seed=3)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    assert _worst_error(net, X, y) < TOL
    assert gradcheck(net, X, y)

    _break_tanh_derivative(net)
    assert _worst_error(net, X, y) > 1e-3
    assert gradcheck(net, X, y, raise_exception=False) is False
    with pytest.raises(GradcheckError) as info:
        gradcheck(net, X, y)
    # the output layer's gradients do not go through the activation: only layer 0 is wrong
    assert info.value.failed and set(info.value.failed) <= {"0.weight", "0.bias"}
    assert info.value.error > 1e-3
    assert repr(info.value.name) in str(info.value)


def test_check_detects_missing_batch_norm_coupling(rng):
    """Dropping the batch-statistics terms of the BN backward (treating mu and var as constants)
    is a classic bug; the check must catch it."""
    net = MLP([4, 5, 3], activation="tanh", batch_norm=True, dtype="float64", device="cpu",
              seed=4)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    assert _worst_error(net, X, y) < TOL
    assert gradcheck(net, X, y)

    _drop_batch_norm_coupling(net)
    assert _worst_error(net, X, y) > 1e-3
    with pytest.raises(GradcheckError, match="gradcheck of MLP failed"):
        gradcheck(net, X, y)


# ------------------------------------------------------------------ the public gradcheck
@pytest.mark.parametrize("variant", ["plain", "bn+dropout+l2"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_public_gradcheck_passes_and_leaves_the_net_as_found(activation, variant, rng):
    """``xpnet.gradcheck.gradcheck(net, X, y)`` with its default dropout masks: True, with the
    parameters and running statistics untouched and the analytic gradients in the buffer."""
    net = MLP([4, 5, 4, 3], activation=activation, dtype="float64", device="cpu", seed=5,
              **VARIANTS[variant])
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    before = to_host(net, net.parameters() + net.buffers())
    assert gradcheck(net, X, y) is True
    for b, a in zip(before, to_host(net, net.parameters() + net.buffers())):
        np.testing.assert_array_equal(a, b)
    grads = to_host(net, net.gradients())
    masks = None
    if net.dropout:  # the masks gradcheck draws by default, redrawn here the same way
        draw = np.random.default_rng(0)
        masks = [(draw.random((M, n)) >= 0.3).astype(np.float64) for n in (5, 4)]
    net.loss_and_grads(X, y, dropout_masks=masks)
    for g, a in zip(grads, to_host(net, net.gradients())):
        np.testing.assert_array_equal(g, a)


def test_public_gradcheck_on_a_custom_sequential(rng):
    """Any stack of layers, not only an MLP: GELU and SiLU, a dropout, a batch norm whose input
    Linear bias has a zero gradient (the absolute floor ``atol`` covers it)."""
    net = Sequential([Linear(4, 6), BatchNorm1d(6), GELU(), Dropout(0.25), Linear(6, 5), SiLU(),
                      Linear(5, 2)], head="sigmoid", dtype="float64", device="cpu", seed=6)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    assert gradcheck(net, X, y)
    assert zero_gradient_names(net) == ["0.bias"]
    # and with a zero absolute floor, only that array fails (its relative error is meaningless)
    with pytest.raises(GradcheckError) as info:
        gradcheck(net, X, y, atol=0.0)
    assert info.value.failed == ["0.bias"]


def test_public_gradcheck_refuses_bad_input(rng):
    net32 = MLP([4, 5, 3], dtype="float32", device="cpu", seed=0)
    X, y = make_problem(net32, M, rng)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(net32, X, y)
    net = MLP([4, 5, 3], dtype="float64", device="cpu", seed=0)
    with pytest.raises(ValueError, match="targets"):
        gradcheck(net, X)
    with pytest.raises(TypeError):
        gradcheck(object(), X, y)
    assert issubclass(GradcheckError, AssertionError)


def test_zz_worst_error_summary():
    """Runs last in this module: reports the worst relative error of the parametrized checks."""
    rec = RECORDS["gradcheck"]
    if rec.count == 0:
        pytest.skip("no parametrized gradient check ran in this session (deselected)")
    print("\n" + rec.summary())
    assert rec.worst < TOL
