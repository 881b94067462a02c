"""Why does a full-batch epoch run below NumPy's sgemm rate? Each product alone (issue 26, item 4)

    python bench/gemm_shapes.py                    # 60000 rows, 1 and 2 BLAS threads, 5 rounds
    python bench/gemm_shapes.py --threads 1 --rounds 3

The full-batch forward+backward of the ``784-256-128-64-10`` ReLU MLP (float32, 60000 rows,
``Sequential.forward_backward``, the path of ``fit(batch_size=None)``) is a chain of eleven
matrix products and a few elementwise passes. Its share of the sgemm rate is
``(seconds of a square sgemm of the same FLOPs) / (seconds of the pass)``. This script times,
in the same rounds and for each BLAS thread count:

``pass``
    xpnet's whole forward+backward.
``products``
    each of the pass's products alone, on arrays of its shapes and layouts, exactly as
    ``xpnet/layers/linear.py`` calls them: ``y = x W^T`` (forward), ``dW = dy^T x``,
    ``dx = dy W`` (every layer but the first) and ``db = 1^T dy``. Their sum is what the pass
    would take if everything but the products were free: its share of the sgemm rate is the
    ceiling of the pass's share with these BLAS kernels.
``alternatives``
    the same products in the other layout that gives the same numbers (``(W x^T)^T`` for the
    forward product, ``(x^T dy)^T`` for ``dW``), to see whether a layout change would help.
``sgemm``
    a square ``n x n`` sgemm with the pass's FLOPs (``2 n^3``), the reference rate.

The rounds rotate the order of everything timed, so a shared machine's load hits all alike;
medians are reported. FLOPs count ``2 m n_in n_out`` per product (``db``'s matrix-vector
products are counted as bandwidth, not FLOPs, as in ``bench/run.py`` and
``bench/cache_blocking.py``). Each product's function returns its output array, so the tests
can check that the two layouts agree. Results are printed and written to
``bench/results/gemm-shapes-<machine>-<date>-<commit>.json`` (never overwritten).
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


def pass_flops(m, sizes=SIZES):
    """FLOPs of the forward+backward: ``y`` and ``dW`` for every layer, ``dx`` for all but the
    first (the input needs no gradient)."""
    products = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * m * sum(products) * 2 + 2 * m * sum(products[1:])


def product_table(m, rng, sizes=SIZES):
    """``{name: (flops, function)}`` for each product of the pass, on fresh arrays of its
    shapes, with xpnet's layouts, and the alternative layouts (names starting ``alt``)."""
    table = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        x = rng.random((m, n_in), dtype=np.float32)
        W = rng.standard_normal((n_out, n_in)).astype(np.float32)
        dy = rng.standard_normal((m, n_out)).astype(np.float32)
        ones = np.ones(m, dtype=np.float32)
        y, dW, db = (np.empty((m, n_out), np.float32), np.empty((n_out, n_in), np.float32),
                     np.empty(n_out, np.float32))
        yT, dWT = np.empty((n_out, m), np.float32), np.empty((n_in, n_out), np.float32)
        dx = np.empty((m, n_in), np.float32)
        flops = 2 * m * n_in * n_out
        tag = f"L{i} {n_in}->{n_out}"
        table[f"{tag} y = x W^T"] = (flops, lambda x=x, W=W, y=y: np.matmul(x, W.T, out=y))
        table[f"{tag} dW = dy^T x"] = (flops, lambda x=x, dy=dy, dW=dW:
                                       np.matmul(dy.T, x, out=dW))
        if i > 1:
            table[f"{tag} dx = dy W"] = (flops, lambda dy=dy, W=W, dx=dx:
                                         np.matmul(dy, W, out=dx))
        table[f"{tag} db = 1^T dy"] = (0, lambda dy=dy, ones=ones, db=db:
                                       np.matmul(ones, dy, out=db))
        table[f"alt {tag} y^T = W x^T"] = (flops, lambda x=x, W=W, yT=yT:
                                            np.matmul(W, x.T, out=yT))
        table[f"alt {tag} dW^T = x^T dy"] = (flops, lambda x=x, dy=dy, dWT=dWT:
                                             np.matmul(x.T, dy, out=dWT))
    return table


