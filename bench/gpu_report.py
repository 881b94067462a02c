"""Run the GPU parity suite and keep its raw output, headed by where and what it ran on.

Usage (from anywhere; it runs in the repository root):

    python bench/gpu_report.py [extra pytest arguments]

Writes two files under ``bench/results/``:

* ``<date>-<card>-env.txt``: the environment header (card name, NVIDIA driver version, CUDA
  runtime and driver API versions, CuPy/NumPy/Python/xpnet versions, git commit, UTC date);
* ``<date>-<card>-parity.txt``: the same header, the command, then everything
  ``pytest -m gpu tests/gpu -v -rs`` printed, including the per-check worst-error table of the
  terminal summary.

The output is also echoed to the terminal. The exit status is pytest's. Without a usable GPU
the header says why and the suite's tests all skip (the card is recorded as ``nogpu``).
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _run(cmd) -> str:
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return out.stdout.strip() if out.returncode == 0 else f"unavailable (rc {out.returncode})"


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def environment() -> tuple[dict, str]:
    """``(fields, card)``: the header fields in order, and the card name (or ``nogpu``)."""
    import numpy as np

    import xpnet
    from xpnet.backend import cuda_status

    now = dt.datetime.now(dt.timezone.utc)
    commit = _run(["git", "rev-parse", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    if dirty and not dirty.startswith("unavailable"):
        commit += " (working tree has uncommitted changes)"
    fields = {"date (UTC)": now.strftime("%Y-%m-%d %H:%M:%S"), "git commit": commit}

    usable, reason = cuda_status(0)
    card = "nogpu"
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader"])
    if usable:
        import cupy

        rt = cupy.cuda.runtime

        def get(what, fn):  # one missing detail must not lose the whole report
            try:
                fields[what] = fn()
            except Exception as exc:
                fields[what] = f"unavailable ({type(exc).__name__}: {exc})"

        props = {}
        get("card", lambda: props.update(rt.getDeviceProperties(0)) or (
            props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])))
        card = fields["card"] if not fields["card"].startswith("unavailable") else "gpu"
        get("GPU memory", lambda: f"{props['totalGlobalMem'] / 2**30:.1f} GiB")
        get("compute capability", lambda: f"{props['major']}.{props['minor']}")
        get("NVIDIA driver",
            lambda: smi.splitlines()[0].split(",")[1].strip() if "," in smi else smi)
        get("CUDA driver API", lambda: _cuda_version(rt.driverGetVersion()))
        get("CUDA runtime", lambda: _cuda_version(rt.runtimeGetVersion()))
        fields["CuPy"] = cupy.__version__
    else:
        fields["card"] = f"none usable ({reason})"
        fields["nvidia-smi"] = smi
        try:
            import cupy

            fields["CuPy"] = cupy.__version__
        except Exception as exc:  # not installed, or broken
            fields["CuPy"] = f"unavailable ({type(exc).__name__})"
    fields["NumPy"] = np.__version__
    fields["Python"] = platform.python_version()
    fields["xpnet"] = xpnet.__version__
    fields["platform"] = platform.platform()
    return fields, card


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fields, card = environment()
    header = "".join(f"{key:<20} {value}\n" for key, value in fields.items())
    stem = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-{slug(card)}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    env_path, parity_path = RESULTS / f"{stem}-env.txt", RESULTS / f"{stem}-parity.txt"
    env_path.write_text(header)

    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-v", "-rs",
           "-p", "no:cacheprovider", *argv]
    print(header, end="", flush=True)
    with open(parity_path, "w") as out:
        out.write(header)
        out.write(f"{'command':<20} {' '.join(['python'] + cmd[1:])}\n\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        rc = proc.wait()
    print(f"\nwrote {env_path.relative_to(ROOT)} and {parity_path.relative_to(ROOT)} "
          f"(pytest exit status {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
