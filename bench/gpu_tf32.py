"""The accuracy cost of TF32: the default training recipe on CUDA with and without ``--tf32``.

    python bench/gpu_tf32.py [--output FILE] [--logs DIR] [extra xpnet.train arguments]

Runs ``python -m xpnet.train --device cuda --metrics-json ...`` twice, each in its own process
(CuPy reads ``CUPY_TF32`` once, when it starts): plain float32, then with ``--tf32`` (cuBLAS may
use TF32 tensor cores for the float32 matrix products, about 10 bits of mantissa). Same seed,
same data, same recipe (the CLI's defaults unless extra arguments say otherwise), so the
difference in test accuracy is TF32's. Prints both accuracies, the difference and the training
times, and writes them as JSON (``--output``), with each run's stdout in ``--logs``.

MNIST comes from ``--data-dir`` / ``XPNET_DATA_DIR`` as for the CLI. About a minute per run on a
current data-centre GPU (7 epochs of 60000 images at batch 128). Part of ``make gpu-report``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tf32: bool, extra, logs, timeout) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "metrics.json")
        cmd = [sys.executable, "-m", "xpnet.train", "--device", "cuda", "--metrics-json",
               metrics, *(["--tf32"] if tf32 else []), *extra]
        env = dict(os.environ, XPNET_OFFLINE="1")
        env.pop("CUPY_TF32", None)  # only --tf32 decides
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        name = "tf32" if tf32 else "fp32"
        if logs:
            with open(os.path.join(logs, f"{name}.log"), "w") as f:
                f.write(f"$ {' '.join(['python'] + cmd[1:])}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise SystemExit(f"gpu_tf32: the {name} run failed (exit {proc.returncode}): "
                             f"{(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
        with open(metrics) as f:
            m = json.load(f)
    return {"tf32": tf32, "test_accuracy": m["test_accuracy"], "test_loss": m["test_loss"],
            "train_seconds": m["train_seconds"], "epochs_run": m["epochs_run"],
            "device": m["device"], "command": " ".join(["python"] + cmd[1:])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", help="write the comparison as JSON here")
    p.add_argument("--logs", help="directory for each run's output")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args, extra = p.parse_known_args(argv)
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    runs = [run(False, extra, args.logs, args.timeout), run(True, extra, args.logs, args.timeout)]
    fp32, tf32 = runs
    diff = tf32["test_accuracy"] - fp32["test_accuracy"]
    result = {"runs": runs, "accuracy_tf32_minus_fp32": diff,
              "speedup_train_seconds": fp32["train_seconds"] / tf32["train_seconds"]
              if tf32["train_seconds"] else None}
    for r in runs:
        print(f"{'tf32' if r['tf32'] else 'fp32':<5} test accuracy {r['test_accuracy']:.4f}  "
              f"loss {r['test_loss']:.4f}  train {r['train_seconds']:.1f} s "
              f"({r['epochs_run']} epochs on {r['device']})")
    speedup = result["speedup_train_seconds"] or float("nan")
    print(f"TF32 accuracy cost: {-diff * 100:.2f} points of test accuracy (fp32 "
          f"{fp32['test_accuracy']:.4f}, tf32 {tf32['test_accuracy']:.4f}); training "
          f"{speedup:.2f}x faster with TF32")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