def measure(threads, m, rounds, rng):
    """Median seconds of the pass, each product and the sgemm, on ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    import xpnet

    X = rng.random((m, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], m)
    net = xpnet.MLP(SIZES, device="cpu", seed=0)
    n = max(1, round((pass_flops(m) / 2) ** (1 / 3)))
    A, B = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    C = np.empty_like(A)
    timed = {"pass": lambda: net.forward_backward(X, y),
             "sgemm": lambda: np.matmul(A, B, out=C)}
    products = product_table(m, rng)
    timed.update({name: fn for name, (_, fn) in products.items()})
    names = list(timed)
    times = {name: [] for name in names}
    with threadpool_limits(limits=threads, user_api="blas"):
        for fn in timed.values():
            fn()  # warm-up: buffers touched, BLAS threads started
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                timed[name]()
                times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return n, med, times, {name: flops for name, (flops, _) in products.items()}


def summarise(m, n, med, flops):
    gemm_rate = 2 * n**3 / med["sgemm"]
    own = [k for k in flops if not k.startswith("alt ")]
    products_s = sum(med[k] for k in own)
    gemm_s = pass_flops(m) / gemm_rate  # a square sgemm's time for the pass's FLOPs
    rows = {}
    for k in flops:
        rate = flops[k] / med[k] if flops[k] else None
        rows[k] = {"median_s": med[k], "gflops": None if rate is None else rate / 1e9,
                   "pct_sgemm": None if rate is None else 100 * rate / gemm_rate,
                   "pct_of_pass": 100 * med[k] / med["pass"]}
    return {"sgemm_n": n, "sgemm_gflops": gemm_rate / 1e9, "pass_s": med["pass"],
            "pass_pct_sgemm": 100 * gemm_s / med["pass"], "products_s": products_s,
            "products_pct_sgemm": 100 * gemm_s / products_s,
            "elementwise_s": med["pass"] - products_s, "products": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--output", help="JSON path (default bench/results/gemm-shapes-...json)")
    args = p.parse_args(argv)
    m, rng = args.rows, np.random.default_rng(0)
    conf = bench_conftest()
    load = [os.getloadavg()[0]]
    results = {}
    for threads in args.threads:
        n, med, times, flops = measure(threads, m, args.rounds, rng)
        s = summarise(m, n, med, flops)
        s["times"] = times
        results[str(threads)] = s
        load.append(os.getloadavg()[0])
        print(f"\n{threads} BLAS thread(s), {m} rows, {SIZES}, float32: sgemm n={n} "
              f"{s['sgemm_gflops']:.1f} GFLOP/s; load average {load[-1]:.2f}")
        print(f"  pass       {s['pass_s'] * 1e3:8.1f} ms  {s['pass_pct_sgemm']:5.1f}% of the "
              f"sgemm rate")
        print(f"  products   {s['products_s'] * 1e3:8.1f} ms  {s['products_pct_sgemm']:5.1f}% "
              f"of the sgemm rate (the ceiling with these kernels)")
        print(f"  the rest   {s['elementwise_s'] * 1e3:8.1f} ms  (activations, head, bias "
              f"adds: the pass minus its products)")
        for k, row in s["products"].items():
            rate = ("" if row["gflops"] is None else
                    f"{row['gflops']:6.1f} GFLOP/s {row['pct_sgemm']:5.1f}% of sgemm")
            print(f"    {k:32s} {row['median_s'] * 1e3:7.2f} ms  {rate}")
    out = conf.free_path(args.output) if args.output else conf.result_path(
        "gemm-shapes-", conf.machine_description()["slug"], os.path.join(BENCH_DIR, "results"))
    with open(out, "x") as f:
        json.dump({"machine": conf.machine_description(), "rows": m, "sizes": SIZES,
                   "rounds": args.rounds, "load_average": load, "by_threads": results,
                   "command": " ".join(sys.argv)}, f, indent=1)
    print("wrote", os.path.relpath(out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
