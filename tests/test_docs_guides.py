"""The Getting started and Guides pages of the documentation site (docs/) run as written (in a
temporary folder) and say what they claim: the examples and commands that need MNIST, a
trained checkpoint or the files an earlier command wrote (tests/test_docs.py runs the others),
and what the pages say about installing, data and benchmarks agrees with the files they
describe. These checks were tests/test_readme.py's until the README's detailed sections moved
to these pages."""

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GETTING_STARTED = DOCS / "getting-started.md"
OWN_DATA = DOCS / "guides" / "own-data.md"
DEPLOY = DOCS / "guides" / "deploy.md"
SKLEARN = DOCS / "guides" / "sklearn.md"
COMMAND_LINE = DOCS / "guides" / "command-line.md"


def _data_dir():
    d = os.environ.get("XPNET_DATA_DIR")
    if not d or not (Path(d) / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("set XPNET_DATA_DIR to a folder holding the four MNIST .gz files")
    return d


def _page(path, title=None):
    """A page's text; with ``title``, only its ``## title`` section. Without a title, a page
    that has ``##`` sections gives its opening part, up to the first of them."""
    text = path.read_text(encoding="utf-8")
    if title is None:
        first = text.find("\n## ")
        return text if first == -1 else text[:first]
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


@pytest.mark.slow
def test_deploy_example_runs(tmp_path, monkeypatch, capsys):
    """"Deploying a trained model": the shell block as written (``python`` is this interpreter;
    the training reads XPNET_MNIST_SUBSET images, to stay quick), then the onnxruntime block.
    What it prints must be what xpnet itself predicts from the checkpoint, and the page's
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
    section = _page(DEPLOY)  # the part above "## A table model", which the own-data test runs
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
    proba = net.predict_proba(scaler_of(net, state).transform(mnist.X_test[:8]))
    assert [int(d) for d in printed.group(1).split(", ")] == list(proba.argmax(axis=1))
    confidence = [float(v) for v in printed.group(2).split()]
    assert confidence == pytest.approx(proba.max(axis=1), abs=5.1e-5)
    assert [int(d) for d in readme.group(1).split(", ")] == list(mnist.y_test[:8])


def test_sklearn_example_runs(tmp_path, monkeypatch, capsys):
    """The scikit-learn guide: the example runs as written (digits ship with scikit-learn, so
    no download) and reaches the accuracy it shows."""
    pytest.importorskip("sklearn", minversion="1.6", reason="xpnet.sklearn needs "
                                                            "scikit-learn >= 1.6 (the test extra)")
    section = _page(SKLEARN)
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


def _pyproject():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_getting_started_states_python_versions_and_commands():
    project = _pyproject()["project"]
    quickstart = _page(GETTING_STARTED, "Quickstart")
    low = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert low, project["requires-python"]
    assert f"Python 3.{low.group(1)} or newer" in quickstart
    assert re.search(r"Tested with CPython 3\.\d+\.\d+", quickstart)
    install = _page(GETTING_STARTED, "Install into your own environment")
    for command, target in project["scripts"].items():
        module = target.split(":")[0]
        assert f"`{command}`" in install and f"`python -m {module}`" in install, command
    # every extra is in the table, and the table names no extra that does not exist
    first_cells = [row.split("|")[1] for row in install.splitlines() if row.startswith("| `")]
    named = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert named == set(project["optional-dependencies"]), named


def test_detection_line_is_what_the_script_prints(tmp_path):
    """The Quickstart shows tools/cuda_extra.sh's line for a machine without an NVIDIA driver."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    sh = shutil.which("sh") or "/bin/sh"
    proc = subprocess.run([sh, str(ROOT / "tools" / "cuda_extra.sh"), "train"],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "", proc
    quickstart = " ".join(_page(GETTING_STARTED, "Quickstart").split())  # the prose wraps lines
    assert f"(`{proc.stderr.strip()}`, `pip install -e '.[train]'`)" in quickstart


def test_data_settings(monkeypatch):
    """XPNET_MNIST_MIRRORS and the default mirrors are as Getting started says."""
    from xpnet.data import download

    data = _page(GETTING_STARTED, "MNIST data")
    for name in ("`--data-dir DIR`", "`XPNET_DATA_DIR`", "`~/.cache/xpnet/mnist`",
                 "`XPNET_MNIST_MIRRORS=URL,URL`", "`XPNET_OFFLINE=1`: never download"):
        assert name in data, name
    monkeypatch.delenv("XPNET_MNIST_MIRRORS", raising=False)
    defaults = download.resolve_mirrors()
    shown = re.findall(r"`(https://[^`]+)`", data)
    assert shown == list(defaults)
    monkeypatch.setenv("XPNET_MNIST_MIRRORS", "https://a.example/m/, https://b.example/")
    assert download.resolve_mirrors() == ["https://a.example/m/", "https://b.example/"]
    from xpnet.data.mnist import resolve_data_dir

    monkeypatch.setenv("XPNET_DATA_DIR", "")
    assert resolve_data_dir() == Path.home() / ".cache" / "xpnet" / "mnist"


def _make_dry_run(make_args):
    """The command ``make ARGS...`` runs last (its training or prediction), with ``python``
    for the environment's interpreter; make's -n prints it without running anything."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    proc = subprocess.run([make, "-n", "--no-print-directory", *make_args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert last[0] == ".venv/bin/python", last
    return ["python", *last[1:]]


@pytest.mark.slow
def test_predict_example_runs(tmp_path):
    """The command line, "Use a trained model": `make train ARGS="--save ..."` saves the
    model the next line's xpnet.predict reads. The make line runs as the command make would run
    (on a subset of MNIST, to stay quick), in a folder without `runs/`; then the predict line
    runs as written."""
    from cli_helpers import SUBSET, cli_env

    data_dir = _data_dir()
    text = _page(COMMAND_LINE)
    block = re.search(r"Use a trained model.*?```sh\n(.*?)```", text, flags=re.S).group(1)
    train_line, predict_line = [line.split("#")[0].strip() for line in block.splitlines()]
    train = shlex.split(train_line)
    assert train[:2] == ["make", "train"]
    predict = shlex.split(predict_line)
    assert predict[:3] == [".venv/bin/python", "-m", "xpnet.predict"]
    saved = re.search(r"--save (\S+)", train_line).group(1).rstrip('"')
    assert predict[3] == saved, (train_line, predict_line)

    env = cli_env(SUBSET, {"XPNET_DATA_DIR": data_dir})
    for command in (_make_dry_run(train[1:]), ["python", *predict[1:]]):
        command[0] = sys.executable
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (command, result.stderr)
    assert (tmp_path / saved).is_file()
    assert re.search(r"^predicted digit: \d ", result.stdout, re.M), result.stdout


@pytest.mark.slow
def test_own_data_and_model_examples_run(tmp_path, monkeypatch, capsys):
    """Your own data: the commands as written (the example tables from
    docs/examples/make_patients.py, the CLI's training and predict), then "A table in one
    call": the Python block. What they print has the page's form, the labels it shows, and
    accuracies within 0.02 of the shown ones (BLAS thread counts may move the last digits)."""
    from cli_helpers import cli_env

    pd = pytest.importorskip("pandas", reason="the example reads its tables with pandas")
    pytest.importorskip("sklearn", reason="the example tables come from scikit-learn")
    section = _page(OWN_DATA)
    shell, = re.findall(r"```\n(\$ .*?)```", section, flags=re.S)
    commands = [line[2:] for line in shell.splitlines() if line.startswith("$ ")]
    assert [c.split()[:3] for c in commands] == [
        ["python", "docs/examples/make_patients.py"], ["python", "-m", "xpnet.train"],
        ["python", "-m", "xpnet.predict"]]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "examples").symlink_to(ROOT / "docs" / "examples")
    outputs = []
    for command in commands:
        words = shlex.split(command)
        result = subprocess.run([sys.executable, *words[1:], *(
            ["--device", "cpu"] if "xpnet.train" in words else [])], cwd=tmp_path,
            env=cli_env(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    summary = outputs[1].strip().splitlines()[-1]
    shown = re.search(r"^test accuracy (\d\.\d+)  .*$", shell, flags=re.M)
    printed = re.match(r"test accuracy (\d\.\d+)  ", summary)
    assert printed and shown and abs(float(printed[1]) - float(shown[1])) <= 0.02, summary
    shown_rows = shell.split("xpnet.predict", 1)[1].splitlines()[1:]
    got = list(csv_rows(outputs[2]))
    want = list(csv_rows("\n".join(shown_rows)))
    assert got[0] == want[0] == ["patient_id", "prediction", "p_benign", "p_malignant"]
    assert [r[:2] for r in got] == [r[:2] for r in want]

    python = _page(OWN_DATA, "A table in one call")
    example = next(b for b in re.findall(r"```python\n(.*?)```", python, flags=re.S)
                   if "xpnet.Model.fit" in b)
    printed_block = python.split(example, 1)[1]
    shown_out = re.search(r"```\n(Model\(.*?)```", printed_block, flags=re.S)[1]
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(_write(tmp_path / "model_example.py", example)), run_name="__main__")
    out = capsys.readouterr().out
    lines, shown_lines = out.splitlines(), shown_out.splitlines()
    assert lines[0] == shown_lines[0]
    accuracy = float(lines[1].split()[-1])
    assert abs(accuracy - float(shown_lines[1].split()[-1])) <= 0.02
    assert lines[2] == shown_lines[2]  # the labels of new_patients.csv
    model = __import__("xpnet").load(tmp_path / "runs" / "patients.npz", device="cpu")
    rows = pd.read_csv(tmp_path / "new_patients.csv")
    assert [r[1] for r in got[1:]] == model.predict(rows).tolist()  # CLI == library

    # Deploying, "A table model": the export command, then onnxruntime on the raw rows gives
    # the labels xpnet gives, and the page shows what it prints.
    pytest.importorskip("onnxruntime", reason="the deploy example runs onnxruntime")
    table = _page(DEPLOY, "A table model")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", table, flags=re.S | re.M)
    assert [lang for lang, _ in blocks] == ["sh", "python", ""], blocks
    (_, export), (_, example), (_, shown) = blocks
    words = shlex.split(export.strip())
    assert words[:3] == ["python", "-m", "xpnet.export"]
    result = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    runpy.run_path(str(_write(tmp_path / "deploy_table.py", example)), run_name="__main__")
    onnx_line, xpnet_line = capsys.readouterr().out.splitlines()
    assert onnx_line.split("[")[1] == xpnet_line.split("[")[1]  # the same labels
    assert onnx_line.split(":", 1)[1].strip() == xpnet_line.split(":", 1)[1].strip()
    assert shown.splitlines()[0].split("[")[1] == onnx_line.split("[")[1]


def csv_rows(text):
    import csv
    import io

    return csv.reader(io.StringIO(text.strip() + "\n"))


def _write(path, text):
    path.write_text(text)
    return path


def test_own_data_table_matches_its_result_file():
    """Your own data's comparison on real tables quotes the medians of the result file it cites."""
    name = "own-data-cpu-2core-amd-epyc-2026-12-06-da3d9ee.json"
    text = OWN_DATA.read_text(encoding="utf-8")
    assert f"bench/results/{name}" in text
    medians = json.loads((ROOT / "bench" / "results" / name).read_text())["median_scores"]
    section = _page(OWN_DATA)
    for dataset, scores in medians.items():
        row = next(line for line in section.splitlines()
                   if line.startswith(f"| {dataset.replace('-', ' ')}"))
        for value in scores.values():
            assert f"| {value:.3f} |" in row, (dataset, value, row)
