"""Device selection and the NumPy/CuPy shim.

The "CuPy installed but no usable GPU" tests run against the real CuPy (the test extra installs
cupy-cuda12x); on a machine where a GPU *is* usable they skip, saying so. The "CuPy not
installed" path is simulated in subprocesses, two ways: XPNET_DISABLE_CUPY=1, and
``sys.modules['cupy'] = None`` (which makes ``import cupy`` raise ImportError) before xpnet is
imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpnet
from xpnet import backend
from xpnet.backend import Device, DeviceUnavailableError, cuda_status, get_device, is_device_array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gpu_usable():
    usable, _ = cuda_status(0)
    return usable


def _cupy_importable():
    try:
        backend._import_cupy()
    except Exception:
        return False
    return True


# ------------------------------------------------------------------ CPU and bad specs
@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu "])
def test_cpu_device(spec):
    dev = get_device(spec)
    assert dev.name == "cpu" and str(dev) == "cpu"
    assert dev.xp is np and not dev.is_gpu
    assert dev.fallback_reason == ""


def test_device_instance_passes_through():
    dev = get_device("cpu")
    assert get_device(dev) is dev


@pytest.mark.parametrize("spec", ["bogus", "cuda:", "cuda:x", "cuda:-1", "tpu", ""])
def test_unknown_device_spec(spec):
    with pytest.raises(ValueError, match=r"unknown device .*use 'auto', 'cpu', 'cuda'"):
        get_device(spec)


@pytest.mark.parametrize("spec", [0, None, 1.5])
def test_non_string_device_spec(spec):
    with pytest.raises(ValueError, match="device must be a string"):
        get_device(spec)


def test_mlp_rejects_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        xpnet.MLP([2, 2], device="bogus")


# ------------------------------------------------------------------ real CuPy, no usable GPU
needs_no_gpu = pytest.mark.skipif(
    _gpu_usable(), reason="a CUDA GPU is usable here; this tests the no-usable-GPU path"
)


@needs_no_gpu
def test_auto_falls_back_to_cpu_with_reason():
    dev = get_device("auto")
    assert dev.name == "cpu" and dev.xp is np and not dev.is_gpu
    reason = dev.fallback_reason
    if _cupy_importable():
        # real CuPy: import works, the first allocation fails; the reason names the error
        # "...: <ExceptionType>: <first line of its message>"
        assert re.match(r"CuPy is installed but no usable GPU: [A-Za-z_]\w*: \S", reason), reason
    else:
        assert reason.startswith("CuPy is not installed")
    net = xpnet.MLP([3, 2], device="auto")
    assert net.device.name == "cpu" and net.xp is np


@needs_no_gpu
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "gpu"])
def test_explicit_cuda_raises_with_cause_and_fix(spec):
    with pytest.raises(DeviceUnavailableError) as info:
        get_device(spec)
    msg = str(info.value)
    assert f"cannot use device {spec!r}" in msg
    if _cupy_importable():
        assert "CuPy is installed but no usable GPU" in msg
        assert "nvidia-smi" in msg and "--device cpu" in msg
    else:
        assert "CuPy is not installed" in msg and "xpnet[cuda12]" in msg
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(DeviceUnavailableError):
        xpnet.MLP([3, 2], device=spec)


@needs_no_gpu
def test_cuda_status_reports_unusable():
    usable, reason = cuda_status(0)
    assert usable is False and reason


def test_missing_gpu_index_is_reported(monkeypatch):
    """A GPU index beyond the visible count is named in the error (faked CuPy with 1 GPU)."""

    class FakeRuntime:
        @staticmethod
        def getDeviceCount():
            return 1

    class FakeCupy:
        cuda = type("cuda", (), {"runtime": FakeRuntime})

    monkeypatch.setattr(backend, "_import_cupy", lambda: FakeCupy)
    with pytest.raises(DeviceUnavailableError, match=r"GPU 3 does not exist \(1 visible\)"):
        get_device("cuda:3")


def test_import_failure_in_process(monkeypatch):
    def no_cupy():
        raise ImportError("No module named 'cupy'")

    monkeypatch.setattr(backend, "_import_cupy", no_cupy)
    assert get_device("auto").fallback_reason.startswith("CuPy is not installed")
    with pytest.raises(DeviceUnavailableError, match=r"CuPy is not installed.*xpnet\[cuda12\]"):
        get_device("cuda")


# ------------------------------------------------------------------ CuPy not importable
_PROBE = textwrap.dedent(
    """
    import json, sys
    {prelude}
    import xpnet
    from xpnet import DeviceUnavailableError, get_device
    auto = get_device("auto")
    try:
        get_device("cuda")
        err = None
    except DeviceUnavailableError as exc:
        err = str(exc)
    net = xpnet.MLP([3, 2], seed=0)
    loss, _ = net.loss_and_grads([[1.0, 2.0, 3.0]], [1])
    print(json.dumps({{"auto": auto.name, "reason": auto.fallback_reason, "cuda_error": err,
                      "net_device": net.device.name, "loss_finite": loss == loss,
                      "cupy_loaded": "cupy" in sys.modules and sys.modules["cupy"] is not None}}))
    """
)


def _run_probe(prelude="", env_extra=None):
    env = dict(os.environ)
    env.pop("XPNET_DISABLE_CUPY", None)
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(prelude=prelude)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_not_installed(result):
    assert result["auto"] == "cpu" and result["net_device"] == "cpu" and result["loss_finite"]
    assert result["reason"].startswith("CuPy is not installed")
    err = result["cuda_error"]
    assert err is not None, "get_device('cuda') must raise without CuPy"
    assert "cannot use device 'cuda'" in err and "CuPy is not installed" in err
    assert "pip install 'xpnet[cuda12]'" in err and "pip install 'xpnet[cuda13]'" in err
    assert "--device cpu" in err
    assert not result["cupy_loaded"]


def test_cupy_disabled_by_environment():
    result = _run_probe(env_extra={"XPNET_DISABLE_CUPY": "1"})
    _assert_not_installed(result)
    assert "XPNET_DISABLE_CUPY" in result["reason"]


def test_cupy_import_blocked():
    result = _run_probe(prelude="sys.modules['cupy'] = None")
    _assert_not_installed(result)
    assert "ImportError" in result["reason"] or "ModuleNotFoundError" in result["reason"]


# ------------------------------------------------------------------ Device helpers
def test_send_and_to_numpy_round_trip(rng):
    dev = get_device("cpu")
    host = rng.standard_normal((3, 4))
    same = dev.send(host)
    assert same is host  # already on the device with that dtype: no copy
    assert dev.send(host, "float64") is host
    f32 = dev.send(host, "float32")
    assert f32.dtype == np.float32 and f32.shape == (3, 4)
    np.testing.assert_array_equal(f32, host.astype(np.float32))
    back = dev.to_numpy(f32)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host.astype(np.float32))
    from_list = dev.send([[1, 2], [3, 4]], np.float64)
    assert from_list.dtype == np.float64
    np.testing.assert_array_equal(dev.to_numpy(from_list), [[1.0, 2.0], [3.0, 4.0]])
    ints = dev.send(np.arange(3), "float32")
    assert ints.dtype == np.float32


def test_device_misc():
    dev = get_device("cpu")
    assert not is_device_array(np.zeros(2))
    dev.synchronize()
    dev.free_memory()
    with dev.activate():
        pass
    a = dev.rng(5).random(4)
    np.testing.assert_array_equal(a, dev.rng(5).random(4))
    assert isinstance(dev, Device)
