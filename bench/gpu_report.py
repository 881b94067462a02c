"""``make gpu-report``: everything a session with a GPU should measure, in one command.

    python bench/gpu_report.py [--results-dir DIR] [--data-dir MNIST] [--skip STEP ...]
                               [--budget-minutes 20]

Steps, each a subprocess whose raw output is kept (expected times on one H100/A100-class card;
the whole report stays under the ``--budget-minutes`` GPU-time budget, 20 by default: a step
gets at most what is left, and steps that no longer fit are skipped and say so):

===========  ===========================================================  ==========  =========
step         what                                                         expected    limit
===========  ===========================================================  ==========  =========
parity       ``pytest -m gpu tests/gpu -v -rs``: CuPy vs NumPy parity,     1-2 min     5 min
             the worst error per check, transfers, checkpoints
profile      ``bench/gpu_profile.py``: each piece of the full-batch and     < 1 min     2 min
             batch-128 steps timed alone
bench        ``bench/run.py -k "cupy or cuda"``: the xpnet-cupy and        3-5 min     7 min
             torch-cuda rows (torch-cuda when this PyTorch has CUDA) with
             their GEMM rooflines, JSON + table
tta          ``bench/time_to_accuracy.py --device cuda``: seconds to 98%   1-2 min     4 min
             MNIST test accuracy, xpnet (and PyTorch when it has CUDA)
memory       ``bench/gpu_memory.py``: peak pool memory of one full-batch   < 30 s      1 min
             step (60000x784 float32, 784-256-128-64-10, Adam)
tf32         ``bench/gpu_tf32.py``: the default recipe with and without    2-3 min     5 min
             ``--tf32``, test accuracy of each
===========  ===========================================================  ==========  =========

Writes under ``bench/results/`` (or ``--results-dir``), every file named
``<card>-<YYYY-MM-DD>-<commit>-<what>`` (``<card>`` e.g. ``h100``, ``<commit>`` the short git
commit) and headed by the environment (card,
NVIDIA driver, CUDA runtime and driver API, CuPy/NumPy/PyTorch/Python/xpnet versions, git
commit): ``...-gpu-report.txt`` (the header, each step's status, time and key lines),
``...-parity.txt``, ``...-bench.json`` / ``-bench.txt``, ``...-time-to-accuracy.json`` /
``.txt``, ``...-memory.json`` / ``.txt``, ``...-tf32.json`` / ``.txt`` (+ ``-tf32-logs/``).

MNIST (tta, tf32) is read from ``--data-dir``, ``$XPNET_DATA_DIR`` or
``~/.cache/xpnet/mnist``; nothing is downloaded. Without a usable GPU, or without MNIST (unless
those steps are skipped), it stops before writing anything, with a one-line message and exit
status 1. Otherwise the exit status is 0 when every step that ran passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROG = "gpu_report"
STEPS = ("parity", "profile", "bench", "tta", "memory", "tf32")
LIMITS = {"parity": 300, "profile": 120, "bench": 420, "tta": 240, "memory": 60,
          "tf32": 300}  # seconds
FILE_NAMES = {"parity": "parity", "profile": "profile", "bench": "bench",
              "tta": "time-to-accuracy", "memory": "memory", "tf32": "tf32"}
NEEDS_MNIST = ("tta", "tf32")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


class Abort(Exception):
    """A precondition failed: one line for the user, exit status 1, nothing written."""


def _run(cmd) -> str:
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return out.stdout.strip() if out.returncode == 0 else f"unavailable (rc {out.returncode})"


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def card_slug(name: str) -> str:
    """``h100`` for "NVIDIA H100 80GB HBM3", ``a100`` for "NVIDIA A100-SXM4-40GB", else the
    name made file-safe."""
    m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Z]?)\b", name.replace("NVIDIA", ""))
    return m.group(1).lower() if m else slug(name.replace("NVIDIA", ""))


# ------------------------------------------------------------------------------ preconditions
def require_gpu() -> None:
    from xpnet.backend import cuda_status

    usable, reason = cuda_status(0)
    if not usable:
        raise Abort(f"no usable CUDA GPU, so no GPU report ({reason}); run `make gpu-report` on a "
                    f"machine with an NVIDIA GPU and CuPy (pip install -e '.[cuda12]')")


def mnist_dir(flag) -> Path:
    candidates = [flag] if flag else [os.environ.get("XPNET_DATA_DIR"),
                                      str(Path.home() / ".cache" / "xpnet" / "mnist")]
    for c in filter(None, candidates):
        d = Path(c)
        if all((d / f"{n}.gz").is_file() or (d / n).is_file() for n in MNIST_FILES):
            return d.resolve()
    raise Abort("MNIST not found in " + ", ".join(filter(None, candidates)) + "; set "
                "XPNET_DATA_DIR (or --data-dir) to the four MNIST IDX files, or --skip tta tf32")


# ------------------------------------------------------------------------------ environment
def environment() -> tuple[dict, str]:
    """``(fields, card)``: the header fields in order, and the card's file-name slug."""
    import cupy
    import numpy as np

    import xpnet

    now = dt.datetime.now(dt.timezone.utc)
    # A copy of the tree without .git (a lent GPU machine gets one) names its commit in
    # XPNET_GIT_COMMIT; otherwise git is asked.
    commit = os.environ.get("XPNET_GIT_COMMIT") or _run(["git", "rev-parse", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    if dirty and not dirty.startswith("unavailable"):
        commit += " (working tree has uncommitted changes)"
    fields = {"date (UTC)": now.strftime("%Y-%m-%d %H:%M:%S"), "git commit": commit}
    rt = cupy.cuda.runtime
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader"])

    def get(what, fn):  # one missing detail must not lose the whole report
        try:
            fields[what] = fn()
        except Exception as exc:  # noqa: BLE001
            fields[what] = f"unavailable ({type(exc).__name__}: {exc})"

    props = {}
    get("card", lambda: props.update(rt.getDeviceProperties(0)) or (
        props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])))
    get("GPU memory", lambda: f"{props['totalGlobalMem'] / 2**30:.1f} GiB")
    get("compute capability", lambda: f"{props['major']}.{props['minor']}")
    get("NVIDIA driver", lambda: smi.splitlines()[0].split(",")[1].strip() if "," in smi else smi)
    get("CUDA driver API", lambda: _cuda_version(rt.driverGetVersion()))
    get("CUDA runtime", lambda: _cuda_version(rt.runtimeGetVersion()))
    fields["CuPy"] = cupy.__version__
    fields["CUPY_TF32"] = os.environ.get("CUPY_TF32", "unset")
    fields["NumPy"] = np.__version__
    fields["PyTorch"] = _torch_version()
    fields["Python"] = platform.python_version()
    fields["xpnet"] = xpnet.__version__
    fields["platform"] = platform.platform()
    card = fields["card"]
    return fields, ("gpu" if card.startswith("unavailable") else card_slug(card))


