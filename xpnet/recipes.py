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

__all__ = ["DEFAULTS", "RECIPES", "fill_recipe", "recipe_for"]

# Settings that do not depend on the data.
DEFAULTS = {"activation": "relu", "optimizer": "adam", "test_fraction": 0.2, "seed": 0,
            "missing": "impute"}
# Settings that do, by the kind of data: "image" (an IDX dataset) or "table" (your own file).

RECIPES = {
    "image": {"hidden": "256,128,64", "init": "he", "batch_size": 128, "epochs": 3,
              "patience": 0, "schedule": "cosine", "dev_fraction": 0.0, "lr": {"adam": 4e-3}},
    "table": {"hidden": "100", "init": "xavier", "batch_size": 200, "epochs": 200,
              "patience": 10, "schedule": "constant",
              "dev_fraction": 0.0, "lr": {"adam": 1e-3}, "min_delta": 1e-4},
}


def recipe_for(kind, optimizer="adam") -> dict:
    """The default settings of a run on ``kind`` data with ``optimizer``, as keywords.

    Args:
        kind: ``"image"`` or ``"table"``.
        optimizer: the optimizer's name (the recipe's learning rate is per optimizer).

    Returns:
        ``hidden`` (a list of sizes), ``init``, ``batch_size``, ``epochs``, ``patience``,
        ``schedule``, ``dev_fraction``, ``lr`` (None: the optimizer's ``default_lr``) and
        ``min_delta``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {', '.join(RECIPES)}; got {kind!r}")
    recipe = RECIPES[kind]
    return {**recipe, "hidden": [int(n) for n in recipe["hidden"].split(",")],
            "lr": recipe["lr"].get(optimizer), "min_delta": recipe.get("min_delta", 0.0)}


def fill_recipe(settings, given=()) -> dict:
    """Fill a run's unset settings whose defaults depend on the data, from its recipe: images
    keep the fast MNIST recipe, tables the scikit-learn-like one.

    Args:
        settings: the run's settings by keyword (``data``, ``optimizer``, ``init``, ``epochs``,
            ``patience``, ``schedule``, ``dev_fraction``, ``lr``, ``batch_size``, ``layers``,
            ``hidden``), updated in place: a None value is unset, except ``batch_size``, where
            None means full-batch.
        given: the keys given explicitly (``batch_size`` is filled unless given).

    Returns:
        ``settings``.
    """
    s = settings
    recipe = recipe_for("table" if s.get("data") is not None else "image",
                        s.get("optimizer", DEFAULTS["optimizer"]))
    for key in ("init", "epochs", "patience", "schedule", "dev_fraction", "lr"):
        if s.get(key) is None:
            s[key] = recipe[key]  # lr None: the optimizer's default_lr
    if "batch_size" not in given:
        s["batch_size"] = recipe["batch_size"]
    if s.get("layers") is None and s.get("hidden") is None:
        s["hidden"] = recipe["hidden"]
    return s
