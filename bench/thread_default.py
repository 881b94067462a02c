"""How many BLAS threads should a single-process CPU run use? (issue 26, item 2)

    python bench/thread_default.py                       # 1 and 2 threads and the default, 5 rounds
    python bench/thread_default.py --variants default    # only the CLI's default (a check)
    python bench/thread_default.py --rounds 1 --epochs-full 2 --subset 6000   # a smoke run
    python bench/thread_default.py --sweep               # forward+backward by batch size

Each run is a fresh ``python -m xpnet.train --device cpu --seed 0 --quiet`` process, and its time
is the ``train_seconds`` of its ``--metrics-json`` (training only: data loading, the model's
construction and the test evaluation are outside it). Two workloads:

``batch128``
    the default recipe as the CLI has it (784-256-128-64-10, Adam, batch 128, 3 epochs; 4
    before 2026-12-06, when the first results were taken).
``full``
    full-batch gradient descent: ``--batch-size full --optimizer gd --lr 0.1 --schedule
    constant --epochs 10`` (``--epochs-full``), the same network.

Variants: ``1``, ``2``, ... run with ``--threads N``; ``default`` runs without ``--threads``
(whatever the CLI chooses). Every round runs every workload and variant once, the variants'
order rotated from round to round, so that drift hits each alike. The rounds run twice: on
the machine as it is ("quiet"), then with one busy Python process of this script's own
(``while True: pass``) beside them ("loaded"), killed afterwards. The 1-minute load average is
recorded before every run.

Written to a new file ``bench/results/thread-default-<machine>-<date>-<commit>.json``: every
run's training seconds and load average, per workload, variant and condition the median, the
min-max and the spread (max-min over the median), the machine, the BLAS (threadpoolctl) and the
git commit.

``--sweep`` measures where the crossover lies instead: in this process, one forward+backward
pass (``Sequential.forward_backward``, the trainer's hot path) of the same network on batches of
128 to 8192 rows of synthetic MNIST-shaped data, 60000 rows' worth of passes per block, with 1
and with all cores' BLAS threads alternating block by block (ABBA), quiet and loaded as above;
stored as rows per second per batch size, thread count and condition, in
``bench/results/thread-sweep-<machine>-<date>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from conftest_loader import bench_conftest  # noqa: E402


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not Unix
        return None


def blas_info() -> list[dict]:
    """threadpoolctl's view of NumPy's BLAS in this process (version, threads)."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


def workloads(args) -> dict[str, list[str]]:
    full = ["--batch-size", "full", "--optimizer", "gd", "--lr", "0.1", "--schedule",
            "constant", "--epochs", str(args.epochs_full)]
    return {"batch128": [], "full": full}


