"""Data-parallel training over MPI (xpnet.distributed): real ``mpiexec -n N`` launches of
tests/mpi_worker.py on small synthetic data, compared with one process in this one.

* Exactness: N ranks with the global batch B give the weights of one process with batch B, to
  1e-9 in float64 after 2 epochs, for every optimizer (gd full batch included), with batch
  norm (synchronised statistics), dropout (global masks), L2, uneven splits, ranks that get no
  row of a batch, 3 ranks, and the GPU path (host-buffer all-reduce) on the strict CuPy
  stand-in; float32 stays close. Every rank ends with bit-identical parameters.
* Resume: a run saved on 2 ranks continues in 1 process, and the reverse, exactly.
* Failure: a rank that raises, hangs, dies or leaves early ends the whole launch promptly with
  one line; the command-line helpers print one error line and refuse one rank or a missing
  mpi4py.

Skips, saying why, where mpi4py or mpiexec is missing (``pip install -e '.[mpi]'``, which the
test extra includes). Each launch is bounded by a timeout; nothing asserts on timing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mpi_worker as worker
import numpy as np
import pytest

from xpnet import distributed

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parent.parent


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


MPIEXEC = _mpiexec()
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIEXEC),
    reason=f"needs mpi4py and mpiexec ({'mpiexec missing' if HAVE_MPI4PY else 'no mpi4py'}): "
           f"pip install -e '.[mpi]'")


def _env(**extra):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "XPNET_OFFLINE": "1"}
    env.pop("XPNET_MPI_TIMEOUT", None)
    env.pop("XPNET_MNIST_SUBSET", None)
    return {**env, **extra}


def launch(n, *args, timeout=120, **kwargs):
    """``mpiexec -n n python tests/mpi_worker.py args``; the CompletedProcess (text)."""
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, str(WORKER), *map(str, args)],
                          env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          **kwargs)


def _ok(proc):
    assert proc.returncode == 0, f"mpiexec exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


# ---------------------------------------------------------------------- the configurations
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]
FLOAT64 = (
    [{"name": "gd-full", "optimizer": "gd", "lr": 0.1}]
    + [{"name": f"{opt}", "optimizer": opt, "batch_size": 10} for opt in OPTIMIZERS]
    + [  # batch norm (synchronised), dropout (global masks), L2, uneven shares of 4 and 3
        {"name": "bn-dropout-l2-adam", "optimizer": "adam", "batch_size": 7, "batch_norm": True,
         "dropout": 0.3, "l2": 0.05, "schedule": "cosine"},
        {"name": "bn-dropout-l2-momentum", "optimizer": "momentum", "batch_size": 9,
         "batch_norm": True, "dropout": 0.2, "l2": 0.1},
        {"name": "bn-full-batch", "optimizer": "gd", "batch_norm": True, "l2": 0.01},
        # 50 = 7 x 7 + 1: the last batch has one row, so rank 1 gets none
        {"name": "empty-share", "optimizer": "rmsprop", "batch_size": 7, "n": 50,
         "dropout": 0.2, "l2": 0.01},
        {"name": "adamw-decay-some", "optimizer": "adamw", "batch_size": 12,
         "options": {"weight_decay": 0.1, "decay_all": False}, "batch_norm": True},
    ]
)
FLOAT32 = [
    {"name": "f32-adam-dropout", "optimizer": "adam", "batch_size": 16, "dtype": "float32",
     "dropout": 0.1},
    {"name": "f32-momentum-bn", "optimizer": "momentum", "batch_size": 16, "dtype": "float32",
     "batch_norm": True, "dropout": 0.1},
]
STRICT = [{"name": "strict-gpu-path", "optimizer": "adam", "batch_size": 9, "batch_norm": True,
           "dropout": 0.2, "l2": 0.1, "strict_device": True}]
THREE = [
    {"name": "three-bn", "optimizer": "nesterov", "batch_size": 10, "batch_norm": True,
     "dropout": 0.2},
    {"name": "three-sgd", "optimizer": "sgd", "batch_size": 8, "n": 41},
]


def _run_all(tmp_path_factory, n, configs):
    out = tmp_path_factory.mktemp(f"ranks{n}")
    path = out / "configs.json"
    path.write_text(json.dumps(configs))
    _ok(launch(n, "train", path, out))
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    if not (HAVE_MPI4PY and MPIEXEC):
        pytest.skip("needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    return _run_all(tmp_path_factory, 2, FLOAT64 + FLOAT32 + STRICT)


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    if not (HAVE_MPI4PY and MPIEXEC):
        pytest.skip("needs mpi4py and mpiexec: pip install -e '.[mpi]'")
    return _run_all(tmp_path_factory, 3, THREE)


def _results(out, cfg, n):
    return [np.load(out / f"{cfg['name']}.rank{r}.npz") for r in range(n)]


def _compare(out, cfg, n, atol):
    ranks = _results(out, cfg, n)
    cfg = {k: v for k, v in cfg.items() if k != "strict_device"}
    net, trainer = worker.train(cfg)  # one process, the same global batch
    for r in ranks[1:]:  # every rank applied the same updates
        np.testing.assert_array_equal(r["params"], ranks[0]["params"])
        np.testing.assert_array_equal(r["buffers"], ranks[0]["buffers"])
    got = ranks[0]
    want = np.asarray(net.flat.data, dtype=np.float64)
    assert np.abs(got["params"] - want).max() <= atol, cfg["name"]
    buffers = np.concatenate([np.ravel(b) for b in net.buffers()] or [np.zeros(0)])
    np.testing.assert_allclose(got["buffers"], buffers, rtol=0, atol=atol * 10)
    h = trainer.history
    assert len(got["loss"]) == len(h.loss) == cfg.get("epochs", 2)
    np.testing.assert_allclose(got["loss"], h.loss, rtol=atol, atol=atol)
    np.testing.assert_allclose(got["val_loss"], h.val_loss, rtol=atol, atol=atol)
    np.testing.assert_array_equal(got["accuracy"], h.accuracy)
    np.testing.assert_array_equal(got["val_accuracy"], h.val_accuracy)


@pytest.mark.parametrize("cfg", FLOAT64, ids=[c["name"] for c in FLOAT64])
def test_two_ranks_equal_one_process_float64(two_ranks, cfg):
    _compare(two_ranks, cfg, 2, atol=1e-9)


@pytest.mark.parametrize("cfg", STRICT, ids=[c["name"] for c in STRICT])
def test_gpu_path_host_buffers_on_the_strict_stand_in(two_ranks, cfg):
    """The device -> host -> all-reduce -> device path, with arrays that refuse implicit
    host conversion, as CuPy's do."""
    _compare(two_ranks, cfg, 2, atol=1e-9)


