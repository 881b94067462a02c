"""Optimizers and learning-rate schedules against plain reference updates and torch.optim.

The reference updates below are written out step by step from the formulas in
``xpnet/optimizers.py`` (PyTorch's conventions), one array at a time; xpnet's optimizers update
one flat buffer holding all of them. Where PyTorch is importable the same runs are also compared
with ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` / ``RMSprop`` in float64.
"""

from __future__ import annotations

import copy
import json
import math
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from xpnet.optimizers import (
    GD,
    OPTIMIZERS,
    SCHEDULES,
    Adam,
    AdamW,
    Momentum,
    RMSprop,
    Schedule,
    UnknownOptionError,
    make_optimizer,
    optimizer_options,
)
from xpnet.parameters import FlatParameters

try:  # PyTorch is the oracle where it is installed
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

NAMES = ("gd", "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
HYPER = {"momentum": 0.8, "beta1": 0.85, "beta2": 0.995, "eps": 1e-7, "weight_decay": 0.3,
         "alpha": 0.9}
# (optimizer, extra keyword arguments): every optimizer, and the variants with their own code
CASES = {
    "gd": ("gd", {}),
    "sgd": ("sgd", {}),
    "momentum": ("momentum", {}),
    "nesterov": ("nesterov", {}),
    "adam": ("adam", {}),
    "adamw": ("adamw", {}),
    "adamw-exempt": ("adamw", {"decay_all": False}),
    "rmsprop": ("rmsprop", {"momentum": 0.0}),
    "rmsprop-momentum": ("rmsprop", {}),
}
STATE = {"momentum": {"velocity"}, "nesterov": {"velocity"}, "adam": {"m", "v"},
         "adamw": {"m", "v"}, "adamw-exempt": {"m", "v"}, "rmsprop": {"square_avg"},
         "rmsprop-momentum": {"square_avg", "momentum_buffer"}}
N_STEPS = 5
RTOL, ATOL = 1e-12, 1e-15
PNAMES = ("0.weight", "0.bias", "2.weight")
NO_DECAY = frozenset({"0.bias"})  # a bias between two decayed weights: two decayed runs


def case_kwargs(case):
    """The hyperparameters ``case`` passes: HYPER's entries its optimizer takes, then its own."""
    name, extra = CASES[case]
    return {**{k: v for k, v in HYPER.items() if k in optimizer_options(name)}, **extra}


# ---------------------------------------------------------------------------- the tiny problem
def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((2, 1, 3))]


def make_flat(params0, no_decay=NO_DECAY, names=PNAMES):
    return FlatParameters.from_arrays(dict(zip(names, params0)), no_decay=no_decay)


def problem_coeffs(seed=1):
    """Gradient of f(p) = sum(c p^2 / 2 + d p + sin(p)): depends on the current parameters, so
    an error in one step carries into the next ones."""
    rng = np.random.default_rng(seed)
    shapes = [p.shape for p in make_params()]
    return [(rng.uniform(0.5, 2.0, s), rng.standard_normal(s)) for s in shapes]


def grad_of(p, coeffs):
    c, d = coeffs
    return c * p + d + np.cos(p)


def write_grads(flat, coeffs):
    """The gradient at the current parameters, written into ``flat.grad`` through its views."""
    for name, c in zip(flat.names, coeffs):
        flat.grads[name][...] = grad_of(flat.params[name], c)


def lr_at(t, base):
    """A learning rate that changes every step (the trainer sets ``opt.lr`` before each step)."""
    return base * (1.0 + 0.5 * math.sin(t))


