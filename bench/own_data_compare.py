"""Your own table with defaults only: ``python -m xpnet.train --data FILE --target COLUMN
--id id`` against scikit-learn's MLPs with their defaults, on real tables with an ID column,
text columns and missing cells.

    python bench/own_data_compare.py                       # seeds 0, 1, 2
    python bench/own_data_compare.py --seeds 0 1 2 3 4
    python bench/own_data_compare.py --datasets fair grunfeld

The question answered: a user with a table runs the training CLI with only ``--data FILE
--target COLUMN --id COLUMN`` (plus ``--task regression`` for numbers). Is the model as good
as what scikit-learn's usual preprocessing pipeline with ``MLPClassifier()`` /
``MLPRegressor()`` gives with its defaults?

The tables: scikit-learn's bundled iris, wine, digits, breast-cancer and diabetes sets, and
three of statsmodels' bundled sets (``fair``: had an affair or not, ``anes96``: the 1996 vote,
``grunfeld``: firms' investment; nothing is downloaded). statsmodels is only a benchmark
dependency (``pip install statsmodels``); without it its sets are skipped with a note. Each is
written as a CSV with

* an ``id`` column of text (``row0001``...), passed as ``--id``;
* at least one text column: the set's own categories where it has some (diabetes' sex, fair's
  occupations, anes96's party identification, grunfeld's firm), else a column binned into
  ``low``/``mid``/``high`` at its tertiles (a new column next to the column itself);
* about 5% of the feature cells missing (``""``, ``NA``, ``NaN`` or ``null``), at cells drawn
  with a fixed seed per set, so every run seed sees the same file.

Each seed gives both the same split: the CLI holds out 20% as the test set, stratified for
classification and seeded (``xpnet.preprocessing.holdout_split(y, 0.2, seed, stratified,
salt=1)`` of the class indices ``xpnet.Target.fit(y, "classification").encode(y)``, or of the
raw values for regression), and scikit-learn is fitted on exactly the other 80%, read from the
same CSV with pandas (the same missing markers). ``--check-split`` verifies this: it saves each
CLI model and checks with ``python -m xpnet.predict`` that it scores the CLI's reported test
score on this script's test rows. scikit-learn's pipeline::

    make_pipeline(
        ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), number_columns),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="ignore")), text_columns)]),
        MLPClassifier(random_state=seed))          # or MLPRegressor(random_state=seed)

It is shown twice for regression: as is, and with the targets standardised too
(``TransformedTargetRegressor(..., transformer=StandardScaler())``), which the CLI does by
default. The scores are test accuracy (classification) and test R^2 (regression; RMSE is
recorded too). Seconds are wall time of the whole CLI process (start-up, reading and encoding
the CSV included; the CLI's own ``train_seconds`` is recorded beside it) and of scikit-learn's
``fit``.

Results are printed (a markdown table of the medians over seeds) and written as JSON to
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
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, ROOT)
from conftest_loader import bench_conftest  # noqa: E402

TEST_FRACTION = 0.2  # the CLI's default --test-fraction
MISSING_SHARE = 0.05  # of the feature cells
MISSING_TOKENS = ("", "NA", "NaN", "null")  # all of them missing markers to both readers
ID = "id"


@dataclass
class Table:
    """One benchmark table before it is written: ``frame`` holds the features and the target
    (pandas), ``text`` names its text columns."""

    name: str
    source: str
    task: str
    target: str
    frame: object
    text: list


# ---------------------------------------------------------------------------- the tables
def _with_level(frame, column, name):
    """``frame`` with the text column ``name``: ``column`` binned into low/mid/high at its
    tertiles, placed right after it. Returns ``(frame, name)``."""
    values = frame[column].to_numpy(dtype=np.float64)
    edges = np.quantile(values, [1 / 3, 2 / 3])
    level = np.array(["low", "mid", "high"])[np.digitize(values, edges, right=True)]
    frame = frame.copy()
    frame.insert(frame.columns.get_loc(column) + 1, name, level)
    return frame, name


def _sklearn_tables():
    from sklearn import datasets

    tables = []
    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.rename(columns={"target": "species"})
    frame["species"] = np.asarray(iris.target_names)[iris.target]
    frame, level = _with_level(frame, "petal length (cm)", "petal_size")
    tables.append(Table("iris", "sklearn", "classification", "species", frame, [level]))

    wine = datasets.load_wine(as_frame=True)
    frame, level = _with_level(wine.frame.rename(columns={"target": "cultivar"}), "alcohol",
                               "alcohol_level")
    tables.append(Table("wine", "sklearn", "classification", "cultivar", frame, [level]))

    digits = datasets.load_digits(as_frame=True)
    frame, level = _with_level(digits.frame.rename(columns={"target": "digit"}), "pixel_3_4",
                               "pixel_3_4_level")
    tables.append(Table("digits", "sklearn", "classification", "digit", frame, [level]))

    cancer = datasets.load_breast_cancer(as_frame=True)
    frame = cancer.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = np.asarray(cancer.target_names)[cancer.target]
    frame, level = _with_level(frame, "mean radius", "radius_size")
    tables.append(Table("breast-cancer", "sklearn", "classification", "diagnosis", frame,
                        [level]))

    diabetes = datasets.load_diabetes(as_frame=True, scaled=False)  # sex as coded: 1 or 2
    frame = diabetes.frame.rename(columns={"target": "progression"})
    frame["sex"] = ["sex" + str(int(v)) for v in frame["sex"]]
    tables.append(Table("diabetes", "sklearn", "regression", "progression", frame, ["sex"]))
    return tables


# statsmodels' codes, from its dataset descriptions
OCCUPATIONS = {1: "student", 2: "farming-semiskilled-unskilled", 3: "white-collar",
               4: "teacher-nurse-artist-skilled", 5: "managerial-business",
               6: "professional-advanced-degree"}
PARTIES = {0: "strong-democrat", 1: "weak-democrat", 2: "independent-democrat",
           3: "independent", 4: "independent-republican", 5: "weak-republican",
           6: "strong-republican"}


def _statsmodels_tables():
    """fair, anes96 and grunfeld; [] with a note when statsmodels is not installed."""
    try:
        from statsmodels import datasets
    except ImportError:
        print("note: statsmodels is not installed; skipping its sets (fair, anes96, grunfeld):"
              " pip install statsmodels", flush=True)
        return []
    tables = []
    frame = datasets.fair.load_pandas().data.copy()
    frame["affair"] = np.where(frame.pop("affairs") > 0, "yes", "no")
    for column in ("occupation", "occupation_husb"):
        frame[column] = [OCCUPATIONS[int(v)] for v in frame[column]]
    tables.append(Table("fair", "statsmodels", "classification", "affair", frame,
                        ["occupation", "occupation_husb"]))

    frame = datasets.anes96.load_pandas().data.copy()
    frame["PID"] = [PARTIES[int(v)] for v in frame["PID"]]
    frame["vote"] = np.where(frame["vote"] > 0, "Dole", "Clinton")
    tables.append(Table("anes96", "statsmodels", "classification", "vote", frame, ["PID"]))

    frame = datasets.grunfeld.load_pandas().data.copy()
    frame["firm"] = frame["firm"].astype(str)
    tables.append(Table("grunfeld", "statsmodels", "regression", "invest", frame, ["firm"]))
    return tables


def tables(names=None):
    found = _sklearn_tables() + _statsmodels_tables()
    return [t for t in found if names is None or t.name in names]


# ---------------------------------------------------------------------------- the CSV
def _cell(value):
    if isinstance(value, str):
        return value
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def write_csv(path, table):
    """The table as a CSV: ``id`` first, the features (about 5% of their cells missing), the
    target last. Returns a description of what was written."""
    frame = table.frame
    features = [c for c in frame.columns if c != table.target]
    n = len(frame)
    rng = np.random.default_rng(zlib.crc32(table.name.encode()))
    missing = rng.random((n, len(features))) < MISSING_SHARE
    tokens = rng.integers(len(MISSING_TOKENS), size=missing.shape)
    width = max(4, len(str(n)))
    columns = [frame[c].tolist() for c in features]
    target = frame[table.target].tolist()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([ID, *features, table.target])
        for i in range(n):
            cells = [MISSING_TOKENS[tokens[i, j]] if missing[i, j] else _cell(columns[j][i])
                     for j in range(len(features))]
            w.writerow([f"row{i + 1:0{width}d}", *cells, _cell(target[i])])
    return {"rows": n, "feature_columns": len(features), "text_columns": list(table.text),
            "number_columns": len(features) - len(table.text),
            "missing_cells": int(missing.sum()),
            "missing_share": float(missing.mean())}


def read_csv(path, table):
    """The CSV as scikit-learn's side sees it: ``(X frame, y array, number columns, text
    columns)``, with the same missing markers as the CLI."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, na_values=list(MISSING_TOKENS))
    y = frame.pop(table.target).to_numpy()
    frame = frame.drop(columns=[ID])
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if sorted(text) != sorted(table.text):
        raise SystemExit(f"{path}: pandas reads {text} as text, expected {table.text}")
    for c in text:
        frame[c] = frame[c].astype(object)
    numbers = [c for c in frame.columns if c not in text]
    if y.dtype == object:
        y = y.astype(str)
    return frame, y, numbers, text