def _torch_version() -> str:
    code = ("import torch; print(torch.__version__, 'with CUDA' if torch.cuda.is_available() "
            "else 'without CUDA')")
    out = _run([sys.executable, "-c", code])
    return out if not out.startswith("unavailable") else "not installed"


# ------------------------------------------------------------------------------ steps
def step_commands(step, stem, data_dir, torch_cuda) -> tuple[list, dict, list]:
    """``(command, extra environment, files it writes)`` of ``step``."""
    py = sys.executable
    if step == "parity":
        return [py, "-m", "pytest", "-m", "gpu", "tests/gpu", "-v", "-rs",
                "-p", "no:cacheprovider"], {}, []
    if step == "profile":
        out = f"{stem}-{FILE_NAMES[step]}.json"
        return [py, "bench/gpu_profile.py", "--output", out], {}, [out]
    if step == "bench":
        out = f"{stem}-{FILE_NAMES[step]}.json"
        # The interleaved A/B check stays on: the GPU targets' verdicts come only from it.
        return [py, "bench/run.py", "--output", out, "-k", "cupy or cuda"], {}, [out]
    if step == "tta":
        out = f"{stem}-{FILE_NAMES[step]}.json"
        return [py, "bench/time_to_accuracy.py", "--device", "cuda", "--data-dir", str(data_dir),
                "--output", out, *([] if torch_cuda else ["--no-torch"])], {}, [out]
    if step == "memory":
        out = f"{stem}-{FILE_NAMES[step]}.json"
        return [py, "bench/gpu_memory.py", "--output", out], {}, [out]
    if step == "tf32":
        out = f"{stem}-{FILE_NAMES[step]}.json"
        return [py, "bench/gpu_tf32.py", "--output", out, "--logs", f"{stem}-tf32-logs",
                "--data-dir", str(data_dir), "--quiet"], {}, [out]
    raise ValueError(step)


