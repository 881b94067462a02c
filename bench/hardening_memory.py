"""Peak memory of xpnet on crafted inputs (issue 23: "memory follows the data").

    python bench/hardening_memory.py            # all cases, about a minute on 2 cores

Each case writes a crafted file into a temporary folder, runs one xpnet command on it in a
subprocess of its own, and records that process's peak resident memory (``ru_maxrss`` of the
child, read by a small wrapper process) with its exit code and last line of stderr. The
baseline is ``python -c "import xpnet"``, so each figure can be read as "the process" and
"above importing xpnet".

Cases (the families of the issue):

* ``long-label``: a 100 KB CSV whose one label is 20,000 characters (family 4);
* ``10000-classes``: 20,000 rows of 10,000 classes, one epoch (family 4: the confusion matrix);
* ``header-only-2M-columns``: a 17 MB CSV of a header with 2 million columns, no rows (family 4);
* ``numeric-50MB``: a 50 MB CSV of numbers, read by ``load_frame`` (family 4: the reader's
  8x bound) and trained on for one epoch;
* ``safetensors-3.3GB``: a file of a few hundred bytes whose metadata declares an MLP of 3.3 GB
  (family 3), read by ``xpnet.export.load_safetensors``;
* ``safetensors-bn-2e8``: the same with a ``BatchNorm1d(2e8)`` in a Sequential (family 3);
* ``npz-uint8-declared-5GB``: an .npz whose uint8 X declares 5e9 values (40 GB as float64) in a
  file of a few hundred bytes (family 3), read by ``load_table``.

The result is printed and written to ``bench/results/hardening-memory-<machine>-<date>-<sha>.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

WRAPPER = """
import resource, subprocess, sys, json
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
err = [line for line in p.stderr.splitlines() if line.strip()]
print(json.dumps({"rc": p.returncode, "peak_mb": resource.getrusage(
    resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "last_stderr": err[-1] if err else ""}))
"""


def measure(cmd, cwd):
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, capture_output=True,
                         text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                         "XPNET_OFFLINE": "1"}, timeout=600)
    return json.loads(out.stdout)


def python(code):
    return [sys.executable, "-c", code]


def train(*args):
    return [sys.executable, "-m", "xpnet.train", *args, "--device", "cpu", "--quiet"]


def write_cases(d):
    """Write every crafted file into ``d``; ``{name: (command, what the file is)}``."""
    rng = np.random.default_rng(0)
    cases = {"baseline": (python("import xpnet"), "importing xpnet")}

    rows = ["x,label"] + [f"{i},{'a' if i % 2 else 'b'}" for i in range(9000)]
    rows.append("0," + "z" * 20_000)
    with open(os.path.join(d, "long.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    cases["long-label"] = (train("--data", "long.csv", "--epochs", "1"),
                           f"{os.path.getsize(os.path.join(d, 'long.csv'))} bytes")

    with open(os.path.join(d, "classes.csv"), "w") as f:
        f.write("x,label\n")
        for i in range(20_000):
            f.write(f"{rng.normal():.4f},c{i % 10_000}\n")
    cases["10000-classes"] = (train("--data", "classes.csv", "--epochs", "1", "--hidden", "16",
                                    "--metrics-json", "m.json", "--test-fraction", "0.5"),
                              "20,000 rows, 10,000 classes")

    with open(os.path.join(d, "header.csv"), "w") as f:
        f.write(",".join(f"col{j}" for j in range(2_000_000)) + "\n")
    cases["header-only-2M-columns"] = (
        train("--data", "header.csv"),
        f"{os.path.getsize(os.path.join(d, 'header.csv'))} bytes")

    n_rows, n_cols = 25_000, 200
    block = rng.normal(size=(n_rows, n_cols))
    with open(os.path.join(d, "numbers.csv"), "w") as f:
        f.write(",".join(["label"] + [f"f{j}" for j in range(n_cols)]) + "\n")
        for i, row in enumerate(block):
            f.write(f"{i % 2}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    size = os.path.getsize(os.path.join(d, "numbers.csv"))
    cases["numeric-50MB-read"] = (
        python("from xpnet.data import load_frame; t = load_frame('numbers.csv'); "
               "print(t.frame.block.shape)"), f"{size} bytes")
    cases["numeric-50MB-train"] = (train("--data", "numbers.csv", "--epochs", "1"),
                                   f"{size} bytes")

    from safetensors.numpy import save

    import xpnet

    config = xpnet.MLP([2, 2], device="cpu").config() | {"layer_sizes": [30_000, 27_000, 10]}
    meta = {"format": "xpnet", "format_version": "1", "architecture": "MLP",
            "config": json.dumps(config)}
    with open(os.path.join(d, "big.safetensors"), "wb") as f:
        f.write(save({"0.weight": np.zeros((1, 1), np.float32)}, metadata=meta))
    load = ("import xpnet.export as e\ntry: e.load_safetensors('{}', device='cpu')\n"
            "except ValueError as x: raise SystemExit(str(x))")
    cases["safetensors-3.3GB"] = (python(load.format("big.safetensors")),
                                  f"{os.path.getsize(os.path.join(d, 'big.safetensors'))} bytes")
    seq = {"layers": [{"type": "Linear", "in_features": 2, "out_features": 200_000_000},
                      {"type": "BatchNorm1d", "num_features": 200_000_000}],
           "head": "softmax", "dtype": "float32", "l2": 0.0, "seed": None}
    meta = {"format": "xpnet", "format_version": "1", "architecture": "Sequential",
            "config": json.dumps(seq)}
    with open(os.path.join(d, "bn.safetensors"), "wb") as f:
        f.write(save({"1.weight": np.zeros(1, np.float32)}, metadata=meta))
    cases["safetensors-bn-2e8"] = (python(load.format("bn.safetensors")),
                                   f"{os.path.getsize(os.path.join(d, 'bn.safetensors'))} bytes")

    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.uint8))
    header["shape"] = (5_000_000_000, 1)
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    head = buf.getvalue()
    with zipfile.ZipFile(os.path.join(d, "u8.npz"), "w") as z:
        info = zipfile.ZipInfo("X.npy")
        z.writestr(info, head + b"\0" * 16)  # the header promises 5e9 bytes; 16 follow
        z.writestr("y.npy", _npy(np.zeros(1, np.int64)))
    table = ("from xpnet.data import load_table\ntry: load_table('u8.npz')\n"
             "except Exception as x: raise SystemExit(str(x))")
    cases["npz-uint8-declared-5GB"] = (python(table),
                                       f"{os.path.getsize(os.path.join(d, 'u8.npz'))} bytes")
    return cases


def _npy(a):
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def main():
    conf = bench_conftest()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, (cmd, what) in write_cases(d).items():
            r = measure(cmd, d)
            results[name] = {"input": what, **r}
            print(f"{name:26s} {what:30s} rc {r['rc']}  peak {r['peak_mb']:8.1f} MB  "
                  f"{r['last_stderr'][:110]}", flush=True)
    out = conf.result_path("hardening-memory-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "cases": results}, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
