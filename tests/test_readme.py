"""The README's Python example runs as written (in a temporary folder) and says what it claims."""

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
