"""``make bench``: run the benchmark suite, save its JSON, print a comparison table.

    python bench/run.py                 # everything; JSON in a NEW file (see below)
    python bench/run.py -k batch        # extra arguments go to pytest
    python bench/run.py --table FILE    # only print the table of an earlier JSON

Results go to ``bench/results/<machine>-<YYYY-MM-DD>-<short commit>.json``, with ``-2``, ``-3``,
... added when that name exists, so committed results are never rewritten (``--output`` too).

One method per figure:

* The table (descriptive) shows, per workload and backend, the pytest-benchmark median time and
  the achieved GFLOP/s (matrix-product FLOPs only, see bench_mlp.py); the ``gemm-*`` rows are
  the square-GEMM rooflines. Each backend is timed in its own stretch, so no ratio is formed from
  these medians: on a shared machine the stretches see different load.
* The interleaved A/B check (authoritative) measures every ratio and target: xpnet vs PyTorch,
  xpnet's full batch as % of NumPy's sgemm rate, and the Adam step over forward+backward, with
  the two sides alternating in short blocks (``bench_mlp.interleaved_check``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results")

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


def _workload_rank(name):
    for i, prefix in enumerate(WORKLOAD_ORDER):
        if name.startswith(prefix):
            return i
    return len(WORKLOAD_ORDER)


def summarise(path):
    """``(data, rows)`` with rows ``(workload, backend, median_s, gflops)`` from a JSON written
    by this suite."""
    with open(path) as f:
        return summarise_data(json.load(f))


def summarise_data(data):
    groups: dict[str, dict[str, dict]] = {}
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "backend" not in info:
            continue
        groups.setdefault(info["workload"], {})[info["backend"]] = {
            "median": b["stats"]["median"], "flops": info["flops"]}
    rows = []
    for workload in sorted(groups, key=lambda w: (_workload_rank(w), w)):
        g = groups[workload]
        for backend in sorted(g, key=lambda k: BACKEND_ORDER.index(k)
                              if k in BACKEND_ORDER else 99):
            r = g[backend]
            rows.append((workload, backend, r["median"], r["flops"] / r["median"] / 1e9))
    return data, rows


def format_table(rows):
    head = f"{'workload':<28} {'backend':<16} {'median ms':>10} {'GFLOP/s':>8}"
    out = [head, "-" * len(head)]
    last = None
    for workload, backend, median, rate in rows:
        if last is not None and workload != last:
            out.append("")
        out.append(f"{workload if workload != last else '':<28} {backend:<16} "
                   f"{median * 1e3:>10.3f} {rate:>8.1f}")
        last = workload
    return "\n".join(out)


TABLE_NOTE = ("descriptive: pytest-benchmark medians, each backend timed in its own stretch, so "
              "drift between\nstretches can favour either side. No ratio is derived from them; "
              "the ratios and the targets\ncome only from the interleaved check below.")

# (key in bench_mlp.interleaved_check's result, label, unit, test)
TARGETS = [
    ("full_vs_torch", "full-batch fwd+bwd (m=60000) time vs PyTorch <= 1.00x", "x",
     lambda v: v <= 1.0),
    ("full_pct_gemm", "full-batch fwd+bwd (m=60000) >= 90% of sgemm rate", "%",
     lambda v: v >= 90),
    ("batch_vs_torch", "batch-128 fwd+bwd time vs PyTorch <= 0.90x", "x",
     lambda v: v <= 0.9),
    ("adam_step_vs_fwd_bwd", "batch-128 Adam step / fwd+bwd <= 1.15x", "x",
     lambda v: v <= 1.15),
]


def targets(result):
    """``[(label, value, verdict), ...]`` of the issue's targets from one device's interleaved
    check (the only source of ratios and verdicts)."""
    out = []
    for key, label, _, ok in TARGETS:
        value = result.get(key)
        out.append((label, value, "n/a" if value is None else ("met" if ok(value) else "MISSED")))
    return out


def format_targets(device, result):
    lines = []
    for (_key, _, unit, _), (label, value, verdict) in zip(TARGETS, targets(result)):
        shown = "" if value is None else (f"{value:.0f}%" if unit == "%" else f"{value:.2f}x")
        lines.append(f"target ({device}): {label:<52} {shown:>6}  {verdict}")
    return "\n".join(lines)


def print_report(path, description=None):
    data, rows = summarise(path)
    if description is None:
        description = data.get("machine_info", {}).get("xpnet_bench")
    print()
    if description:
        print(bench_conftest().format_description(description))
        print()
    print(format_table(rows))
    print()
    print(TABLE_NOTE)
    checked = data.get("xpnet_interleaved")
    if checked:
        print_interleaved(checked)
    print(f"\nresults: {os.path.relpath(path, ROOT)}")


def print_interleaved(results):
    print("\ninterleaved A/B check (authoritative for every ratio and target: xpnet and its peer "
          "alternate\nin short ABBA blocks, so machine drift hits both alike; each figure is the "
          "median of per-block ratios):")
    for device, result in results.items():
        print(format_targets(device, result))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", metavar="JSON", help="only print the table of this JSON")
    parser.add_argument("--output", metavar="JSON", help="where to write the JSON (default "
                        "bench/results/<machine>-<YYYY-MM-DD>-<commit>.json); an existing file "
                        "is never overwritten: -2, -3, ... is added to the name")
    args, pytest_args = parser.parse_known_args(argv)
    if args.table:
        print_report(args.table)
        return 0
    conf = bench_conftest()
    description = conf.machine_description()
    path = conf.free_path(args.output) if args.output else conf.result_path(
        slug=description["slug"], directory=RESULTS)
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
    if os.environ.get("XPNET_BENCH_INTERLEAVED", "1") != "0":
        interleaved(path)
    print_report(path)
    if os.environ.get("XPNET_BENCH_INTERLEAVED", "1") == "0":
        print("\ntargets: not checked (XPNET_BENCH_INTERLEAVED=0 skipped the interleaved check)")
    return rc


def interleaved(path):
    """The target ratios, xpnet and its peer alternating in short blocks (see
    ``bench_mlp.interleaved_check``); stored in the JSON under ``xpnet_interleaved``."""
    spec = importlib.util.spec_from_file_location("xpnet_bench_mlp",
                                                  os.path.join(BENCH_DIR, "bench_mlp.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print("\nrunning the interleaved A/B check (about 30 s)...", flush=True)
    results = {}
    for device in ("cpu", "cuda"):
        res = module.interleaved_check(device)
        if res:
            results[device] = dict(res, targets=[
                {"target": label, "value": value, "verdict": verdict}
                for label, value, verdict in targets(res)])
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
    keys = ("workload", "backend", "median_s", "gflops")
    data["xpnet_summary"] = {"rows": [dict(zip(keys, row)) for row in rows],
                             "note": TABLE_NOTE.replace("\n", " ")}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
