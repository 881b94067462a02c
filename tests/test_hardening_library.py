"""Issue 11, library side: no silent wrong answers (family 3), errors instead of tracebacks for
numpy seeds and array-likes (family 4), and arguments that used to be accepted without complaint
(family 7). Every case asserts the value or the one-sentence message."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnet.training as training
from xpnet import checkpoint
from xpnet.backend import as_array, get_device, is_device_array
from xpnet.layers import BatchNorm1d, Dropout, Linear, ReLU
from xpnet.loop import batch_bounds as _batch_bounds
from xpnet.network import MLP, Sequential
from xpnet.optimizers import Adam, RMSprop
from xpnet.preprocessing import Scaler, stratified_split
from xpnet.training import Trainer, fit

CPU = get_device("cpu")


def blobs(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.standard_normal((n, d)), y


def bn_net(d=4, k=3, seed=0, dtype="float64", **kw):
    return MLP([d, 8, k], batch_norm=True, dtype=dtype, device="cpu", seed=seed, **kw)


def host(net):
    return [np.array(a, copy=True) for a in net.parameters() + net.buffers()]


def record_batches(monkeypatch, net):
    """Record the rows of every training batch (the trainer calls net.forward_backward)."""
    seen = []
    original = net.forward_backward

    def spy(X, y, dropout_masks=None, correct=None):
        seen.append(np.array(X, copy=True))
        return original(X, y, dropout_masks, correct)

    monkeypatch.setattr(net, "forward_backward", spy)
    return seen


# ============================================================ family 3: silent wrong answers
# ------------------------------------------------------------ batch norm with a batch of 1
def test_batchnorm_refuses_a_training_batch_of_one_and_changes_nothing():
    net = bn_net()
    X, y = blobs()
    before = host(net)
    msg = (r"^BatchNorm1d cannot train on a batch of 1 sample \(its variance is 0, so every "
           r"gradient through it would be 0\); use training batches of 2 or more samples\.$")
    with pytest.raises(ValueError, match=msg):
        net.loss_and_grads(X[:1], y[:1])
    for a, b in zip(before, host(net)):  # running statistics untouched
        np.testing.assert_array_equal(a, b)
    loss, _ = net.loss_and_grads(X[:2], y[:2])  # two samples train
    assert math.isfinite(loss) and np.abs(net.grads[0][0]).sum() > 0
    # inference on one sample is fine: it uses the running statistics
    assert net.predict(X[:1]).shape == (1,)


def test_batchnorm_layer_alone_matches_torch_in_refusing():
    layer = BatchNorm1d(3).build("cpu", "float64")
    x = np.ones((1, 3))
    with pytest.raises(ValueError, match="BatchNorm1d cannot train on a batch of 1 sample"):
        layer.forward(x, training=True)
    np.testing.assert_allclose(layer.forward(x, training=False), x / np.sqrt(1 + 1e-5))
    torch = pytest.importorskip("torch", reason="torch is the reference for this refusal")
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3).train()(torch.ones(1, 3))


def test_batch_of_one_gave_zero_hidden_gradients():
    """Why it is refused: normalising one sample gives xhat = 0, so the output is beta for any
    input and no gradient reaches the weights below (the issue's "garbage")."""
    layer = BatchNorm1d(4).build("cpu", "float64")
    x = np.random.default_rng(1).standard_normal((1, 4))
    xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + layer.eps)
    np.testing.assert_array_equal(xhat, np.zeros((1, 4)))


@pytest.mark.parametrize("batch_size, n, fix", [
    (1, 40, "use batch_size >= 2"),
    (None, 1, "train on 2\\+ samples"),  # full batch of a single sample
    (8, 1, "train on 2\\+ samples"),
])
def test_trainer_refuses_batches_of_one_with_batch_norm_before_training(batch_size, n, fix):
    net = bn_net()
    X, y = blobs()
    before = host(net)
    with pytest.raises(ValueError, match=r"^a training batch of 1 sample is too small for "
                                         r"BatchNorm1d, which needs at least 2 per batch; "
                       + fix + r"\.$"):
        fit(net, X[:n], y[:n], epochs=2, batch_size=batch_size, optimizer="adam", lr=1e-2)
    for a, b in zip(before, host(net)):
        np.testing.assert_array_equal(a, b)


