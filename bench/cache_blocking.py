"""Does cache blocking bring a full-batch epoch closer to the GEMM limit? (issue 16, item 2)

    python bench/cache_blocking.py                      # blocks 2048..16384, 7 rounds
    OPENBLAS_NUM_THREADS=1 python bench/cache_blocking.py

The full-batch forward+backward of the ``784-256-128-64-10`` ReLU MLP (float32, 60000 rows)
through ``Sequential.forward_backward`` (the path ``fit`` takes with ``batch_size=None``) against
the same pass over row blocks of ``B`` rows, each block's gradient accumulated into one buffer
weighted by ``B / m`` (for the mean loss, with ``l2 = 0``, that is the full gradient): every
block's activations (``B x 256`` float32 = 2 MiB at ``B = 2048``) then stay in cache between
the forward and backward passes, while the full batch streams 60000-row arrays through memory.

One method, one process: the unblocked pass, each blocking and NumPy's square sgemm of the same
FLOPs alternate in rounds (the order rotates every round), so a shared machine's load hits all
alike. Reported per variant: median seconds, GFLOP/s (forward + dW + dA for every layer but the
first) and % of the sgemm rate; the blocked gradients are checked against the unblocked ones
(float32 summation error: relative to the gradient's largest entry). Results are printed and
written to ``bench/results/cache-blocking-<machine>-<date>-<commit>.json`` (never overwritten).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

sys.path.insert(0, ROOT)
SIZES = [784, 256, 128, 64, 10]


def train_flops(m):
    products = [a * b for a, b in zip(SIZES[:-1], SIZES[1:])]
    return 2 * m * sum(products) * 2 + 2 * m * sum(products[1:])


def main(argv=None):
    import xpnet

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--rows", type=int, default=60000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    m = args.rows
    X = rng.random((m, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], m)
    net = xpnet.MLP(SIZES, device="cpu", seed=0)
    grad = net.flat.grad
    acc, scratch = np.empty_like(grad), np.empty_like(grad)

    def full():
        return float(net.forward_backward(X, y))

    def blocked(b):
        def run():
            acc[...] = 0
            loss = 0.0
            for start in range(0, m, b):
                rows = min(b, m - start)
                loss += float(net.forward_backward(X[start:start + rows],
                                                   y[start:start + rows])) * rows
                np.multiply(grad, np.float32(rows / m), out=scratch)  # no allocation per block
                np.add(acc, scratch, out=acc)
            return loss / m
        return run

    n = max(1, round((train_flops(m) / 2) ** (1 / 3)))
    A = rng.random((n, n), dtype=np.float32)
    B = rng.random((n, n), dtype=np.float32)
    C = np.empty_like(A)

    def gemm():
        np.matmul(A, B, out=C)

    # correctness first: blocked gradients equal the full batch's within float32 summation
    full()
    reference = grad.copy()
    checks = {}
    for b in args.blocks:
        blocked(b)()
        scale = float(np.abs(reference).max())
        checks[b] = float(np.abs(acc - reference).max()) / scale
        assert checks[b] < 1e-4, (b, checks[b])  # float32 sums of 60000 terms: ~1e-6 typical

    variants = {"full": full, **{f"block {b}": blocked(b) for b in args.blocks}, "sgemm": gemm}
    for fn in variants.values():
        fn()  # warm-up: buffers allocated, BLAS threads started
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    gemm_rate = 2 * n**3 / med["sgemm"]
    rows = {}
    print(f"{m} rows, {SIZES}, float32; sgemm n={n}: {gemm_rate / 1e9:.1f} GFLOP/s; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in variants:
        if name == "sgemm":
            continue
        rate = train_flops(m) / med[name]
        rows[name] = {"median_s": med[name], "gflops": rate / 1e9,
                      "pct_gemm": 100 * rate / gemm_rate,
                      "vs_full": med[name] / med["full"]}
        b = name.split()[-1]
        err = f"  max |diff| / max |grad| {checks[int(b)]:.1e}" if name != "full" else ""
        print(f"  {name:12s} {med[name] * 1e3:8.1f} ms  {rate / 1e9:6.1f} GFLOP/s  "
              f"{rows[name]['pct_gemm']:5.1f}% of sgemm  {rows[name]['vs_full']:.2f}x full"
              f"{err}")
    conf = bench_conftest()
    out = conf.result_path("cache-blocking-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "rows": m, "sizes": SIZES,
                   "rounds": args.rounds, "sgemm_n": n, "sgemm_gflops": gemm_rate / 1e9,
                   "times": times, "variants": rows,
                   "blocked_vs_full_max_rel_diff": {str(k): v for k, v in checks.items()},
                   "blas_threads_env": {k: os.environ.get(k) for k in
                                        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}},
                  f, indent=2)
    print("wrote", os.path.relpath(out, ROOT))


if __name__ == "__main__":
    main()
