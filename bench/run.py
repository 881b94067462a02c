"""``make bench``: run the benchmark suite, save its JSON, print a comparison table.

    python bench/run.py                 # everything, JSON in bench/results/<machine>-<date>.json
    python bench/run.py -k batch        # extra arguments go to pytest
    python bench/run.py --table FILE    # only print the table of an earlier JSON

The table shows, per workload and backend: the median time, the achieved GFLOP/s (matrix-product
FLOPs only, see bench_mlp.py), the ratio to PyTorch on the same device (below 1 = faster than
PyTorch) and the percentage of the same library's measured GEMM rate on a square product of the
same FLOPs ("% GEMM").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS = os.path.join(BENCH_DIR, "results")

# Which GEMM measures each backend's matrix rate, and which PyTorch backend is its peer.
GEMM_OF = {"xpnet-numpy": "gemm-numpy", "xpnet-cupy": "gemm-cupy",
           "torch-cpu": "gemm-torch-cpu", "torch-cuda": "gemm-torch-cuda"}
TORCH_ON = {"cpu": "torch-cpu", "cuda": "torch-cuda"}
BACKEND_ORDER = ["xpnet-numpy", "torch-cpu", "xpnet-cupy", "torch-cuda",
                 "gemm-numpy", "gemm-torch-cpu", "gemm-cupy", "gemm-torch-cuda"]
WORKLOAD_ORDER = ["loss_and_grads[m=6", "loss_and_grads[m=1", "train_step", "epoch", "inference"]
PYTEST_OPTIONS = [
    "--benchmark-only",
    "--benchmark-max-time=3",  # per light benchmark; heavy ones use fixed rounds (pedantic)
    "--benchmark-min-rounds=5",
    "--benchmark-columns=min,median,iqr,rounds",
    "--benchmark-sort=name",
    "-p", "no:cacheprovider",
    "-q",
]


def _conftest():
    """bench/conftest.py as a module (machine description helpers)."""
    spec = importlib.util.spec_from_file_location("xpnet_bench_conftest",
                                                  os.path.join(BENCH_DIR, "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _workload_rank(name):
    for i, prefix in enumerate(WORKLOAD_ORDER):
        if name.startswith(prefix):
            return i
    return len(WORKLOAD_ORDER)


def summarise(path):
    """``(data, rows)`` with rows ``(workload, backend, median_s, gflops, vs_torch, pct_gemm)``
    from a JSON written by this suite."""
    with open(path) as f:
        return summarise_data(json.load(f))


def summarise_data(data):
    groups: dict[str, dict[str, dict]] = {}
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "backend" not in info:
            continue
        groups.setdefault(info["workload"], {})[info["backend"]] = {
            "median": b["stats"]["median"], "flops": info["flops"], "device": info["device"],
            "kind": info["kind"]}
    rows = []
    for workload in sorted(groups, key=lambda w: (_workload_rank(w), w)):
        g = groups[workload]
        for backend in sorted(g, key=lambda k: BACKEND_ORDER.index(k)
                              if k in BACKEND_ORDER else 99):
            r = g[backend]
            rate = r["flops"] / r["median"] / 1e9
            vs_torch = pct = None
            if r["kind"] == "impl":
                peer = g.get(TORCH_ON.get(r["device"], ""))
                if peer:
                    vs_torch = r["median"] / peer["median"]
                gemm = g.get(GEMM_OF.get(backend, ""))
                if gemm:
                    pct = 100.0 * rate / (gemm["flops"] / gemm["median"] / 1e9)
            rows.append((workload, backend, r["median"], rate, vs_torch, pct))
    return data, rows


def format_table(rows):
    head = f"{'workload':<28} {'backend':<16} {'median ms':>10} {'GFLOP/s':>8} " \
           f"{'vs torch':>9} {'% GEMM':>7}"
    out = [head, "-" * len(head)]
    last = None
    for workload, backend, median, rate, vs_torch, pct in rows:
        if last is not None and workload != last:
            out.append("")
        out.append(
            f"{workload if workload != last else '':<28} {backend:<16} {median * 1e3:>10.3f} "
            f"{rate:>8.1f} {'' if vs_torch is None else f'{vs_torch:.2f}x':>9} "
            f"{'' if pct is None else f'{pct:.0f}%':>7}".rstrip())
        last = workload
    return "\n".join(out)


def targets(rows):
    """The issue's CPU targets, checked against this run (None where not measured)."""
    full = small = (None, None)
    for workload, backend, _, _, vs_torch, pct in rows:
        if workload.startswith("loss_and_grads[") and backend == "xpnet-numpy":
            if workload == "loss_and_grads[m=128]":
                small = (vs_torch, pct)
            else:
                full = (vs_torch, pct)

    def verdict(value, ok):
        return "n/a" if value is None else ("met" if ok(value) else "MISSED")

    return [
        ("full-batch loss_and_grads vs PyTorch <= 1.00x", full[0],
         verdict(full[0], lambda v: v <= 1.0)),
        ("full-batch loss_and_grads >= 90% of sgemm rate", full[1],
         verdict(full[1], lambda v: v >= 90)),
        ("batch-128 loss_and_grads vs PyTorch <= 0.90x", small[0],
         verdict(small[0], lambda v: v <= 0.9)),
    ]


