"""The "deep net from scratch" tutorials' headline runs, each one ``python -m xpnet.train``
command, with xpnet's numbers measured beside the tutorial's reported ones.

    python bench/tutorial_runs.py                         # every row, one after the other
    python bench/tutorial_runs.py --rows seed004 --threads 1
    python bench/tutorial_runs.py --rows seed000-normal seed000-he --jobs 2 --threads 1

Each row runs in its own process (``--threads`` BLAS threads each, ``--jobs`` rows at a time)
and its test accuracy, final training accuracy (the last epoch's, which for full-batch runs is
the accuracy on all training images before the last update) and training seconds are printed
and written to ``bench/results/tutorial-runs-<machine>-<date>-<sha>.json``. Seconds from rows
run side by side (``--jobs 2``) share the cores: compare them only within one run.

The rows (``ROWS``) are the README's table: the tutorial, its setup, the number it reports,
and the command. The long ones take 10-25 minutes each on a 2-core CPU; tests/test_tutorial_runs.py
runs each command cut to a few iterations instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

SEED000 = ["--layers", "784,100,100,10", "--optimizer", "gd", "--batch-size", "full", "--lr",
           "0.1", "--schedule", "constant", "--epochs", "3000"]
ROWS = {
    "seed000-normal": {
        "tutorial": "seed 000", "setup": "[784,100,100,10], full-batch GD lr 0.1, the small "
        "N(0,1) x 0.01 start, 3,000 iterations", "reported": "stuck around 20%",
        "args": [*SEED000, "--init", "normal"]},
    "seed000-normal-l2": {
        "tutorial": "seed 000", "setup": "the same with L2 0.01", "reported": "stuck",
        "args": [*SEED000, "--init", "normal", "--l2", "0.01"]},
    "seed000-he": {
        "tutorial": "seed 000", "setup": "[784,100,100,10], full-batch GD lr 0.1, He start, "
        "3,000 iterations", "reported": "(He fixes the start)",
        "args": [*SEED000, "--init", "he"]},
    "seed000-he-l2": {
        "tutorial": "seed 000", "setup": "the same with L2 0.01",
        "reported": "96% training accuracy", "args": [*SEED000, "--init", "he", "--l2", "0.01"]},
    "seed003": {
        "tutorial": "seed 003", "setup": "[784,256,128,64,10], full-batch GD lr 0.5, He start, "
        "500 iterations", "reported": "97%",
        "args": ["--optimizer", "gd", "--batch-size", "full", "--lr", "0.5", "--schedule",
                 "constant", "--epochs", "500", "--dev-fraction", "0", "--init", "he"]},
    "seed004": {
        "tutorial": "seed 004", "setup": "tanh [784,16,16,10] from N(0,1) x 0.1, full batch, "
        "lr 1 then 0.1 after 75 of 150 iterations", "reported": "85.9% training accuracy",
        "args": ["--layers", "784,16,16,10", "--activation", "tanh", "--init", "normal:0.1",
                 "--optimizer", "gd", "--batch-size", "full", "--lr", "1", "--schedule", "step",
                 "--step-size", "75", "--epochs", "150"]},
}


def run_row(name, threads, workdir):
    out = os.path.join(workdir, f"{name}.json")
    cmd = [sys.executable, "-m", "xpnet.train", *ROWS[name]["args"], "--device", "cpu",
           "--threads", str(threads), "--seed", "0", "--quiet", "--metrics-json", out]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        return {"name": name, "error": result.stderr.strip().splitlines()[-1:]}
    with open(out) as f:
        metrics = json.load(f)
    history = metrics["history"]
    return {"name": name, **{k: v for k, v in ROWS[name].items() if k != "args"},
            "command": "python -m xpnet.train " + " ".join(ROWS[name]["args"]),
            "test_accuracy": metrics["test_accuracy"],
            "final_train_accuracy": history["accuracy"][-1] if history.get("accuracy") else None,
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs_run"],
            "threads": threads}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per row")
    p.add_argument("--jobs", type=int, default=1, help="rows run at the same time")
    args = p.parse_args(argv)
    conf = bench_conftest()
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda name: run_row(name, args.threads, workdir), args.rows))
    for row in rows:
        print(json.dumps(row), flush=True)
    out = conf.result_path("tutorial-runs-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "jobs": args.jobs,
                   "threads": args.threads, "rows": rows}, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
