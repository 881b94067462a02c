"""MNIST: ``sklearn.neural_network.MLPClassifier`` against ``xpnet.sklearn.MLPClassifier``.

    python bench/sklearn_compare.py                  # (256, 128), max_iter 10, 6 timing rounds
    python bench/sklearn_compare.py --max-iter 3 --timing-rounds 2 --input-dtype float32

The question answered: a scikit-learn user swaps ``from sklearn.neural_network import
MLPClassifier`` for ``from xpnet.sklearn import MLPClassifier`` and keeps the same parameters.
Is the accuracy the same, and how long does ``fit`` take? Both estimators get the same
arguments (``hidden_layer_sizes``, ``max_iter``, ``random_state`` and scikit-learn's defaults
for the rest: Adam, lr 1e-3, batch 200, alpha 1e-4) and the same inputs, the 60000 training
images scaled as a scikit-learn user scales them, ``X / 255.0`` (float64; ``--input-dtype
float32`` feeds float32). Both then train in the input's dtype (xpnet follows scikit-learn
here since 2026-12-06; the results of 2026-11-25 were taken when xpnet trained in float32
whatever the input), on the CPU for xpnet unless ``--device`` says otherwise. Both start from
the same weights (xpnet draws scikit-learn's Glorot start from ``random_state``) and shuffle
alike.

Two parts, in one process:

1. Accuracy: one full ``fit`` of each (``--max-iter`` epochs), then accuracy on the 10000 test
   images. These fits are timed too, but one run each on a shared machine is one sample.
2. Speed: ``--timing-rounds`` rounds, each fitting both estimators for ``--timing-epochs``
   epochs (the same ``fit`` path, input validation included), alternating which goes first
   (sklearn, xpnet / xpnet, sklearn, ...). Other processes' load then hits both alike; the
   result is the median of the per-round ratios sklearn / xpnet, and the median seconds per
   epoch of each. The 1-minute load average before each run is recorded, and the process CPU
   time of each fit (less sensitive to other processes than wall time) beside its wall time.

Results are printed and written as JSON to
``bench/results/sklearn-compare-<machine>-<date>-<git short sha>.json`` (an existing file is
never overwritten: ``-2``, ``-3``, ... are appended).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402
from time_to_accuracy import FILES, data_dir_candidates, read_idx_member  # noqa: E402


def load_mnist_uint8(flag=None):
    """``(X_train, y_train, X_test, y_test, directory)`` with uint8 images (N, 784)."""
    tried = []
    for directory in data_dir_candidates(flag):
        try:
            out = []
            for images, labels, n in FILES.values():
                out += [read_idx_member(directory, images, 16, n * 784).reshape(n, 784),
                        read_idx_member(directory, labels, 8, n).astype(np.int64)]
            return (*out, directory)
        except FileNotFoundError:
            tried.append(directory)
    raise SystemExit("MNIST IDX files not found in " + ", ".join(tried) +
                     "; pass --data-dir or set XPNET_DATA_DIR.")


def _estimator(library, args, max_iter):
    params = dict(hidden_layer_sizes=tuple(args.hidden), max_iter=max_iter,
                  random_state=args.seed)
    if library == "sklearn":
        from sklearn.neural_network import MLPClassifier
        return MLPClassifier(**params), params
    from xpnet.sklearn import MLPClassifier
    return MLPClassifier(**params, device=args.device), params


def run_once(library, args, data, max_iter, label, evaluate=True):
    X, y, X_test, y_test = data
    est, params = _estimator(library, args, max_iter)
    load = os.getloadavg()[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(X, y)
        fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    record = {
        "library": library, "part": label, "params": params, "fit_seconds": fit_s,
        "fit_cpu_seconds": cpu_s,
        "seconds_per_epoch": fit_s / est.n_iter_, "n_iter": int(est.n_iter_),
        "loss_curve": [float(v) for v in est.loss_curve_],
        "coef_dtype": str(est.coefs_[0].dtype), "load_average_1min_before": load,
        "convergence_warning": any("Maximum iterations" in str(w.message) for w in caught),
    }
    if library == "xpnet":
        record["device"] = est.device_
    line = (f"{label:9s} {library:7s} fit {fit_s:7.1f} s (cpu {cpu_s:6.1f} s, "
            f"{record['n_iter']} epochs, "
            f"{record['coef_dtype']}, load {load:.1f})")
    if evaluate:
        t0 = time.perf_counter()
        pred = est.predict(X_test)
        record["predict_seconds"] = time.perf_counter() - t0
        record["test_accuracy"] = float(np.mean(pred == y_test))
        line += (f"  predict {record['predict_seconds']:.2f} s  test accuracy "
                 f"{record['test_accuracy']:.4f}")
    print(line, flush=True)
    return record


def _git_short_sha():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128],
                   help="hidden_layer_sizes (default 256 128)")
    p.add_argument("--max-iter", type=int, default=10, help="max_iter (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
    p.add_argument("--timing-rounds", type=int, default=6,
                   help="alternating timing rounds (default 6)")
    p.add_argument("--timing-epochs", type=int, default=2,
                   help="max_iter of the timing fits (default 2)")
    p.add_argument("--input-dtype", choices=("float64", "float32"), default="float64",
                   help="dtype of X / 255 (default float64, what X / 255.0 gives)")
    p.add_argument("--device", default="cpu", help="xpnet's device (default cpu)")
    p.add_argument("--data-dir", help="MNIST folder (default $XPNET_DATA_DIR, ...)")
    p.add_argument("--output", help="JSON path (default bench/results/sklearn-compare-"
                   "<machine>-<date>-<sha>.json)")
    args = p.parse_args(argv)

    import sklearn

    X, y, X_test, y_test, directory = load_mnist_uint8(args.data_dir)
    dtype = np.dtype(args.input_dtype)
    data = (X.astype(dtype) / dtype.type(255), y, X_test.astype(dtype) / dtype.type(255), y_test)
    print(f"MNIST from {directory}: {X.shape[0]} train / {X_test.shape[0]} test, X / 255 in "
          f"{dtype.name}; hidden {tuple(args.hidden)}, max_iter {args.max_iter}, "
          f"random_state {args.seed}; scikit-learn {sklearn.__version__}", flush=True)

    full = [run_once(lib, args, data, args.max_iter, "accuracy") for lib in ("sklearn", "xpnet")]
    timing = []
    for r in range(args.timing_rounds):
        order = ("sklearn", "xpnet") if r % 2 == 0 else ("xpnet", "sklearn")
        pair = {lib: run_once(lib, args, data, args.timing_epochs, f"timing {r}", evaluate=False)
                for lib in order}
        timing.append(pair)

    ratios = [pair["sklearn"]["fit_seconds"] / pair["xpnet"]["fit_seconds"] for pair in timing]
    acc = {run["library"]: run["test_accuracy"] for run in full}
    summary = {
        "test_accuracy": acc,
        "accuracy_difference_points": 100 * (acc["xpnet"] - acc["sklearn"]),
        "full_fit_seconds": {run["library"]: run["fit_seconds"] for run in full},
        "predict_seconds": {run["library"]: run["predict_seconds"] for run in full},
        "timing_seconds_per_epoch_median": {
            lib: statistics.median(pair[lib]["seconds_per_epoch"] for pair in timing)
            for lib in ("sklearn", "xpnet")} if timing else None,
        "timing_ratio_sklearn_over_xpnet_per_round": ratios,
        "timing_ratio_sklearn_over_xpnet_median": statistics.median(ratios) if ratios else None,
        "timing_cpu_ratio_sklearn_over_xpnet_median": statistics.median(
            pair["sklearn"]["fit_cpu_seconds"] / pair["xpnet"]["fit_cpu_seconds"]
            for pair in timing) if timing else None,
    }
    full_s = summary["full_fit_seconds"]
    print(f"test accuracy after {args.max_iter} epochs: sklearn {acc['sklearn']:.4f}, xpnet "
          f"{acc['xpnet']:.4f} ({summary['accuracy_difference_points']:+.2f} points); full fit "
          f"sklearn {full_s['sklearn']:.1f} s, xpnet {full_s['xpnet']:.1f} s")
    if ratios:
        per = summary["timing_seconds_per_epoch_median"]
        print(f"fit time, {len(ratios)} alternating rounds of {args.timing_epochs} epochs: "
              f"sklearn {per['sklearn']:.2f} s/epoch, xpnet {per['xpnet']:.2f} s/epoch "
              f"(medians); sklearn / xpnet {summary['timing_ratio_sklearn_over_xpnet_median']:.2f}x"
              f" (per round: {', '.join(f'{x:.2f}' for x in ratios)}); process CPU time "
              f"sklearn / xpnet {summary['timing_cpu_ratio_sklearn_over_xpnet_median']:.2f}x")

    conf = bench_conftest()
    machine = conf.machine_description()
    path = args.output or os.path.join(
        BENCH_DIR, "results", f"sklearn-compare-{machine['slug']}-"
        f"{_dt.date.today().isoformat()}-{_git_short_sha()}.json")
    path = conf.free_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "x") as f:  # "x": never overwrite a result
        json.dump({"machine": machine, "scikit_learn": sklearn.__version__,
                   "command": " ".join(sys.argv), "input_dtype": dtype.name,
                   "args": vars(args), "summary": summary, "accuracy_runs": full,
                   "timing_runs": timing}, f, indent=1)
    print(f"results: {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
