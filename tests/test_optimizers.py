"""Optimizers and learning-rate schedules against plain reference updates and torch.optim.

The reference updates below are written out step by step from the formulas in
``xpnet/optimizers.py`` (PyTorch's conventions); where PyTorch is importable the same runs are
also compared with ``torch.optim.SGD`` / ``torch.optim.Adam`` in float64.
"""

from __future__ import annotations

import copy
import math
import tracemalloc

import numpy as np
import pytest

from xpnet.optimizers import OPTIMIZERS, SCHEDULES, Schedule, make_optimizer

try:  # PyTorch is the oracle where it is installed
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

NAMES = ("gd", "sgd", "momentum", "nesterov", "adam")
HYPER = {"momentum": 0.8, "beta1": 0.85, "beta2": 0.995, "eps": 1e-7}
N_STEPS = 5
RTOL, ATOL = 1e-12, 1e-15


# ---------------------------------------------------------------------------- the tiny problem
def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((2, 1, 3))]


def problem_coeffs(seed=1):
    """Gradient of f(p) = sum(c p^2 / 2 + d p + sin(p)): depends on the current parameters, so
    an error in one step carries into the next ones."""
    rng = np.random.default_rng(seed)
    shapes = [p.shape for p in make_params()]
    return [(rng.uniform(0.5, 2.0, s), rng.standard_normal(s)) for s in shapes]


def grad_of(p, coeffs):
    c, d = coeffs
    return c * p + d + np.cos(p)


def lr_at(t, base):
    """A learning rate that changes every step (the trainer sets ``opt.lr`` before each step)."""
    return base * (1.0 + 0.5 * math.sin(t))