def one_run(flags: list[str], variant: str, env: dict) -> dict:
    """One training process; returns its training seconds and the load before it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "m.json")
        cmd = [sys.executable, "-m", "xpnet.train", "--device", "cpu", "--seed", "0", "--quiet",
               "--metrics-json", out, *flags]
        if variant != "default":
            cmd += ["--threads", variant]
        load = loadavg()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        with open(out) as f:
            m = json.load(f)
    return {"seconds": round(m["train_seconds"], 4), "load_before": load,
            "test_accuracy": m["test_accuracy"]}


def rounds(args, condition: str, env: dict) -> list[dict]:
    runs = []
    loads = workloads(args)
    for r in range(args.rounds):
        for name, flags in loads.items():
            k = r % len(args.variants)
            order = args.variants[k:] + args.variants[:k]
            for variant in order:
                res = one_run(flags, variant, env)
                res.update(condition=condition, round=r, workload=name, variant=variant)
                runs.append(res)
                print(f"{condition:6s} round {r} {name:8s} threads={variant:7s} "
                      f"{res['seconds']:7.3f} s  load {res['load_before']}", flush=True)
    return runs


def summarise(runs: list[dict]) -> list[dict]:
    keys = sorted({(r["condition"], r["workload"], r["variant"]) for r in runs})
    rows = []
    for cond, work, var in keys:
        s = [r["seconds"] for r in runs
             if (r["condition"], r["workload"], r["variant"]) == (cond, work, var)]
        med = statistics.median(s)
        rows.append({"condition": cond, "workload": work, "variant": var, "n": len(s),
                     "median": round(med, 3), "min": min(s), "max": max(s),
                     "spread_of_median": round((max(s) - min(s)) / med, 3),
                     "max_dev_of_median": round(max(abs(x - med) for x in s) / med, 3)})
    return rows


SWEEP_BATCHES = (128, 256, 512, 1024, 2048, 4096, 8192)


def sweep(condition: str, blocks: int) -> list[dict]:
    """Rows/s of one forward+backward pass per batch size, 1 thread against all cores."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    import xpnet

    rng = np.random.default_rng(0)
    X = rng.random((8192, 784), dtype=np.float32)
    y = rng.integers(0, 10, 8192)
    net = xpnet.MLP([784, 256, 128, 64, 10], dtype="float32", device="cpu", seed=0)
    cores = bench_conftest().usable_cores()
    rows = []
    for m in SWEEP_BATCHES:
        Xb, yb = X[:m], y[:m]
        reps = max(1, 60000 // m)
        net.forward_backward(Xb, yb)  # warm-up: the workspaces for this batch size
        for b in range(blocks):
            order = (1, cores, cores, 1) if b % 2 == 0 else (cores, 1, 1, cores)
            for threads in order:
                with threadpool_limits(limits=threads, user_api="blas"):
                    t = time.perf_counter()
                    for _ in range(reps):
                        net.forward_backward(Xb, yb)
                    dt = time.perf_counter() - t
                rows.append({"condition": condition, "batch": m, "threads": threads,
                             "block": b, "rows_per_s": round(reps * m / dt),
                             "load_before": loadavg()})
        for threads in (1, cores):
            r = statistics.median(x["rows_per_s"] for x in rows if x["batch"] == m
                                  and x["threads"] == threads and x["condition"] == condition)
            print(f"{condition:6s} batch {m:5d} threads {threads}: {r:10,.0f} rows/s", flush=True)
    return rows


def sweep_main(args) -> int:
    rows = []
    for condition in args.conditions.split(","):
        busy = None
        if condition == "loaded":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(5)
        try:
            rows += sweep(condition, args.blocks)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    summary = []
    for cond in args.conditions.split(","):
        for m in SWEEP_BATCHES:
            med = {t: statistics.median(r["rows_per_s"] for r in rows if r["condition"] == cond
                                        and r["batch"] == m and r["threads"] == t)
                   for t in sorted({r["threads"] for r in rows})}
            summary.append({"condition": cond, "batch": m,
                            "median_rows_per_s": {str(t): v for t, v in med.items()},
                            "all_cores_over_one": round(med[max(med)] / med[1], 3)})
            print(f"{cond:6s} batch {m:5d}: all cores / 1 thread = "
                  f"{summary[-1]['all_cores_over_one']:.2f}")
    conftest = bench_conftest()
    path = conftest.free_path(args.output) if args.output else conftest.result_path(
        "thread-sweep-")
    with open(path, "w") as f:
        json.dump({"command": " ".join(sys.argv), "commit": conftest.git_short_sha(),
                   "machine": conftest.machine_description(), "blas": blas_info(),
                   "busy_process": "python -c 'while True: pass' under 'loaded'",
                   "summary": summary, "blocks": rows}, f, indent=1)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="1,2,default",
                   help="comma-separated: thread counts and/or 'default' (default: 1,2,default)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs-full", type=int, default=10)
    p.add_argument("--conditions", default="quiet,loaded")
    p.add_argument("--subset", type=int, default=None,
                   help="XPNET_MNIST_SUBSET for a smoke run (the first N training images)")
    p.add_argument("--output", default=None)
    p.add_argument("--sweep", action="store_true",
                   help="forward+backward rows/s by batch size, 1 thread against all cores")
    p.add_argument("--blocks", type=int, default=3, help="with --sweep: ABBA blocks per size")
    args = p.parse_args(argv)
    if args.sweep:
        return sweep_main(args)
    args.variants = args.variants.split(",")
    conftest = bench_conftest()
    env = dict(os.environ)
    if args.subset:
        env["XPNET_MNIST_SUBSET"] = str(args.subset)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    runs, busy_pids = [], []
    for condition in args.conditions.split(","):
        busy = None
        if condition == "loaded":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            busy_pids.append(busy.pid)
            time.sleep(5)  # let the busy process settle (the load average lags behind anyway)
        try:
            runs += rounds(args, condition, env)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    summary = summarise(runs)
    print(f"{'condition':9s} {'workload':8s} {'threads':7s} {'median':>7s}  min-max    spread")
    for s in summary:
        print(f"{s['condition']:9s} {s['workload']:8s} {s['variant']:7s} {s['median']:7.3f}  "
              f"{s['min']:.2f}-{s['max']:.2f}  {s['spread_of_median']:.0%} "
              f"(max |x-median| {s['max_dev_of_median']:.0%})")
    path = conftest.free_path(args.output) if args.output else conftest.result_path(
        "thread-default-")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"command": " ".join(sys.argv), "started": started,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "commit": conftest.git_short_sha(),
                   "machine": conftest.machine_description(), "blas": blas_info(),
                   "busy_process": "python -c 'while True: pass' under 'loaded'",
                   "workloads": {k: " ".join(v) or "(the default recipe)"
                                 for k, v in workloads(args).items()},
                   "subset": args.subset, "summary": summary, "runs": runs}, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