@pytest.mark.parametrize("cfg", FLOAT32, ids=[c["name"] for c in FLOAT32])
def test_two_ranks_float32_stays_close(two_ranks, cfg):
    ranks = _results(two_ranks, cfg, 2)
    np.testing.assert_array_equal(ranks[1]["params"], ranks[0]["params"])
    net, trainer = worker.train(cfg)
    np.testing.assert_allclose(ranks[0]["params"], net.flat.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranks[0]["loss"], trainer.history.loss, rtol=1e-5)


@pytest.mark.parametrize("cfg", THREE, ids=[c["name"] for c in THREE])
def test_three_ranks_uneven_shares_equal_one_process(three_ranks, cfg):
    _compare(three_ranks, cfg, 3, atol=1e-9)


# ---------------------------------------------------------------------- resume on any number
RESUME = {"optimizer": "adam", "batch_size": 8, "batch_norm": True, "dropout": 0.2,
          "l2": 0.01, "schedule": "cosine", "epochs": 2}


def _straight():
    return worker.train(RESUME)[0]


def _continue_here(state_path):
    """Continue the saved run in this process (no communicator)."""
    X, y, X_dev, y_dev = worker.problem()
    net = worker.build(RESUME)
    t = worker.trainer(RESUME, net)
    with open(state_path, "rb") as f:
        saved = pickle.load(f)
    net.load_state_dict(saved["net"])
    t.load_state_dict(saved["trainer"])
    t.fit(X, y, X_dev, y_dev)
    return net