def split(y, task, seed):
    """The CLI's held-out test set for ``--seed seed``: ``(train_idx, test_idx)``."""
    from xpnet import Target
    from xpnet.preprocessing import holdout_split

    if task == "classification":
        codes = Target.fit(y, "classification").encode(y)
        return holdout_split(codes, TEST_FRACTION, seed, True, salt=1)
    return holdout_split(y, TEST_FRACTION, seed, False, salt=1)


# ---------------------------------------------------------------------------- the runs
def cli_command(csv_path, table, seed, metrics_path):
    cmd = [sys.executable, "-m", "xpnet.train", "--data", csv_path, "--target", table.target,
           "--id", ID, "--device", "cpu", "--seed", str(seed), "--quiet",
           "--metrics-json", metrics_path]
    if table.task == "regression":
        cmd += ["--task", "regression"]
    return cmd


def run_cli(csv_path, table, seed, workdir, save=None):
    """The CLI with defaults (``--seed`` only) in a subprocess: a result dict. ``save``: also
    write the model there (``--save``)."""
    out = os.path.join(workdir, f"{table.name}-{seed}.json")
    cmd = cli_command(csv_path, table, seed, out) + (["--save", save] if save else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip(), "returncode": done.returncode,
                "command": cmd}
    with open(out) as f:
        metrics = json.load(f)
    result = {"seconds": seconds, "train_seconds": metrics.get("train_seconds"),
              "epochs": metrics.get("epochs_run")}
    if table.task == "classification":
        result["score"] = metrics["test_accuracy"]
    else:
        result["score"], result["rmse"] = metrics["test_r2"], metrics["test_rmse"]
    return result


