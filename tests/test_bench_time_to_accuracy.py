"""bench/time_to_accuracy.py end to end on a small synthetic stand-in for MNIST (seconds).

The benchmark itself runs on real MNIST; here ``load_mnist`` is replaced so that the plumbing
(the default recipe read from ``xpnet.train``, the three interleaved runs, the summary, the
JSON) is checked by ``make test`` without data or minutes of training.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "time_to_accuracy.py")


@pytest.fixture
def tta(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_time_to_accuracy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((784, 10)).astype(np.float32)

    def fake(n):
        X = rng.random((n, 784), dtype=np.float32)
        return X, (X @ W).argmax(axis=1).astype(np.int64)

    data = (*fake(512), *fake(256), "synthetic")
    monkeypatch.setattr(mod, "load_mnist", lambda flag=None: data)
    return mod


def test_default_mode_writes_the_answer(tta, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "tta.json"
    assert tta.main(["--seeds", "0", "1", "--max-epochs", "2", "--target", "0.2",
                     "--output", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["mode"] == "default"
    from xpnet.train import RECIPES

    assert d["xpnet_recipe"]["epochs"] == RECIPES["image"]["epochs"]
    assert d["xpnet_recipe"]["lr"] == RECIPES["image"]["lr"]["adam"]
    assert d["lr_check"]["max_relative_difference"] < 1e-12
    assert d["runs"]["0"]["order"] == ["xpnet", "torch_typical", "torch_same"]
    assert d["runs"]["1"]["order"] == ["torch_typical", "torch_same", "xpnet"]
    for seed in ("0", "1"):
        runs = d["runs"][seed]
        assert len(runs["xpnet"]["epochs_log"]) == RECIPES["image"]["epochs"]
        assert len(runs["torch_same"]["epochs_log"]) == RECIPES["image"]["epochs"]
        assert 1 <= len(runs["torch_typical"]["epochs_log"]) <= 2
        assert runs["torch_same"]["recipe"]["order"] == "xpnet"
    s = d["summary"]
    assert set(s["xpnet_accuracy_per_seed"]) == {"0", "1"}
    assert s["xpnet_all_seeds_reach_target"] == (s["xpnet_min_accuracy"] >= 0.2)
    assert s["seconds_per_epoch_ratio_xpnet_over_torch_same"] > 0
    assert d["torch_threads"] == d["numpy_blas_threads"]


def test_flags_mode_without_torch(tta, tmp_path):
    out = tmp_path / "tta.json"
    assert tta.main(["--recipe", "flags", "--seed", "3", "--epochs", "2", "--lr", "0.01",
                     "--no-torch", "--output", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["mode"] == "flags" and d["seeds"] == [3] and d["torch_skipped"] == "--no-torch"
    assert list(d["runs"]["3"]) == ["order", "xpnet"]
    assert d["runs"]["3"]["xpnet"]["trainer"]["optimizer"] == "adam"


def test_recipe_flags_refused_in_default_mode(tta):
    with pytest.raises(SystemExit):
        tta.main(["--lr", "0.01"])


def test_helpers_used_by_sklearn_compare(tta):
    assert {"train", "test"} <= set(tta.FILES)
    assert callable(tta.read_idx_member) and tta.data_dir_candidates("x") == ["x"]


def test_flags_mode_with_torch(tta, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "tta.json"
    assert tta.main(["--recipe", "flags", "--seeds", "0", "1", "--epochs", "2", "--target",
                     "0.2", "--output", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["runs"]["1"]["order"] == ["torch", "xpnet"]
    assert d["runs"]["0"]["torch"]["recipe"]["init"] == "xpnet"
    assert d["summary"]["seconds_per_epoch_ratio_xpnet_over_torch"] > 0