# ---------------------------------------------------------------------------- reference updates
def reference_run(case, params0, coeffs, base_lr, n_steps, changing_lr=False):
    """Plain, allocation-happy implementation of the docstring formulas, one array at a time."""
    name, _ = CASES[case]
    kw = case_kwargs(case)
    mu, b1, b2, eps = kw.get("momentum"), kw.get("beta1"), kw.get("beta2"), kw.get("eps")
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
            elif name in ("adam", "adamw"):
                if name == "adamw" and (kw.get("decay_all", True) or PNAMES[i] not in NO_DECAY):
                    p[i] = p[i] * (1 - lr * kw["weight_decay"])
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                m_hat = m[i] / (1 - b1**t)
                v_hat = v[i] / (1 - b2**t)
                p[i] = p[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
            elif name == "rmsprop":
                v[i] = kw["alpha"] * v[i] + (1 - kw["alpha"]) * g * g
                avg = np.sqrt(v[i]) + eps
                if mu > 0:
                    m[i] = mu * m[i] + g / avg
                    p[i] = p[i] - lr * m[i]
                else:
                    p[i] = p[i] - lr * g / avg
            else:  # pragma: no cover
                raise AssertionError(name)
    return p


def xpnet_run(case, params0, coeffs, base_lr, n_steps, changing_lr=False):
    name, _ = CASES[case]
    flat = make_flat(params0)
    opt = make_optimizer(name, flat, base_lr, **case_kwargs(case))
    for t in range(1, n_steps + 1):
        if changing_lr:
            opt.lr = lr_at(t, base_lr)
        write_grads(flat, coeffs)
        opt.step()
    return [flat.params[n] for n in PNAMES], opt


def torch_run(case, params0, coeffs, base_lr, n_steps, changing_lr=False):
    name, _ = CASES[case]
    kw = case_kwargs(case)
    tp = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in params0]
    if name in ("gd", "sgd"):
        opt = torch.optim.SGD(tp, lr=base_lr)
    elif name in ("momentum", "nesterov"):
        opt = torch.optim.SGD(tp, lr=base_lr, momentum=kw["momentum"],
                              nesterov=name == "nesterov")
    elif name == "adam":
        opt = torch.optim.Adam(tp, lr=base_lr, betas=(kw["beta1"], kw["beta2"]), eps=kw["eps"])
    elif name == "adamw":
        wd = kw["weight_decay"]
        exempt = [not kw.get("decay_all", True) and n in NO_DECAY for n in PNAMES]
        groups = [{"params": [p for p, e in zip(tp, exempt) if not e], "weight_decay": wd},
                  {"params": [p for p, e in zip(tp, exempt) if e], "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=base_lr,
                                betas=(kw["beta1"], kw["beta2"]), eps=kw["eps"])
    else:
        opt = torch.optim.RMSprop(tp, lr=base_lr, alpha=kw["alpha"], eps=kw["eps"],
                                  momentum=kw["momentum"])
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
@pytest.mark.parametrize("case", CASES)
def test_matches_reference_update(case, changing_lr):
    params0, coeffs = make_params(), problem_coeffs()
    lr = 0.05
    got, opt = xpnet_run(case, params0, coeffs, lr, N_STEPS, changing_lr)
    want = reference_run(case, params0, coeffs, lr, N_STEPS, changing_lr)
    assert_params_close(got, want)
    assert opt.t == N_STEPS
    # the run moved the parameters, so the comparison above is not vacuous
    assert all(not np.allclose(g, p) for g, p in zip(got, params0))


@needs_torch
@pytest.mark.parametrize("changing_lr", [False, True], ids=["fixed-lr", "changing-lr"])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_optim(case, changing_lr):
    params0, coeffs = make_params(), problem_coeffs()
    lr = 0.05
    got, _ = xpnet_run(case, params0, coeffs, lr, N_STEPS, changing_lr)
    want = torch_run(case, params0, coeffs, lr, N_STEPS, changing_lr)
    assert_params_close(got, want)


@pytest.mark.parametrize("case", CASES)
def test_flat_buffer_equals_one_optimizer_per_array(case):
    # one optimizer over the whole buffer gives bit-identical results to stepping each array
    # in a buffer of its own (with its own AdamW exemption)
    name, _ = CASES[case]
    params0, coeffs = make_params(), problem_coeffs()
    whole, _ = xpnet_run(case, params0, coeffs, 0.05, N_STEPS, changing_lr=True)
    for pname, p0, c in zip(PNAMES, params0, coeffs):
        flat = make_flat([p0], no_decay={pname} & NO_DECAY, names=[pname])
        opt = make_optimizer(name, flat, 0.05, **case_kwargs(case))
        for t in range(1, N_STEPS + 1):
            opt.lr = lr_at(t, 0.05)
            write_grads(flat, [c])
            opt.step()
        np.testing.assert_array_equal(flat.params[pname], whole[PNAMES.index(pname)])


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


def test_adamw_decay_and_exemption_change_the_result():
    # guards the AdamW cases: decay moves every array, the exemption only the exempt bias
    params0, coeffs = make_params(), problem_coeffs()
    runs = {c: xpnet_run(c, params0, coeffs, 0.05, N_STEPS)[0]
            for c in ("adam", "adamw", "adamw-exempt")}
    for i, pname in enumerate(PNAMES):
        assert not np.allclose(runs["adam"][i], runs["adamw"][i], rtol=1e-9, atol=0)
        if pname in NO_DECAY:
            assert not np.allclose(runs["adamw"][i], runs["adamw-exempt"][i], rtol=1e-9, atol=0)
        else:
            np.testing.assert_array_equal(runs["adamw"][i], runs["adamw-exempt"][i])


def test_adamw_without_decay_is_adam():
    params0, coeffs = make_params(), problem_coeffs()
    results = []
    for name, kw in (("adam", {}), ("adamw", {"weight_decay": 0.0})):
        flat = make_flat(params0)
        opt = make_optimizer(name, flat, 0.05, **kw)
        for _ in range(N_STEPS):
            write_grads(flat, coeffs)
            opt.step()
        results.append(flat.data.copy())
    np.testing.assert_array_equal(*results)


def test_rmsprop_momentum_changes_the_result():
    params0, coeffs = make_params(), problem_coeffs()
    a, _ = xpnet_run("rmsprop", params0, coeffs, 0.05, N_STEPS)
    b, _ = xpnet_run("rmsprop-momentum", params0, coeffs, 0.05, N_STEPS)
    assert not np.allclose(a[0], b[0], rtol=1e-9, atol=0)


def test_hyperparameters_are_used():
    flat = make_flat(make_params())
    opt = make_optimizer("adam", flat, 0.01, beta1=0.5, beta2=0.9, eps=1e-3)
    assert (opt.beta1, opt.beta2, opt.eps) == (0.5, 0.9, 1e-3)
    mom = make_optimizer("nesterov", make_flat(make_params()), 0.01, momentum=0.3)
    assert mom.momentum == 0.3
    w = make_optimizer("adamw", make_flat(make_params()), 0.01, weight_decay=0.2,
                       decay_all=False)
    assert (w.weight_decay, w.decay_all) == (0.2, False)
    r = make_optimizer("rmsprop", make_flat(make_params()), 0.01, alpha=0.5, momentum=0.4)
    assert r.hyperparameters() == {"lr": 0.01, "alpha": 0.5, "eps": 1e-8, "momentum": 0.4}


def test_unknown_option_is_an_error():
    flat = make_flat(make_params())
    with pytest.raises(ValueError) as err:
        make_optimizer("gd", flat, 0.01, momentum=0.3)
    assert str(err.value) == "optimizer 'gd' has no option 'momentum'; its options are: lr"
    with pytest.raises(ValueError, match="optimizer 'gd' has no options 'momentum', 'beta1'"):
        make_optimizer("gd", flat, 0.01, momentum=0.3, beta1=0.1)
    with pytest.raises(ValueError, match="'momentum' has no option 'beta1'; its options are: "
                                         "lr, momentum$"):
        make_optimizer("momentum", flat, 0.01, beta1=0.1)
    with pytest.raises(ValueError, match="'adam' has no option 'weight_decay'"):
        make_optimizer("adam", flat, weight_decay=0.1)
    # the constructors say the same when called directly
    with pytest.raises(ValueError, match="optimizer 'gd' has no option 'momentum'"):
        GD(flat, 0.01, momentum=0.3)
    with pytest.raises(ValueError, match="optimizer 'momentum' has no option 'beta1'"):
        Momentum(flat, beta1=0.1)


def test_unknown_option_suggests_the_close_match():
    flat = make_flat(make_params())
    with pytest.raises(TypeError) as err:
        make_optimizer("momentum", flat, 0.01, momentun=0.9)
    assert str(err.value) == ("optimizer 'momentum' has no option 'momentun' (did you mean "
                              "'momentum'?); its options are: lr, momentum")
    assert isinstance(err.value, ValueError) and isinstance(err.value, UnknownOptionError)
    with pytest.raises(TypeError) as err:
        Adam(flat, beta_1=0.9, foo=1)  # the constructor says the same
    assert str(err.value) == ("optimizer 'adam' has no options 'beta_1' (did you mean "
                              "'beta1'?), 'foo'; its options are: lr, beta1, beta2, eps")
    with pytest.raises(UnknownOptionError, match=r"'alpah' \(did you mean 'alpha'\?\)"):
        make_optimizer("rmsprop", flat, alpah=0.9)
    with pytest.raises(UnknownOptionError, match=r"'decay_al' \(did you mean 'decay_all'\?\)"):
        AdamW(flat, decay_al=False)


def test_optimizer_options():
    assert optimizer_options("gd") == optimizer_options("sgd") == ("lr",)
    assert optimizer_options("momentum") == optimizer_options("nesterov") == ("lr", "momentum")
    assert optimizer_options("adam") == optimizer_options(Adam) == ("lr", "beta1", "beta2", "eps")
    assert optimizer_options(AdamW) == ("lr", "beta1", "beta2", "eps", "weight_decay",
                                        "decay_all")
    assert optimizer_options("rmsprop") == ("lr", "alpha", "eps", "momentum")
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizer_options("lbfgs")


@pytest.mark.parametrize("name,lr", [("gd", 0.1), ("sgd", 0.1), ("momentum", 0.05),
                                     ("nesterov", 0.05), ("adam", 2e-3), ("adamw", 2e-3),
                                     ("rmsprop", 1e-3)])
def test_defaults(name, lr):
    assert OPTIMIZERS[name].default_lr == lr
    opt = make_optimizer(name, make_flat(make_params()))
    assert opt.lr == lr and opt.t == 0
    hyper = opt.hyperparameters()
    assert list(hyper) == list(optimizer_options(name))
    json.dumps(opt.state_dict()["json"])  # JSON-able
    expected = {"gd": {}, "sgd": {}, "momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9},
                "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
                          "decay_all": True},
                "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0}}[name]
    assert hyper == {"lr": lr, **expected}


def test_accepts_an_object_with_flat_parameters():
    params0, coeffs = make_params(), problem_coeffs()
    flat = make_flat(params0)
    net = SimpleNamespace(flat=flat)
    opt = make_optimizer("adam", net, 0.05, **case_kwargs("adam"))
    assert opt.params is flat
    for _ in range(N_STEPS):
        write_grads(flat, coeffs)
        opt.step()
    assert_params_close([flat.params[n] for n in PNAMES],
                        reference_run("adam", params0, coeffs, 0.05, N_STEPS))


@pytest.mark.parametrize("params", [make_params(), None, SimpleNamespace(flat=None)])
def test_rejects_parameters_that_are_not_flat(params):
    with pytest.raises(TypeError, match="FlatParameters"):
        make_optimizer("sgd", params, 0.1)


# ---------------------------------------------------------------------------- in place
@pytest.mark.parametrize("case", CASES)
def test_updates_in_place_and_state_allocated_once(case):
    name, _ = CASES[case]
    params0, coeffs = make_params(), problem_coeffs()
    flat = make_flat(params0)
    views = dict(flat.params)
    data_id = id(flat.data)
    opt = make_optimizer(name, flat, 0.05, **case_kwargs(case))
    assert opt.params is flat
    state_ids = {k: id(a) for k, a in opt.state.items()}
    assert set(opt.state) == STATE.get(case, set())
    for a in opt.state.values():
        assert type(a) is type(flat.data)
        assert a.shape == flat.data.shape and a.dtype == flat.data.dtype
        assert not np.any(a)  # zero-initialised
    for _ in range(N_STEPS):
        write_grads(flat, coeffs)
        opt.step()
    assert id(flat.data) == data_id and opt.params is flat
    assert {k: id(a) for k, a in opt.state.items()} == state_ids
    # the caller's views hold the result (the optimizer wrote into the buffer, not a copy)
    assert all(flat.params[n] is views[n] for n in PNAMES)
    assert_params_close([views[n] for n in PNAMES],
                        reference_run(case, params0, coeffs, 0.05, N_STEPS))


@pytest.mark.parametrize("case", CASES)
def test_step_allocates_nothing(case):
    name, _ = CASES[case]
    rng = np.random.default_rng(3)
    flat = FlatParameters.from_arrays({"0.weight": rng.standard_normal((400, 300)),
                                       "0.bias": rng.standard_normal(300),
                                       "2.weight": rng.standard_normal((10, 300))},
                                      no_decay={"0.bias"})
    flat.grad[...] = rng.standard_normal(flat.size)
    opt = make_optimizer(name, flat, 1e-3, **case_kwargs(case))
    opt.step()  # warm-up: any lazy allocation would happen here
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a temporary the size of the smallest parameter (the bias, 2400 bytes) would show
    assert peak - before < flat.params["0.bias"].nbytes // 2


# ---------------------------------------------------------------------------- state by name
@pytest.mark.parametrize("case", CASES)
def test_state_is_keyed_by_parameter_name(case):
    name, _ = CASES[case]
    params0, coeffs = make_params(), problem_coeffs()
    _, opt = xpnet_run(case, params0, coeffs, 0.05, 3)
    flat = opt.params
    arrays = opt.state_dict()["arrays"]
    assert set(arrays) == {f"{s}/{p}" for s in STATE.get(case, ()) for p in PNAMES}
    named = opt.named_state()
    assert list(named) == list(PNAMES)
    for p in PNAMES:
        assert set(named[p]) == STATE.get(case, set())
        for s, view in named[p].items():
            assert view.shape == flat.params[p].shape
            assert np.shares_memory(view, opt.state[s])
            np.testing.assert_array_equal(view, opt.state[s][flat.slices[p]].reshape(view.shape))
            assert np.shares_memory(arrays[f"{s}/{p}"], view)
            assert np.any(view)  # three steps filled it


@pytest.mark.parametrize("case", CASES)
def test_state_dict_round_trip_continues_identically(case):
    name, _ = CASES[case]
    params0, coeffs = make_params(), problem_coeffs()
    _, opt_a = xpnet_run(case, params0, coeffs, 0.05, 3)
    flat_a = opt_a.params
    saved = copy.deepcopy(opt_a.state_dict())  # a checkpoint copies the arrays out
    assert saved["json"]["name"] == name and saved["json"]["t"] == 3
    assert saved["json"]["lr"] == 0.05
    assert saved["json"] == {"name": name, "t": 3, **opt_a.hyperparameters()}
    if "m" in STATE.get(case, ()):
        assert "m/0.weight" in saved["arrays"]

    flat_b = make_flat([flat_a.params[n].copy() for n in PNAMES])
    opt_b = make_optimizer(name, flat_b, 0.05, **case_kwargs(case))
    opt_b.load_state_dict(saved, send=np.asarray)
    assert opt_b.t == 3
    for _ in range(3):
        for flat, opt in ((flat_a, opt_a), (flat_b, opt_b)):
            write_grads(flat, coeffs)
            opt.step()
    np.testing.assert_array_equal(flat_a.data, flat_b.data)
    for s in opt_a.state:
        np.testing.assert_array_equal(opt_a.state[s], opt_b.state[s])
    # and both equal six uninterrupted reference steps
    assert_params_close([flat_b.params[n] for n in PNAMES],
                        reference_run(case, params0, coeffs, 0.05, 6))


@pytest.mark.parametrize("case", ("momentum", "adam", "adamw", "rmsprop-momentum"))
def test_fresh_state_differs_from_loaded_state(case):
    # without loading, the continuation is different: the round-trip test above is not vacuous
    name, _ = CASES[case]
    params0, coeffs = make_params(), problem_coeffs()
    a, opt_a = xpnet_run(case, params0, coeffs, 0.05, 3)
    flat_b = make_flat([p.copy() for p in a])
    opt_b = make_optimizer(name, flat_b, 0.05, **case_kwargs(case))
    for flat, opt in ((opt_a.params, opt_a), (flat_b, opt_b)):
        write_grads(flat, coeffs)
        opt.step()
    assert not np.allclose(opt_a.params.data, flat_b.data, rtol=1e-9, atol=0)


def test_load_state_dict_rejects_other_optimizer():
    state = make_optimizer("momentum", make_flat(make_params()), 0.1).state_dict()
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer("nesterov", make_flat(make_params()), 0.1).load_state_dict(state,
                                                                                  np.asarray)


def _saved_adam():
    _, opt = xpnet_run("adam", make_params(), problem_coeffs(), 0.05, 2)
    return copy.deepcopy(opt.state_dict())


def test_load_state_dict_rejects_missing_wrong_shape_and_extra_arrays():
    opt = make_optimizer("adam", make_flat(make_params()), 0.05)
    before = opt.state["m"].copy()
    saved = _saved_adam()
    del saved["arrays"]["v/2.weight"]
    with pytest.raises(ValueError, match="no array 'v/2.weight'"):
        opt.load_state_dict(saved, np.asarray)
    saved = _saved_adam()
    saved["arrays"]["m/0.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"'m/0.bias' has shape \(5,\).*\(4,\)"):
        opt.load_state_dict(saved, np.asarray)
    saved = _saved_adam()
    saved["arrays"]["m/4.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match="unexpected arrays"):
        opt.load_state_dict(saved, np.asarray)
    # a checkpoint of rmsprop without momentum has no momentum buffer to resume one from
    state = make_optimizer("rmsprop", make_flat(make_params()), momentum=0.0).state_dict()
    with pytest.raises(ValueError, match="no array 'momentum_buffer/0.weight'"):
        make_optimizer("rmsprop", make_flat(make_params()), momentum=0.5).load_state_dict(
            state, np.asarray)
    # nothing was written by the failed loads
    assert opt.t == 0
    np.testing.assert_array_equal(opt.state["m"], before)


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_learning_rate(name, lr):
    with pytest.raises(ValueError, match="learning rate"):
        make_optimizer(name, make_flat(make_params()), lr)


@pytest.mark.parametrize("name", ("momentum", "nesterov", "rmsprop"))
@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1, float("nan"), True, "0.5"])
def test_bad_momentum(name, momentum):
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer(name, make_flat(make_params()), 0.1, momentum=momentum)


@pytest.mark.parametrize("name", ("adam", "adamw"))
@pytest.mark.parametrize("kwargs", [{"beta1": 1.0}, {"beta1": -0.1}, {"beta2": 1.0},
                                    {"beta2": 2.0}, {"beta1": float("nan")}, {"eps": 0.0},
                                    {"eps": -1e-8}, {"eps": float("nan")}, {"beta1": False},
                                    {"eps": True}])
def test_bad_adam_hyperparameters(name, kwargs):
    with pytest.raises(ValueError, match="beta|eps"):
        make_optimizer(name, make_flat(make_params()), 0.1, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"weight_decay": -0.1}, "weight_decay"), ({"weight_decay": float("nan")}, "weight_decay"),
    ({"weight_decay": float("inf")}, "weight_decay"), ({"weight_decay": True}, "weight_decay"),
    ({"decay_all": 1}, "decay_all"), ({"decay_all": "no"}, "decay_all"),
])
def test_bad_adamw_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer("adamw", make_flat(make_params()), 0.1, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 1.0}, "alpha"), ({"alpha": -0.5}, "alpha"), ({"alpha": False}, "alpha"),
    ({"eps": 0.0}, "eps"), ({"eps": float("inf")}, "eps"),
])
def test_bad_rmsprop_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RMSprop(make_flat(make_params()), 0.1, **kwargs)


@pytest.mark.parametrize("name", ["lbfgs", "Adam", "", None])
def test_unknown_optimizer(name):
    with pytest.raises(ValueError, match="unknown optimizer.*adamw, rmsprop"):
        make_optimizer(name, make_flat(make_params()), 0.1)


def test_registry_lists_the_documented_optimizers():
    assert set(OPTIMIZERS) == set(NAMES)
    assert all(cls.name == key for key, cls in OPTIMIZERS.items())
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