def print_report(path, description=None):
    data, rows = summarise(path)
    if description is None:
        description = data.get("machine_info", {}).get("xpnet_bench")
    print()
    if description:
        print(_conftest().format_description(description))
        print()
    print(format_table(rows))
    print()
    for label, value, verdict in targets(rows):
        shown = "" if value is None else (f"{value:.2f}x" if "PyTorch" in label
                                          else f"{value:.0f}%")
        print(f"target: {label:<50} {shown:>6}  {verdict}")
    print(f"\nresults: {os.path.relpath(path, ROOT)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", metavar="JSON", help="only print the table of this JSON")
    parser.add_argument("--output", metavar="JSON", help="where to write the JSON "
                        "(default bench/results/<machine>-<YYYY-MM-DD>.json)")
    args, pytest_args = parser.parse_known_args(argv)
    if args.table:
        print_report(args.table)
        return 0
    conf = _conftest()
    description = conf.machine_description()
    path = args.output or os.path.join(
        RESULTS, f"{description['slug']}-{_dt.date.today().isoformat()}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    print(conf.format_description(description), flush=True)
    env = dict(os.environ, XPNET_BENCH="1")
    cmd = [sys.executable, "-m", "pytest", os.path.relpath(BENCH_DIR, ROOT),
           f"--benchmark-json={path}", *PYTEST_OPTIONS, *pytest_args]
    print("$ XPNET_BENCH=1 " + " ".join(cmd[2:]), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if not os.path.exists(path):
        print(f"no results were written (pytest exit status {rc})", file=sys.stderr)
        return rc or 1
    compact(path)
    print_report(path)
    if os.environ.get("XPNET_BENCH_INTERLEAVED", "1") != "0":
        interleaved(path)
    return rc


def interleaved(path):
    """The target ratios again, xpnet and its peer alternating in short blocks (see
    ``bench_mlp.interleaved_check``); stored in the JSON under ``xpnet_interleaved``."""
    spec = importlib.util.spec_from_file_location("xpnet_bench_mlp",
                                                  os.path.join(BENCH_DIR, "bench_mlp.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print("\ninterleaved A/B check (xpnet and its peer alternating; robust to machine drift):",
          flush=True)
    results = {}
    for device in ("cpu", "cuda"):
        res = module.interleaved_check(device)
        if not res:
            continue
        results[device] = res
        print(f"  {device}: full-batch vs torch {res['full_vs_torch']:.2f}x "
              f"(target <= 1.00x: {'met' if res['full_vs_torch'] <= 1.0 else 'MISSED'}), "
              f"full-batch {res['full_pct_gemm']:.0f}% of GEMM "
              f"(target >= 90%: {'met' if res['full_pct_gemm'] >= 90 else 'MISSED'}), "
              f"batch-128 vs torch {res['batch_vs_torch']:.2f}x "
              f"(target <= 0.90x: {'met' if res['batch_vs_torch'] <= 0.9 else 'MISSED'})")
    with open(path) as f:
        data = json.load(f)
    data["xpnet_interleaved"] = results
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def compact(path):
    """Drop the per-round timings (pytest-benchmark always writes them with --benchmark-json)
    so the committed file stays small, and add the summary table."""
    with open(path) as f:
        data = json.load(f)
    for b in data["benchmarks"]:
        b["stats"].pop("data", None)
    _, rows = summarise_data(data)
    keys = ("workload", "backend", "median_s", "gflops", "vs_torch", "pct_gemm")
    data["xpnet_summary"] = {
        "rows": [dict(zip(keys, row)) for row in rows],
        "targets": [{"target": label, "value": value, "verdict": verdict}
                    for label, value, verdict in targets(rows)],
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
