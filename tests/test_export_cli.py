"""``python -m xpnet.export CHECKPOINT OUT.onnx|OUT.safetensors`` end to end.

A checkpoint as ``xpnet.train --save`` writes it (network + training state holding the input
scaler) is an :class:`xpnet.Model` (:func:`xpnet.model.load`) and exports whole: onnxruntime on
*raw* inputs (pixels 0..255 as float32, the input ``input``) gives the class probabilities xpnet
gives on the same pixels scaled by the saved scaler (``probabilities``) and the predicted digit
(``label``, int64). ``--no-scaler`` exports the bare network (input scaled, output ``output``).
Tables, text columns and ``Model.save`` checkpoints: tests/test_export_model.py.
Most tests build such a checkpoint in-process (no MNIST needed); the slow one trains a real
model with ``python -m xpnet.train`` and compares against ``python -m xpnet.predict``.
Errors: one line, exit 2 for usage, 1 for runtime failures, the output file left alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SUBSET, one_error_line, run_module, run_train

import xpnet
from xpnet.checkpoint import nest_states
from xpnet.export import load_model, load_safetensors, main

PROG = "xpnet.export"


def _ort():
    pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[test]')")
    return pytest.importorskip("onnxruntime",
                               reason="onnxruntime runs the exported model and is not "
                                      "installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """``(checkpoint, net, scaler)``: a 784-32-10 batch-norm net with random statistics and a
    unit scaler fitted on uint8 pixels, saved with a training state like xpnet.train's."""
    net = xpnet.MLP([784, 32, 10], batch_norm=True, device="cpu", seed=0)
    rng = np.random.default_rng(0)
    state = net.state_dict()
    state["1.running_mean"] = rng.normal(0, 0.5, 32)
    state["1.running_var"] = rng.uniform(0.5, 2, 32)
    net.load_state_dict(state)
    scaler = xpnet.Scaler("unit").fit(np.array([0, 255], dtype=np.uint8))
    path = tmp_path_factory.mktemp("export_cli") / "digits.npz"
    trainer_part = {"json": {"epoch": 3}, "arrays": {"best/0.weight": state["0.weight"]}}
    xpnet.save(net, path, training_state=nest_states(trainer=trainer_part,
                                                     scaler=scaler.state()))
    return path, net, scaler


def raw_pixels(n=64, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 784)).astype(np.uint8)


