"""Weight initialisers: distribution statistics on large layers, and zero biases.

Tolerances come from the sampling error of N draws from N(0, sigma^2):
    SE(mean) = sigma / sqrt(N),  SE(std) ~= sigma / sqrt(2 N),  SE(excess kurtosis) ~= sqrt(24 / N)
and every check allows 5 standard errors (a false failure has probability ~1e-6 per check, and
the seeds are fixed anyway). With N = 2e6 the std is pinned to +-0.25 %, so a fan-in / fan-out
swap (a 30 % change here) or the wrong formula cannot pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpnet import MLP
from xpnet.initializers import INITIALIZERS
from xpnet.layers import BatchNorm1d

SIZES = [1000, 2000, 500]  # layer 1: 1000 -> 2000 (2e6 weights); layer 2: 2000 -> 500 (1e6)
K = 5.0  # standard errors allowed


def expected_std(init, n_in, n_out):
    return {
        "he": math.sqrt(2.0 / n_in),
        "xavier": math.sqrt(2.0 / (n_in + n_out)),
        "normal": 0.01,
    }[init]


def assert_normal_stats(W, sigma):
    N = W.size
    W = np.asarray(W, dtype=np.float64)
    mean, std = W.mean(), W.std()
    assert abs(mean) < K * sigma / math.sqrt(N), f"mean {mean:.3e} for sigma {sigma:.4g}"
    assert abs(std - sigma) < K * sigma / math.sqrt(2 * N), f"std {std:.6g}, want {sigma:.6g}"
    excess_kurtosis = ((W - mean) ** 4).mean() / std**4 - 3.0  # 0 for a normal, -1.2 uniform
    assert abs(excess_kurtosis) < K * math.sqrt(24.0 / N), f"excess kurtosis {excess_kurtosis}"


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_network_weight_statistics(init):
    net = MLP(SIZES, init=init, dtype="float64", device="cpu", seed=11)
    for (W, b), n_in, n_out in zip(net.params, SIZES[:-1], SIZES[1:]):
        W, b = net.device.to_numpy(W), net.device.to_numpy(b)
        assert W.shape == (n_out, n_in) and b.shape == (n_out,)
        assert_normal_stats(W, expected_std(init, n_in, n_out))
        np.testing.assert_array_equal(b, 0.0)


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_initializer_function_contract(init):
    draw = INITIALIZERS[init]
    W = draw(np.random.default_rng(3), 2000, 1000)
    assert W.shape == (2000, 1000) and W.dtype == np.float64
    assert_normal_stats(W, expected_std(init, 1000, 2000))
    np.testing.assert_array_equal(W, draw(np.random.default_rng(3), 2000, 1000))


def test_he_and_xavier_are_distinguishable():
    """The 5-SE bands of the three expected stds do not overlap for these layer sizes, so the
    statistics test above could tell a mix-up apart."""
    n_in, n_out = SIZES[0], SIZES[1]
    stds = sorted(expected_std(i, n_in, n_out) for i in INITIALIZERS)
    band = K / math.sqrt(2 * n_in * n_out)
    for lo, hi in zip(stds, stds[1:]):
        assert hi * (1 - band) > lo * (1 + band)
    # and a fan swap for He (sqrt(2 / n_out)) would be outside the band too
    assert math.sqrt(2.0 / n_out) < expected_std("he", n_in, n_out) * (1 - band)


def test_bn_parameters_start_at_identity():
    """Batch norm starts as the identity map, as torch.nn.BatchNorm1d: weight 1, bias 0,
    running mean 0, running variance 1; the Linear before it keeps its own (zero) bias."""
    net = MLP([6, 5, 4, 3], batch_norm=True, dtype="float64", device="cpu", seed=0)
    state = net.state_dict()
    bns = [i for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm1d)]
    assert bns == [1, 4]
    for i in bns:
        np.testing.assert_array_equal(state[f"{i}.weight"], 1.0)
        np.testing.assert_array_equal(state[f"{i}.bias"], 0.0)
        np.testing.assert_array_equal(state[f"{i}.running_mean"], 0.0)
        np.testing.assert_array_equal(state[f"{i}.running_var"], 1.0)
        np.testing.assert_array_equal(state[f"{i - 1}.bias"], 0.0)
    assert [state[f"{i}.weight"].shape for i in bns] == [(5,), (4,)]
    assert [state[f"{i}.running_var"].shape for i in bns] == [(5,), (4,)]


# ------------------------------------------------------------------ a scale: normal:S
def test_normal_with_a_scale_draws_that_standard_deviation():
    net = MLP(SIZES, init="normal:0.1", seed=3, device="cpu")
    W = np.asarray(net.params[0][0])
    assert_normal_stats(W, 0.1)
    assert net.config()["init"] == "normal:0.1"
    plain = np.asarray(MLP(SIZES, init="normal", seed=3, device="cpu").params[0][0])
    # the same draws, ten times larger: the scale is the only difference
    np.testing.assert_allclose(W, plain * 10, rtol=1e-5)


def test_a_scaled_init_survives_a_checkpoint(tmp_path):
    import xpnet

    net = MLP([4, 3, 2], init="normal:0.25", seed=0, device="cpu")
    xpnet.save(net, tmp_path / "n.npz")
    again = xpnet.load(tmp_path / "n.npz", device="cpu")
    assert again.init == "normal:0.25"


@pytest.mark.parametrize("spec, words", [
    ("normal:0", "the scale must be a positive, finite number"),
    ("normal:-0.1", "the scale must be a positive, finite number"),
    ("normal:inf", "the scale must be a positive, finite number"),
    ("normal:nan", "the scale must be a positive, finite number"),
    ("normal:x", "the scale must be a positive, finite number"),
    ("he:0.1", "only normal takes a scale"),
    ("uniform", "unknown init 'uniform'"),
    (0.1, "init must be a name such as 'he' or 'normal:0.1'"),
])
def test_bad_init_specs_are_one_sentence(spec, words):
    with pytest.raises(ValueError, match=words):
        MLP([4, 2], init=spec, device="cpu")
