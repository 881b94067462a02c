"""xpnet.backend on the device: transfers and helpers (strict stand-in and real GPU), and on a
real GPU only: device resolution, errors, out-of-memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from xpnet.backend import DeviceUnavailableError, get_device, is_device_array


def test_cuda_device_resolves(cuda):
    assert cuda.name == "cuda:0" and str(cuda) == "cuda:0"
    assert cuda.is_gpu
    assert cuda.xp.__name__ == "cupy"
    assert cuda.fallback_reason == ""
    assert get_device("cuda:0") is cuda and get_device("gpu") is cuda
    assert get_device(cuda) is cuda


def test_auto_picks_the_gpu(cuda):
    dev = get_device("auto")
    assert dev.name == "cuda:0" and dev.is_gpu and dev.fallback_reason == ""


def test_send_to_numpy_round_trip(gpu_device):
    cuda = gpu_device
    host = np.random.default_rng(0).standard_normal((7, 5))
    d64 = cuda.send(host)
    assert is_device_array(d64) and not isinstance(d64, np.ndarray)
    assert d64.dtype == np.float64 and d64.shape == (7, 5)
    back = cuda.to_numpy(d64)
    assert isinstance(back, np.ndarray) and np.array_equal(back, host)
    d32 = cuda.send(host, "float32")
    assert d32.dtype == np.float32
    assert np.array_equal(cuda.to_numpy(d32), host.astype(np.float32))
    again = cuda.send(d32, "float32")  # already there with that dtype
    assert again.dtype == np.float32 and np.array_equal(cuda.to_numpy(again), cuda.to_numpy(d32))
    labels = cuda.send(np.arange(5))
    assert labels.dtype.kind == "i" and np.array_equal(cuda.to_numpy(labels), np.arange(5))
    assert not is_device_array(host)


def test_device_helpers(gpu_device):
    cuda = gpu_device
    xp = cuda.xp
    X = cuda.send(np.arange(20.0).reshape(10, 2))
    idx = cuda.send(np.array([3, 0, 9]))
    out = xp.empty((3, 2), dtype=X.dtype)
    cuda.take_rows(X, idx, out)
    assert np.array_equal(cuda.to_numpy(out), np.arange(20.0).reshape(10, 2)[[3, 0, 9]])
    r = cuda.rng(0).random(4)
    assert is_device_array(r) and r.shape == (4,)
    with cuda.activate():
        assert int(xp.cuda.Device().id) == 0
    cuda.synchronize()
    cuda.free_memory()


def test_missing_gpu_index_raises_clear_error(cuda):
    with pytest.raises(DeviceUnavailableError) as info:
        get_device("cuda:99")
    msg = str(info.value)
    assert "cuda:99" in msg and "GPU 99 does not exist" in msg, msg
    assert "--device cpu" in msg, msg


def test_mlp_lives_on_the_gpu(gpu_device):
    from xpnet import MLP

    cuda = gpu_device
    net = MLP([4, 3, 2], device=cuda, seed=0)
    assert net.device is cuda
    assert all(is_device_array(a) for a in net.parameters() + net.gradients())
    out = net.forward(np.ones((5, 4)))
    assert is_device_array(out) and out.shape == (5, 2)


OOM_SCRIPT = textwrap.dedent("""
    import numpy as np
    import xpnet
    net = xpnet.MLP([784, 256, 128, 10], dtype="float32", device="cuda", seed=0)
    X = np.zeros((60000, 784), dtype=np.float32)  # 188 MB on the device, over the 64 MiB limit
    y = np.zeros(60000, dtype=np.int64)
    try:
        net.loss_and_grads(X, y)
    except Exception as exc:
        print("RAISED", type(exc).__module__, type(exc).__name__)
        print("MESSAGE", str(exc).splitlines()[0] if str(exc) else "")
    else:
        print("NO ERROR")
""")


def test_out_of_memory_raises_cupy_oom(cuda):
    """A full-batch step on 60000x784 float32 under a 64 MiB CuPy pool limit raises CuPy's
    OutOfMemoryError (turning it into a plain message is the CLI's job). A subprocess, because
    CuPy reads CUPY_GPU_MEMORY_LIMIT (bytes, or a percentage; not "64MiB") when it creates the
    default memory pool."""
    env = dict(os.environ, CUPY_GPU_MEMORY_LIMIT=str(64 * 1024 * 1024))
    env.pop("XPNET_DISABLE_CUPY", None)
    proc = subprocess.run([sys.executable, "-c", OOM_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    report = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report
    raised = [line for line in proc.stdout.splitlines() if line.startswith("RAISED")]
    assert raised, report
    assert "OutOfMemory" in raised[0], report
    print(proc.stdout)
