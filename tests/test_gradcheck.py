"""Backpropagation against central finite differences, float64 on the CPU.

Every hidden activation x output layer, depths 1 to 4, each with plain / L2 / batch norm /
dropout (explicit masks, including a fully dropped row) / all three together. The measure is
``||num - ana|| / (||num|| + ||ana||)`` per parameter array (W, b, and batch-norm gamma), and
must stay below 1e-6. With eps = 1e-6 the truncation error is O(eps^2) ~ 1e-12 and rounding is
~1e-16 * |loss| / eps ~ 1e-10, so correct gradients land around 1e-8 or better; a wrong term
lands far above (see the sensitivity tests at the bottom).
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
    param_names,
    randomize_params,
    rel_error,
    to_host,
)

from xpnet import MLP

SIZES = {1: [4, 3], 2: [4, 5, 3], 3: [4, 5, 4, 3], 4: [4, 5, 4, 3, 3]}
M = 7
TOL = 1e-6
EPS = 1e-6
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


@pytest.mark.parametrize("activation, output, depth, variant", _cases())
def test_gradients_match_finite_differences(activation, output, depth, variant):
    case = f"{activation}/{output}/depth{depth}/{variant}"
    net, X, y, masks = _build(activation, output, depth, variant, zlib.crc32(case.encode()))
    _assert_clear_of_kinks(net, X, masks)

    loss, ana = analytic_grads(net, X, y, masks)
    num = numerical_grads(net, X, y, masks, eps=EPS)

    names = param_names(net)
    n_hidden = depth - 1
    assert len(ana) == len(num) == len(names) == 2 * depth + (n_hidden if net.batch_norm else 0)
    # numerical_grads restored every parameter exactly: the loss is reproduced bit for bit.
    assert net.loss_and_grads(X, y, dropout_masks=masks)[0] == loss
    # Guard against a vacuous pass (both sides zero).
    assert sum(np.linalg.norm(g) for g in num) > 1e-3

    errors = {}
    for name, n, a in zip(names, num, ana):
        assert n.shape == a.shape
        errors[name] = rel_error(n, a)
        RECORDS["gradcheck"].add(f"{case} :: {name}", errors[name])
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"{case}: {worst} relative error {errors[worst]:.3e}; {errors}"


def test_bn_gamma_is_checked(rng):
    """The batch-norm scales are in parameters() and their gradients in bn_gamma_grads."""
    net = MLP([4, 5, 4, 3], activation="tanh", batch_norm=True, dtype="float64", device="cpu",
              seed=1)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    n_params = 2 * net.n_layers
    assert net.parameters()[n_params:] == list(net.bn_gamma)
    net.loss_and_grads(X, y)
    ana_gamma = to_host(net, net.bn_gamma_grads)
    num = numerical_grads(net, X, y)
    assert len(num) == n_params + 2
    for a, n in zip(ana_gamma, num[n_params:]):
        assert np.linalg.norm(n) > 1e-3
        assert rel_error(n, a) < TOL


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
    _, ana = analytic_grads(net, X, y, masks)
    num = numerical_grads(net, X, y, masks)
    return max(rel_error(n, a) for n, a in zip(num, ana))


def test_check_detects_a_wrong_activation_derivative(rng):
    net = MLP([4, 5, 3], activation="tanh", dtype="float64", device="cpu", seed=3)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    assert _worst_error(net, X, y) < TOL

    def wrong_tanh_back(xp, A, dA):  # 1 - A instead of 1 - A^2
        dA *= 1 - A
        return dA

    net._act_back = wrong_tanh_back
    assert _worst_error(net, X, y) > 1e-3


def test_check_detects_missing_batch_norm_coupling(rng):
    """Dropping the batch-statistics terms of the BN backward (treating mu and var as constants)
    is a classic bug; the check must catch it."""
    net = MLP([4, 5, 3], activation="tanh", batch_norm=True, dtype="float64", device="cpu",
              seed=4)
    randomize_params(net, rng)
    X, y = make_problem(net, M, rng)
    assert _worst_error(net, X, y) < TOL

    def bn_backward_without_coupling(l, dY, ws):
        net.bn_gamma_grads[l][...] = (dY * ws.xhat[l]).sum(axis=0)
        net.grads[l][1][...] = dY.sum(axis=0)
        dY *= net.bn_gamma[l] * ws.bn_inv_std[l]
        return dY

    net._bn_backward = bn_backward_without_coupling
    assert _worst_error(net, X, y) > 1e-3


def test_zz_worst_error_summary():
    """Runs last in this module: reports the worst relative error of the parametrized checks."""
    rec = RECORDS["gradcheck"]
    if rec.count == 0:
        pytest.skip("no parametrized gradient check ran in this session (deselected)")
    print("\n" + rec.summary())
    assert rec.worst < TOL
