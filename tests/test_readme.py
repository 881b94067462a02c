"""The README's Python examples run as written (in a temporary folder) and say what they claim."""

import os
import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _data_dir():
    d = os.environ.get("XPNET_DATA_DIR")
    if not d or not (Path(d) / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("set XPNET_DATA_DIR to the MNIST folder (CI: ../shared/data/mnist)")
    return d


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    _data_dir()
    example = _python_blocks()[0]
    assert "xpnet.fit(" in example and "xpnet.save(" in example
    script = tmp_path / "example.py"
    script.write_text(example)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    match = re.search(r"test accuracy (\d\.\d+) after 3 epochs", out)
    assert match, out
    # Three Adam epochs reach ~97%; 0.95 is a floor that only a broken pipeline misses.
    assert float(match.group(1)) > 0.95
    import xpnet

    net = xpnet.load(tmp_path / "mnist.npz", device="cpu")
    assert net.layer_sizes == [784, 256, 128, 64, 10]


def _section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


@pytest.mark.slow
def test_readme_deploy_example_runs(tmp_path, monkeypatch, capsys):
    """"Deploy a trained model": the shell block as written (``python`` is this interpreter;
    the training reads XPNET_MNIST_SUBSET images, to stay quick), then the onnxruntime block.
    What it prints must be what xpnet itself predicts from the checkpoint, and the README's
    shown output must have the same form (and the true labels of the first 8 test images)."""
    import shutil
    import subprocess
    import sys

    from cli_helpers import SUBSET, cli_env, scaler_of

    import xpnet
    from xpnet.checkpoint import load_checkpoint

    pytest.importorskip("onnxruntime", reason="the deploy example runs onnxruntime "
                                              "(pip install -e '.[test]')")
    pytest.importorskip("onnx", reason="python -m xpnet.export needs onnx")
    data_dir = _data_dir()
    section = _section("Deploy a trained model")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.S | re.M)
    assert [lang for lang, _ in blocks] == ["sh", "python", ""], blocks
    (_, shell), (_, example), (_, shown) = blocks
    assert "python -m xpnet.export runs/mnist.npz runs/mnist.onnx" in shell
    assert len([line for line in example.splitlines() if line.strip()]) <= 12

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python"  # a script, not a symlink: a venv's python must stay in the venv
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    env = cli_env(SUBSET, {"XPNET_DATA_DIR": data_dir,
                           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    result = subprocess.run([shutil.which("bash") or "/bin/bash", "-e", "-c", shell],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "mnist.onnx").is_file()

    monkeypatch.setenv("XPNET_DATA_DIR", data_dir)
    monkeypatch.setenv("XPNET_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "deploy.py"
    script.write_text(example)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out

    pattern = r"predicted:  \[(\d(?:, \d){7})\]\nconfidence: ((?:[01]\.\d{4} ?){8})\n"
    printed, readme = re.fullmatch(pattern, out), re.fullmatch(pattern, shown)
    assert printed, out
    assert readme, shown
    mnist = xpnet.load_mnist(data_dir, download=False)
    net, state = load_checkpoint(tmp_path / "runs" / "mnist.npz", device="cpu")
    proba = net.predict_proba(scaler_of(state).transform(mnist.X_test[:8]))
    assert [int(d) for d in printed.group(1).split(", ")] == list(proba.argmax(axis=1))
    confidence = [float(v) for v in printed.group(2).split()]
    assert confidence == pytest.approx(proba.max(axis=1), abs=5.1e-5)
    assert [int(d) for d in readme.group(1).split(", ")] == list(mnist.y_test[:8])


def test_readme_sklearn_example_runs(tmp_path, monkeypatch, capsys):
    """"Use from scikit-learn": the example runs as written (digits ship with scikit-learn, so
    no download) and reaches the accuracy it shows."""
    pytest.importorskip("sklearn", minversion="1.6", reason="xpnet.sklearn needs "
                                                            "scikit-learn >= 1.6 (the test extra)")
    section = _section("Use from scikit-learn")
    example, = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert "from xpnet.sklearn import MLPClassifier" in example
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "sklearn_example.py"
    script.write_text(example)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    match = re.search(r"test accuracy (\d\.\d+) after (\d+) epochs on (\S+); coefs_ shapes "
                      r"\[\(64, 64\), \(64, 10\)\]", out)
    assert match, out
    assert float(match.group(1)) > 0.9 and int(match.group(2)) < 200
    shown = re.search(r"test accuracy (\d\.\d+) after (\d+) epochs", section)
    assert shown, "the section shows what the example prints"
    # the CPU reproduces it exactly; a GPU (device="auto") may differ in the last digits
    assert abs(float(shown.group(1)) - float(match.group(1))) <= 0.02, (shown.group(0), out)