KEY_LINES = re.compile(r"(passed|failed|skipped|error|reached|did NOT|ratio|x faster|accuracy|"
                       r"peak pool|full-batch|target:|TF32|vs torch|xpnet-cupy|torch-cuda)",
                       re.IGNORECASE)


def run_step(cmd, env, log_path, header, limit) -> tuple[str, float, list]:
    """Run one step for at most ``limit`` seconds, teeing its output into ``log_path``;
    ``(status, seconds, key lines)``."""
    t0 = time.monotonic()
    lines: list[str] = []
    with open(log_path, "w") as log:
        log.write(header)
        log.write(f"{'command':<20} {' '.join(['python'] + cmd[1:])}\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env={**os.environ, **env})

        def tee():
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
                lines.append(line.rstrip("\n"))

        reader = threading.Thread(target=tee, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=limit)
            status = "ok" if rc == 0 else f"FAILED (exit status {rc})"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = f"FAILED (stopped at its {limit:.0f} s limit)"
        reader.join(timeout=10)
        if status.startswith("FAILED (stopped"):
            log.write(f"\n{PROG}: stopped after {limit:.0f} s\n")
    seconds = time.monotonic() - t0
    keys = [ln.strip() for ln in lines if KEY_LINES.search(ln) and len(ln) < 200][-12:]
    return status, seconds, keys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--data-dir", help="the MNIST directory (tta and tf32 steps)")
    p.add_argument("--skip", nargs="*", default=[], choices=STEPS, metavar="STEP",
                   help=f"steps to leave out: {', '.join(STEPS)}")
    p.add_argument("--budget-minutes", type=float, default=20.0,
                   help="GPU time for the whole report (default 20)")
    args = p.parse_args(argv)
    steps = [s for s in STEPS if s not in args.skip]
    try:
        require_gpu()
        data_dir = mnist_dir(args.data_dir) if any(s in steps for s in NEEDS_MNIST) else None
    except Abort as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1

    fields, card = environment()
    torch_cuda = fields["PyTorch"].endswith("with CUDA")
    header = "".join(f"{key:<20} {value}\n" for key, value in fields.items())
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    # The short commit keeps two reports of one day (before and after a change) apart.
    short = fields["git commit"][:7]
    tag = f"-{short}" if re.fullmatch(r"[0-9a-f]{7}", short) else ""
    stem = results / f"{card}-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}{tag}"
    report_path = Path(f"{stem}-gpu-report.txt")
    print(header, end="", flush=True)

    budget_end = time.monotonic() + 60 * args.budget_minutes
    rows, failed = [], False
    for step in STEPS:
        if step not in steps:
            rows.append((step, "skipped (--skip)", 0.0, [], []))
            continue
        left = budget_end - time.monotonic()
        if left < 30:
            rows.append((step, "skipped (GPU-time budget used up)", 0.0, [], []))
            continue
        cmd, env, outputs = step_commands(step, str(stem), data_dir, torch_cuda)
        log_path = Path(f"{stem}-{FILE_NAMES[step]}.txt")
        print(f"\n===== {step}: {' '.join(['python'] + cmd[1:])}", flush=True)
        status, seconds, keys = run_step(cmd, env, log_path, header, min(LIMITS[step], left))
        failed |= status != "ok"
        rows.append((step, status, seconds, keys, [str(log_path), *outputs]))

    with open(report_path, "w") as f:
        f.write(header)
        f.write(f"{'GPU-time budget':<20} {args.budget_minutes:g} min\n\n")
        for step, status, seconds, keys, files in rows:
            f.write(f"== {step}: {status}, {seconds:.0f} s\n")
            for name in files:
                f.write(f"   file: {os.path.relpath(name, ROOT)}\n")
            for line in keys:
                f.write(f"   | {line}\n")
            f.write("\n")
    print(f"\n{PROG}: " + "; ".join(f"{s} {st}" for s, st, *_ in rows))
    print(f"{PROG}: wrote {os.path.relpath(report_path, ROOT)} (and the files it lists)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