def test_batch_bounds_merge_only_a_too_small_trailing_batch():
    assert _batch_bounds(21, 5) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 21)]
    assert _batch_bounds(21, 5, 2) == [(0, 5), (5, 10), (10, 15), (15, 21)]
    assert _batch_bounds(22, 5, 2) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 22)]
    assert _batch_bounds(20, 5, 2) == [(0, 5), (5, 10), (10, 15), (15, 20)]
    assert _batch_bounds(6, 5, 2) == [(0, 6)]
    assert _batch_bounds(5, 5, 2) == [(0, 5)]


def test_trailing_batch_of_one_is_merged_into_the_previous_batch(monkeypatch):
    X, y = blobs(n=21)
    net = bn_net()
    seen = record_batches(monkeypatch, net)
    hist = fit(net, X, y, epochs=2, batch_size=5, optimizer="adam", lr=1e-2, seed=3)
    assert [b.shape[0] for b in seen] == [5, 5, 5, 6] * 2
    assert net.trainer_.global_step == 8
    for epoch in (seen[:4], seen[4:]):  # every sample exactly once per epoch
        rows = np.concatenate(epoch)
        np.testing.assert_array_equal(rows[np.lexsort(rows.T)], X[np.lexsort(X.T)])
    assert all(math.isfinite(v) for v in hist.loss)


def test_without_batch_norm_a_trailing_batch_of_one_is_kept(monkeypatch):
    X, y = blobs(n=21)
    net = MLP([4, 8, 3], dtype="float64", device="cpu", seed=0)
    seen = record_batches(monkeypatch, net)
    fit(net, X, y, epochs=1, batch_size=5, optimizer="adam", lr=1e-2, seed=3)
    assert [b.shape[0] for b in seen] == [5, 5, 5, 5, 1]


