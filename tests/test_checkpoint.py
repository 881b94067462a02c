"""Checkpoints: exact round trips, the file format, atomic writes under real faults, and plain
errors for every kind of bad file (never another exception type, never unpickling)."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import MLP, fit, get_device
from xpnet import checkpoint as ckpt
from xpnet.backend import cuda_status
from xpnet.checkpoint import CheckpointError

CONFIGS = [
    dict(layer_sizes=[6, 5, 3], dtype="float32"),
    dict(layer_sizes=[6, 8, 4, 2], activation="tanh", output="sigmoid", dtype="float64",
         batch_norm=True, init="xavier", seed=3),
    dict(layer_sizes=[6, 7, 2], activation="leaky_relu", output="identity", dropout=0.3,
         l2=0.01, dtype="float32", seed=4),
    dict(layer_sizes=[6, 9, 7, 5, 3], activation="sigmoid", output="softmax", dtype="float64",
         batch_norm=True, dropout=0.2, init="normal", seed=5),
]


def _targets(net, m, rng):
    k = net.layer_sizes[-1]
    if net.output == "softmax":
        return rng.integers(0, k, m)
    if net.output == "sigmoid":
        return rng.integers(0, 2, (m, k))
    return rng.normal(size=(m, k))


def _trained(config, seed=0):
    """A net whose parameters, BN scales and running statistics are all away from their init."""
    rng = np.random.default_rng(seed)
    net = MLP(**config, device="cpu")
    X = rng.normal(size=(16, net.layer_sizes[0]))
    for _ in range(3):
        net.loss_and_grads(X, _targets(net, 16, rng))  # moves the BN running statistics
        for p, g in zip(net.parameters(), net.gradients(), strict=True):
            p -= 0.1 * g
    return net


def _state(net):
    """Host copies of every parameter and buffer, by state-dict name."""
    return net.state_dict()


def _bn(net, i=0):
    """The ``i``-th batch-norm layer."""
    return [layer for layer in net.layers if type(layer).__name__ == "BatchNorm1d"][i]


def _assert_same_net(a, b):
    assert b.config() == a.config()
    sa, sb = _state(a), _state(b)
    assert list(sa) == list(sb)
    for name in sa:
        x, y = sa[name], sb[name]
        assert x.dtype == y.dtype == np.dtype(a.dtype), name
        assert np.array_equal(x, y), name
    X = np.random.default_rng(9).normal(size=(11, a.layer_sizes[0]))
    assert np.array_equal(a.forward(X), b.forward(X))
    assert np.array_equal(a.predict(X), b.predict(X))


@pytest.fixture
def saved(tmp_path):
    """A real checkpoint on disk and the net it came from."""
    net = _trained(CONFIGS[1])
    path = ckpt.save(net, tmp_path / "model.npz", {"json": {"epoch": 2}, "arrays": {"v": [1.0]}})
    return net, path


def _rewrite(src, dst, **changes):
    """Copy checkpoint ``src`` to ``dst`` with some entries replaced (or removed with None)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    for name, value in changes.items():
        name = name.replace("__", "/") if name.startswith("train__") else name
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def _meta(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(ckpt.meta_text(z["__meta__"]))


# ------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c['dtype']}-{len(c)}")
def test_round_trip_is_exact(tmp_path, config):
    net = _trained(config)
    if net.batch_norm:
        running_var, gamma = _bn(net).buffers["running_var"], _bn(net).params["weight"]
        assert not np.array_equal(running_var, np.ones_like(running_var))
        assert not np.array_equal(gamma, np.ones_like(gamma))
    path = ckpt.save(net, tmp_path / "net.npz")
    assert path == tmp_path / "net.npz"
    loaded, training = ckpt.load_checkpoint(path, device="cpu")
    assert training is None
    _assert_same_net(net, loaded)
    _assert_same_net(net, ckpt.load(str(path), device="cpu"))


def test_training_state_round_trip(tmp_path):
    net = _trained(CONFIGS[3])
    arrays = {
        "adam/m/W0": np.random.default_rng(1).normal(size=(9, 6)),
        "adam/v/W0": np.random.default_rng(2).random((9, 6)).astype(np.float32),
        "rng_state": np.arange(5, dtype=np.uint64) * (2**60),
        "mask": np.array([True, False, True]),
        "step": np.int64(1234),
        "empty": np.zeros((0, 3)),
    }
    info = {"epoch": 7, "lr": 1e-3, "history": [[0.5, 0.4], [0.3, 0.2]], "name": "ünï", "x": None}
    ckpt.save(net, tmp_path / "c.npz", {"json": info, "arrays": arrays})
    loaded, training = ckpt.load_checkpoint(tmp_path / "c.npz", device="cpu")
    _assert_same_net(net, loaded)
    assert training["json"] == info
    assert set(training["arrays"]) == set(arrays)
    for name, a in arrays.items():
        b = training["arrays"][name]
        assert type(b) is np.ndarray
        assert b.dtype == np.asarray(a).dtype and b.shape == np.shape(a)
        assert np.array_equal(b, a)


def test_read_state_selects_what_is_read(tmp_path):
    net = _trained(CONFIGS[0])
    state = ckpt.nest_states(trainer={"json": {"epoch": 3}, "arrays": {"opt/m/0.weight":
                                                                      np.ones((5, 6))}},
                             scaler={"json": {"method": "unit"}, "arrays": {"offset": 0.0}})
    path = ckpt.save(net, tmp_path / "c.npz", state)
    _, everything = ckpt.load_checkpoint(path, device="cpu")
    assert set(everything["arrays"]) == {"trainer/opt/m/0.weight", "scaler/offset"}
    loaded, only = ckpt.load_checkpoint(path, device="cpu", read_state=("scaler/",))
    assert set(only["arrays"]) == {"scaler/offset"} and only["json"] == everything["json"]
    _assert_same_net(net, loaded)
    assert ckpt.load_checkpoint(path, device="cpu", read_state=False)[1] is None


def test_empty_training_state_is_kept_apart_from_none(tmp_path):
    net = MLP([3, 2], device="cpu")
    ckpt.save(net, tmp_path / "a.npz", {"json": {}, "arrays": {}})
    assert ckpt.load_checkpoint(tmp_path / "a.npz", "cpu")[1] == {"json": {}, "arrays": {}}
    ckpt.save(net, tmp_path / "b.npz", None)
    assert ckpt.load_checkpoint(tmp_path / "b.npz", "cpu")[1] is None


def test_file_format(tmp_path):
    net = _trained(CONFIGS[1])
    path = ckpt.save(net, tmp_path / "model.ckpt", {"json": {"e": 1}, "arrays": {"a/b": [2, 3]}})
    assert os.listdir(tmp_path) == ["model.ckpt"]  # the path is used as given
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        meta_array = z["__meta__"]
        assert z["train/a/b"].tolist() == [2, 3]
    # UTF-8 bytes: a 0-d unicode array would take 4 bytes a character, and a long run's JSON
    # would meet the per-item cap of the reader (issue 23, family 1)
    assert meta_array.dtype == np.uint8 and meta_array.ndim == 1
    meta = json.loads(meta_array.tobytes().decode("utf-8"))
    assert meta == {
        "format": "xpnet-checkpoint",
        "format_version": 2,
        "architecture": "MLP",
        "config": net.config(),
        "xpnet_version": "0.1.0",
        "saved_from_device": "cpu",
        "training": {"e": 1},
    }
    # [6, 8, 4, 2] with batch norm: Linear, BatchNorm1d, Tanh, Linear, BatchNorm1d, Tanh, Linear
    # under torch.nn.Sequential's names (the Linear before a batch norm keeps its bias)
    assert names == (
        {"__meta__", "train/a/b"}
        | {f"{i}.{k}" for i in (0, 3, 6) for k in ("weight", "bias")}
        | {f"{i}.{k}" for i in (1, 4) for k in ("weight", "bias", "running_mean", "running_var")}
    )
    assert names - {"__meta__", "train/a/b"} == set(net.state_dict())


def test_meta_stored_as_utf8_bytes_is_accepted(saved, tmp_path):
    net, path = saved
    text = json.dumps(_meta(path))
    other = _rewrite(path, tmp_path / "u8.npz",
                     __meta__=np.frombuffer(text.encode(), dtype=np.uint8))
    _assert_same_net(net, ckpt.load(other, device="cpu"))


# ------------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["cpu", "auto", get_device("cpu")])
def test_loads_on_requested_device(saved, device):
    net, path = saved
    assert _meta(path)["saved_from_device"] == "cpu"
    loaded = ckpt.load(path, device=device)
    assert loaded.device.name == get_device(device).name  # "auto" falls back to cpu without GPU
    _assert_same_net(net, loaded)


@pytest.mark.gpu
def test_cross_device_round_trip(tmp_path):
    usable, reason = cuda_status()
    if not usable:
        pytest.skip(reason)
    cpu_net = _trained(CONFIGS[3])
    ckpt.save(cpu_net, tmp_path / "cpu.npz")
    gpu_net = ckpt.load(tmp_path / "cpu.npz", device="cuda")
    assert gpu_net.device.is_gpu
    gpu_state = gpu_net.state_dict()
    assert list(gpu_state) == list(_state(cpu_net))
    for name, a in _state(cpu_net).items():
        assert a.dtype == gpu_state[name].dtype and np.array_equal(a, gpu_state[name]), name
    ckpt.save(gpu_net, tmp_path / "gpu.npz", {"json": {}, "arrays": {"m": gpu_net.params[0][0]}})
    assert _meta(tmp_path / "gpu.npz")["saved_from_device"] == "cuda:0"
    back, training = ckpt.load_checkpoint(tmp_path / "gpu.npz", device="cpu")
    _assert_same_net(cpu_net, back)
    assert type(training["arrays"]["m"]) is np.ndarray


def test_expected_architecture_mismatch(saved):
    net, path = saved
    assert ckpt.load(path, "cpu", expect_layers=net.layer_sizes).layer_sizes == net.layer_sizes
    with pytest.raises(CheckpointError) as info:
        ckpt.load(path, "cpu", expect_layers=[6, 8, 2])
    msg = str(info.value)
    assert str(path) in msg and "[6, 8, 4, 2]" in msg and "[6, 8, 2]" in msg


# ------------------------------------------------------------------------------- atomic writes
class _Exploding:
    """An array-like whose conversion to NumPy fails, like a device copy that errors out."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("device copy failed")


@pytest.fixture
def previous(tmp_path):
    """An existing checkpoint that a failed save must leave byte-for-byte intact."""
    net = MLP([4, 3, 2], device="cpu", seed=1)
    path = ckpt.save(net, tmp_path / "model.npz", {"json": {"epoch": 1}, "arrays": {}})
    return path, path.read_bytes()


def _assert_untouched(path, old_bytes):
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary files left behind
    assert ckpt.load_checkpoint(path, "cpu")[1]["json"] == {"epoch": 1}


def test_failure_converting_arrays_keeps_previous(previous):
    path, old = previous
    state = {"json": {"epoch": 2}, "arrays": {"ok": np.ones(3), "bad": _Exploding()}}
    with pytest.raises(CheckpointError, match="device copy failed") as info:
        ckpt.save(_trained(CONFIGS[0]), path, state)
    assert str(path) in str(info.value)
    _assert_untouched(path, old)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_disk_full_midway_keeps_previous(previous, monkeypatch):
    """The temporary file's writes go to /dev/full, so the kernel answers ENOSPC mid-write."""
    path, old = previous
    real_mkstemp = tempfile.mkstemp
    made = []

    def mkstemp_on_full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        made.append(name)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_on_full_disk)
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        ckpt.save(_trained(CONFIGS[3]), path, {"json": {}, "arrays": {"big": np.ones(50_000)}})
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert len(made) == 1 and not os.path.exists(made[0])
    _assert_untouched(path, old)


