"""``make bench`` hygiene: results go to new files, and the printed figures have one source each.

Plain tests (no benchmark fixture): they run in ``make test``; ``--benchmark-only`` skips them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def _load(name):
    spec = importlib.util.spec_from_file_location(f"xpnet_bench_{name}",
                                                  os.path.join(BENCH_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_result_paths_are_new_and_named_by_machine_date_and_commit(tmp_path):
    conf = _load("conftest")
    first = conf.result_path("x-", "cpu-2core-test", str(tmp_path))
    assert re.fullmatch(r"x-cpu-2core-test-\d{4}-\d{2}-\d{2}-[0-9a-z]+\.json",
                        os.path.basename(first))
    open(first, "x").close()
    second = conf.result_path("x-", "cpu-2core-test", str(tmp_path))
    assert second == first[:-len(".json")] + "-2.json"
    open(second, "x").close()
    assert conf.free_path(first) == first[:-len(".json")] + "-3.json"


def _fake_run(tmp_path):
    """A results JSON shaped like run.py's, with the medians from the run that once printed a
    130% GEMM rate next to an interleaved 74%."""
    def bench(workload, backend, kind, median, flops):
        return {"stats": {"median": median}, "extra_info": {
            "workload": workload, "backend": backend, "kind": kind, "device": "cpu",
            "flops": flops}}

    data = {"benchmarks": [
        bench("loss_and_grads[m=60000]", "xpnet-numpy", "impl", 0.62, 63e9),
        bench("loss_and_grads[m=60000]", "gemm-numpy", "gemm", 0.52, 63e9),
        bench("loss_and_grads[m=60000]", "torch-cpu", "impl", 0.72, 63e9),
    ], "xpnet_interleaved": {"cpu": {"full_vs_torch": 0.87, "full_pct_gemm": 74.0,
                                     "batch_vs_torch": 0.63, "adam_step_vs_fwd_bwd": 1.2}}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_table_has_no_ratio_and_targets_come_from_the_interleaved_check(tmp_path, capsys):
    run = _load("run")
    run.print_report(_fake_run(tmp_path))
    out = capsys.readouterr().out
    table = out.split("descriptive:")[0]
    assert "%" not in table and "vs torch" not in table  # no ratio from sequential medians
    targets = [line for line in out.splitlines() if line.startswith("target")]
    assert len(targets) == len(run.TARGETS)  # each target printed once
    assert sum("% of sgemm" in line or "sgemm rate" in line for line in targets) == 1
    gemm = next(line for line in targets if "sgemm" in line)
    assert "74%" in gemm and "MISSED" in gemm
    assert "1.20x" in next(line for line in targets if "Adam" in line)