def test_issue_example_54001_samples_with_a_batch_size_dividing_54000(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((54_001, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    net = MLP([3, 4, 2], batch_norm=True, device="cpu", seed=0)
    seen = []
    original = net.forward_backward
    monkeypatch.setattr(net, "forward_backward",
                        lambda X, y, m=None, correct=None: seen.append(X.shape[0])
                        or original(X, y, m, correct))
    hist = fit(net, X, y, epochs=1, batch_size=1000, optimizer="adam", lr=1e-2, seed=0)
    assert len(seen) == 54 and seen[-1] == 1001 and set(seen[:-1]) == {1000}
    assert math.isfinite(hist.loss[0]) and net.evaluate(X, y)[1] > 0.9  # it learned


def test_merged_trailing_batch_resumes_exactly():
    X, y = blobs(n=21)
    kw = dict(optimizer="adam", lr=1e-2, batch_size=5, seed=7, schedule="cosine")
    straight = bn_net(dropout=0.2)
    fit(straight, X, y, epochs=4, **kw)
    first = bn_net(dropout=0.2)
    fit(first, X, y, epochs=4, callback=lambda t, r: r["epoch"] == 2, **kw)
    state = first.trainer_.state_dict()
    resumed = bn_net(dropout=0.2)
    resumed.load_state_dict(first.state_dict())
    fit(resumed, X, y, epochs=4, resume=state, **kw)
    assert resumed.trainer_.global_step == straight.trainer_.global_step == 16
    for a, b in zip(host(straight), host(resumed)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ damaged run state
def trained_state():
    X, y = blobs()
    net = bn_net()
    trainer = Trainer(net, epochs=1, batch_size=8, seed=0)
    trainer.fit(X, y)
    state = trainer.state_dict()
    return {"json": json.loads(json.dumps(state["json"])),
            "arrays": {k: np.array(v, copy=True) for k, v in state["arrays"].items()}}


def fresh_trainer():
    return Trainer(bn_net(), epochs=3, batch_size=8, seed=0)


def assert_untouched(trainer):
    assert trainer.epoch == 0 and trainer.global_step == 0 and trainer.optimizer.t == 0
    assert not trainer.optimizer.state["m"].any()
    np.testing.assert_array_equal(trainer.best.params, trainer.net.flat.data)


@pytest.mark.parametrize("key, value, match", [
    ("opt/m/0.weight", np.float32(7.0),
     r"^adam optimizer state array 'm/0.weight' has shape \(\) but needs \(8, 4\); the saved "
     r"state is damaged or belongs to another network$"),
    ("opt/v/3.bias", np.zeros(1), r"'v/3.bias' has shape \(1,\) but needs \(3,\)"),
    ("opt/m/0.bias", np.full(8, "x"), r"'m/0.bias' must hold numbers, not dtype <U1"),
    ("opt/m/0.bias", [0.0] * 8, r"'m/0.bias' is a list, not an array"),
    ("best/0.weight", np.float64(7.0),
     r"^run state array 'best/0.weight' has shape \(\) but needs \(8, 4\)"),
    ("best/1.running_mean", np.ones(1), r"'best/1.running_mean' has shape \(1,\) but needs"),
    ("best/1.running_var", np.ones((8, 1)), r"'best/1.running_var' has shape \(8, 1\)"),
    ("best/3.bias", np.array(["a", "b", "c"]), r"'best/3.bias' must hold numbers"),
    ("best/9.bias", np.zeros(3), r"^cannot resume: the run state has unexpected arrays "
                                 r"\['best/9.bias'\] \(it was saved for another network\)$"),
])
def test_damaged_state_arrays_are_refused_and_nothing_is_written(key, value, match):
    state = trained_state()
    state["arrays"][key] = value
    trainer = fresh_trainer()
    with pytest.raises(ValueError, match=match):
        trainer.load_state_dict(state)
    assert_untouched(trainer)


@pytest.mark.parametrize("edit, match", [
    (lambda js: js.pop("epoch"), r"^cannot resume: the run state lacks 'epoch'; the checkpoint "
                                 r"is damaged or was not written by Trainer.state_dict$"),
    (lambda js: js["trainer"].pop("seed"), r"lacks 'seed'"),
    (lambda js: js.update(epoch="3"), r"the run state's epoch is '3', not a whole number >= 0"),
    (lambda js: js.update(wait=-1), r"the run state's wait is -1, not a whole number"),
    (lambda js: js.update(global_step=1.5), r"global_step is 1.5"),
    (lambda js: js.update(best_score="low"), r"best_score is 'low', not a number"),
    (lambda js: js.update(history=[1, 2]), r"the run state's 'history' is a list, not a mapping"),
    (lambda js: js.update(optimizer=None), r"the run state's 'optimizer' is a NoneType"),
    (lambda js: js["optimizer"].update(t=-2), r"adam optimizer state has a bad step count t=-2"),
])
def test_damaged_state_json_is_refused_and_nothing_is_written(edit, match):
    state = trained_state()
    edit(state["json"])
    trainer = fresh_trainer()
    with pytest.raises(ValueError, match=match):
        trainer.load_state_dict(state)
    assert_untouched(trainer)


def test_a_scalar_in_a_checkpoint_files_optimizer_state_is_refused(tmp_path):
    X, y = blobs()
    net = bn_net()
    trainer = Trainer(net, epochs=1, batch_size=8, seed=0)
    trainer.fit(X, y)
    path = checkpoint.save(net, tmp_path / "ck.npz", trainer.state_dict())
    with np.load(path) as npz:
        members = {name: npz[name] for name in npz.files}
    assert members["train/opt/m/0.weight"].shape == (8, 4)
    members["train/opt/m/0.weight"] = np.array(1e30, dtype=np.float32)  # a 0-d member
    with open(path, "wb") as f:
        np.savez(f, **members)
    # The reader may refuse it already (checkpoint.py checks shapes before reading); if it does
    # not, the trainer must. Either way it is a one-line ValueError naming both shapes.
    resumed = None
    with pytest.raises(ValueError, match=r"m/0\.weight'.* shape \(\) but .*needs \(8, 4\)"):
        loaded, state = checkpoint.load_checkpoint(path, device="cpu")
        resumed = Trainer(loaded, epochs=2, batch_size=8, seed=0)
        resumed.load_state_dict(state)
    if resumed is not None:
        assert resumed.optimizer.t == 0 and not resumed.optimizer.state["m"].any()


def test_optimizer_load_state_dict_refuses_broadcastable_arrays():
    net = bn_net()
    opt = Adam(net)
    state = opt.state_dict()
    arrays = {k: np.zeros(v.shape) for k, v in state["arrays"].items()}
    arrays["m/0.bias"] = np.ones((1,))
    with pytest.raises(ValueError, match=r"'m/0.bias' has shape \(1,\) but needs \(8,\)"):
        opt.load_state_dict({"json": state["json"], "arrays": arrays}, CPU.send)
    assert not opt.state["m"].any()


def test_network_load_state_dict_refuses_scalars_and_non_numbers():
    net = bn_net()
    state = net.state_dict()
    with pytest.raises(ValueError, match=r"entry '0.bias' has shape \(\), the network needs"):
        net.load_state_dict(state | {"0.bias": np.float64(3.0)})
    with pytest.raises(ValueError, match=r"entry '0.bias' must hold numbers; got dtype <U1"):
        net.load_state_dict(state | {"0.bias": np.full(8, "x")})
    with pytest.raises(ValueError, match=r"state_dict entry '0.bias' holds Python objects"):
        net.load_state_dict(state | {"0.bias": np.full(8, None)})


# ------------------------------------------------------------ evaluate(batch_size=...)
@pytest.mark.parametrize("batch_size", [-1, 0, 1.5, True, "10", None])
def test_evaluate_refuses_bad_batch_sizes(batch_size):
    net = bn_net()
    X, y = blobs()
    with pytest.raises(ValueError, match=r"^batch_size must be a whole number >= 1; got "):
        net.evaluate(X, y, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"^batch_size must be a whole number >= 1; got "):
        net.evaluate_device(X, y, batch_size=batch_size)


def test_evaluate_in_chunks_equals_one_pass():
    net = bn_net()
    X, y = blobs(n=41)
    whole = net.evaluate(X, y)
    for bs in (1, 7, 41, 1000):
        np.testing.assert_allclose(net.evaluate(X, y, batch_size=bs), whole, rtol=1e-12)


# ------------------------------------------------------------ masked arrays
MASKED = r"is a masked array, whose mask xpnet would silently ignore; pass {0}\.filled\(value\) " \
         r"or drop the masked rows first\.$"


def test_masked_arrays_are_refused_everywhere():
    net = bn_net()
    X, y = blobs()
    Xm = np.ma.masked_array(X, mask=X > 2)
    ym = np.ma.masked_array(y, mask=y == 1)
    cases = [
        (lambda: net.evaluate(Xm, y), "X"), (lambda: net.evaluate(X, ym), "y"),
        (lambda: net.predict(Xm), "X"), (lambda: net.loss_and_grads(Xm, y), "X"),
        (lambda: fit(net, Xm, y, epochs=1), "X"), (lambda: fit(net, X, ym, epochs=1), "y"),
        (lambda: fit(net, X, y, epochs=1, X_val=Xm, y_val=y), "X_val"),
        (lambda: fit(net, X, ym, epochs=1, validation_fraction=0.25), "y"),
        (lambda: Scaler("standard").fit(Xm), "X"),
        (lambda: Scaler("unit").fit(X).transform(Xm), "X"),
        (lambda: stratified_split(ym, 0.25), "y"),
        (lambda: CPU.send(Xm), "array"),
    ]
    before = host(net)
    for call, name in cases:
        with pytest.raises(ValueError, match=f"^{name} " + MASKED.format(name)):
            call()
    for a, b in zip(before, host(net)):
        np.testing.assert_array_equal(a, b)
    # the fixes the message names work
    keep = ~ym.mask
    assert math.isfinite(net.evaluate(Xm.filled(0.0), y)[0])
    assert math.isfinite(net.evaluate(X[keep], ym.compressed())[0])


# ------------------------------------------------------------ string targets
@pytest.mark.parametrize("output, k", [("identity", 1), ("identity", 2), ("sigmoid", 1)])
@pytest.mark.parametrize("targets, dtype", [
    (lambda m, k: np.full((m, k), "1.5"), "<U3"),
    (lambda m, k: np.full((m, k), b"1"), "|S1"),
    (lambda m, k: np.full(m, "a") if k == 1 else np.full((m, k), "a"), "<U1"),
])
def test_real_valued_outputs_refuse_string_targets(output, k, targets, dtype):
    net = MLP([4, 8, k], output=output, device="cpu", seed=0)
    X, _ = blobs()
    y = targets(len(X), k)
    msg = rf"^y must hold numbers for a {output} output; got dtype {dtype}\.$"
    with pytest.raises(ValueError, match=msg.replace("|", r"\|")):
        net.evaluate(X, y)
    with pytest.raises(ValueError, match=msg.replace("|", r"\|")):
        fit(net, X, y, epochs=1)


def test_identity_refuses_object_targets_even_when_they_look_numeric():
    net = MLP([4, 8, 1], output="identity", device="cpu", seed=0)
    X, _ = blobs()
    with pytest.raises(ValueError, match=r"^y holds Python objects \(dtype object: mixed types, "
                                         r"missing values or ragged rows\), not numbers; convert "
                                         r"it first, e.g\. np\.asarray\(y, dtype=float\)\.$"):
        net.evaluate(X, np.array(["1.5"] * len(X), dtype=object))


# ============================================================ family 4: tracebacks
# ------------------------------------------------------------ numpy seeds
@pytest.mark.parametrize("seed", [np.int64(3), np.int32(3), np.uint8(3), 3])
def test_numpy_integer_seeds_become_ints_and_save(seed, tmp_path):
    net = MLP([4, 8, 3], device="cpu", seed=seed)
    assert type(net.seed) is int and net.seed == 3
    assert json.loads(json.dumps(net.config()))["seed"] == 3
    same = MLP([4, 8, 3], device="cpu", seed=3)
    np.testing.assert_array_equal(net.flat.data, same.flat.data)
    seq = Sequential([Linear(4, 3)], device="cpu", seed=seed)
    assert type(seq.config()["seed"]) is int
    trainer = Trainer(net, seed=seed, epochs=1)
    assert type(trainer.seed) is int and trainer.seed == 3
    path = checkpoint.save(net, tmp_path / "ck.npz", trainer.state_dict())
    loaded, state = checkpoint.load_checkpoint(path, device="cpu")
    assert loaded.seed == 3 and state["json"]["trainer"]["seed"] == 3


@pytest.mark.parametrize("seed", [1.5, 2.0, np.float64(1.0), True, np.bool_(False), -1, "3",
                                  float("nan"), [1, 2]])
def test_bad_seeds_are_refused_everywhere(seed):
    msg = r"^seed must be a whole number >= 0 or None; got "
    with pytest.raises(ValueError, match=msg):
        MLP([4, 3], device="cpu", seed=seed)
    with pytest.raises(ValueError, match=msg):
        Sequential([Linear(4, 3)], device="cpu", seed=seed)
    with pytest.raises(ValueError, match=msg):
        Trainer(MLP([4, 3], device="cpu", seed=0), seed=seed)


# ------------------------------------------------------------ array-likes
def reference(X, y, **kw):
    net = MLP([4, 8, 3], dtype="float64", device="cpu", seed=0)
    hist = fit(net, X, y, epochs=2, batch_size=8, optimizer="adam", lr=1e-2, seed=1, **kw)
    return net, hist


def assert_same_run(a, b):
    (net_a, hist_a), (net_b, hist_b) = a, b
    np.testing.assert_array_equal(net_a.flat.data, net_b.flat.data)
    assert hist_a.loss == hist_b.loss and len(hist_a.loss) == 2
    np.testing.assert_array_equal(hist_a.val_loss, hist_b.val_loss)  # NaN without a dev set


def test_pandas_dataframes_and_series_work_like_numpy():
    pd = pytest.importorskip("pandas", reason="pandas is an optional test dependency "
                                              "(pip install -e '.[test]')")
    X, y = blobs()
    df, s = pd.DataFrame(X, columns=list("abcd")), pd.Series(y, name="label")
    assert not is_device_array(df) and not is_device_array(s)  # both have a .get method
    np.testing.assert_array_equal(CPU.to_numpy(df), X)
    np.testing.assert_array_equal(CPU.to_numpy(s), y)
    np.testing.assert_array_equal(CPU.send(df, "float32"), X.astype(np.float32))
    assert_same_run(reference(X, y), reference(df, s))
    assert_same_run(reference(X, y, validation_fraction=0.25),
                    reference(df, s, validation_fraction=0.25))
    net, _ = reference(X, y)
    assert net.evaluate(df, s) == net.evaluate(X, y)
    np.testing.assert_array_equal(net.predict(df), net.predict(X))
    np.testing.assert_array_equal(net.predict_proba(df.iloc[:3]), net.predict_proba(X[:3]))
    reg = MLP([4, 1], output="identity", device="cpu", seed=0)
    assert reg.evaluate(df, pd.Series(X[:, 0])) == reg.evaluate(X, X[:, 0])
    assert reg.evaluate(df, pd.DataFrame(X[:, :1])) == reg.evaluate(X, X[:, :1])
    np.testing.assert_array_equal(Scaler("standard").fit(df).transform(df),
                                  Scaler("standard").fit(X).transform(X))


def test_pandas_that_cannot_become_numbers_gets_one_sentence():
    pd = pytest.importorskip("pandas", reason="pandas is an optional test dependency "
                                              "(pip install -e '.[test]')")
    X, y = blobs(n=6)
    net = MLP([4, 3], device="cpu", seed=0)
    mixed = pd.DataFrame(X, columns=list("abcd")).assign(d=list("uvwxyz"))
    with pytest.raises(ValueError, match=r"^X holds Python objects \(dtype object"):
        net.evaluate(mixed, y)
    with pytest.raises(ValueError, match=r"^y holds Python objects"):
        net.evaluate(X, pd.Series(list("ababab"), dtype=object))
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity"):
        net.evaluate(pd.DataFrame(X).where(X > 0), y)  # missing values become NaN
    with pytest.raises(ValueError, match=r"^X has 3 features but the network's input layer "
                                         r"has 4; fix X or layer_sizes\[0\]\.$"):
        net.evaluate(pd.DataFrame(X[:, :3]), y)


def test_cpu_torch_tensors_work_like_numpy():
    torch = pytest.importorskip("torch", reason="torch is an optional test dependency")
    X, y = blobs()
    tX, ty = torch.tensor(X), torch.tensor(y)
    assert not is_device_array(tX)
    assert_same_run(reference(X, y), reference(tX, ty))
    assert_same_run(reference(X, y, validation_fraction=0.25),
                    reference(tX, ty, validation_fraction=0.25))
    net, _ = reference(X, y)
    assert net.evaluate(tX, ty) == net.evaluate(X, y)
    assert net.evaluate(tX.float(), ty.int()) == net.evaluate(X.astype(np.float32), y)
    np.testing.assert_array_equal(net.predict(tX), net.predict(X))
    with pytest.raises(ValueError, match=r"^X cannot be converted to a NumPy array "
                                         r"\(RuntimeError: Can't call numpy\(\) on Tensor that "
                                         r"requires grad\); pass numbers in equal-length rows: a "
                                         r"NumPy array, lists, a pandas DataFrame or Series, or a "
                                         r"detached CPU torch tensor\.$"):
        net.evaluate(tX.requires_grad_(), y)


def test_lists_work_like_numpy_and_ragged_lists_get_one_sentence():
    X, y = blobs()
    assert_same_run(reference(X, y), reference(X.tolist(), y.tolist()))
    assert_same_run(reference(X, y, validation_fraction=0.25),
                    reference(X.tolist(), y.tolist(), validation_fraction=0.25))
    net = MLP([4, 3], device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"^X cannot be converted to a NumPy array \(ValueError: "
                                         r"setting an array element with a sequence\); pass "
                                         r"numbers in equal-length rows"):
        net.evaluate([[1, 2, 3, 4], [1, 2]], [0, 1])
    with pytest.raises(ValueError, match=r"^X cannot be converted to a NumPy array"):
        fit(net, [[1, 2, 3, 4], [1, 2]], [0, 1], epochs=1, validation_fraction=0.5)
    with pytest.raises(ValueError, match=r"^X holds Python objects"):
        net.evaluate([[1, 2, 3, None], [1, 2, 3, 4]], [0, 1])
    with pytest.raises(ValueError, match=r"^y has 3 entries but X has 2 samples"):
        fit(net, [[1, 2, 3, 4]] * 2, [0, 1, 2], epochs=1, validation_fraction=0.5)


@pytest.mark.parametrize("name", ["X", "X_val"])
def test_a_transposed_X_gets_the_hint(name):
    X, y = blobs(n=20)
    net = MLP([4, 8, 3], device="cpu", seed=0)
    msg = (rf"^{name} has 20 features but the network's input layer has 4; {name} looks "
           rf"transposed \(the tutorials' \(features, samples\) layout\): pass {name}\.T\.$")
    with pytest.raises(ValueError, match=msg):
        if name == "X":
            fit(net, X.T, y, epochs=1)
        else:
            fit(net, X, y, epochs=1, X_val=X.T, y_val=y)
    if name == "X":
        with pytest.raises(ValueError, match=msg):
            net.predict(X.T)
        # 4 x 4 is square: nothing to tell apart, no hint; 5 rows is not the feature count
        with pytest.raises(ValueError, match=r"has 5 features .* fix X or layer_sizes\[0\]\.$"):
            net.predict(np.zeros((5, 5)))


def test_array_likes_and_merged_batches_on_the_strict_device_stand_in():
    """The same through a device path: tests/strict_device.py's CuPy stand-in refuses implicit
    conversion to NumPy, so a pandas object reaching ``xp.asarray`` or a device array reaching
    ``np.asarray`` would raise here."""
    strict = pytest.importorskip("strict_device", reason="the CuPy stand-in is not available")
    pd = pytest.importorskip("pandas", reason="pandas is an optional test dependency "
                                              "(pip install -e '.[test]')")
    X, y = blobs(n=21)
    kw = dict(epochs=2, batch_size=5, optimizer="adam", lr=1e-2, seed=1, validation_fraction=0.2)
    on_device = MLP([4, 8, 3], batch_norm=True, dtype="float64", device=strict.StrictDevice(),
                    seed=0)
    hist = fit(on_device, pd.DataFrame(X), pd.Series(y), **kw)
    on_cpu = bn_net()
    expected = fit(on_cpu, X, y, **kw)
    assert hist.loss == expected.loss
    assert is_device_array(on_device.flat.data)
    np.testing.assert_array_equal(on_device.device.to_numpy(on_device.flat.data), on_cpu.flat.data)
    assert on_device.evaluate(X.tolist(), y.tolist()) == on_cpu.evaluate(X, y)


def test_device_arrays_are_recognised_by_their_module_not_by_duck_typing():
    class HasGet:  # like a pandas object: .get and .device, but no array module behind it
        device = "cpu"
        shape = (2,)

        def get(self, key=None):
            return key

    assert not is_device_array(HasGet())
    fake_cupy = type("ndarray", (), {"__module__": "cupy._core.core"})
    assert is_device_array(fake_cupy())
    assert not is_device_array(np.zeros(2)) and not is_device_array([1.0])
    assert as_array([1, 2], "v").tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"^v holds Python objects"):
        as_array(HasGet(), "v")


# ============================================================ family 7: accepted silently
@pytest.mark.parametrize("make, match", [
    (lambda net: Trainer(net, min_delta=float("nan")), "min_delta must be a finite number >= 0"),
    (lambda net: Trainer(net, min_delta=float("inf")), "min_delta must be a finite number >= 0"),
    (lambda net: Trainer(net, min_delta=-0.1), "min_delta must be a finite number >= 0"),
    (lambda net: Trainer(net, eps=float("inf")), "eps must be a finite number > 0"),
    (lambda net: Trainer(net, eps=float("nan")), "eps must be a finite number > 0"),
    (lambda net: Adam(net, eps=0.0), "eps must be a finite number > 0"),
    (lambda net: RMSprop(net, eps=float("inf")), "eps must be a finite number > 0"),
    (lambda net: Trainer(net, seed=1.5), "seed must be a whole number >= 0 or None"),
    (lambda net: Trainer(net, restore_best="no"), "restore_best must be True, False or None"),
    (lambda net: Trainer(net, callback=5), "callback must be a function"),
    (lambda net: MLP([4, 3], l2=True, device="cpu"), "l2 must be a finite number >= 0"),
    (lambda net: MLP([4, 3], l2=float("nan"), device="cpu"), "l2 must be a finite number >= 0"),
    (lambda net: MLP([4, 3], batch_norm="no", device="cpu"), "batch_norm must be True or False"),
    (lambda net: MLP([4, 3], batch_norm=1, device="cpu"), "batch_norm must be True or False"),
    (lambda net: MLP([4, 3], seed=1.5, device="cpu"), "seed must be a whole number >= 0"),
    (lambda net: BatchNorm1d(4, eps=float("inf")), "eps must be a finite number > 0"),
    (lambda net: BatchNorm1d(4, momentum=float("nan")), r"momentum must be a number in \[0, 1\]"),
    (lambda net: BatchNorm1d(0), "num_features must be a whole number >= 1"),
    (lambda net: Linear(3.5, 2), "in_features must be a whole number >= 1"),
    (lambda net: Linear(4, True), "out_features must be a whole number >= 1"),
])
def test_settings_once_accepted_without_complaint_are_refused(make, match):
    with pytest.raises(ValueError, match=f"^{match}"):
        make(MLP([4, 3], device="cpu", seed=0))


def test_x_val_without_y_val_is_refused():
    X, y = blobs()
    with pytest.raises(ValueError, match=r"^X_val and y_val go together"):
        fit(MLP([4, 3], device="cpu", seed=0), X, y, epochs=1, X_val=X)


def dropout_net():
    return Sequential([Linear(4, 8), ReLU(), Dropout(0.5), Linear(8, 6), ReLU(), Dropout(0.5),
                       Linear(6, 3)], dtype="float64", device="cpu", seed=0)


@pytest.mark.parametrize("bad", [(1, 6), (6,), (20, 1), (6, 20), (20, 8)])
def test_dropout_masks_of_the_wrong_shape_are_refused_not_broadcast(bad):
    net = dropout_net()
    X, y = blobs(n=20)
    good = [np.ones((20, 8)), np.ones((20, 6))]
    with pytest.raises(ValueError, match=rf"^dropout mask 1 has shape {re_shape(bad)} but its "
                                         r"layer's input has shape \(20, 6\); pass a 0/1 mask "
                                         r"of exactly that shape\.$"):
        net.loss_and_grads(X, y, dropout_masks=[good[0], np.ones(bad)])
    # nothing stale is left behind: no layer holds a mask for the next forward
    assert all(getattr(layer, "next_mask", None) is None for layer in net.layers)
    with pytest.raises(ValueError, match=r"^dropout mask 0 has shape"):
        net.loss_and_grads(X, y, dropout_masks=[np.ones((1, 8)), good[1]])
    with pytest.raises(ValueError, match=r"^dropout_masks has 1 masks but the network has 2"):
        net.loss_and_grads(X, y, dropout_masks=[good[0]])
    ones = net.loss_and_grads(X, y, dropout_masks=good)[0]
    assert math.isfinite(ones)


def re_shape(shape):
    return "\\(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + "\\)"


def test_module_exports_stay():
    assert training.split_dev and callable(training.fit)
