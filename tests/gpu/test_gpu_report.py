"""``make gpu-report`` (bench/gpu_report.py) without a GPU: one clear line, exit status 1, no
files, within seconds. These tests run everywhere (they are not marked ``gpu``); the report
itself needs a GPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpnet.backend import cuda_status

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "bench" / "gpu_report.py"


def run_report(tmp_path, env_extra=None, *args):
    out = tmp_path / "results"
    env = {**os.environ, **(env_extra or {})}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPORT), "--results-dir", str(out), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0, out


def assert_fails_fast(proc, seconds, out):
    report = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 1, report
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, report
    assert lines[0].startswith("gpu_report: no usable CUDA GPU"), report
    assert "make gpu-report" in lines[0] and ".[cuda12]" in lines[0], report
    assert proc.stdout == "", report
    assert not out.exists(), "nothing may be written without a GPU"
    assert seconds < 60, f"took {seconds:.0f} s to give up"


def test_fails_fast_without_cupy(tmp_path):
    """Deterministic on every machine: CuPy switched off, as on a machine without it."""
    proc, seconds, out = run_report(tmp_path, {"XPNET_DISABLE_CUPY": "1"})
    assert_fails_fast(proc, seconds, out)
    assert "CuPy is not installed" in proc.stderr


def test_fails_fast_on_this_machine_without_a_gpu(tmp_path):
    """The real probe (CuPy installed or not, no usable GPU)."""
    usable, _ = cuda_status(0)
    if usable:
        pytest.skip("this machine has a usable GPU: `make gpu-report` would run the report")
    proc, seconds, out = run_report(tmp_path, {}, "--skip", "tta", "tf32")
    assert_fails_fast(proc, seconds, out)


def test_makefile_target_and_help():
    text = (ROOT / "Makefile").read_text()
    assert "\ngpu-report: $(VENV)/.stamp-test\n\t$(PY) bench/gpu_report.py\n" in text
    assert "make gpu-report - " in text and "gpu-report" in text.split(".PHONY:")[1].split("\n")[0]


@pytest.mark.parametrize("helper", ["gpu_report.py", "gpu_memory.py", "gpu_tf32.py"])
def test_helpers_start(helper):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / helper), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_gpu_memory_fails_fast_without_a_gpu():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_memory.py")],
                          env={**os.environ, "XPNET_DISABLE_CUPY": "1"}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().startswith("gpu_memory: no usable CUDA GPU"), proc.stderr


def test_card_names_make_file_names():
    spec = importlib.util.spec_from_file_location("xpnet_gpu_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.card_slug("NVIDIA H100 80GB HBM3") == "h100"
    assert module.card_slug("NVIDIA A100-SXM4-40GB") == "a100"
    assert module.card_slug("NVIDIA H200") == "h200"
    assert module.card_slug("NVIDIA L40S") == "l40s"
    assert module.card_slug("NVIDIA GeForce RTX 4090") == "geforce-rtx-4090"
    assert set(module.LIMITS) == set(module.STEPS) == set(module.FILE_NAMES)
    assert sum(module.LIMITS.values()) / 60 <= 25  # the 20-minute budget caps the rest
