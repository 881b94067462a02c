"""Training on the device: full-batch parity with the CPU, a mini-batch run, resuming from a
checkpoint, and no transfers in the step loop (the device twin of tests/test_transfers.py; both
count with tests/transfer_spy.py, and on the strict CuPy stand-in every ``.get()``, implicit
conversion and host-to-device copy is counted directly as well).

Each test runs on the strict stand-in and on the real GPU (see tests/gpu/conftest.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import host_copy as to_host
from transfer_spy import check_transfers, instrument

import xpnet
from xpnet.backend import is_device_array


def problem(n, n_in, k, seed):
    """Gaussian inputs with learnable labels (the argmax of the first k features)."""
    X = np.random.default_rng(seed).standard_normal((n, n_in))
    return X, X[:, :k].argmax(axis=1)


# ------------------------------------------------------------------ full-batch parity
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("optimizer,lr", [("gd", 0.2), ("momentum", 0.05)])
def test_full_batch_fit_matches_cpu(optimizer, lr, batch_norm, parity, make_pair):
    """Full-batch training draws no random numbers on the device (no shuffle, no dropout), so
    the same seed gives the same math on both devices: float64 results must agree to rounding."""
    sizes = [16, 32, 16, 4]
    cpu, gpu = make_pair(sizes, "float64", seed=20, batch_norm=batch_norm, l2=0.01)
    X, y = problem(120, 16, 4, seed=21)
    X_val, y_val = problem(40, 16, 4, seed=22)
    epochs = 6
    hists = [
        xpnet.Trainer(net, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=None,
                      seed=23).fit(X, y, X_val, y_val)
        for net in (cpu, gpu)
    ]
    hc, hg = hists
    assert len(hc) == len(hg) == epochs
    where = f"{optimizer} {'bn' if batch_norm else 'plain'}"
    for key in ("loss", "val_loss"):
        parity.check(f"fit history {key}", np.array(getattr(hg, key)),
                     np.array(getattr(hc, key)), "float64", where=where)
    assert hg.accuracy == hc.accuracy  # counts of correct samples: identical away from ties
    for i, (pg, pc) in enumerate(zip(gpu.parameters() + gpu.buffers(),
                                     cpu.parameters() + cpu.buffers())):
        parity.check(f"fit {epochs} full-batch epochs: params", pg, pc, "float64",
                     where=f"{where} array {i}")


@pytest.mark.parametrize("data_on", ["host", "device"])
def test_minibatch_adam_fit_completes(data_on, gpu_device):
    """Host data (validated and sent once), or device data with the dev set split off on the
    device (``validation_fraction``: the stratified split reads the labels once)."""
    net = xpnet.MLP([16, 64, 32, 4], device=gpu_device, seed=30, batch_norm=True, dropout=0.2)
    X, y = problem(500, 16, 4, seed=31)
    X_val, y_val = problem(100, 16, 4, seed=32)
    if data_on == "host":
        hist = xpnet.fit(net, X, y, epochs=4, lr=1e-2, batch_size=64, optimizer="adam",
                         X_val=X_val, y_val=y_val, seed=33, schedule="cosine")
    else:
        X_all, y_all = np.concatenate([X, X_val]), np.concatenate([y, y_val])
        hist = xpnet.fit(net, gpu_device.send(X_all, "float32"), gpu_device.send(y_all),
                         epochs=4, lr=1e-2, batch_size=64, optimizer="adam",
                         validation_fraction=1 / 6, seed=33, schedule="cosine")
    assert len(hist) == 4 and hist.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        values = getattr(hist, key)
        assert len(values) == 4 and all(math.isfinite(v) for v in values), (key, values)
    assert hist.loss[-1] < hist.loss[0]
    assert all(is_device_array(p) for p in net.parameters())
    assert all(np.isfinite(to_host(p)).all() for p in net.parameters() + net.buffers())
    loss, acc = net.evaluate(X_val, y_val)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0


# ------------------------------------------------------- no transfers in the step loop
@pytest.mark.parametrize("batch_size", [32, None], ids=["minibatch", "fullbatch"])
def test_step_loop_makes_no_transfers_gpu(monkeypatch, batch_size, gpu_device):
    """Per epoch: no send / to_numpy / synchronize between the first step and the single
    metric read (to_numpy), which comes after the last update. Sends only during setup.

    On the strict stand-in the array module itself reports every device-to-host copy
    (``.get()``), implicit conversion (``float()``, ``bool()``, ...), host-to-device copy and
    synchronisation, wherever it happens (not only through ``Device`` methods): none may fall
    inside an epoch's step loop, and the epoch's single ``.get()`` is the metric read."""
    net = xpnet.MLP([12, 16, 8, 4], device=gpu_device, seed=0, batch_norm=True, dropout=0.2,
                    l2=1e-3)
    X, y = problem(100, 12, 4, seed=0)
    X_val, y_val = problem(40, 12, 4, seed=1)
    epochs = 3
    trainer = xpnet.Trainer(net, optimizer="adam", lr=1e-2, epochs=epochs, batch_size=batch_size,
                            schedule="cosine", seed=0)
    events = instrument(monkeypatch, trainer)
    xp = gpu_device.xp
    strict = hasattr(xp, "listeners")
    if strict:
        def on_event(kind, detail, where):
            events.append((f"xp:{kind}", f"{where} ({detail})"))

        monkeypatch.setattr(xp, "listeners", [on_event])
    trainer.fit(X.astype(np.float32), y, X_val.astype(np.float32), y_val)
    steps = 1 if batch_size is None else -(-len(X) // batch_size)
    check_transfers(events, epochs, steps)
    if strict:
        check_array_module_transfers(events, epochs)


def check_array_module_transfers(events, epochs):
    """On the stand-in: inside each epoch, from its first step until its metric read, no
    transfer of any kind; the read itself is exactly one ``.get()``."""
    from strict_device import TRANSFER_KINDS  # noqa: PLC0415

    transfers = {f"xp:{kind}" for kind in TRANSFER_KINDS}
    log = "\n".join(f"  {i:3d} {e:<16} {w}" for i, (e, w) in enumerate(events))
    names = [e for e, _ in events]
    start = names.index("step")
    reads = [i for i, e in enumerate(names) if e == "to_numpy"]
    assert len(reads) == epochs, log
    for epoch, read in enumerate(reads, 1):
        inside = [(e, w) for e, w in events[start:read] if e in transfers]
        assert not inside, (f"epoch {epoch}: transfers inside the step loop: {inside}\n{log}")
        end = names.index("epoch_end", read)
        in_read = [e for e in names[read:end] if e in transfers]
        assert in_read == ["xp:get"], f"epoch {epoch}: the metric read did {in_read}\n{log}"
        start = end + 1


def test_resume_from_device_checkpoint_matches_straight_run(tmp_path, parity, gpu_device):
    """A 4-epoch run stopped after 2 on the device, saved with its trainer state, loaded back
    onto the device (device -> host file -> device) and resumed to 4: the same parameters as 4
    epochs straight."""
    from xpnet import checkpoint

    X, y = problem(200, 12, 4, seed=50)
    X_val, y_val = problem(60, 12, 4, seed=51)
    kwargs = dict(optimizer="adam", lr=1e-2, batch_size=48, schedule="cosine", seed=52)

    def new_net():
        return xpnet.MLP([12, 16, 8, 4], dtype="float64", device=gpu_device, seed=53,
                         batch_norm=True, dropout=0.2)

    straight = new_net()
    xpnet.Trainer(straight, epochs=4, **kwargs).fit(X, y, X_val, y_val)
    first = new_net()
    trainer = xpnet.Trainer(first, epochs=4, callback=lambda t, r: r["epoch"] == 2, **kwargs)
    assert trainer.fit(X, y, X_val, y_val).interrupted and trainer.epoch == 2
    path = tmp_path / "run.npz"
    checkpoint.save(first, path, training_state=trainer.state_dict())
    resumed, state = checkpoint.load_checkpoint(path, device=gpu_device)
    assert resumed.device is gpu_device and all(is_device_array(p) for p in resumed.parameters())
    hist = xpnet.fit(resumed, X, y, epochs=4, X_val=X_val, y_val=y_val, resume=state, **kwargs)
    assert hist.epoch == [1, 2, 3, 4]
    for (name, a), b in zip(resumed.named_parameters() + resumed.named_buffers(),
                            straight.parameters() + straight.buffers()):
        parity.check("resumed run vs straight run (same device)", a, b, "float64", where=name)


def test_train_cli_on_device(tmp_path, monkeypatch, gpu_device):
    """``python -m xpnet.train --device cuda`` end to end (in process) on small synthetic
    MNIST-shaped data: sending the arrays once, the mini-batch run, the test pass with its
    confusion matrix on the device, ``--save`` and ``--metrics-json``."""
    import json

    from xpnet import backend, checkpoint, session, train
    from xpnet.data import MnistData

    rng = np.random.default_rng(60)
    y_train, y_test = rng.integers(0, 10, 600), rng.integers(0, 10, 100)

    def images(labels):  # learnable: a bright 10-pixel block per digit, plus noise
        X = rng.integers(0, 60, size=(len(labels), 784)).astype(np.uint8)
        for i, label in enumerate(labels):
            X[i, 70 * label:70 * label + 10] = 255
        return X

    data = MnistData(data_dir=tmp_path, X_train=images(y_train), y_train=y_train,
                     X_test=images(y_test), y_test=y_test)
    monkeypatch.setattr(session, "load_dataset", lambda *args, **kwargs: data)
    real_get_device = backend.get_device
    monkeypatch.setattr(backend, "get_device", lambda spec="auto": gpu_device
                        if spec == "cuda" else real_get_device(spec))
    model, metrics = tmp_path / "model.npz", tmp_path / "metrics.json"
    rc = train.main(["--device", "cuda", "--layers", "784,32,10", "--epochs", "3",
                     "--batch-size", "64", "--save", str(model), "--metrics-json", str(metrics),
                     "--quiet"])
    assert rc == 0
    result = json.loads(metrics.read_text())
    assert result["device"] == "cuda:0" and result["epochs_run"] == 3
    assert result["test_accuracy"] > 0.5, result["test_accuracy"]
    assert np.array(result["confusion_matrix"]).sum() == len(y_test)
    net = checkpoint.load(model, device="cpu")
    assert net.evaluate(data.X_test / 255.0, y_test)[1] >= 0.0


def test_table_model_on_device(tmp_path, gpu_device, parity):
    """xpnet.Model on the device: the schema encodes on the host, the network runs on the
    device, predictions come back as labels; the saved model predicts the same on the CPU."""
    import xpnet

    rng = np.random.default_rng(61)
    n = 200
    x = rng.normal(size=n)
    color = rng.choice(["red", "blue"], n)
    rows = {"x": x, "color": color, "flag": rng.choice(["True", "False"], n)}
    labels = np.where(x + (color == "red") > 0.5, "yes", "no")
    model = xpnet.Model.fit(rows, labels, device=gpu_device, epochs=5, seed=0,
                            dtype="float64")
    assert model.net.device is gpu_device
    proba = model.predict_proba(rows)
    assert isinstance(proba, np.ndarray) and proba.shape == (n, 2)
    assert set(model.predict(rows)) <= {"yes", "no"}
    model.save(tmp_path / "m.npz")
    on_cpu = xpnet.load(tmp_path / "m.npz", device="cpu")
    parity.check("table model: device vs CPU probabilities", proba, on_cpu.predict_proba(rows),
                 "float64")