@needs_mpi
def test_saved_on_two_ranks_resumes_in_one_process(tmp_path):
    cfg = tmp_path / "one-epoch.json"
    cfg.write_text(json.dumps({**RESUME, "stop_after": 1}))
    _ok(launch(2, "resume", cfg, tmp_path / "none", tmp_path / "after1.pkl"))
    with open(tmp_path / "after1.pkl", "rb") as f:
        assert pickle.load(f)["trainer"]["json"]["epoch"] == 1  # rank 0's request stopped both
    net = _continue_here(tmp_path / "after1.pkl")
    assert np.abs(net.flat.data - _straight().flat.data).max() <= 1e-9


@needs_mpi
def test_saved_in_one_process_resumes_on_two_ranks(tmp_path):
    X, y, X_dev, y_dev = worker.problem()
    net = worker.build(RESUME)
    t = worker.trainer(RESUME, net)
    t.callback = lambda tr, record: tr.epoch >= 1
    t.fit(X, y, X_dev, y_dev)
    assert t.history.interrupted and t.epoch == 1
    worker.write_state(tmp_path / "after1.pkl", net, t)
    cfg = tmp_path / "two-epochs.json"
    cfg.write_text(json.dumps(RESUME))
    _ok(launch(2, "resume", cfg, tmp_path / "after1.pkl", tmp_path / "after2.pkl"))
    with open(tmp_path / "after2.pkl", "rb") as f:
        got = pickle.load(f)["net"]
    want = _straight().state_dict()
    for name, value in want.items():
        assert np.abs(got[name] - value).max() <= 1e-9, name


# ---------------------------------------------------------------------- failures end the launch
@needs_mpi
@pytest.mark.parametrize("mode, code, line", [
    ("raise", 1, "xpnet.distributed: rank 1 of 2 stopped with ValueError; stopping all ranks"),
    ("hang", 1, "xpnet.distributed: rank 0 of 2 waited 2 s for the other ranks"),
    ("exit", 1, "xpnet.distributed: rank 0 of 2 waited 2 s for the other ranks"),
    ("die", 3, None),
])
def test_a_failing_rank_ends_every_rank(tmp_path, mode, code, line):
    """Rank 1 raises, hangs, dies or exits early at the end of the first epoch: the launch
    ends within the subprocess timeout (the worker's MPI timeout is 2 s), no rank finishes
    its 50 epochs, and the cause is one line."""
    proc = launch(2, "fail", mode, tmp_path, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert not list(tmp_path.glob("finished.*"))
    ours = [s for s in proc.stderr.splitlines() if s.startswith("xpnet.distributed:")]
    if line is None:
        assert ours == []
    else:
        assert len(ours) == 1 and ours[0].startswith(line), proc.stderr
    if mode == "raise":
        assert "ValueError: rank 1 cannot go on" in proc.stderr  # the traceback comes first
    assert "Abort(" not in proc.stderr  # MPI's own notice would only repeat our line


@needs_mpi
@pytest.mark.parametrize("failing, expected", [
    ("1", "[rank 1] worker: error: the data of rank 1 are damaged"),
    ("0", "worker: error: the data of rank 0 are damaged"),
    ("0,1", "worker: error: the data of rank 0 are damaged"),  # reported once, by rank 0
])
def test_cli_failure_on_a_rank_is_one_line_and_ends_all(failing, expected):
    proc = launch(2, "cli-exit", 1, failing, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [expected]
    assert proc.stdout.splitlines() == ["stdout of rank 0"]  # other ranks' stdout is dropped


@needs_mpi
def test_cli_success_releases_nothing_extra():
    proc = launch(2, "cli-exit", 1, "", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == ["stdout of rank 0"]


@pytest.mark.skipif(not HAVE_MPI4PY, reason="needs mpi4py: pip install -e '.[mpi]'")
def test_cli_refuses_a_single_rank():
    proc = subprocess.run([sys.executable, str(WORKER), "cli-one"], env=_env(),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "worker: error: --distributed needs 2 or more MPI ranks but this process is the only "
        f"one: launch it as `mpiexec -n 2 {os.path.basename(sys.executable)} -m xpnet.train "
        "--distributed ...`"]


def test_missing_mpi4py_is_one_line_naming_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None; sys.path.insert(0, 'tests'); "
            "import mpi_worker; sys.argv = ['x']; mpi_worker.main_cli_one()")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "worker: error: --distributed: data-parallel training needs mpi4py and an MPI library, "
        "and mpi4py is not installed: install both with `pip install -e '.[mpi]'`"]


def test_missing_mpi4py_api_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed, "_WORLD", None)
    with pytest.raises(distributed.DistributedError, match=re.escape("pip install -e '.[mpi]'")):
        distributed.init()


