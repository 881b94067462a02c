"""Benchmark plumbing: quick (smoke) mode, machine description, shared helpers.

Two modes:

* **Benchmark mode** (``XPNET_BENCH=1``, set by ``bench/run.py`` / ``make bench``, or an explicit
  ``--benchmark-only`` / ``--benchmark-enable``): pytest-benchmark times every workload.
* **Quick mode** (anything else, e.g. plain ``pytest`` as run by ``make test``): benchmarks are
  disabled, so pytest-benchmark calls each benchmarked function exactly once, and the one-epoch
  workload is shrunk to a small sample. Every test still checks its numbers (losses and
  gradients against a float64 reference, optimizer updates, predictions), so the suite is a
  cheap smoke test of each backend.
"""

from __future__ import annotations

import os
import platform
import re

import pytest


def _explicitly_enabled(config) -> bool:
    return bool(config.getoption("benchmark_only", False)
                or config.getoption("benchmark_enable", False))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if os.environ.get("XPNET_BENCH") == "1" or _explicitly_enabled(config):
        return
    # Quick mode. This conftest is normally loaded before pytest-benchmark builds its session
    # (testpaths / command-line paths load their conftests first), so the option is enough;
    # when it is loaded later, the session already exists and is switched off directly.
    config.option.benchmark_disable = True
    session = getattr(config, "_benchmarksession", None)
    if session is not None:
        session.disabled = True


@pytest.fixture(scope="session")
def bench_quick(request) -> bool:
    """True when benchmarks are disabled (each benchmarked function runs once)."""
    session = getattr(request.config, "_benchmarksession", None)
    if session is None:  # pytest-benchmark not installed: the benchmark fixture is missing anyway
        return True
    return bool(session.disabled)


# ---------------------------------------------------------------------- machine description
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)", "", text.lower())
    text = re.sub(r"\b(processor|cpu|\d+-core|with .*)\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def gpu_name() -> str | None:
    """The CUDA device name when xpnet can use GPU 0, else None."""
    from xpnet.backend import cuda_status

    usable, _ = cuda_status()
    if not usable:
        return None
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def machine_slug() -> str:
    """Short name for result files: ``cpu-2core-amd-epyc`` or ``h100``-like on a GPU machine."""
    gpu = gpu_name()
    if gpu:
        m = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", gpu)  # H100, A100, L40S, T4x...
        return m.group(1).lower() if m else _slug(gpu.replace("NVIDIA", ""))
    return f"cpu-{usable_cores()}core-{_slug(cpu_model())}"


def blas_summary() -> str:
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        extra = blas.get("openblas configuration", "")
        extra = " ".join(w for w in extra.split() if w.isupper() or w.startswith("MAX_"))[:60]
        return f"{blas.get('name')} {blas.get('version')} {extra}".strip()
    except Exception as exc:  # old NumPy or an odd build: not worth failing for
        return f"unknown ({type(exc).__name__})"


def machine_description() -> dict:
    """Everything a reader needs to interpret the numbers, JSON-serialisable."""
    import numpy as np

    info = {
        "slug": machine_slug(),
        "cpu_model": cpu_model(),
        "cores_usable": usable_cores(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas_summary(),
        "torch": None,
        "torch_threads": None,
        "torch_blas": None,
        "cupy": None,
        "gpu": gpu_name(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        cfg = torch.__config__.show()
        m = re.search(r"BLAS_INFO=(\w+)", cfg)
        info["torch_blas"] = (m.group(1) if m else "?") + (
            ", mkldnn" if torch.backends.mkldnn.is_available() else "")
    except ImportError:
        pass
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except Exception:  # ImportError, or a broken CUDA install
        pass
    return info


def format_description(info: dict) -> str:
    lines = [
        f"machine : {info['slug']}  ({info['cpu_model']}, {info['cores_usable']} usable cores"
        f" of {info['cpu_count']}){', GPU ' + info['gpu'] if info.get('gpu') else ''}",
        f"python  : {info['python']}   numpy {info['numpy']} (BLAS: {info['numpy_blas']})",
        f"torch   : {info['torch'] or 'not installed'}"
        + (f" ({info['torch_threads']} threads, BLAS: {info['torch_blas']})"
           if info["torch"] else ""),
        f"cupy    : {info['cupy'] or 'not installed'}",
    ]
    return "\n".join(lines)


def pytest_benchmark_update_machine_info(config, machine_info):
    # Called only when benchmarks run; after bench_mlp set torch's thread count.
    machine_info["xpnet_bench"] = machine_description()


# ---------------------------------------------------------------------- result files
def git_short_sha(root=None) -> str:
    """The checkout's short commit, or ``nogit``."""
    import subprocess

    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip() or "nogit"
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def free_path(path: str) -> str:
    """``path``, or ``<stem>-2<ext>``, ``-3``, ... : the first name that does not exist yet, so
    no earlier (committed) result is ever rewritten."""
    stem, ext = os.path.splitext(path)
    k = 2
    while os.path.exists(path):
        path = f"{stem}-{k}{ext}"
        k += 1
    return path


def result_path(prefix: str = "", slug: str | None = None, directory: str | None = None) -> str:
    """A new file ``bench/results/<prefix><machine>-<YYYY-MM-DD>-<short sha>[-N].json``."""
    import datetime as dt

    directory = directory or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    slug = slug or machine_slug()
    name = f"{prefix}{slug}-{dt.date.today().isoformat()}-{git_short_sha()}.json"
    return free_path(os.path.join(directory, name))
