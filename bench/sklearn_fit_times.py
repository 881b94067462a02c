"""Fit time of xpnet.sklearn against scikit-learn's own MLPs, one BLAS thread, interleaved.

    python bench/sklearn_fit_times.py                 # 3 rounds (the measurement)
    python bench/sklearn_fit_times.py --rounds 1 --quick

Two data sets, as a scikit-learn user has them: scikit-learn's ``load_digits`` (1,797 x 64,
standardised; 1,347 to fit, 450 to score) and ``make_classification(n_samples=50_000,
n_features=100, n_informative=20, n_classes=5, random_state=0)`` (40,000 to fit, 10,000 to
score). Each is fitted as float64 and as float32 input (both libraries train in the input's
dtype), with ``hidden_layer_sizes=(100,)``, ``random_state=0`` and scikit-learn's defaults
otherwise, for a fixed number of epochs (``max_iter``: 30 on digits, 5 on the large set;
``tol=0`` so no early stop), with ``solver="adam"`` and with ``solver="lbfgs"`` (``max_iter``
iterations). In each round the two libraries run one after the other, their order alternating
from round to round, under ``threadpoolctl.threadpool_limits(1)``. Printed and written to
``bench/results/sklearn-fit-times-<machine>-<date>-<sha>.json``: every fit's seconds, the test
accuracy, ``n_iter_``, the load average before and after, the machine and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

sys.path.insert(0, ROOT)


def datasets(quick):
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    n = 10_000 if quick else 50_000
    X2, y2 = make_classification(n_samples=n, n_features=100, n_informative=20, n_classes=5,
                                 random_state=0)
    out = {}
    for name, (A, b), epochs in (("digits", (X, y), 30), ("classification-50k", (X2, y2), 5)):
        A_train, A_test, b_train, b_test = train_test_split(A, b, random_state=0)
        scaler = StandardScaler().fit(A_train)
        out[name] = (scaler.transform(A_train), scaler.transform(A_test), b_train, b_test,
                     epochs)
    return out


def fit_once(library, solver, X, y, X_test, y_test, epochs):
    from sklearn.exceptions import ConvergenceWarning

    if library == "xpnet":
        from xpnet.sklearn import MLPClassifier
        extra = {"device": "cpu"}
    else:
        from sklearn.neural_network import MLPClassifier
        extra = {}
    est = MLPClassifier(hidden_layer_sizes=(100,), random_state=0, max_iter=epochs, tol=0.0,
                        solver=solver, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "accuracy": float(est.score(X_test, y_test)),
            "n_iter": int(est.n_iter_), "coef_dtype": str(est.coefs_[0].dtype)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 50,000")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    conf = bench_conftest()
    runs = []
    load_before = os.getloadavg()
    with threadpool_limits(1):
        for name, (X, X_test, y, y_test, epochs) in datasets(args.quick).items():
            for dtype in ("float64", "float32"):
                A, A_test = X.astype(dtype), X_test.astype(dtype)
                for solver in ("adam", "lbfgs"):
                    for r in range(args.rounds):
                        order = ("sklearn", "xpnet") if r % 2 == 0 else ("xpnet", "sklearn")
                        for library in order:
                            row = fit_once(library, solver, A, y, A_test, y_test, epochs)
                            row.update(data=name, dtype=dtype, solver=solver, library=library,
                                       round=r, load=os.getloadavg()[0])
                            runs.append(row)
                    done = [x for x in runs if (x["data"], x["dtype"], x["solver"]) ==
                            (name, dtype, solver)]
                    med = {lib: statistics.median(x["seconds"] for x in done
                                                  if x["library"] == lib)
                           for lib in ("sklearn", "xpnet")}
                    acc = {lib: done[-1 if done[-1]["library"] == lib else -2]["accuracy"]
                           for lib in ("sklearn", "xpnet")}
                    print(f"{name:19s} {dtype} {solver:5s} sklearn {med['sklearn']:.3f} s "
                          f"(acc {acc['sklearn']:.4f})  xpnet {med['xpnet']:.3f} s "
                          f"(acc {acc['xpnet']:.4f})  ratio {med['xpnet'] / med['sklearn']:.2f}",
                          flush=True)
    import sklearn

    result = {"machine": conf.machine_description(), "commit": conf.git_short_sha(ROOT),
              "date": time.strftime("%Y-%m-%d"), "sklearn": sklearn.__version__,
              "blas_threads": 1, "load_before": load_before, "load_after": os.getloadavg(),
              "rounds": args.rounds, "quick": args.quick, "runs": runs}
    path = conf.result_path("sklearn-fit-times-")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