# ---------------------------------------------------------------------------- reference updates
def reference_run(name, params0, coeffs, base_lr, n_steps, changing_lr=False):
    """Plain, allocation-happy implementation of the docstring formulas."""
    mu, b1, b2, eps = HYPER["momentum"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"]
    p = [a.copy() for a in params0]
    v = [np.zeros_like(a) for a in p]
    m = [np.zeros_like(a) for a in p]
    for t in range(1, n_steps + 1):
        lr = lr_at(t, base_lr) if changing_lr else base_lr
        for i in range(len(p)):
            g = grad_of(p[i], coeffs[i])
            if name in ("gd", "sgd"):
                p[i] = p[i] - lr * g
            elif name == "momentum":
                v[i] = mu * v[i] + g
                p[i] = p[i] - lr * v[i]
            elif name == "nesterov":
                v[i] = mu * v[i] + g
                p[i] = p[i] - lr * (g + mu * v[i])
            elif name == "adam":
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                m_hat = m[i] / (1 - b1**t)
                v_hat = v[i] / (1 - b2**t)
                p[i] = p[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:  # pragma: no cover
                raise AssertionError(name)
    return p


def xpnet_run(name, params0, coeffs, base_lr, n_steps, changing_lr=False):
    params = [a.copy() for a in params0]
    opt = make_optimizer(name, params, base_lr, **HYPER)
    for t in range(1, n_steps + 1):
        if changing_lr:
            opt.lr = lr_at(t, base_lr)
        opt.step([grad_of(p, c) for p, c in zip(params, coeffs)])
    return params, opt


def torch_run(name, params0, coeffs, base_lr, n_steps, changing_lr=False):
    tp = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in params0]
    if name in ("gd", "sgd"):
        opt = torch.optim.SGD(tp, lr=base_lr)
    elif name in ("momentum", "nesterov"):
        opt = torch.optim.SGD(tp, lr=base_lr, momentum=HYPER["momentum"],
                              nesterov=name == "nesterov")
    else:
        opt = torch.optim.Adam(tp, lr=base_lr, betas=(HYPER["beta1"], HYPER["beta2"]),
                               eps=HYPER["eps"])
    for t in range(1, n_steps + 1):
        if changing_lr:
            for group in opt.param_groups:
                group["lr"] = lr_at(t, base_lr)
        for p, c in zip(tp, coeffs):
            p.grad = torch.from_numpy(grad_of(p.detach().numpy(), c))
        opt.step()
    return [p.detach().numpy().copy() for p in tp]


def assert_params_close(actual, expected, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- updates
@pytest.mark.parametrize("changing_lr", [False, True], ids=["fixed-lr", "changing-lr"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_update(name, changing_lr):
    params0, coeffs = make_params(), problem_coeffs()
    lr = 0.05
    got, opt = xpnet_run(name, params0, coeffs, lr, N_STEPS, changing_lr)
    want = reference_run(name, params0, coeffs, lr, N_STEPS, changing_lr)
    assert_params_close(got, want)
    assert opt.t == N_STEPS
    # the run moved the parameters, so the comparison above is not vacuous
    assert all(not np.allclose(g, p) for g, p in zip(got, params0))


@needs_torch
@pytest.mark.parametrize("changing_lr", [False, True], ids=["fixed-lr", "changing-lr"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_optim(name, changing_lr):
    params0, coeffs = make_params(), problem_coeffs()
    lr = 0.05
    got, _ = xpnet_run(name, params0, coeffs, lr, N_STEPS, changing_lr)
    want = torch_run(name, params0, coeffs, lr, N_STEPS, changing_lr)
    assert_params_close(got, want)


def test_gd_and_sgd_are_the_same_update():
    params0, coeffs = make_params(), problem_coeffs()
    a, _ = xpnet_run("gd", params0, coeffs, 0.1, N_STEPS)
    b, _ = xpnet_run("sgd", params0, coeffs, 0.1, N_STEPS)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_momentum_differs_from_nesterov_and_plain_sgd():
    # guards the reference itself: the three updates really are different rules
    params0, coeffs = make_params(), problem_coeffs()
    runs = {n: xpnet_run(n, params0, coeffs, 0.05, N_STEPS)[0] for n in ("sgd", "momentum",
                                                                         "nesterov")}
    assert not np.allclose(runs["sgd"][0], runs["momentum"][0])
    assert not np.allclose(runs["momentum"][0], runs["nesterov"][0])


def test_adam_hyperparameters_are_used():
    params0 = make_params()
    params = [a.copy() for a in params0]
    opt = make_optimizer("adam", params, 0.01, beta1=0.5, beta2=0.9, eps=1e-3)
    assert (opt.beta1, opt.beta2, opt.eps) == (0.5, 0.9, 1e-3)
    mom = make_optimizer("nesterov", [a.copy() for a in params0], 0.01, momentum=0.3)
    assert mom.momentum == 0.3
    # momentum/beta keywords meant for other optimizers are ignored by plain gd
    gd = make_optimizer("gd", [a.copy() for a in params0], 0.01, momentum=0.3, beta1=0.1)
    assert gd.hyperparameters() == {"lr": 0.01}


# ---------------------------------------------------------------------------- in place
@pytest.mark.parametrize("name", NAMES)
def test_updates_in_place_and_state_allocated_once(name):
    params0, coeffs = make_params(), problem_coeffs()
    params = [a.copy() for a in params0]
    param_ids = [id(p) for p in params]
    opt = make_optimizer(name, params, 0.05, **HYPER)
    assert all(a is b for a, b in zip(opt.params, params))
    state_ids = {k: [id(a) for a in lst] for k, lst in opt.state.items()}
    expected_state = {"momentum": {"velocity"}, "nesterov": {"velocity"}, "adam": {"m", "v"}}
    assert set(opt.state) == expected_state.get(name, set())
    for lst in opt.state.values():
        for a, p in zip(lst, params):
            assert a.shape == p.shape and a.dtype == p.dtype
            assert not np.any(a)  # zero-initialised
    for _ in range(N_STEPS):
        opt.step([grad_of(p, c) for p, c in zip(params, coeffs)])
    assert [id(p) for p in params] == param_ids
    assert all(a is b for a, b in zip(opt.params, params))
    assert {k: [id(a) for a in lst] for k, lst in opt.state.items()} == state_ids
    # the caller's arrays hold the result (the optimizer did not rebind copies)
    assert_params_close(params, reference_run(name, params0, coeffs, 0.05, N_STEPS))


@pytest.mark.parametrize("name", NAMES)
def test_step_allocates_no_parameter_sized_arrays(name):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal((400, 300)), rng.standard_normal(300)]
    grads = [rng.standard_normal(p.shape) for p in params]
    opt = make_optimizer(name, params, 1e-3, **HYPER)
    opt.step(grads)  # warm-up: any lazy allocation would happen here
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            opt.step(grads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # one temporary the size of the big parameter would be params[0].nbytes (960 kB)
    assert peak - before < params[0].nbytes // 4


# ---------------------------------------------------------------------------- state round trip
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    params0, coeffs = make_params(), problem_coeffs()
    a, opt_a = xpnet_run(name, params0, coeffs, 0.05, 3)
    saved = copy.deepcopy(opt_a.state_dict())  # a checkpoint copies the arrays out
    saved_params = [p.copy() for p in a]
    assert saved["json"]["name"] == name and saved["json"]["t"] == 3
    assert saved["json"]["lr"] == 0.05

    b = [p.copy() for p in saved_params]
    opt_b = make_optimizer(name, b, 0.05, **HYPER)
    opt_b.load_state_dict(saved, send=np.asarray)
    assert opt_b.t == 3
    for _ in range(3):
        opt_a.step([grad_of(p, c) for p, c in zip(a, coeffs)])
        opt_b.step([grad_of(p, c) for p, c in zip(b, coeffs)])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # and both equal six uninterrupted reference steps
    assert_params_close(b, reference_run(name, params0, coeffs, 0.05, 6))


@pytest.mark.parametrize("name", ("momentum", "adam"))
def test_fresh_state_differs_from_loaded_state(name):
    # without loading, the continuation is different: the round-trip test above is not vacuous
    params0, coeffs = make_params(), problem_coeffs()
    a, opt_a = xpnet_run(name, params0, coeffs, 0.05, 3)
    b = [p.copy() for p in a]
    opt_b = make_optimizer(name, b, 0.05, **HYPER)
    opt_a.step([grad_of(p, c) for p, c in zip(a, coeffs)])
    opt_b.step([grad_of(p, c) for p, c in zip(b, coeffs)])
    assert not np.allclose(a[0], b[0], rtol=1e-9, atol=0)


def test_load_state_dict_rejects_other_optimizer():
    params = make_params()
    state = make_optimizer("momentum", params, 0.1).state_dict()
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer("nesterov", make_params(), 0.1).load_state_dict(state, np.asarray)


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None, True])
def test_bad_learning_rate(name, lr):
    with pytest.raises(ValueError, match="learning rate"):
        make_optimizer(name, make_params(), lr)


@pytest.mark.parametrize("name", ("momentum", "nesterov"))
@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1, float("nan")])
def test_bad_momentum(name, momentum):
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer(name, make_params(), 0.1, momentum=momentum)


@pytest.mark.parametrize("kwargs", [{"beta1": 1.0}, {"beta1": -0.1}, {"beta2": 1.0},
                                    {"beta2": 2.0}, {"beta1": float("nan")}, {"eps": 0.0},
                                    {"eps": -1e-8}, {"eps": float("nan")}])
def test_bad_adam_hyperparameters(kwargs):
    with pytest.raises(ValueError, match="beta|eps"):
        make_optimizer("adam", make_params(), 0.1, **kwargs)


@pytest.mark.parametrize("name", ["rmsprop", "Adam", "", None])
def test_unknown_optimizer(name):
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(name, make_params(), 0.1)


def test_registry_lists_the_documented_optimizers():
    assert set(OPTIMIZERS) == set(NAMES)
    assert set(SCHEDULES) == {"constant", "step", "cosine"}


# ---------------------------------------------------------------------------- schedules
def test_constant_schedule():
    s = Schedule("constant", 0.3, total_steps=50)
    assert all(s(step, step // 7) == 0.3 for step in range(60))


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (4, 1.0)])
def test_step_schedule(step_size, gamma):
    base = 0.2
    s = Schedule("step", base, total_steps=100, step_size=step_size, gamma=gamma)
    for epoch in range(12):
        expected = base * gamma ** (epoch // step_size)
        # the step index does not matter, only the epoch
        assert s(0, epoch) == pytest.approx(expected, rel=1e-15)
        assert s(10 * epoch + 5, epoch) == pytest.approx(expected, rel=1e-15)
    # constant inside a window, multiplied by gamma at each boundary
    assert s(0, step_size - 1) == base
    assert s(0, step_size) == pytest.approx(base * gamma, rel=1e-15)


@pytest.mark.parametrize("total", [1, 2, 10, 37])
def test_cosine_schedule(total):
    base = 0.4
    s = Schedule("cosine", base, total_steps=total)
    assert s(0, 0) == base
    assert s(total, 0) == pytest.approx(0.0, abs=1e-15 * base)
    assert s(total + 5, 3) == pytest.approx(0.0, abs=1e-15 * base)  # clamped after the end
    if total % 2 == 0:
        assert s(total // 2, 0) == pytest.approx(base / 2, rel=1e-12)
    values = [s(k, 0) for k in range(total + 1)]
    for k, v in enumerate(values):
        assert v == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * k / total)), rel=1e-12,
                                  abs=1e-15)
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing


@pytest.mark.parametrize("kwargs", [
    {"kind": "linear"},
    {"kind": "step", "step_size": 0},
    {"kind": "step", "step_size": 1.5},
    {"kind": "step", "gamma": 0.0},
    {"kind": "step", "gamma": 1.5},
    {"kind": "constant", "lr": 0.0},
    {"kind": "cosine", "lr": float("nan")},
])
def test_bad_schedule_arguments(kwargs):
    args = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError):
        Schedule(**args)
