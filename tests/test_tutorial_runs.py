"""The tutorials' headline runs stay accepted by the CLI: each command of the README's table,
cut to a few iterations on a subset of MNIST, runs, its loss falls and its schedule is the
tutorial's. The full runs (minutes each) are measured by bench/, not here.
"""

from __future__ import annotations

import re

import pytest
from cli_helpers import run_train

SUBSET = 1200


def epoch_lines(stdout):
    return [(int(m[1]), float(m[2]), float(m[3])) for m in re.finditer(
        r"^epoch\s+(\d+)/\d+\s+loss (\S+) .* lr (\S+)", stdout, flags=re.M)]


@pytest.mark.slow
def test_the_tanh_16_16_run_with_a_scaled_normal_start(data_dir, tmp_path):
    """Seed 004's run: tanh 784-16-16-10 from N(0,1) x 0.1, full batch, lr 1 then 0.1 (here
    after 3 of 6 iterations instead of 75 of 150)."""
    result = run_train(["--layers", "784,16,16,10", "--activation", "tanh", "--init",
                        "normal:0.1", "--optimizer", "gd", "--batch-size", "full", "--lr", "1",
                        "--schedule", "step", "--step-size", "3", "--epochs", "6",
                        "--device", "cpu", "--data-dir", data_dir], cwd=tmp_path,
                       subset=SUBSET)
    assert result.returncode == 0, result.stderr
    lines = epoch_lines(result.stdout)
    assert [e for e, _, _ in lines] == [1, 2, 3, 4, 5, 6]
    assert [lr for _, _, lr in lines] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1]
    assert lines[-1][1] < lines[0][1]
