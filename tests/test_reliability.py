"""Faults injected for real, and what xpnet does about them.

* SIGINT / SIGTERM sent with ``os.kill`` to a real training subprocess once it has printed its
  first epoch line: it finishes the epoch, saves a resumable checkpoint, exits 130 / 143, and
  ``--resume`` ends with the parameters of an uninterrupted run. A second SIGINT aborts at once
  without touching the checkpoint file.
* Divergence (a learning rate of 1e30 saving over a good checkpoint): exit 1, "lower the
  learning rate", the previous checkpoint byte-for-byte unchanged (no NaNs written over it); a
  resume that asks for another learning rate is refused (exit 2) and changes nothing.
* Unwritable save paths (parent is a file, a path under /dev/full) and a write that fails
  half-way (RLIMIT_FSIZE in the child: the kernel refuses to grow the file, as on a full disk):
  exit 1, one line naming the path, the old checkpoint intact, no temporary files left.
* Out of memory: RLIMIT_AS in the child makes a 784-20000-10 full-batch run raise a real host
  MemoryError: exit 1, "use a smaller --batch-size".
* The Python API: a table of bad inputs, each of which must raise ValueError naming the argument.

Training subprocesses use the verified MNIST files from ``XPNET_DATA_DIR`` (skipped, saying why,
when unset) cut to 6000 training images by the test hook ``XPNET_MNIST_SUBSET``.
"""

from __future__ import annotations

import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import (
    SUBSET,
    assert_same_model,
    cli_env,
    epoch_numbers,
    model_arrays,
    one_error_line,
    run_train,
)

from xpnet import MLP, Scaler, Trainer, fit, get_device, stratified_split
from xpnet.checkpoint import load_checkpoint

EPOCHS = 8
# The default cosine schedule over EPOCHS: an interrupted run resumed to the same --epochs must
# follow exactly the straight run's learning-rate trajectory.
RUN = ["--layers", "784,32,10", "--batch-size", "512", "--device", "cpu", "--seed", "1",
       "--epochs", str(EPOCHS)]


# ------------------------------------------------------------------------------- helpers
def start(args, cwd, subset=SUBSET):
    """A training subprocess with piped output, killed by a watchdog if it hangs."""
    proc = subprocess.Popen([sys.executable, "-m", "xpnet.train", *map(str, args)], cwd=cwd,
                            env=cli_env(subset), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watchdog = threading.Timer(240, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    proc.watchdog = watchdog
    return proc


def read_until(stream, predicate, proc) -> list[str]:
    """Lines of ``stream`` up to and including the first one for which ``predicate`` holds."""
    seen = []
    for line in stream:
        seen.append(line)
        if predicate(line):
            return seen
    proc.wait()
    raise AssertionError(f"the child ended (exit {proc.returncode}) before the expected line; "
                         f"read: {''.join(seen)!r}; stderr: {proc.stderr.read()!r}")


def finish(proc, already=()):
    out, err = proc.communicate(timeout=240)
    proc.watchdog.cancel()
    return proc.returncode, "".join(already) + out, err


def listing(directory) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir())


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> Path:
    """The uninterrupted EPOCHS-epoch run, saved."""
    d = tmp_path_factory.mktemp("reference")
    result = run_train([*RUN, "--data-dir", data_dir, "--save", "ref.npz"], cwd=d)
    assert result.returncode == 0, result.stderr
    assert epoch_numbers(result.stdout) == list(range(1, EPOCHS + 1))
    return d / "ref.npz"


# ------------------------------------------------------------------------------- signals
@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_stops_after_the_epoch_saves_and_resumes_exactly(sig, code, reference, data_dir,
                                                                tmp_path):
    proc = start([*RUN, "--data-dir", data_dir, "--save", "ck.npz"], tmp_path)
    seen = read_until(proc.stdout, lambda line: line.startswith("epoch "), proc)
    os.kill(proc.pid, sig)
    rc, out, err = finish(proc, seen)

    assert rc == code, err
    assert "Traceback" not in err
    assert f"{signal.Signals(sig).name} received: stopping after this epoch" in err
    m = re.search(r"stopped after epoch (\d+); resume with --resume ck\.npz", err)
    assert m, err
    k = int(m.group(1))
    assert 1 <= k < EPOCHS, "the signal arrived after training had finished"
    assert epoch_numbers(out) == list(range(1, k + 1))
    assert "test accuracy" not in out
    _, state = load_checkpoint(tmp_path / "ck.npz", device="cpu")
    assert state["json"]["trainer"]["epoch"] == k
    assert state["json"]["trainer"]["history"]["interrupted"] is True

    resumed = run_train([*RUN, "--data-dir", data_dir, "--resume", "ck.npz", "--save", "final.npz"],
                        cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from ck.npz after epoch {k}" in resumed.stdout
    assert epoch_numbers(resumed.stdout) == list(range(k + 1, EPOCHS + 1))
    assert_same_model(tmp_path / "final.npz", reference)


@pytest.mark.slow
def test_sigterm_without_save_says_how_to_keep_a_checkpoint(data_dir, tmp_path):
    proc = start([*RUN, "--data-dir", data_dir], tmp_path)
    seen = read_until(proc.stdout, lambda line: line.startswith("epoch "), proc)
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc, seen)
    assert rc == 143, err
    assert "pass --save PATH to keep a resumable checkpoint" in err
    assert listing(tmp_path) == []


@pytest.mark.slow
def test_second_sigint_aborts_without_writing(reference, data_dir, tmp_path):
    """Full training set (about 2 s per epoch), so the second SIGINT, sent as soon as the
    child has acknowledged the first, lands well inside the same epoch."""
    target = tmp_path / "ck.npz"
    shutil.copyfile(reference, target)
    before = target.read_bytes()
    proc = start(["--layers", "784,64,10", "--batch-size", "256", "--device", "cpu",
                  "--epochs", 5, "--data-dir", data_dir, "--save", target], tmp_path,
                 subset=None)
    seen = read_until(proc.stdout, lambda line: line.startswith("epoch "), proc)
    proc.send_signal(signal.SIGINT)
    err_seen = read_until(proc.stderr, lambda line: "SIGINT received" in line, proc)
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc, seen)
    err = "".join(err_seen) + err

    assert rc == 130, err
    assert "xpnet.train: interrupted" in err
    assert "Traceback" not in err
    assert "saved" not in out and "stopped after epoch" not in err
    assert epoch_numbers(out) == [1]
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["ck.npz"]  # no temporary file left behind


