"""Your own data with defaults only: ``python -m xpnet.train --data FILE`` against scikit-learn's
MLPs with their defaults, on scikit-learn's bundled digits, breast-cancer and diabetes sets.

    python bench/own_data_compare.py                 # seeds 0, 1, 2
    python bench/own_data_compare.py --seeds 0 1 2 3 4

The question answered: a user with a table runs the training CLI with only ``--data FILE
--target COLUMN`` (plus ``--task regression`` for numbers). Is the model as good as what
scikit-learn's ``MLPClassifier()`` / ``MLPRegressor()`` give with their defaults?

Each seed gives both the same split: the CLI holds out 20% as the test set (stratified for
classification, seeded; ``xpnet.train._split``), and scikit-learn is fitted on exactly the
other 80%. scikit-learn gets its inputs standardised (``StandardScaler`` in a ``Pipeline``, as
its user guide recommends for MLPs; the CLI standardises tables itself) and otherwise its
defaults, ``random_state=seed``. It is shown twice for regression: as is, and with the targets
standardised too (``TransformedTargetRegressor``), which the CLI does by default. The scores
are test accuracy (classification) and test R^2 (regression). Seconds are wall time of the
whole CLI process (start-up and data reading included) and of scikit-learn's ``fit``.

Results are printed and written as JSON to
``bench/results/own-data-<machine>-<date>-<git short sha>.json`` (never overwritten).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402


def _datasets():
    from sklearn import datasets

    return {
        "digits": (datasets.load_digits(), "classification"),
        "breast-cancer": (datasets.load_breast_cancer(), "classification"),
        "diabetes": (datasets.load_diabetes(), "regression"),
    }


def _write_csv(path, X, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", *(f"x{j}" for j in range(X.shape[1]))])
        for label, row in zip(y, X):
            w.writerow([label, *(repr(float(v)) for v in row)])


def run_cli(csv_path, task, seed, workdir):
    """The CLI with defaults (``--seed`` only) in a subprocess: ``(score, seconds, epochs)``."""
    out = os.path.join(workdir, f"m-{seed}.json")
    cmd = [sys.executable, "-m", "xpnet.train", "--data", csv_path, "--target", "target",
           "--device", "cpu", "--seed", str(seed), "--quiet", "--metrics-json", out]
    if task == "regression":
        cmd += ["--task", "regression"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with open(out) as f:
        metrics = json.load(f)
    score = metrics["test_accuracy"] if task == "classification" else metrics["test_r2"]
    return score, seconds, metrics["epochs_run"]


def run_sklearn(X, y, task, seed, scale_targets=False):
    """scikit-learn's MLP with its defaults on the CLI's training split: ``(score, seconds)``."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sys.path.insert(0, ROOT)
    from xpnet.train import _encode_targets, _split

    args = types.SimpleNamespace(task=task, target="target", data="bench")
    classes, codes, _ = _encode_targets(args, np.asarray(y), None)
    train_idx, test_idx = _split(codes, 0.2, seed, classes is not None, "--test-fraction", 1)
    if task == "classification":
        model = make_pipeline(StandardScaler(), MLPClassifier(random_state=seed))
    else:
        model = make_pipeline(StandardScaler(), MLPRegressor(random_state=seed))
        if scale_targets:
            model = TransformedTargetRegressor(model, transformer=StandardScaler())
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train_idx], y[train_idx])
    seconds = time.perf_counter() - start
    return float(model.score(X[test_idx], y[test_idx])), seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    conf = bench_conftest()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, (bunch, task) in _datasets().items():
            X, y = bunch.data, bunch.target
            csv_path = os.path.join(workdir, f"{name}.csv")
            _write_csv(csv_path, X, y)
            for seed in args.seeds:
                cli = run_cli(csv_path, task, seed, workdir)
                sk = run_sklearn(X, y, task, seed)
                row = {"dataset": name, "task": task, "seed": seed,
                       "xpnet_cli": {"score": cli[0], "seconds": cli[1], "epochs": cli[2]},
                       "sklearn_defaults": {"score": sk[0], "seconds": sk[1]}}
                if task == "regression":
                    skt = run_sklearn(X, y, task, seed, scale_targets=True)
                    row["sklearn_scaled_targets"] = {"score": skt[0], "seconds": skt[1]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for name in _datasets():
        mine = [r for r in rows if r["dataset"] == name]
        summary[name] = {key: statistics.median(r[key]["score"] for r in mine)
                         for key in mine[0] if isinstance(mine[0][key], dict)}
    metric = {"classification": "test accuracy", "regression": "test R^2"}
    print("\nmedian over seeds", args.seeds)
    for name, (_, task) in _datasets().items():
        cells = "  ".join(f"{k} {v:.3f}" for k, v in summary[name].items())
        print(f"  {name:14s} {metric[task]:14s} {cells}")
    out = conf.result_path("own-data-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "seeds": args.seeds,
                   "rows": rows, "median_scores": summary}, f, indent=2)
    print("wrote", os.path.relpath(out, ROOT))


if __name__ == "__main__":
    main()
