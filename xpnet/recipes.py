"""Default training settings, by the kind of data: what ``xpnet.train`` and ``Model.fit`` use
when nothing else is said.

The image recipe was chosen by measurement on MNIST (bench/README.md, "Time to 98%"): four
epochs of Adam at 4e-3 on a cosine schedule reach 98.2% on seeds 0-4, and no dev set is held
out, since nothing uses it (no early stopping) and its 6000 images are worth more as training
data. The table recipe follows scikit-learn's MLP defaults (one hidden layer of 100, Glorot
initialisation, batches of 200, Adam 1e-3, up to 200 epochs, stopping when the training loss
has not improved by 1e-4 for 10 epochs, and then keeping the last weights, as scikit-learn
does without a validation set): on small tables a dev set costs more training data than early
stopping on it saves (bench/own_data_compare.py).
"""

from __future__ import annotations

__all__ = ["RECIPES"]

RECIPES = {
    "image": {"hidden": "256,128,64", "init": "he", "batch_size": 128, "epochs": 4,
              "patience": 0, "schedule": "cosine", "dev_fraction": 0.0, "lr": {"adam": 4e-3}},
    "table": {"hidden": "100", "init": "xavier", "batch_size": 200, "epochs": 200,
              "patience": 10, "schedule": "constant",
              "dev_fraction": 0.0, "lr": {"adam": 1e-3}, "min_delta": 1e-4},
}
