"""Output hygiene of the command-line programs (issue 23, families 7 and 8), as real
subprocesses: labels with terminal escape sequences are shown escaped; text cells of
predict's CSV that a spreadsheet would run as formulas are written as text (OWASP's CSV
injection advice: a leading '), numbers untouched; a reader that closes the pipe early
(``| head -1``) gets no error message.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
from cli_helpers import cli_env, run_module, run_train

LABELS = ["=HYPERLINK(1)", "@SUM(A1)", "\x1b[31mred"]


def table(path, n=90):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "x", "label"])
        for i in range(n):
            k = i % 3
            w.writerow([f"-{i}" if i else "+cmd", f"{k + rng.normal(0, 0.1):.4f}", LABELS[k]])
    return path


def test_escape_sequences_are_shown_escaped_and_formulas_written_as_text(tmp_path):
    table(tmp_path / "t.csv")
    result = run_train(["--data", "t.csv", "--id", "id", "--epochs", "30", "--device", "cpu",
                        "--save", "m.npz"], cwd=tmp_path, subset=None)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b[31mr~" in result.stdout
    out = run_module("xpnet.predict", ["m.npz", "--data", "t.csv"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    # (classes in sorted order; p_... headers do not start like a formula; CSV keeps the data
    # as it is, escapes included: only the terminal report escapes them)
    assert rows[0] == ["id", "prediction", "p_\x1b[31mred", "p_=HYPERLINK(1)", "p_@SUM(A1)"]
    ids = [r[0] for r in rows[1:]]
    assert ids[0] == "'+cmd" and ids[1] == "-1"  # a number stays a number
    shown = {r[1] for r in rows[1:]}
    assert shown <= {"'=HYPERLINK(1)", "'@SUM(A1)", "\x1b[31mred"}
    assert not any(cell.startswith(("=", "@", "+")) for r in rows[1:] for cell in r)


def test_a_closed_pipe_is_no_error(tmp_path):
    table(tmp_path / "t.csv", n=3000)
    assert run_train(["--data", "t.csv", "--id", "id", "--epochs", "2", "--device", "cpu",
                      "--save", "m.npz", "--quiet"], cwd=tmp_path, subset=None).returncode == 0
    child = subprocess.Popen([sys.executable, "-m", "xpnet.predict", "m.npz", "--data",
                              "t.csv"], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first = child.stdout.readline()
    child.stdout.close()  # as `head -1` does
    stderr = child.stderr.read()
    assert child.wait(timeout=120) == 1
    assert first.startswith("id,prediction") and stderr == ""


def test_many_classes_keep_the_metrics_proportionate(tmp_path):
    """150 classes: the metrics JSON holds the confusion matrix's nonzero cells (at most one
    row per test sample), not 150^2 numbers (issue 23, family 4)."""
    import json

    rng = np.random.default_rng(1)
    with open(tmp_path / "t.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "label"])
        for i in range(600):
            w.writerow([f"{(i % 150) + rng.normal(0, 0.01):.4f}", f"c{i % 150}"])
    result = run_train(["--data", "t.csv", "--epochs", "3", "--device", "cpu",
                        "--metrics-json", "m.json"], cwd=tmp_path, subset=None)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "confusion_matrix" not in metrics and len(metrics["classes"]) == 150
    cells = np.array(metrics["confusion_cells"])
    # the test set: 20% of each class's 4 rows, rounded: one row per class
    assert cells.shape[1] == 3 and cells[:, 2].sum() == 150 and len(cells) <= 150
    correct = cells[cells[:, 0] == cells[:, 1], 2].sum()
    assert correct / 150 == metrics["test_accuracy"]
    assert "confusion matrix" not in result.stdout  # too wide for a terminal


def test_evaluation_chunks_shrink_with_the_number_of_outputs():
    """10,000 classes in chunks of 10,000 rows took 800 MB of logits; the chunk keeps about
    EVAL_VALUES outputs instead (issue 23, family 4)."""
    from xpnet.metrics import EVAL_VALUES, eval_rows

    assert eval_rows(10) == 10_000  # MNIST: as before
    assert eval_rows(10_000) == EVAL_VALUES // 10_000 == 400
    assert eval_rows(10**8) == 1