def export_error(capsys, argv):
    """(exit code, the single stderr line) of an in-process run."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{PROG}: error: ") and "Traceback" not in err[0]
    return code, err[0]


def test_onnx_takes_raw_pixels(mnist_like, tmp_path):
    ort = _ort()
    ckpt, net, scaler = mnist_like
    out = tmp_path / "digits.onnx"
    result = run_module(PROG, [ckpt, out], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert re.fullmatch(r"wrote .*digits\.onnx \(ONNX opset 13\): input 'input' float32 "
                        r"\[batch, 784\] \(784 number columns: raw values, scaled in the graph "
                        r"\(unit\); NaN propagates\); outputs 'label' int64 \[batch\] \(classes "
                        r"0\.\.9\), 'probabilities' float32 \[batch, 10\] \(one column per class, "
                        r"in that order\)\n", result.stdout), result.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]  # an all-number schema
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    pixels = raw_pixels()
    label, proba = session.run(None, {"input": pixels.astype(np.float32)})
    expected = np.asarray(net.predict_proba(scaler.transform(pixels)))
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-5)
    assert label.dtype == np.int64 and label.shape == (len(pixels),)
    np.testing.assert_array_equal(label, proba.argmax(axis=1))
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["classes"] == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    assert '"method": "unit"' in meta["scaler"]
    assert [c["name"] for c in json.loads(meta["model"])["inputs"]["columns"]][:2] == \
        ["pixel0", "pixel1"]
    # --no-scaler: the bare network, which takes inputs scaled as in training.
    assert main([str(ckpt), str(tmp_path / "scaled.onnx"), "--no-scaler"]) == 0
    session = ort.InferenceSession(str(tmp_path / "scaled.onnx"),
                                   providers=["CPUExecutionProvider"])
    scaled = scaler.transform(pixels)
    np.testing.assert_allclose(session.run(None, {"input": scaled})[0], expected, rtol=1e-5,
                               atol=1e-5)


def test_safetensors_export(mnist_like, tmp_path, capsys):
    pytest.importorskip("safetensors", reason="safetensors is not installed "
                                              "(pip install -e '.[test]')")
    ckpt, net, scaler = mnist_like
    out = tmp_path / "digits.safetensors"
    assert main([str(ckpt), str(out)]) == 0
    assert capsys.readouterr().out == (f"wrote {out} (safetensors): 8 tensors; config, scaler, "
                                       f"classes, model in the metadata "
                                       f"(xpnet.export.load_model reads the model)\n")
    net2, scaler2, classes = load_safetensors(out, device="cpu")
    assert classes == list(range(10)) and net2.config() == net.config()
    pixels = raw_pixels()
    np.testing.assert_array_equal(np.asarray(net2.forward(scaler2.transform(pixels))),
                                  np.asarray(net.forward(scaler.transform(pixels))))
    model = load_model(out, device="cpu")
    np.testing.assert_array_equal(model.predict_proba(pixels),
                                  np.asarray(net.predict_proba(scaler.transform(pixels))))


def test_checkpoint_without_training_state(tmp_path, capsys):
    _ort()
    net = xpnet.MLP([5, 4, 3], output="identity", device="cpu", seed=1)
    xpnet.save(net, tmp_path / "plain.npz")
    assert main([str(tmp_path / "plain.npz"), str(tmp_path / "plain.ONNX")]) == 0
    line = capsys.readouterr().out
    assert "of scaled values (no scaler in the graph)" in line and "classes" not in line
    assert (tmp_path / "plain.ONNX").exists()


@pytest.mark.parametrize("argv, words", [
    (["{ckpt}", "{tmp}/model.pt"], ["must end in .onnx or .safetensors"]),
    (["{ckpt}", "{tmp}/model"], ["must end in .onnx or .safetensors"]),
    (["{ckpt}"], ["required: output"]),
    ([], ["required: checkpoint, output"]),
    (["{ckpt}", "{tmp}/m.onnx", "--bogus"], ["unrecognized argument --bogus"]),
], ids=["suffix", "no-suffix", "one-arg", "no-args", "flag"])
def test_usage_errors_exit_2(argv, words, mnist_like, tmp_path, capsys):
    argv = [a.format(ckpt=mnist_like[0], tmp=tmp_path) for a in argv]
    code, line = export_error(capsys, argv)
    assert code == 2
    for word in words:
        assert word in line
    assert list(tmp_path.iterdir()) == []


def test_runtime_errors_exit_1(mnist_like, tmp_path, capsys):
    _ort()
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous")
    code, line = export_error(capsys, [tmp_path / "missing.npz", out])
    assert code == 1 and "does not exist" in line
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    code, line = export_error(capsys, [tmp_path / "junk.npz", out])
    assert code == 1 and "is not an xpnet checkpoint" in line
    (tmp_path / "cut.npz").write_bytes(mnist_like[0].read_bytes()[:3000])
    code, line = export_error(capsys, [tmp_path / "cut.npz", out])
    assert code == 1 and "truncated or corrupt" in line
    code, line = export_error(capsys, [mnist_like[0], tmp_path / "junk.npz" / "m.onnx"])
    assert code == 1 and "is not a folder" in line  # (a missing folder would be created)
    code, line = export_error(capsys, [mnist_like[0], tmp_path])
    assert code == 2  # a folder has no .onnx suffix
    assert out.read_bytes() == b"previous"


@pytest.mark.parametrize("package, suffix", [("onnx", ".onnx"), ("safetensors", ".safetensors")])
def test_missing_package_exit_1(package, suffix, mnist_like, tmp_path):
    code = (f"import sys; sys.modules[{package!r}] = None; from xpnet.export import main; "
            f"sys.exit(main([{str(mnist_like[0])!r}, {str(tmp_path / ('m' + suffix))!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    line = one_error_line(result, prog=PROG)
    assert f"needs the {package} package" in line and "pip install -e '.[export]'" in line
    assert list(tmp_path.iterdir()) == []


def test_console_script_declared():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["xpnet-export"] == "xpnet.export:main"
    assert {"onnx>=1.14", "safetensors>=0.4"} <= set(project["optional-dependencies"]["export"])
    test_extra = " ".join(project["optional-dependencies"]["test"])
    assert all(name in test_extra for name in ("onnx", "onnxruntime", "safetensors"))


@pytest.mark.slow
def test_trained_mnist_model_matches_predict(data_dir, tmp_path):
    """A model trained by xpnet.train, exported, run by onnxruntime on raw test pixels: the
    probabilities ``python -m xpnet.predict`` prints (4 decimals) and the predicted digit."""
    ort = _ort()
    ckpt, onnx_path = tmp_path / "mnist.npz", tmp_path / "mnist.onnx"
    result = run_train(["--layers", "784,64,10", "--epochs", "1", "--batch-norm", "--device",
                        "cpu", "--data-dir", data_dir, "--quiet", "--save", ckpt],
                       subset=SUBSET)
    assert result.returncode == 0, result.stderr
    result = run_module(PROG, [ckpt, onnx_path], timeout=120)
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    mnist = xpnet.load_mnist(data_dir, download=False)
    pixels = mnist.X_test[:200].astype(np.float32)
    label, proba = session.run(["label", "probabilities"], {"input": pixels})
    assert (label == mnist.y_test[:200]).mean() > 0.8
    top = np.sort(proba, axis=1)
    decided = top[:, -1] - top[:, -2] > 1e-4  # rows float32 rounding cannot flip
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(label[decided],
                                  xpnet.load(ckpt, device="cpu").predict(pixels)[decided])
    for index in (0, 7):
        shown = run_module("xpnet.predict", [ckpt, "--test-index", index, "--data-dir",
                                             data_dir], timeout=120)
        assert shown.returncode == 0, shown.stderr
        printed = [float(v) for v in re.findall(r"^  \d: +(\d\.\d{4})", shown.stdout, re.M)]
        digit = int(re.search(r"predicted digit: (\d)", shown.stdout).group(1))
        assert len(printed) == 10 and digit == int(proba[index].argmax())
        np.testing.assert_allclose(printed, proba[index], atol=5.1e-5)


@pytest.mark.parametrize("suffix", [".safetensors", ".onnx"])
def test_a_full_disk_while_exporting_names_the_file_and_keeps_the_old_one(tmp_path, suffix):
    """A write that fails (here a file-size limit, as a full disk) is one line naming the
    output; the file that was there stays as it was (issue 23, family 7)."""
    import resource

    pytest.importorskip("onnx")
    pytest.importorskip("safetensors")
    import xpnet

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    model = xpnet.Model.fit(X, (X[:, 0] > 0).astype(int), hidden=(64,), epochs=2,
                            device="cpu")
    model.save(tmp_path / "m.npz")
    (tmp_path / f"out{suffix}").write_bytes(b"previous")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    result = run_module("xpnet.export", ["m.npz", f"out{suffix}"], cwd=tmp_path,
                        preexec_fn=limit)
    assert result.returncode == 1, result.stdout
    line = one_error_line(result, "xpnet.export")
    assert f"cannot write out{suffix} (File too large); the file there, if any, was left" in line
    assert (tmp_path / f"out{suffix}").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", f"out{suffix}"]