def test_fsync_failure_keeps_previous(previous, monkeypatch):
    path, old = previous

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(CheckpointError, match="Input/output error"):
        ckpt.save(_trained(CONFIGS[0]), path)
    monkeypatch.undo()
    _assert_untouched(path, old)


def test_rename_onto_directory_fails_cleanly(tmp_path):
    target = tmp_path / "model.npz"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(CheckpointError) as info:
        ckpt.save(MLP([3, 2], device="cpu"), target)
    assert str(target) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert os.listdir(target) == ["keep.txt"] and (target / "keep.txt").read_text() == "precious"


def test_missing_directory_is_reported(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_bytes(b"x")
    for target in (blocker / "model.npz", tmp_path / "absent" / "model.npz"):
        with pytest.raises(CheckpointError) as info:
            ckpt.save(MLP([3, 2], device="cpu"), target)
        assert str(target) in str(info.value) and "writable" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["not_a_dir"] and blocker.read_bytes() == b"x"


@pytest.mark.parametrize(
    "state, words",
    [
        ({"json": {"f": object()}, "arrays": {}}, "JSON-serialisable"),
        ({"json": {}, "arrays": {"o": np.array([None, 1], dtype=object)}}, "dtype object"),
        ({"json": {}, "arrays": {"": np.ones(2)}}, "non-empty strings"),
        ({"jsn": {}}, "training_state must be a dict"),
    ],
)
def test_bad_training_state_is_refused_before_writing(tmp_path, state, words):
    with pytest.raises(CheckpointError, match=words) as info:
        ckpt.save(MLP([3, 2], device="cpu"), tmp_path / "m.npz", state)
    assert str(tmp_path / "m.npz") in str(info.value)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------- bad files
def _bad_files(saved_path, tmp):
    """(file, words expected in the error) for each kind of damage."""
    data = saved_path.read_bytes()
    meta = _meta(saved_path)
    files = {}

    def write(name, content):
        (tmp / name).write_bytes(content)
        return tmp / name

    def meta_with(**changes):
        return np.array(json.dumps({**meta, **changes}))

    files["random"] = (write("random.npz", np.random.default_rng(0).bytes(300)), "not an xpnet")
    files["empty"] = (write("empty.npz", b""), "empty")
    files["npy"] = (write("one.npz", _npy_bytes(np.ones(3))), "not an xpnet")
    files["truncated"] = (write("half.npz", data[: len(data) // 2]), "truncated or corrupt")
    files["flipped"] = (write("flip.npz", data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]),
                        "truncated or corrupt")
    files["no_meta"] = (_rewrite(saved_path, tmp / "nometa.npz", __meta__=None), "no __meta__")
    files["meta_bytes"] = (_rewrite(saved_path, tmp / "mb.npz", __meta__=np.ones(3)),
                           "truncated or corrupt")
    files["meta_json"] = (_rewrite(saved_path, tmp / "mj.npz", __meta__=np.array("{oops")),
                          "truncated or corrupt")
    files["format"] = (_rewrite(saved_path, tmp / "fmt.npz", __meta__=meta_with(format="other")),
                       "not an xpnet checkpoint")
    files["newer"] = (_rewrite(saved_path, tmp / "new.npz",
                               __meta__=meta_with(format_version=999)), "newer xpnet")
    files["version"] = (_rewrite(saved_path, tmp / "ver.npz",
                                 __meta__=meta_with(format_version="1")), "format_version")
    files["config"] = (_rewrite(saved_path, tmp / "cfg.npz", __meta__=meta_with(config=None)),
                       "config")
    bad_config = {**meta["config"], "activation": "swish"}
    files["config_value"] = (_rewrite(saved_path, tmp / "cv.npz",
                                      __meta__=meta_with(config=bad_config)), "swish")
    files["W0_shape"] = (_rewrite(saved_path, tmp / "w0.npz", **{"0.weight": np.ones((6, 8))}),
                         "'0.weight'")
    files["b1_missing"] = (_rewrite(saved_path, tmp / "b1.npz", **{"3.bias": None}),
                           "lacks the array '3.bias'")
    files["bn_missing"] = (_rewrite(saved_path, tmp / "bn.npz", **{"4.running_var": None}),
                           "4.running_var")
    files["W_strings"] = (_rewrite(saved_path, tmp / "ws.npz",
                                   **{"0.weight": np.full((8, 6), "a")}), "dtype")
    obj = np.array([{"evil": 1}, None], dtype=object)
    for name, entry in [("object_W0", "0.weight"), ("object_train", "train__v"),
                        ("object_meta", "__meta__")]:
        target = tmp / f"{name}.npz"
        with open(target, "wb") as f:  # allow_pickle defaults to True when writing
            with np.load(saved_path, allow_pickle=False) as z:
                arrays = {n: z[n] for n in z.files}
            arrays[entry.replace("__", "/") if entry.startswith("train") else entry] = obj
            np.savez(f, **arrays)
        files[name] = (target, "object array")
    files["missing"] = (tmp / "nope.npz", "does not exist")
    files["directory"] = (tmp, "cannot read")
    return files


def _npy_bytes(a):
    with tempfile.TemporaryFile() as f:
        np.save(f, a)
        f.seek(0)
        return f.read()


BAD = ["random", "empty", "npy", "truncated", "flipped", "no_meta", "meta_bytes", "meta_json",
       "format", "newer", "version", "config", "config_value", "W0_shape", "b1_missing",
       "bn_missing", "W_strings", "object_W0", "object_train", "object_meta", "missing",
       "directory"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_file_gives_plain_error(saved, tmp_path, kind):
    _, path = saved
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad, words = _bad_files(path, bad_dir)[kind]
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(bad, device="cpu")
    msg = str(info.value)
    assert str(bad) in msg and words in msg
    assert "\n" not in msg
    if kind == "newer":
        assert "upgrade" in msg


def test_bad_file_kinds_are_all_tested(saved, tmp_path):
    assert sorted(_bad_files(saved[1], tmp_path)) == sorted(BAD)


def test_nothing_is_ever_unpickled(saved, tmp_path, monkeypatch):
    net, path = saved
    bad = _bad_files(path, tmp_path)["object_W0"][0]

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    seen = []
    real_load = np.load

    def spy_load(*args, **kwargs):
        seen.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy_load)
    loaded, training = ckpt.load_checkpoint(path, device="cpu")
    _assert_same_net(net, loaded)
    assert training["arrays"]["v"].tolist() == [1.0]
    with pytest.raises(CheckpointError, match="object array"):
        ckpt.load(bad, device="cpu")
    # The reader parses each .npy header itself (refusing object dtypes before any data is
    # read) and never hands the file to np.load.
    assert seen == []


# ------------------------------------------------------------------------------- fuzzing
_FUZZ = settings(max_examples=100, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_or_checkpoint_error(path):
    try:
        ckpt.load_checkpoint(path, device="cpu")
    except CheckpointError as exc:
        assert str(path) in str(exc)


@_FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_escape_as_other_errors(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    _load_or_checkpoint_error(path)


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_damaged_checkpoints_never_escape_as_other_errors(saved, tmp_path, edits, cut):
    _, original = saved
    data = bytearray(original.read_bytes())
    for pos, value in edits:
        data[pos % len(data)] = value
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    _load_or_checkpoint_error(path)


# ------------------------------------------------------------------------------- format 1
V1_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "checkpoint_v1",
                          "softmax_bn_dropout.npz")


def _v1_recipe_data():
    """The data tests/fixtures/checkpoint_v1/make_fixtures.py trained softmax_bn_dropout on."""
    from xpnet.preprocessing import Scaler

    rng = np.random.default_rng(7)
    X = rng.standard_normal((64, 6)) * 3 + 1
    y = rng.integers(0, 3, 64)
    return Scaler("standard").fit(X).transform(X), y


def _v1_recipe_net():
    return MLP([6, 5, 4, 3], output="softmax", seed=3, batch_norm=True, dropout=0.25,
               activation="relu", device="cpu")


V1_RECIPE = {"optimizer": "adam", "lr": 0.01, "batch_size": 16}
# The Linear biases in front of a batch norm (new in format 2: format 1 used them as the batch
# norm's beta). Their gradient is 0 up to rounding, so format 1 files hold no moments for them
# (zero-filled on load) and today's training moves them by Adam-normalised noise: they, and the
# running means that absorb them, are compared through the network's outputs instead.
V1_CANCELLED = {"0.bias", "4.bias", "1.running_mean", "5.running_mean"}


def _training_mode_outputs(net, X, y):
    """Loss and gradients in training mode with every unit kept: batch statistics cancel the
    Linear biases in front of the batch norms, so unlike inference outputs (where the running
    means lag behind those biases) these compare across formats. Buffers are left as found."""
    buffers = {name: a.copy() for name, a in net.named_buffers()}
    masks = [np.ones((len(X), n)) for n in net.layer_sizes[1:-1]]
    loss, _ = net.loss_and_grads(X, y, dropout_masks=masks)
    grads = {name: np.array(g) for (name, _), g in zip(net.named_parameters(), net.gradients())
             if name not in V1_CANCELLED}
    net.load_state_dict(buffers, strict=False)
    return loss, grads


def _assert_same_training_outputs(a, b, X, y, rtol):
    loss_a, grads_a = _training_mode_outputs(a, X, y)
    loss_b, grads_b = _training_mode_outputs(b, X, y)
    assert loss_a == pytest.approx(loss_b, rel=rtol)
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=rtol,
                                   atol=rtol * np.abs(grads_b[name]).max(), err_msg=name)


def test_v1_trainer_state_is_converted_to_named_arrays():
    net, state = ckpt.load_checkpoint(V1_FIXTURE, device="cpu")
    trainer = ckpt.sub_state(state, "trainer")
    params = [name for name, _ in net.named_parameters()]
    everything = params + [name for name, _ in net.named_buffers()]
    assert set(trainer["arrays"]) == ({f"opt/{s}/{p}" for s in ("m", "v") for p in params}
                                      | {f"best/{n}" for n in everything})
    shapes = {name: a.shape for name, a in net.state_dict().items()}
    for key, a in trainer["arrays"].items():
        assert a.shape == shapes[key.rsplit("/", 1)[1]], key
    for name in ("0.bias", "4.bias"):  # nothing in format 1: zero-filled
        assert not trainer["arrays"][f"opt/m/{name}"].any()
        assert not trainer["arrays"][f"opt/v/{name}"].any()
    assert trainer["json"]["trainer"]["format"] == 2
    assert trainer["json"]["optimizer"]["t"] == 12  # 3 epochs of 4 steps

    # Today's xpnet replays the fixture's recipe to float32 rounding, so the converted arrays
    # must equal the ones a format-2 run of the same recipe holds, name by name: a positional
    # mix-up (say gamma's moments under beta's name) would show here.
    replay = _v1_recipe_net()
    X, y = _v1_recipe_data()
    fit(replay, X, y, epochs=3, seed=5, **V1_RECIPE)
    fresh = replay.trainer_.state_dict()["arrays"]
    assert set(fresh) == set(trainer["arrays"])
    for key, a in trainer["arrays"].items():
        if key.rsplit("/", 1)[1] not in V1_CANCELLED:
            np.testing.assert_allclose(a, fresh[key], rtol=1e-5, atol=1e-7, err_msg=key)
    _assert_same_training_outputs(net, replay, X, y, rtol=1e-4)
    assert replay.trainer_.history.loss == pytest.approx(
        trainer["json"]["history"]["loss"], rel=1e-6)


def test_v1_trainer_state_resumes(tmp_path):
    X, y = _v1_recipe_data()
    net, state = ckpt.load_checkpoint(V1_FIXTURE, device="cpu")
    hist = fit(net, X, y, epochs=5, resume=ckpt.sub_state(state, "trainer"), **V1_RECIPE)
    assert hist.epoch == [1, 2, 3, 4, 5] and net.trainer_.seed == 5
    assert net.trainer_.optimizer.t == 20
    assert all(math.isfinite(v) for v in hist.loss)

    # a format-2 run of the same recipe, straight to 5 epochs, ends at the same place
    straight = _v1_recipe_net()
    h_straight = fit(straight, X, y, epochs=5, seed=5, **V1_RECIPE)
    np.testing.assert_allclose(hist.loss, h_straight.loss, rtol=1e-5)
    assert hist.accuracy == h_straight.accuracy
    _assert_same_training_outputs(net, straight, X, y, rtol=1e-4)
    for name, a in net.state_dict().items():
        if name not in V1_CANCELLED:
            np.testing.assert_allclose(a, straight.state_dict()[name], rtol=1e-4, atol=1e-5,
                                       err_msg=name)

    # and the converted state saves as format 2 and resumes identically from there
    v1_net, v1_state = ckpt.load_checkpoint(V1_FIXTURE, device="cpu")
    ckpt.save(v1_net, tmp_path / "v2.npz", v1_state)
    assert _meta(tmp_path / "v2.npz")["format_version"] == 2
    again, state2 = ckpt.load_checkpoint(tmp_path / "v2.npz", device="cpu")
    h_again = fit(again, X, y, epochs=5, resume=ckpt.sub_state(state2, "trainer"), **V1_RECIPE)
    assert h_again.loss == hist.loss
    _assert_same_net(net, again)


def test_v2_trainer_state_resumes_exactly_through_a_file(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 6)), rng.integers(0, 3, 50)

    def make():
        return MLP([6, 7, 3], dtype="float64", batch_norm=True, dropout=0.2, seed=1,
                   device="cpu")

    kw = dict(optimizer="adamw", lr=0.01, batch_size=16, schedule="cosine", weight_decay=0.1)
    straight = make()
    fit(straight, X, y, epochs=4, seed=2, **kw)
    first = make()
    fit(first, X, y, epochs=4, seed=2, callback=lambda t, r: r["epoch"] == 2, **kw)
    ckpt.save(first, tmp_path / "run.npz", ckpt.nest_states(trainer=first.trainer_.state_dict()))
    resumed, state = ckpt.load_checkpoint(tmp_path / "run.npz", device="cpu")
    assert {k for k in state["arrays"] if k.startswith("trainer/opt/")} == {
        f"trainer/opt/{s}/{n}" for s in ("m", "v") for n, _ in resumed.named_parameters()}
    fit(resumed, X, y, epochs=4, resume=ckpt.sub_state(state, "trainer"), **kw)
    _assert_same_net(straight, resumed)


def test_what_is_saved_loads_back_however_long_its_json(tmp_path):
    """One limit for saver and reader (issue 23, family 1): a 4,000-epoch history and a
    30,000-column table's model record, each far past the 262,144 characters a one-element
    unicode __meta__ could hold, save and load back; a first-format-2 unicode __meta__ is
    still read."""
    net = xpnet.MLP([3, 2], device="cpu", seed=0)
    history = {"loss": [0.123456789] * 4000, "val_loss": [None] * 4000}
    path = ckpt.save(net, tmp_path / "long.npz", {"json": {"history": history}, "arrays": {}})
    _, state = ckpt.load_checkpoint(path, device="cpu")
    assert state["json"]["history"] == history
    names = [f"column_{j:05d}" for j in range(30_000)]
    model = xpnet.Model(xpnet.MLP([30_000, 2], device="cpu", seed=0),
                        xpnet.InputSchema.numeric(names, xpnet.Scaler("none").fit(
                            np.zeros((1, 30_000)))),
                        xpnet.Target("classification", classes=["a", "b"]))
    wide = model.save(tmp_path / "wide.npz")
    assert len(json.dumps(_meta(wide))) > 1_000_000
    assert xpnet.load(wide, device="cpu").feature_names_in_[-1] == "column_29999"
    old = _rewrite(path, tmp_path / "u.npz", __meta__=np.array(json.dumps(_meta(path))))
    assert ckpt.load_checkpoint(old, device="cpu")[1]["json"]["history"] == history