def run_sklearn(X, y, numbers, text, task, seed, train_idx, test_idx, scale_targets=False):
    """scikit-learn's usual pipeline with its MLP's defaults on the CLI's training rows."""
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import root_mean_squared_error
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), text)])
    if task == "classification":
        model = make_pipeline(columns, MLPClassifier(random_state=seed))
    else:
        model = make_pipeline(columns, MLPRegressor(random_state=seed))
        if scale_targets:
            model = TransformedTargetRegressor(model, transformer=StandardScaler())
    X_train, X_test = X.iloc[train_idx], X.iloc[test_idx]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y[train_idx])
    seconds = time.perf_counter() - start
    result = {"score": float(model.score(X_test, y[test_idx])), "seconds": seconds}
    if task == "regression":
        result["rmse"] = float(root_mean_squared_error(y[test_idx], model.predict(X_test)))
    return result


def check_split(csv_path, table, y, test_idx, model, workdir, cli_score):
    """Predict every row with the CLI's saved ``model`` (``python -m xpnet.predict``) and
    score the rows of ``test_idx``: the CLI's own test score when the split is the CLI's."""
    preds = os.path.join(workdir, "predictions.csv")
    subprocess.run([sys.executable, "-m", "xpnet.predict", model, "--data", csv_path,
                    "--out", preds], check=True, cwd=ROOT, capture_output=True, text=True)
    with open(preds, newline="") as f:
        predicted = [r[1] for r in list(csv.reader(f))[1:]]  # id, prediction, ...
    predicted = np.asarray(predicted)[test_idx]
    if table.task == "classification":
        score = float(np.mean(predicted == y[test_idx].astype(str)))
    else:
        from sklearn.metrics import r2_score

        score = float(r2_score(y[test_idx], predicted.astype(np.float64)))
    if not np.isclose(score, cli_score, rtol=0, atol=1e-6):
        raise SystemExit(f"{table.name}: the CLI's model scores {score:.6f} on this script's "
                         f"test rows but reports {cli_score:.6f}: the splits differ")