# ------------------------------------------------------------------------------- divergence
@pytest.mark.slow
def test_divergence_keeps_the_previous_checkpoint(data_dir, tmp_path):
    gd = ["--layers", "784,32,10", "--device", "cpu", "--optimizer", "gd", "--batch-size",
          "full", "--schedule", "constant", "--data-dir", data_dir, "--save", "ck.npz"]
    good = run_train([*gd, "--epochs", 2], cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    ck = tmp_path / "ck.npz"
    before = ck.read_bytes()

    # A resumed run keeps its own learning rate: asking for another one is a usage error.
    refused = run_train([*gd, "--epochs", 20, "--resume", "ck.npz", "--lr", "1e30"],
                        cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    line = one_error_line(refused)
    assert "--lr 1e+30 (the run used 0.1)" in line
    assert ck.read_bytes() == before

    # lr 1e30 from scratch, saving over the good checkpoint: the first update puts weights
    # near 1e30, so the next float32 forward pass overflows to inf/NaN whatever the data. (A
    # merely huge lr such as 1e6 can leave the loss huge but finite once the ReLUs die, which
    # is not a divergence.)
    bad = run_train([*gd, "--epochs", 20, "--lr", "1e30"], cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    line = one_error_line(bad)
    assert "diverged" in line and "lower the learning rate (now 1e+30)" in line
    assert "ck.npz was not written" in line
    assert ck.read_bytes() == before
    assert listing(tmp_path) == ["ck.npz"]
    _, state = load_checkpoint(ck, device="cpu")
    assert state["json"]["trainer"]["epoch"] == 2
    assert all(np.isfinite(a).all() for a in model_arrays(ck))


# ------------------------------------------------------------------------------- writes that fail
@pytest.mark.slow
@pytest.mark.parametrize("where", ["parent-is-a-file", "under-dev-full", "metrics-under-file"])
def test_unwritable_output_paths_exit_1_naming_the_path(where, data_dir, tmp_path):
    (tmp_path / "afile").write_text("I am a file, not a directory\n")
    if where == "parent-is-a-file":
        flag, path = "--save", tmp_path / "afile" / "model.npz"
    elif where == "under-dev-full":
        if not os.path.exists("/dev/full") or os.path.isdir("/dev/full"):
            pytest.skip("no /dev/full character device here")
        flag, path = "--save", Path("/dev/full/model.npz")  # never /dev/full itself
    else:
        flag, path = "--metrics-json", tmp_path / "afile" / "m.json"
    result = run_train(["--layers", "784,32,10", "--batch-size", "512", "--device", "cpu",
                        "--epochs", 1, "--data-dir", data_dir, flag, path], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert str(path) in line
    assert listing(tmp_path) == ["afile"]
    assert (tmp_path / "afile").read_text() == "I am a file, not a directory\n"


def _limit_file_size():
    # Python ignores SIGXFSZ, so writing past the limit fails with EFBIG, like a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))


@pytest.mark.slow
def test_save_that_fails_mid_write_keeps_the_old_checkpoint(reference, data_dir, tmp_path):
    target = tmp_path / "ck.npz"
    shutil.copyfile(reference, target)
    before = target.read_bytes()
    assert len(before) > 50_000  # a new checkpoint of this size cannot be written under the limit
    result = run_train([*RUN, "--epochs", 1, "--data-dir", data_dir, "--save", target],
                       cwd=tmp_path, preexec_fn=_limit_file_size)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert f"could not save checkpoint {target}" in line and "left unchanged" in line
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["ck.npz"]


# ------------------------------------------------------------------------------- out of memory
_AS_LIMIT = 1000 << 20  # 1000 MiB of address space: enough to start, far too little for the run


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (_AS_LIMIT, _AS_LIMIT))


@pytest.mark.slow
def test_out_of_memory_exits_1_suggesting_a_smaller_batch(data_dir, tmp_path):
    # 5401 x 20000 float32 activations and their gradients: about 0.9 GB for one full batch.
    result = run_train(["--layers", "784,20000,10", "--batch-size", "full", "--optimizer", "gd",
                        "--epochs", 1, "--device", "cpu", "--data-dir", data_dir], cwd=tmp_path,
                       env={"OPENBLAS_NUM_THREADS": "1"}, preexec_fn=_limit_address_space)
    if "train:" not in result.stdout:
        pytest.skip(f"under RLIMIT_AS={_AS_LIMIT >> 20} MiB the child failed before training "
                    f"(start-up needs more address space here): {result.stderr[-300:]!r}")
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert "out of memory" in line and "--batch-size" in line
    assert "epoch " not in result.stdout


# ------------------------------------------------------------------------------- the Python API
def _net(**kw):
    return MLP([4, 3], device="cpu", seed=0, **kw)


_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(12, 4))
Y = np.arange(12) % 3


def _with(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


BAD_INPUTS = [
    # MLP(...)
    (lambda: MLP(784, device="cpu"), "layer_sizes"),
    (lambda: MLP([784], device="cpu"), "layer_sizes"),
    (lambda: MLP("784,10", device="cpu"), "layer_sizes"),
    (lambda: MLP([784, 0, 10], device="cpu"), "layer_sizes"),
    (lambda: MLP([784, 2.5, 10], device="cpu"), "layer_sizes"),
    (lambda: MLP([784, True, 10], device="cpu"), "layer_sizes"),
    (lambda: _net(activation="swish"), "activation"),
    (lambda: _net(output="softmax2"), "output"),
    (lambda: _net(init="glorot"), "init"),
    (lambda: _net(dtype="float16"), "dtype"),
    (lambda: _net(l2=-1.0), "l2"),
    (lambda: _net(l2=math.nan), "l2"),
    (lambda: _net(l2=math.inf), "l2"),
    (lambda: _net(dropout=1.0), "dropout"),
    (lambda: _net(dropout=-0.1), "dropout"),
    (lambda: MLP([4, 3], device="tpu"), "device"),
    (lambda: get_device(0), "device"),
    # X
    (lambda: fit(_net(), X[:, 0], Y), "X must be 2-D"),
    (lambda: fit(_net(), X[:, :3], Y), "X has 3 features"),
    (lambda: fit(_net(), X[:0], Y[:0]), "X is empty"),
    (lambda: fit(_net(), np.full((12, 4), "a"), Y), "X must hold numbers"),
    (lambda: fit(_net(), _with(X, (2, 1), math.nan), Y), "X contains NaN"),
    (lambda: fit(_net(), _with(X, (0, 0), -math.inf), Y), "X contains NaN or infinity"),
    (lambda: fit(_net(), np.full((12, 4), 1e300), Y), "X contains NaN or infinity"),
    # y
    (lambda: fit(_net(), X, Y[:-1]), "y has 11 entries but X has 12"),
    (lambda: fit(_net(), X, Y + 1), "y has labels in [1, 3]"),
    (lambda: fit(_net(), X, Y - 1), "y has labels in [-1, 1]"),
    (lambda: fit(_net(), X, Y + 0.5), "y must hold integer class labels"),
    (lambda: fit(_net(), X, _with(Y, 0, math.nan)), "y must hold integer class labels"),
    (lambda: fit(_net(), X, Y.astype(str)), "y must hold integer class labels"),
    (lambda: fit(_net(), X, np.eye(3)[Y]), "y must be integer class labels of shape (m,)"),
    (lambda: fit(MLP([4, 2], output="sigmoid", device="cpu"), X, np.full((12, 2), 0.5)),
     "y must hold 0/1 targets"),
    (lambda: fit(MLP([4, 2], output="identity", device="cpu"), X, np.zeros((12, 3))),
     "y must have shape (12, 2)"),
    # dev set
    (lambda: fit(_net(), X, Y, X_val=X[:, :2], y_val=Y), "X_val has 2 features"),
    (lambda: fit(_net(), X, Y, X_val=X, y_val=Y[:5]), "y_val has 5 entries"),
    (lambda: fit(_net(), X, Y, validation_fraction=1.5), "validation_fraction"),
    # fit / Trainer hyperparameters
    (lambda: fit(_net(), X, Y, epochs=0), "epochs"),
    (lambda: fit(_net(), X, Y, epochs=2.5), "epochs"),
    (lambda: fit(_net(), X, Y, batch_size=0), "batch_size"),
    (lambda: fit(_net(), X, Y, batch_size=True), "batch_size"),
    (lambda: fit(_net(), X, Y, lr=-1.0), "learning rate"),
    (lambda: fit(_net(), X, Y, lr=0.0), "learning rate"),
    (lambda: fit(_net(), X, Y, lr=math.nan), "learning rate"),
    (lambda: fit(_net(), X, Y, optimizer="adagrad"), "optimizer"),
    (lambda: fit(_net(), X, Y, schedule="linear"), "schedule"),
    (lambda: fit(_net(), X, Y, schedule="step", gamma=0.0), "gamma"),
    (lambda: Trainer(_net(), patience=-1), "patience"),
    (lambda: Trainer(_net(), min_delta=-1.0), "min_delta"),
    (lambda: Trainer(_net(), eval_batch_size=0), "eval_batch_size"),
    (lambda: Trainer(_net(), optimizer="momentum", momentum=1.0), "momentum"),
    (lambda: Trainer(_net(), optimizer="adam", beta1=1.0), "beta1"),
    (lambda: Trainer(_net(), optimizer="adam", eps=0.0), "eps"),
    # inference and helpers
    (lambda: _net().predict(X[:, :2]), "X has 2 features"),
    (lambda: _net().evaluate(X, Y + 3), "y has labels"),
    (lambda: MLP([4, 2], output="identity", device="cpu").predict_proba(X), "predict_proba"),
    (lambda: _net().set_params([(np.zeros((3, 5)), np.zeros(3))]), "W has shape"),
    (lambda: Scaler("minmax"), "scaling"),
    (lambda: stratified_split(Y, 1.0), "fraction"),
]


# 1e300 does not fit float32: NumPy warns about the cast, then check_X rejects the data.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_python_api_rejects_bad_inputs_with_value_error_naming_the_argument():
    failures = []
    for i, (call, expected) in enumerate(BAD_INPUTS):
        try:
            call()
        except ValueError as exc:
            if expected not in str(exc):
                failures.append(f"case {i}: {expected!r} not in {str(exc)!r}")
        except Exception as exc:  # noqa: BLE001  (the wrong type is what we report)
            failures.append(f"case {i}: {type(exc).__name__} instead of ValueError: {exc}")
        else:
            failures.append(f"case {i}: no error (expected one mentioning {expected!r})")
    print(f"{len(BAD_INPUTS)} bad API inputs tried, "
          f"{len(BAD_INPUTS) - len(failures)} rejected with a ValueError naming the argument")
    assert len(BAD_INPUTS) >= 25
    assert not failures, "\n".join(failures)