# ---------------------------------------------------------------------- no MPI needed
@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("start, stop", [(0, 1), (0, 2), (10, 17), (3, 131), (0, 4)])
def test_shares_partition_the_batch(size, start, stop):
    parts = [distributed.share(start, stop, r, size) for r in range(size)]
    assert parts[0][0] == start and parts[-1][1] == stop
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # contiguous, in rank order
    sizes = [hi - lo for lo, hi in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_is_root_without_communicator():
    assert distributed.is_root(None)


def test_bad_communicator_is_a_value_error():
    with pytest.raises(ValueError, match="comm must be"):
        distributed.as_communicator(object())


@pytest.mark.parametrize("value", ["0", "-3", "nan", "soon"])
def test_bad_timeout_env(monkeypatch, value):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(distributed.DistributedError, match=distributed.TIMEOUT_ENV + "|timeout"):
        distributed._check_timeout(None)


# ---------------------------------------------------------------------- the training CLI
def _cli_has_flag():
    from xpnet.train import build_parser  # noqa: PLC0415

    return "--distributed" in build_parser()._option_string_actions


@needs_mpi
def test_train_cli_two_ranks_matches_one_process(tmp_path, data_dir):
    if not _cli_has_flag():
        pytest.skip("xpnet/train.py has no --distributed flag yet")
    args = ["--epochs", "2", "--batch-size", "64", "--dtype", "float64", "--batch-norm",
            "--dropout", "0.1", "--data-dir", data_dir]
    env = _env(XPNET_MNIST_SUBSET="600")
    one = subprocess.run([sys.executable, "-m", "xpnet.train", *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "xpnet.train",
                          "--distributed", *map(str, args), "--save", tmp_path / "m.npz"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert two.returncode == 0, two.stderr
    summary = re.compile(r"^test accuracy (\S+)\s+test loss (\S+)", re.M)
    assert summary.findall(two.stdout) == summary.findall(one.stdout)  # and printed once
    epochs = re.compile(r"^epoch\s+\d+/2\s+loss (\S+) acc (\S+) dev_loss (\S+) dev_acc (\S+)",
                        re.M)
    assert epochs.findall(two.stdout) == epochs.findall(one.stdout)
    assert (tmp_path / "m.npz").is_file()


@needs_mpi
def test_train_cli_refuses_one_rank():
    if not _cli_has_flag():
        pytest.skip("xpnet/train.py has no --distributed flag yet")
    proc = subprocess.run([sys.executable, "-m", "xpnet.train", "--distributed"], env=_env(),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs 2 or more MPI ranks" in lines[0], proc.stderr


@needs_mpi
def test_train_cli_checkpoint_of_two_ranks_resumes_in_one_process(tmp_path, data_dir):
    if not _cli_has_flag():
        pytest.skip("xpnet/train.py has no --distributed flag yet")
    args = ["--batch-size", "50", "--dtype", "float64", "--schedule", "constant",
            "--dropout", "0.2", "--data-dir", data_dir]
    env = _env(XPNET_MNIST_SUBSET="600")

    def train(*extra, ranks=1):
        prefix = [MPIEXEC, "-n", str(ranks)] if ranks > 1 else []
        more = ["--distributed"] if ranks > 1 else []
        proc = subprocess.run([*prefix, sys.executable, "-m", "xpnet.train", *more,
                               *map(str, args), *map(str, extra)], env=env, capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        return re.findall(r"^test accuracy .*(?=  train time)", proc.stdout, re.M)

    saved = tmp_path / "two-ranks.npz"
    train("--epochs", "1", "--save", saved, ranks=2)
    resumed = train("--resume", saved, "--epochs", "2")
    assert resumed and resumed == train("--epochs", "2")


@needs_mpi
@pytest.mark.parametrize("first, second, words", [
    (["--lr", "0.1"], ["--lr", "0.2"],
     "the ranks disagree on the trainer.schedule.lr (rank 0: 0.1, rank 1: 0.2)"),
    (["--optimizer", "momentum"], ["--optimizer", "nesterov"],
     "the ranks disagree on the trainer.optimizer (rank 0: #"),
    (["--l2", "0"], ["--l2", "0.01"],
     "the ranks disagree on the network.l2 (rank 0: 0, rank 1: 0.01)"),
    (["--data", "a.csv"], ["--data", "b.csv"], "the ranks disagree on the training data"),
])
def test_ranks_started_differently_stop_before_the_first_step(tmp_path, first, second, words):
    """Ranks of one launch given other settings or other data of the same shape (an MPMD
    launch, `mpiexec -n 1 A : -n 1 B`) stop before the first step with one line naming what
    differs (issue 23, family 6), not with an error blamed on the all-reduce."""
    rng = np.random.default_rng(0)
    for name in ("a.csv", "b.csv"):
        X = rng.normal(size=(200, 4))
        rows = "\n".join(f"{int(x[0] > 0)},{','.join(f'{v:.5f}' for v in x)}" for x in X)
        (tmp_path / name).write_text("label,p,q,r,s\n" + rows + "\n")
    common = ["--epochs", "2", "--device", "cpu", "--quiet"]
    if "--data" not in first:
        common += ["--data", "a.csv", "--optimizer", "momentum"] if "--optimizer" not in \
            first else ["--data", "a.csv"]
    cmd = [sys.executable, "-m", "xpnet.train", "--distributed", *common]
    proc = subprocess.run([MPIEXEC, "-n", "1", *cmd, *first, ":", "-n", "1", *cmd, *second],
                          env=_env(), capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [s for s in proc.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "all-reduce" not in proc.stderr


@needs_mpi
def test_train_cli_gives_each_rank_one_blas_thread(tmp_path, data_dir):
    """Under --distributed each rank gets one BLAS thread unless --threads says otherwise
    (ranks that share cores with spinning BLAS threads were 15x slower), and says so."""
    if importlib.util.find_spec("threadpoolctl") is None:
        pytest.skip("threadpoolctl (the train extra) sets the BLAS threads")
    env = _env(XPNET_MNIST_SUBSET="600")
    env.pop("OPENBLAS_NUM_THREADS")
    base = [MPIEXEC, "-n", "2", sys.executable, "-m", "xpnet.train", "--distributed",
            "--epochs", "1", "--data-dir", data_dir, "--layers", "784,16,10", "--device", "cpu"]
    default = subprocess.run(base, env=env, capture_output=True, text=True, timeout=300,
                             cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert "device: cpu x 2 MPI ranks, 1 BLAS thread each" in default.stdout
    chosen = subprocess.run([*base, "--threads", "2"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "x 2 MPI ranks, 2 BLAS threads each" in chosen.stdout
