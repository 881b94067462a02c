"""GPU (CuPy) vs CPU (NumPy) parity: the same net, weights and data give the same numbers.

Each test runs on the strict CuPy stand-in (every machine) and on the real GPU (``gpu``, where
one is usable): see tests/gpu/conftest.py. Every comparison goes through the ``parity`` fixture,
which asserts the dtype's tolerance and records the worst max-abs / max-rel error per check for
the session summary. Tolerances and their justification are in that conftest's docstring.

Activations: float64 tests use ReLU-family units freely, because a 1e-16 rounding difference
lands a pre-activation on the other side of the kink with probability ~1e-12. In float32 a
rounding difference of ~1e-6 near z = 0 flips the ReLU derivative (0 vs 1) and changes a
gradient by O(1/m): a discontinuity, not a precision difference. So float32 tests that compare
gradients or several training steps use smooth units (tanh, sigmoid); forward passes and
probabilities are continuous and use ReLU in both dtypes.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import host_copy as to_host
from gradcheck import numerical_grads

from xpnet import Sequential
from xpnet.optimizers import make_optimizer

SIZES = [20, 32, 16, 8, 5]
M = 64
DTYPES = ["float64", "float32"]


def make_data(m, sizes, output, seed):
    """Host float64 inputs and targets of the right kind for ``output``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, sizes[0]))
    k = sizes[-1]
    if output == "softmax":
        y = rng.integers(0, k, size=m)
    elif output == "sigmoid":
        y = (rng.random((m, k)) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal((m, k))
    return X, y


def host_masks(m, sizes, rate, seed):
    """Dropout keep-masks drawn on the host and given to BOTH nets: the device RNG streams of
    NumPy and CuPy differ, so masks drawn by each net would not be comparable."""
    rng = np.random.default_rng(seed)
    return [rng.random((m, n)) >= rate for n in sizes[1:-1]]


def grad_kind(net, name):
    """``dW``, ``db``, ``bn gamma`` or ``bn beta`` for a parameter name such as ``"4.bias"``."""
    layer = net.layers[int(name.split(".")[0])]
    if type(layer).__name__ == "BatchNorm1d":
        return "bn gamma" if name.endswith("weight") else "bn beta"
    return "dW" if name.endswith("weight") else "db"


def cancelled_biases(net):
    """Names of the Linear biases followed by a batch norm: their gradient is 0 in exact
    arithmetic (the normalisation cancels them), so both devices return rounding noise."""
    return {f"{i}.bias" for i, layer in enumerate(net.layers[:-1])
            if type(layer).__name__ == "Linear"
            and type(net.layers[i + 1]).__name__ == "BatchNorm1d"}


def compare_grads(parity, cpu, gpu, dtype, case):
    """Every gradient, by parameter name (noise-level ones fall under the absolute floor)."""
    for (name, _), gg, gc in zip(cpu.named_parameters(), gpu.gradients(), cpu.gradients()):
        parity.check(f"grad {grad_kind(cpu, name)}", gg, gc, dtype, where=f"{case} {name}")


def compare_state(parity, cpu, gpu, dtype, what, case):
    """Parameters (W, b, gamma, beta) and batch-norm running statistics, by name."""
    for (name, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        parity.check(f"{what} params", pg, pc, dtype, where=f"{case} {name}")
    for (name, bc), bg in zip(cpu.named_buffers(), gpu.buffers()):
        parity.check(f"{what} bn running stats", bg, bc, dtype, where=f"{case} {name}")


# --------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("dtype", DTYPES)
def test_initial_weights_identical(dtype, parity, gpu_device):
    from xpnet import MLP

    cpu = MLP(SIZES, dtype=dtype, device="cpu", seed=7, batch_norm=True)
    gpu = MLP(SIZES, dtype=dtype, device=gpu_device, seed=7, batch_norm=True)
    assert gpu.device.is_gpu and not cpu.device.is_gpu
    for i, (pg, pc) in enumerate(zip(gpu.parameters() + gpu.buffers(),
                                     cpu.parameters() + cpu.buffers())):
        assert pg.dtype == pc.dtype == np.dtype(dtype)
        parity.check("initial weights", pg, pc, exact=True, where=f"array {i}")


# ------------------------------------------------------------------ forward, loss, gradients
# (id, activation, output, batch_norm, dropout, l2)
CASES_64 = [
    ("relu-softmax-l2", "relu", "softmax", False, 0.0, 0.05),
    ("leaky-identity", "leaky_relu", "identity", False, 0.0, 0.0),
    ("tanh-sigmoidout", "tanh", "sigmoid", False, 0.0, 0.01),
    ("sigmoid-softmax-dropout", "sigmoid", "softmax", False, 0.3, 0.0),
    ("relu-bn-dropout-l2", "relu", "softmax", True, 0.2, 0.01),
]
CASES_32 = [  # smooth units only: see the module docstring
    ("tanh-softmax-l2", "tanh", "softmax", False, 0.0, 0.05),
    ("sigmoid-identity", "sigmoid", "identity", False, 0.0, 0.0),
    ("tanh-sigmoidout-dropout", "tanh", "sigmoid", False, 0.3, 0.01),
    ("tanh-bn-dropout-l2", "tanh", "softmax", True, 0.2, 0.01),
]
FWD_CASES = [pytest.param("float64", *c, id=f"float64-{c[0]}") for c in CASES_64] + [
    pytest.param("float32", *c, id=f"float32-{c[0]}") for c in CASES_32
]


@pytest.mark.parametrize("dtype,case,activation,output,batch_norm,dropout,l2", FWD_CASES)
def test_forward_loss_and_grads(dtype, case, activation, output, batch_norm, dropout, l2,
                                parity, make_pair):
    cpu, gpu = make_pair(SIZES, dtype, seed=1, activation=activation, output=output,
                         batch_norm=batch_norm, dropout=dropout, l2=l2)
    X, y = make_data(M, SIZES, output, seed=2)

    outs_g, outs_c = gpu.layer_outputs(X), cpu.layer_outputs(X)
    # (how many: see tests/test_network.py::test_layer_outputs_per_linear_block)
    assert len(outs_g) == len(outs_c) and outs_c[-1].shape == (M, SIZES[-1])
    for l, (ag, ac) in enumerate(zip(outs_g, outs_c)):
        parity.check("forward layer outputs (inference)", ag, ac, dtype,
                     where=f"{case} output {l}")
    every_g, every_c = Sequential.layer_outputs(gpu, X), Sequential.layer_outputs(cpu, X)
    assert len(every_g) == len(every_c) == len(cpu.layers)
    for i, (ag, ac) in enumerate(zip(every_g, every_c)):
        parity.check("forward every layer (inference)", ag, ac, dtype,
                     where=f"{case} layer {i} {type(cpu.layers[i]).__name__}")

    masks = host_masks(M, SIZES, dropout, seed=3) if dropout else None
    loss_g, _ = gpu.loss_and_grads(X, y, dropout_masks=masks)
    loss_c, _ = cpu.loss_and_grads(X, y, dropout_masks=masks)
    assert np.isfinite(loss_c) and np.isfinite(loss_g)
    parity.check("loss (training mode)", loss_g, loss_c, dtype, where=case)
    compare_grads(parity, cpu, gpu, dtype, case)
    if batch_norm:
        compare_state(parity, cpu, gpu, dtype, "after 1 step:", case)


# ------------------------------------------------------------------------ optimizer steps
OPTIMIZERS = [  # (id, registry name, lr, options): every optimizer, and the options that branch
    ("gd", "gd", 0.1, {}),
    ("sgd", "sgd", 0.1, {}),
    ("momentum", "momentum", 0.05, {}),
    ("nesterov", "nesterov", 0.05, {}),
    ("adam", "adam", 0.01, {}),
    ("adamw", "adamw", 0.01, {"weight_decay": 0.05}),
    ("adamw-no-decay-on-biases", "adamw", 0.01, {"weight_decay": 0.05, "decay_all": False}),
    ("rmsprop", "rmsprop", 0.01, {}),
    ("rmsprop-momentum", "rmsprop", 0.01, {"momentum": 0.9}),
]
N_STEPS = 5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case,name,lr,options", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_steps(case, name, lr, options, dtype, parity, make_pair):
    activation = "relu" if dtype == "float64" else "tanh"
    cpu, gpu = make_pair(SIZES, dtype, seed=4, activation=activation, l2=0.01)
    opts = [make_optimizer(name, net, lr, **options) for net in (cpu, gpu)]
    case = f"{case} {activation}"
    for step in range(N_STEPS):
        X, y = make_data(M, SIZES, "softmax", seed=100 + step)  # a new batch every step
        loss_c, _ = cpu.loss_and_grads(X, y)
        loss_g, _ = gpu.loss_and_grads(X, y)
        parity.check("optimizer: loss at each step", loss_g, loss_c, dtype,
                     where=f"{case} step {step + 1}")
        opts[0].step()
        opts[1].step()
    compare_state(parity, cpu, gpu, dtype, f"after {N_STEPS} optimizer steps:", case)
    state_c, state_g = opts[0].state_dict(), opts[1].state_dict()
    assert state_c["json"] == state_g["json"]
    for key in state_c["arrays"]:
        parity.check("optimizer state (moments)", state_g["arrays"][key], state_c["arrays"][key],
                     dtype, where=f"{case} {key}")


# ----------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_train_and_inference(dtype, parity, make_pair):
    activation = "relu" if dtype == "float64" else "tanh"
    cpu, gpu = make_pair(SIZES, dtype, seed=5, activation=activation, batch_norm=True)
    opts = [make_optimizer("momentum", net, 0.05) for net in (cpu, gpu)]
    for step in range(3):
        X, y = make_data(M, SIZES, "softmax", seed=200 + step)
        loss_c, _ = cpu.loss_and_grads(X, y)
        loss_g, _ = gpu.loss_and_grads(X, y)
        where = f"bn {activation} step {step + 1}"
        parity.check("bn train: loss", loss_g, loss_c, dtype, where=where)
        compare_grads(parity, cpu, gpu, dtype, where)
        for i, (bg, bc) in enumerate(zip(gpu.buffers(), cpu.buffers())):
            parity.check("bn train: running stats", bg, bc, dtype, where=f"{where} buffer {i}")
        opts[0].step()
        opts[1].step()
    # inference uses the running statistics the three steps left behind
    X, y = make_data(2 * M, SIZES, "softmax", seed=300)
    for l, (ag, ac) in enumerate(zip(gpu.layer_outputs(X), cpu.layer_outputs(X))):
        parity.check("bn inference: layer outputs", ag, ac, dtype, where=f"layer {l + 1}")
    parity.check("bn inference: predict_proba", gpu.predict_proba(X), cpu.predict_proba(X),
                 dtype, where=activation)
    (loss_g, acc_g), (loss_c, acc_c) = gpu.evaluate(X, y), cpu.evaluate(X, y)
    parity.check("bn inference: evaluate loss", loss_g, loss_c, dtype, where=activation)
    assert abs(acc_g - acc_c) <= 2 / len(X)  # a near-tie may flip one or two labels


# ----------------------------------------------------------------------------- predictions
# A label is a discontinuous function of the logits: it is only compared where the CPU's
# decision margin is far above the dtype's rounding (ties are decided by rounding, legitimately).
LABEL_MARGIN = {"float64": 1e-9, "float32": 1e-3}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_predictions(output, dtype, parity, make_pair):
    cpu, gpu = make_pair(SIZES, dtype, seed=6, output=output)
    X, _ = make_data(4 * M, SIZES, output, seed=7)
    logits = to_host(cpu.layer_outputs(X)[-1]).astype(np.float64)
    pred_g, pred_c = to_host(gpu.predict(X)), to_host(cpu.predict(X))
    assert pred_g.shape == pred_c.shape and pred_g.dtype.kind == pred_c.dtype.kind
    margin = LABEL_MARGIN[dtype]
    if output == "identity":
        parity.check("predict (identity values)", pred_g, pred_c, dtype, where=output)
        with pytest.raises(ValueError):
            gpu.predict_proba(X)
        return
    if output == "softmax":
        top2 = np.sort(logits, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > margin
    else:
        clear = np.abs(logits) > margin
    assert clear.mean() > 0.9, "too many near-ties to compare labels; change the seed"
    mismatches = int((pred_g[clear] != pred_c[clear]).sum())
    assert mismatches == 0, f"{mismatches} {output} labels differ away from ties"
    parity.check("predict_proba", gpu.predict_proba(X), cpu.predict_proba(X), dtype, where=output)


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("dtype", DTYPES)
def test_checkpoint_round_trip_gpu_cpu_gpu(dtype, tmp_path, parity, make_pair, gpu_device):
    from xpnet import checkpoint

    _, gpu = make_pair(SIZES, dtype, seed=8, batch_norm=True, dropout=0.1)
    opt = make_optimizer("adam", gpu, 0.01)
    X, y = make_data(M, SIZES, "softmax", seed=9)
    for _ in range(2):  # move the running statistics and the parameters away from their start
        gpu.loss_and_grads(X, y, dropout_masks=host_masks(M, SIZES, 0.1, seed=10))
        opt.step()
    state = opt.state_dict()
    original = [to_host(a) for a in gpu.parameters() + gpu.buffers()]

    path1 = tmp_path / "from_gpu.npz"
    checkpoint.save(gpu, path1, training_state=state)
    cpu, train_state = checkpoint.load_checkpoint(path1, device="cpu")
    assert not cpu.device.is_gpu and cpu.config() == gpu.config()
    for i, (a, ref) in enumerate(zip(cpu.parameters() + cpu.buffers(), original)):
        parity.check("checkpoint gpu->cpu arrays", a, ref, exact=True, where=f"array {i}")
    assert train_state["json"] == state["json"]
    for key, a in state["arrays"].items():
        parity.check("checkpoint gpu->cpu training state", train_state["arrays"][key], a,
                     exact=True, where=key)
    X2, _ = make_data(2 * M, SIZES, "softmax", seed=11)
    parity.check("checkpoint gpu->cpu predict_proba", gpu.predict_proba(X2),
                 cpu.predict_proba(X2), dtype, where="cuda net vs its cpu copy")

    path2 = tmp_path / "from_cpu.npz"
    checkpoint.save(cpu, path2)
    gpu2 = checkpoint.load(path2, device=gpu_device)
    assert gpu2.device.is_gpu and gpu2.config() == gpu.config()
    for i, (a, ref) in enumerate(zip(gpu2.parameters() + gpu2.buffers(), original)):
        parity.check("checkpoint gpu->cpu->gpu arrays", a, ref, exact=True, where=f"array {i}")
    parity.check("checkpoint gpu->cpu->gpu predict_proba", gpu2.predict_proba(X2),
                 cpu.predict_proba(X2), dtype, where="reloaded cuda net vs cpu net")
    assert np.array_equal(to_host(gpu2.predict(X2)), to_host(gpu.predict(X2)))


# --------------------------------------------------------- finite differences on the GPU
GRADCHECK_CASES = [  # non-zero random biases (make_pair), so ReLU kinks are not hit
    ("relu-softmax-l2", dict(activation="relu", output="softmax", l2=0.1)),
    ("tanh-sigmoidout-bn-dropout", dict(activation="tanh", output="sigmoid", batch_norm=True,
                                        dropout=0.25)),
    ("leaky-identity", dict(activation="leaky_relu", output="identity")),
]


@pytest.mark.parametrize("case,kwargs", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradient_check_on_gpu_float64(case, kwargs, parity, make_pair):
    sizes = [6, 5, 4, 3]
    _, gpu = make_pair(sizes, "float64", seed=12, **kwargs)
    assert gpu.device.is_gpu
    X, y = make_data(8, sizes, kwargs["output"], seed=13)
    masks = host_masks(8, sizes, kwargs.get("dropout", 0.0), seed=14) \
        if kwargs.get("dropout") else None
    gpu.loss_and_grads(X, y, dropout_masks=masks)
    analytic = [to_host(g) for g in gpu.gradients()]
    numeric = numerical_grads(gpu, X, y, masks)
    cancelled = cancelled_biases(gpu)
    for (name, _), a, n in zip(gpu.named_parameters(), analytic, numeric):
        if name in cancelled:  # both are noise around an exact 0: no relative error to take
            parity.bound("gpu float64 gradcheck |grad| of a bias before batch norm",
                         max(np.abs(a).max(), np.abs(n).max()), 1e-7, where=f"{case} {name}")
            continue
        rel = np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-300)
        parity.bound("gpu float64 gradcheck ||a-n||/(||a||+||n||)", rel, 1e-6,
                     where=f"{case} {name}")


# ----------------------------------------------------------------------- single layers
def make_layers():
    """One of every built-in layer (fresh instances: a test builds each on two devices)."""
    from xpnet import layers as L

    return {
        "Linear": lambda: L.Linear(7, 5), "BatchNorm1d": lambda: L.BatchNorm1d(7),
        "Dropout": lambda: L.Dropout(0.3), "ReLU": L.ReLU, "LeakyReLU": L.LeakyReLU,
        "Tanh": L.Tanh, "Sigmoid": L.Sigmoid, "GELU": L.GELU, "SiLU": L.SiLU,
    }


LAYER_NAMES = list(make_layers())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", LAYER_NAMES)
def test_layer_forward_backward(kind, dtype, parity, gpu_device):
    """Each layer on its own: training and inference forward, backward (input gradient and every
    parameter gradient by name) and the batch-norm running statistics, from the same host data
    (and, for dropout, the same explicit mask) on both devices."""
    rng = np.random.default_rng(40)
    x = rng.standard_normal((M, 7)) * 1.5
    layers = {}
    for dev in ("cpu", gpu_device):
        layer = make_layers()[kind]().build(dev, dtype, seed=41)
        if kind == "BatchNorm1d":  # away from gamma = 1, beta = 0
            layer.params["weight"][...] = layer_send(layer, 1 + 0.2 * np.arange(7) / 7, dtype)
            layer.params["bias"][...] = layer_send(layer, 0.1 * np.arange(7) - 0.3, dtype)
        layers["gpu" if dev is gpu_device else "cpu"] = layer
    out = {}
    for side, layer in layers.items():
        dev = gpu_device if side == "gpu" else None
        send = (lambda a, d=dev: d.send(a, dtype)) if dev is not None else (
            lambda a: np.asarray(a, dtype=dtype))
        if kind == "Dropout":
            layer.next_mask = send(rng_mask(x.shape, 0.3))
        y = layer.forward(send(x), training=True)
        y_copy = to_host(y)
        dy = send(np.random.default_rng(42).standard_normal(y_copy.shape))
        dx = layer.backward(dy)
        infer = layer.forward(send(x), training=False)
        out[side] = dict(y=y_copy, dx=to_host(dx), infer=to_host(infer),
                         grads={n: to_host(g) for n, g in layer.grads.items()},
                         buffers={n: to_host(b) for n, b in layer.buffers.items()})
    g, c = out["gpu"], out["cpu"]
    parity.check("layer forward (training)", g["y"], c["y"], dtype, where=kind)
    parity.check("layer forward (inference)", g["infer"], c["infer"], dtype, where=kind)
    parity.check("layer backward dx", g["dx"], c["dx"], dtype, where=kind)
    assert set(g["grads"]) == set(c["grads"]) == set(layers["cpu"].parameter_shapes())
    for name in c["grads"]:
        parity.check(f"layer grad {name}", g["grads"][name], c["grads"][name], dtype,
                     where=f"{kind}.{name}")
    for name in c["buffers"]:
        parity.check(f"layer buffer {name}", g["buffers"][name], c["buffers"][name], dtype,
                     where=f"{kind}.{name}")


def layer_send(layer, host, dtype):
    return layer.xp.asarray(np.asarray(host, dtype=dtype))


def rng_mask(shape, rate):
    return np.random.default_rng(43).random(shape) >= rate


@pytest.mark.parametrize("kind", ["Linear", "BatchNorm1d", "GELU"])
def test_layer_gradcheck_on_device_float64(kind, parity, gpu_device):
    """xpnet.gradcheck on a layer built on the device (the public finite-difference check)."""
    from xpnet.gradcheck import gradcheck_arrays

    layer = make_layers()[kind]().build(gpu_device, "float64", seed=44)
    x = np.random.default_rng(45).standard_normal((6, 7))
    for name, (num, ana) in gradcheck_arrays(layer, x, seed=46).items():
        rel = np.linalg.norm(num - ana) / max(np.linalg.norm(num) + np.linalg.norm(ana), 1e-300)
        parity.bound("device float64 layer gradcheck ||a-n||/(||a||+||n||)", rel, 1e-6,
                     where=f"{kind} {name}")


def test_confusion_matrix_on_device(parity, make_pair):
    """The training CLI's test pass: evaluate_device with predictions, then the confusion
    matrix by bincount, all on the device, one copy to the host."""
    from xpnet.metrics import confusion_matrix

    cpu, gpu = make_pair(SIZES, "float64", seed=47)
    X, y = make_data(3 * M, SIZES, "softmax", seed=48)
    k = SIZES[-1]
    results = {}
    for side, net in (("cpu", cpu), ("gpu", gpu)):
        dev = net.device
        Xd, yd = net.check_X(X), net.check_y(y, len(X))
        loss_sum, correct, pred = net.evaluate_device(Xd, yd, batch_size=50, predictions=True)
        results[side] = (float(loss_sum), int(correct), dev.to_numpy(pred),
                         dev.to_numpy(confusion_matrix(dev.xp, yd, pred, k)))
    (lg, cg, pg, mg), (lc, cc, pc, mc) = results["gpu"], results["cpu"]
    parity.check("evaluate_device loss sum", lg, lc, "float64", where="softmax")
    assert cg == cc and np.array_equal(pg, pc) and np.array_equal(mg, mc)
    assert mc.sum() == len(X) and np.trace(mc) == cc
