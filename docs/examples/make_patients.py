"""Write the README's example tables from scikit-learn's breast-cancer data (569 patients, 30
measurements, diagnosis benign/malignant), made to look like a table from a clinic:

* ``patient_id``: an identifier (P0001, ...), not a measurement;
* ``clinic``: a text category (north, south, east), and ``smoker``: True/False, both drawn at
  random (seeded): real tables carry columns like these, which here hold no signal;
* 3% of the measurement cells left empty, as missing;
* ``diagnosis``: the text labels.

``patients.csv`` (455 rows) is the training file, ``holdout.csv`` (114 rows) the test file,
and ``new_patients.csv`` five of its rows without the diagnosis, one of them from a clinic
the training file does not have.

    python docs/examples/make_patients.py [FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(folder="."):
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    rng = np.random.default_rng(0)
    n = len(bunch.target)
    X = bunch.data.copy()
    X[rng.random(X.shape) < 0.03] = np.nan
    table = pd.DataFrame(X, columns=[c.replace(" ", "_") for c in bunch.feature_names])
    table.insert(0, "patient_id", [f"P{i + 1:04d}" for i in range(n)])
    table.insert(1, "clinic", rng.choice(["north", "south", "east"], n))
    table.insert(2, "smoker", rng.choice([True, False], n, p=[0.3, 0.7]))
    table["diagnosis"] = bunch.target_names[bunch.target]
    order = rng.permutation(n)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table.iloc[order[:455]].to_csv(folder / "patients.csv", index=False)
    table.iloc[order[455:]].to_csv(folder / "holdout.csv", index=False)
    new = table.iloc[order[459:464]].drop(columns="diagnosis")
    new.loc[new.index[1], "clinic"] = "west"  # a clinic the model never saw: one-hot zeros
    new.to_csv(folder / "new_patients.csv", index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