# ---------------------------------------------------------------------------- the report
METRIC = {"classification": "test accuracy", "regression": "test R^2"}
KEYS = ("xpnet_cli", "sklearn_pipeline", "sklearn_scaled_targets")


def _median(rows, key, field="score"):
    values = [r[key][field] for r in rows if key in r and field in r[key]]
    return statistics.median(values) if values else None


def markdown(summary, described):
    lines = ["| dataset | rows x columns | columns | metric | xpnet CLI | scikit-learn pipeline "
             "| scikit-learn, standardised targets |",
             "|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        d = described[name]
        kinds = (f"id, {d['number_columns']} number, {len(d['text_columns'])} text "
                 f"({', '.join(d['text_columns'])}), {d['missing_share']:.1%} missing")
        cells = [("-" if s[k] is None else f"{s[k]:.3f}") if k in s else "" for k in KEYS]
        lines.append(f"| {name} ({d['source']}) | {d['rows']} x {d['feature_columns'] + 2} "
                     f"| {kinds} | {METRIC[d['task']]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="only these sets (default: all)")
    p.add_argument("--check-split", action="store_true",
                   help="also save each CLI model and check, with xpnet.predict, that it "
                        "scores the CLI's test score on this script's test rows")
    args = p.parse_args(argv)
    conf = bench_conftest()
    rows, described, commands = [], {}, {}
    chosen = tables(args.datasets)
    with tempfile.TemporaryDirectory() as workdir:
        for table in chosen:
            csv_path = os.path.join(workdir, f"{table.name}.csv")
            described[table.name] = {"source": table.source, "task": table.task,
                                     "target": table.target, **write_csv(csv_path, table)}
            commands[table.name] = " ".join(
                ["python", "-m", "xpnet.train"] +
                cli_command(f"{table.name}.csv", table, "SEED", "m.json")[3:])
            X, y, numbers, text = read_csv(csv_path, table)
            for seed in args.seeds:
                train_idx, test_idx = split(y, table.task, seed)
                model = os.path.join(workdir, "model.npz") if args.check_split else None
                cli = run_cli(csv_path, table, seed, workdir, save=model)
                if model and "error" not in cli:
                    check_split(csv_path, table, y, test_idx, model, workdir, cli["score"])
                    cli["split_checked"] = True
                row = {"dataset": table.name, "task": table.task, "seed": seed,
                       "n_train": len(train_idx), "n_test": len(test_idx),
                       "xpnet_cli": cli,
                       "sklearn_pipeline": run_sklearn(X, y, numbers, text, table.task, seed,
                                                       train_idx, test_idx)}
                if table.task == "regression":
                    row["sklearn_scaled_targets"] = run_sklearn(
                        X, y, numbers, text, table.task, seed, train_idx, test_idx,
                        scale_targets=True)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for table in chosen:
        mine = [r for r in rows if r["dataset"] == table.name]
        summary[table.name] = {k: _median(mine, k) for k in KEYS if k in mine[0]}
    print("\nmedian over seeds", args.seeds, "\n")
    print(markdown(summary, described))
    errors = [r for r in rows if "error" in r["xpnet_cli"]]
    for r in errors:
        print(f"\nCLI failed on {r['dataset']} seed {r['seed']}: {r['xpnet_cli']['error']}")
    out = conf.result_path("own-data-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "seeds": args.seeds,
                   "datasets": described, "cli_commands": commands, "rows": rows,
                   "median_scores": summary}, f, indent=2)
    print("\nwrote", os.path.relpath(out, ROOT))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
