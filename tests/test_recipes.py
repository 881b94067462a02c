"""The default settings (xpnet/recipes.py): one recipe per kind of data, filled into a run's
unset settings."""

from __future__ import annotations

import pytest

from xpnet.recipes import RECIPES, fill_recipe, recipe_for


def test_recipe_for_parses_the_hidden_sizes_and_picks_the_optimizers_rate():
    image = recipe_for("image", "adam")
    assert image["hidden"] == [256, 128, 64] and image["lr"] == RECIPES["image"]["lr"]["adam"]
    assert recipe_for("image", "sgd")["lr"] is None  # the optimizer's own default
    assert recipe_for("table")["min_delta"] == RECIPES["table"]["min_delta"]
    assert recipe_for("image")["min_delta"] == 0.0
    with pytest.raises(ValueError, match="kind must be one of image, table"):
        recipe_for("audio")


def test_fill_recipe_fills_only_what_is_unset():
    s = fill_recipe({"data": "t.csv", "optimizer": "adam", "epochs": 7, "init": None,
                     "patience": None, "schedule": None, "dev_fraction": None, "lr": None,
                     "batch_size": None, "layers": None, "hidden": None}, given={"epochs"})
    table = RECIPES["table"]
    assert s["epochs"] == 7 and s["init"] == table["init"] and s["hidden"] == [100]
    assert s["batch_size"] == table["batch_size"] and s["lr"] == table["lr"]["adam"]
    full = fill_recipe({"batch_size": None, "layers": [784, 10], "hidden": None},
                       given={"batch_size"})
    assert full["batch_size"] is None and full["hidden"] is None  # 'full' and --layers kept
