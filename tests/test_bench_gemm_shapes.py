"""bench/gemm_shapes.py: its products are the pass's, its alternatives give the same numbers,
and a short run writes its result (a smoke run: no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "gemm_shapes", os.path.join(ROOT, "bench", "gemm_shapes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_products_are_the_passes_and_their_flops_add_up():
    gs = load_bench()
    table = gs.product_table(48, np.random.default_rng(0))
    own = {k: v for k, v in table.items() if not k.startswith("alt ")}
    # y and dW per layer, dx for all but the first, db per layer: 4 + 4 + 3 + 4
    assert len(own) == 15
    assert sum(flops for flops, _ in own.values()) == gs.pass_flops(48)
    # the pass's FLOPs by hand: 2 m (784*256 + 256*128 + 128*64 + 64*10) for y and for dW,
    # and the same without the first layer for dx
    per_row = 784 * 256 + 256 * 128 + 128 * 64 + 64 * 10
    assert gs.pass_flops(48) == 2 * 48 * (2 * per_row + per_row - 784 * 256)


def test_each_alternative_layout_gives_the_same_product():
    gs = load_bench()
    table = gs.product_table(40, np.random.default_rng(1))
    for i, (n_in, n_out) in enumerate(zip(gs.SIZES[:-1], gs.SIZES[1:]), start=1):
        tag = f"L{i} {n_in}->{n_out}"
        y = table[f"{tag} y = x W^T"][1]().copy()
        yT = table[f"alt {tag} y^T = W x^T"][1]()
        np.testing.assert_allclose(yT.T, y, rtol=1e-5, atol=1e-4 * np.abs(y).max())
        dW = table[f"{tag} dW = dy^T x"][1]().copy()
        dWT = table[f"alt {tag} dW^T = x^T dy"][1]()
        np.testing.assert_allclose(dWT.T, dW, rtol=1e-5, atol=1e-4 * np.abs(dW).max())


def test_a_short_run_writes_every_product(tmp_path):
    gs = load_bench()
    out = tmp_path / "gemm.json"
    assert gs.main(["--rows", "256", "--rounds", "1", "--threads", "1",
                    "--output", str(out)]) == 0
    result = json.loads(out.read_text())["by_threads"]["1"]
    assert len(result["products"]) == 15 + 8
    assert result["pass_s"] > 0 and result["products_s"] > 0
    assert np.isfinite(result["pass_pct_sgemm"]) and result["pass_pct_sgemm"] > 0
