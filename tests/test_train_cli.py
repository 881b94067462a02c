"""``python -m xpnet.train`` end to end, as real subprocesses on real MNIST files.

Training runs use the full, SHA-256-verified files from ``XPNET_DATA_DIR`` and the hidden test
hook ``XPNET_MNIST_SUBSET=6000`` (xpnet/train.py: keep the first 6000 training and 1000 test
images after verification), so each run takes about a second. Tests that need the data skip,
saying why, when ``XPNET_DATA_DIR`` is unset or lacks the files.

Contract under test: exit 0 success, 2 usage error, 1 runtime failure; every error is one line
on stderr starting ``xpnet.train: error:`` with no traceback unless ``--debug``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil

import numpy as np
import pytest
from cli_helpers import (
    GZ_NAMES,
    SUBSET,
    assert_same_model,
    epoch_numbers,
    model_arrays,
    one_error_line,
    run_train,
    scaler_of,
)

import xpnet
import xpnet.train
from xpnet.checkpoint import load_checkpoint
from xpnet.initializers import INITIALIZERS
from xpnet.network import ACTIVATIONS
from xpnet.optimizers import OPTIMIZERS

SMALL = ["--layers", "784,32,10", "--batch-size", "512", "--dev-fraction", "0.1",
         "--device", "cpu"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def test_labels(data_dir) -> np.ndarray:
    """Labels of the test images the subset runs evaluate on."""
    return xpnet.load_mnist(data_dir, download=False).y_test[:SUBSET // 6]


# ------------------------------------------------------------------------------- a full run
@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("full_run")
    result = run_train([*SMALL, "--epochs", 3, "--data-dir", data_dir, "--metrics-json", "m.json",
                        "--plot", "curves.png", "--save", "model.npz"], cwd=d)
    return result, d


@pytest.mark.slow
def test_run_prints_device_epochs_and_accuracy(full_run):
    result, _ = full_run
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "device: cpu"
    assert epoch_numbers(result.stdout) == [1, 2, 3]
    assert len([line for line in lines if line.startswith("epoch ")]) == 3
    assert re.search(r"^test accuracy 0\.\d{4}  test loss \d+\.\d{4}  epochs 3 ", result.stdout,
                     re.M), result.stdout
    assert "saved model.npz" in result.stdout


@pytest.mark.slow
def test_metrics_json_is_complete_and_consistent(full_run, test_labels):
    result, d = full_run
    assert result.returncode == 0, result.stderr
    m = json.loads((d / "m.json").read_text())
    for key in ("device", "test_accuracy", "test_loss", "train_seconds", "epochs_run",
                "best_epoch", "config", "history", "confusion_matrix"):
        assert key in m, key
    assert m["device"] == "cpu"
    assert 0.5 < m["test_accuracy"] <= 1.0  # 3 epochs on 5400 images: well above chance
    assert np.isfinite(m["test_loss"]) and m["test_loss"] > 0
    assert m["train_seconds"] >= 0
    assert m["epochs_run"] == 3 and 1 <= m["best_epoch"] <= 3
    assert m["config"]["net"]["layer_sizes"] == [784, 32, 10]
    assert m["config"]["trainer"]["batch_size"] == 512
    assert m["config"]["dev_fraction"] == 0.1
    assert m["history"]["epoch"] == [1, 2, 3]
    assert len(m["history"]["val_loss"]) == 3 and None not in m["history"]["val_loss"]
    conf = np.array(m["confusion_matrix"])
    assert conf.shape == (10, 10) and (conf >= 0).all()
    np.testing.assert_array_equal(conf.sum(axis=1), np.bincount(test_labels, minlength=10))
    assert conf.sum() == len(test_labels) == SUBSET // 6
    assert np.trace(conf) / conf.sum() == pytest.approx(m["test_accuracy"], abs=1e-12)
    printed = float(re.search(r"^test accuracy (\S+)", result.stdout, re.M).group(1))
    assert printed == round(m["test_accuracy"], 4)


@pytest.mark.slow
def test_plot_is_a_png(full_run):
    result, d = full_run
    assert result.returncode == 0, result.stderr
    data = (d / "curves.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


@pytest.mark.slow
def test_outputs_get_umask_permissions_and_leave_no_temp_files(full_run):
    result, d = full_run
    assert result.returncode == 0, result.stderr
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    assert sorted(p.name for p in d.iterdir()) == ["curves.png", "m.json", "model.npz"]
    for name in ("curves.png", "m.json"):
        assert (d / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.mark.slow
def test_default_lr_is_the_image_recipes(full_run):
    result, _ = full_run
    assert result.returncode == 0, result.stderr
    lr = xpnet.train.RECIPES["image"]["lr"]["adam"]
    assert f"optimizer adam lr {lr:g} " in result.stdout


@pytest.mark.slow
def test_saved_checkpoint_reproduces_the_reported_accuracy(full_run, data_dir):
    result, d = full_run
    assert result.returncode == 0, result.stderr
    model = xpnet.load(d / "model.npz", device="cpu")
    assert isinstance(model, xpnet.Model) and model.net.layer_sizes == [784, 32, 10]
    assert model.classes_.tolist() == list(range(10))
    net, state = load_checkpoint(d / "model.npz", device="cpu")
    assert state["json"]["trainer"]["epoch"] == 3
    data = xpnet.load_mnist(data_dir, download=False)
    X = scaler_of(net, state).transform(data.X_test[:SUBSET // 6], net.dtype)
    acc = float((net.predict(X) == data.y_test[:SUBSET // 6]).mean())
    m = json.loads((d / "m.json").read_text())
    assert acc == pytest.approx(m["test_accuracy"], abs=1e-12)


# ------------------------------------------------------------------------------- resume
# The cosine schedule spans --epochs, so a 2-epoch run has a different learning-rate trajectory
# from the first 2 epochs of a 4-epoch run by design; a constant schedule makes "extend a
# finished run" comparable with a straight run. (Interrupted runs, in test_reliability.py,
# resume with the default cosine schedule and the same --epochs.)
RESUME = [*SMALL, "--schedule", "constant", "--seed", "3"]


@pytest.fixture(scope="module")
def resumed(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    first = run_train([*RESUME, "--data-dir", data_dir, "--epochs", 2, "--save", "two.npz"], cwd=d)
    assert first.returncode == 0, first.stderr
    second = run_train([*RESUME, "--data-dir", data_dir, "--epochs", 4, "--resume", "two.npz",
                        "--save", "resumed.npz", "--metrics-json", "m.json"], cwd=d)
    straight = run_train([*RESUME, "--data-dir", data_dir, "--epochs", 4, "--save", "straight.npz"],
                         cwd=d)
    return first, second, straight, d


@pytest.mark.slow
def test_resume_continues_to_the_same_parameters_as_a_straight_run(resumed):
    first, second, straight, d = resumed
    assert second.returncode == 0, second.stderr
    assert straight.returncode == 0, straight.stderr
    assert "resumed from two.npz after epoch 2" in second.stdout
    assert epoch_numbers(first.stdout) == [1, 2]
    assert epoch_numbers(second.stdout) == [3, 4]
    m = json.loads((d / "m.json").read_text())
    assert m["epochs_run"] == 4 and m["history"]["epoch"] == [1, 2, 3, 4]
    assert_same_model(d / "resumed.npz", d / "straight.npz")
    # and it did train on: the resumed model is not the 2-epoch one
    assert any(not np.allclose(a, b) for a, b in
               zip(model_arrays(d / "two.npz"), model_arrays(d / "resumed.npz")))


# ------------------------------------------------------------------------------- early stopping
@pytest.mark.slow
def test_patience_stops_early_and_restores_the_best_epoch(data_dir, tmp_path):
    """A 784-128-10 net on 5400 images with Adam at a constant lr 0.01 overfits within a few
    epochs, so the dev loss stops improving long before 30 epochs. The run is seeded, hence
    deterministic. With patience the best epoch's parameters are restored, so the saved model
    equals a plain run of exactly best_epoch epochs."""
    common = ["--layers", "784,128,10", "--batch-size", "128", "--device", "cpu",
              "--lr", "0.01", "--schedule", "constant", "--dev-fraction", "0.1",
              "--data-dir", data_dir]
    es = run_train([*common, "--epochs", 30, "--patience", 2, "--save", "es.npz",
                    "--metrics-json", "m.json"], cwd=tmp_path)
    assert es.returncode == 0, es.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    h = m["history"]
    assert h["stopped_early"] is True and "(early stop)" in es.stdout
    assert m["epochs_run"] < 30
    best = m["best_epoch"]
    assert m["epochs_run"] == best + 2  # exactly `patience` epochs without improvement
    assert h["val_loss"][best - 1] == min(h["val_loss"])
    assert all(v >= h["val_loss"][best - 1] for v in h["val_loss"][best:])

    ref = run_train([*common, "--epochs", best, "--save", "ref.npz"], cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    assert_same_model(tmp_path / "es.npz", tmp_path / "ref.npz")


# ------------------------------------------------------------------------------- usage errors
USAGE_ERRORS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "x"], "--epochs"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--dropout", "1.5"], "--dropout"),
    (["--layers", "784,10,3"], "--layers"),
    (["--layers", "10,10"], "--layers"),
    (["--layers", "abc"], "--layers"),
    (["--device", "tpu"], "--device"),
    (["--frobnicate"], "--frobnicate"),
    (["--dev-fraction", "1"], "--dev-fraction"),
]


@pytest.mark.parametrize("args, names", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_with_one_line(args, names, tmp_path):
    # A data directory that does not exist: a usage error must be reported before any loading.
    result = run_train([*args, "--data-dir", tmp_path / "nowhere"], cwd=tmp_path, subset=None)
    assert result.returncode == 2, (result.returncode, result.stderr)
    line = one_error_line(result)
    assert names in line
    assert result.stdout == ""


def test_choices_and_default_lrs_come_from_the_registries():
    actions = {a.dest: a for a in xpnet.train.build_parser()._actions}
    assert actions["activation"].choices == list(ACTIVATIONS)
    # --init takes a name of the registry or normal:SCALE, so it lists them in its metavar
    assert actions["init"].metavar == "|".join(INITIALIZERS) + "[:S]"
    assert actions["optimizer"].choices == list(OPTIMIZERS)
    for name, cls in OPTIMIZERS.items():
        assert f"{name} {cls.default_lr:g}" in actions["lr"].help


def test_help_exits_0(tmp_path):
    result = run_train(["--help"], cwd=tmp_path, subset=None)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: xpnet.train")
    for flag in ("--layers", "--resume", "--patience", "--metrics-json", "--debug"):
        assert flag in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("script,module", [("xpnet-train", "xpnet.train"),
                                           ("xpnet-predict", "xpnet.predict"),
                                           ("xpnet-export", "xpnet.export")])
def test_console_scripts_call_themselves_by_their_own_name(tmp_path, script, module):
    """Run through the installed console script, a program names itself as typed, in its usage
    line and in its one-line errors (``python -m`` keeps the module's name, tested above)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = shutil.which(script, path=os.path.dirname(sys.executable))
    if path is None:
        pytest.skip(f"{script} is not installed next to {sys.executable} (pip install -e .)")
    env = {**os.environ, "XPNET_OFFLINE": "1"}
    shown = subprocess.run([path, "--help"], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith(f"usage: {script} "), shown.stdout
    assert f"usage: {module}" not in shown.stdout
    wrong = subprocess.run([path, "--no-such-flag"], cwd=tmp_path, capture_output=True,
                           text=True, env=env, timeout=120)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith(f"{script}: "), wrong.stderr


def test_every_flag_has_help_and_at_most_one_default(tmp_path):
    """Each option says what it does; its default appears once (argparse's "(default: X)" is
    added only when the text does not already state one, and never as a Python list)."""
    parser = xpnet.train.build_parser()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{action.option_strings[0]} has no help text"
        shown = parser._get_formatter()._get_help_string(action)
        assert shown.count("default") <= 1, (action.option_strings[0], shown)
    text = run_train(["--help"], cwd=tmp_path, subset=None).stdout
    assert "[784" not in text and "(default: None)" not in text
    assert "(default: 256,128,64 for image datasets, 100 for --data)" in " ".join(text.split())


def test_help_examples_are_valid_commands():
    """The epilog's three example commands parse with this parser."""
    epilog = xpnet.train.build_parser().epilog
    examples = [line.split("#")[0].split() for line in epilog.splitlines()
                if line.strip().startswith("python -m xpnet.train")]
    assert len(examples) == 3
    for words in examples:
        args = xpnet.train.build_parser().parse_args(words[3:])
        assert args.epochs is None or args.epochs > 0


@pytest.mark.parametrize("given, hint", [
    (["--epoch", "3"], "unrecognized argument --epoch; did you mean --epochs?"),
    (["--learning-rate=0.1"], "unrecognized argument --learning-rate; see --help"),
    (["--batchsize", "64"], "did you mean --batch-size?"),
    (["--layers", "784", "256", "10"], "write --layers 784,256,10 (no spaces)"),
    (["--hidden", "64", "32"], "write --hidden 64,32 (no spaces)"),
])
def test_misspelled_flags_get_a_suggestion(given, hint, tmp_path):
    result = run_train(given, cwd=tmp_path, subset=None)
    assert result.returncode == 2
    assert one_error_line(result).endswith(hint)


def test_missing_output_folders_are_created_and_blocked_paths_refused(data_dir, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    blocked = run_train([*SMALL, "--epochs", 1, "--data-dir", data_dir,
                         "--save", "file/sub/m.npz"], cwd=tmp_path)
    assert blocked.returncode == 1
    assert "is not a folder" in one_error_line(blocked)
    made = run_train([*SMALL, "--epochs", 1, "--data-dir", data_dir,
                      "--save", "runs/a/m.npz", "--metrics-json", "out/m.json"], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "runs/a/m.npz").is_file() and (tmp_path / "out/m.json").is_file()


def test_summary_says_which_weights_were_tested(full_run):
    result, d = full_run
    m = json.loads((d / "m.json").read_text())
    line = result.stdout.strip().splitlines()[-1]
    if m["best_epoch"] == 3:
        assert "tested the weights of epoch 3" in line
    else:  # no patience: the last epoch's weights, and the best dev epoch named beside them
        assert (f"tested the last epoch's weights (epoch 3; lowest dev loss at epoch "
                f"{m['best_epoch']})") in line


# ------------------------------------------------------------------------------- runtime errors
def test_cuda_without_a_usable_gpu_exits_1(tmp_path):
    from xpnet.backend import cuda_status

    usable, _ = cuda_status()
    if usable:
        pytest.skip("a usable CUDA GPU is present; this tests the no-GPU failure")
    result = run_train(["--device", "cuda", "--data-dir", tmp_path / "nowhere"], cwd=tmp_path,
                       subset=None)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert "cuda" in line and "--device cpu" in line


def test_missing_data_offline_exits_1(tmp_path):
    nowhere = tmp_path / "nowhere"
    result = run_train([*SMALL, "--data-dir", nowhere], cwd=tmp_path, subset=None)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert str(nowhere) in line and "missing" in line and "XPNET_OFFLINE" in line
    assert not nowhere.exists()  # nothing was created or downloaded


def test_debug_shows_the_traceback(tmp_path):
    result = run_train([*SMALL, "--data-dir", tmp_path / "nowhere", "--debug"], cwd=tmp_path,
                       subset=None)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "MnistDataError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("xpnet.train: error: ")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_data_file_exits_1(damage, data_dir, tmp_path):
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in GZ_NAMES:
        shutil.copyfile(data_dir / name, copy / name)
    victim = copy / "train-images-idx3-ubyte.gz"
    raw = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    else:  # a valid gzip of the wrong bytes
        victim.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(1000)))
    result = run_train([*SMALL, "--data-dir", copy], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert "train-images-idx3-ubyte.gz" in line
    assert ("truncated" if damage == "truncate" else "dimensions") in line


@pytest.mark.slow
def test_resume_of_a_corrupt_checkpoint_exits_1(resumed, data_dir, tmp_path):
    *_, d = resumed
    bad = tmp_path / "cut.npz"
    raw = (d / "two.npz").read_bytes()
    bad.write_bytes(raw[: len(raw) // 3])
    result = run_train([*RESUME, "--data-dir", data_dir, "--epochs", 4, "--resume", bad],
                       cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert str(bad) in line and "truncated or corrupt" in line


@pytest.mark.slow
def test_resume_of_a_model_without_run_state_exits_1(data_dir, tmp_path):
    bare = tmp_path / "bare.npz"
    xpnet.save(xpnet.MLP([784, 32, 10], device="cpu", seed=0), bare)
    result = run_train([*RESUME, "--data-dir", data_dir, "--epochs", 4, "--resume", bare],
                       cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "no run state" in one_error_line(result)


@pytest.mark.slow
def test_divergence_exits_1_and_leaves_the_save_target_alone(resumed, data_dir, tmp_path):
    """lr 1e30: after the first update the float32 forward pass overflows, whatever the data."""
    *_, d = resumed
    target = tmp_path / "keep.npz"
    shutil.copyfile(d / "two.npz", target)
    before = target.read_bytes()
    result = run_train(["--layers", "784,32,10", "--device", "cpu", "--optimizer", "gd",
                        "--batch-size", "full", "--lr", "1e30", "--schedule", "constant",
                        "--epochs", 20, "--data-dir", data_dir, "--save", target], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert "diverged" in line and "learning rate" in line
    assert f"{target} was not written" in line
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]  # no stray temp files


def test_an_in_process_run_leaves_the_blas_threads_as_it_found_them(tmp_path, monkeypatch):
    """--threads holds for the run only: called in-process (tests, a notebook), main leaves the
    BLAS thread count as it was, even when the run fails."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    limit = 1 if max(before) > 1 else 3
    rc = xpnet.train.main(["--threads", str(limit), "--epochs", "1", "--data-dir",
                           str(tmp_path / "none"), "--quiet"])
    assert rc == 1  # no MNIST there
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before
