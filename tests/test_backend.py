"""Device selection and the NumPy/CuPy shim, and how the right CuPy gets installed.

The "CuPy installed but no usable GPU" tests run against the real CuPy (``make test`` installs
cupy-cuda12x where there is no NVIDIA driver); on a machine where a GPU *is* usable they skip,
saying so. The "CuPy not installed" path is simulated in subprocesses, two ways:
XPNET_DISABLE_CUPY=1, and ``sys.modules['cupy'] = None`` (which makes ``import cupy`` raise
ImportError) before xpnet is imported.

``tools/cuda_extra.sh`` (which CuPy extra ``make train`` / ``make test`` install) runs against a
fake ``nvidia-smi``: a shell script printing a real nvidia-smi header, on a PATH that holds only
it and the tools the script needs, so a real driver on the test machine cannot interfere. The
Makefile's install step runs under real ``make`` with a stand-in ``.venv/bin/python`` that
records the pip commands instead of running them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

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
        assert "CuPy is not installed" in msg and "pip install -e '.[cuda12]'" in msg
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
    with pytest.raises(DeviceUnavailableError) as info:
        get_device("cuda")
    msg = str(info.value)
    assert msg.startswith("cannot use device 'cuda': CuPy is not installed (ImportError: ")
    # the commands work from a clone (xpnet is not on PyPI, so `pip install 'xpnet[...]'` fails)
    assert "`pip install -e '.[cuda12]'` (CUDA 12)" in msg
    assert "`pip install -e '.[cuda13]'` (CUDA 13)" in msg
    assert "xpnet[" not in msg
    assert msg.endswith("in the xpnet clone, or use --device cpu.")


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
    assert "pip install -e '.[cuda12]'" in err and "pip install -e '.[cuda13]'" in err
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


# ------------------------------------------------------------------ which CuPy gets installed
CUDA_EXTRA = os.path.join(ROOT, "tools", "cuda_extra.sh")

# Real nvidia-smi output: the header through the first GPU's row (drivers 550, 580 and 520).
SMI_CUDA_12_4 = """\
Tue Mar 12 10:15:01 2024
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:18:00.0 Off |                    0 |
| N/A   27C    P0             69W /  700W |       0MiB /  81559MiB |      0%      Default |
+-----------------------------------------+------------------------+----------------------+
"""
SMI_CUDA_13_0 = SMI_CUDA_12_4.replace(
    "NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4",
    "NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0")
SMI_CUDA_11_8 = """\
Mon Oct 10 09:00:00 2022
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 520.61.05    Driver Version: 520.61.05    CUDA Version: 11.8     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |
|===============================+======================+======================|
|   0  Tesla T4            Off  | 00000000:00:04.0 Off |                    0 |
| N/A   34C    P8     9W /  70W |      0MiB / 15360MiB |      0%      Default |
+-------------------------------+----------------------+----------------------+
"""
SMI_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.\n")


def _bin_dir(tmp_path, smi=None, smi_rc=0):
    """A PATH directory with only what tools/cuda_extra.sh and the Makefile's recipes run, plus
    a fake ``nvidia-smi`` printing ``smi`` and exiting ``smi_rc`` (none when ``smi`` is None)."""
    bin_dir = tmp_path / "bin"
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir()
    for tool in ("sh", "sed", "head", "cat"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run tools/cuda_extra.sh"
        (bin_dir / tool).symlink_to(found)
    if smi is not None:
        (tmp_path / "smi.txt").write_text(smi)
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f'#!/bin/sh\ncat "{tmp_path / "smi.txt"}"\nexit {smi_rc}\n')
        fake.chmod(0o755)
    return bin_dir


def _cuda_extra(tmp_path, *args, smi=None, smi_rc=0):
    """Run tools/cuda_extra.sh; returns (extra on stdout, the line on stderr)."""
    env = {"PATH": str(_bin_dir(tmp_path, smi, smi_rc)), "LC_ALL": "C"}
    proc = subprocess.run([shutil.which("sh") or "/bin/sh", CUDA_EXTRA, *args], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr  # one line saying what and why
    return proc.stdout.strip(), proc.stderr.strip()


@pytest.mark.parametrize(("smi", "extra", "said"), [
    (SMI_CUDA_12_4, "cuda12", "NVIDIA driver 550.54.15 reports CUDA 12.4: installing "
                              "cupy-cuda12x (the cuda12 extra)"),
    (SMI_CUDA_13_0, "cuda13", "NVIDIA driver 580.65.06 reports CUDA 13.0: installing "
                              "cupy-cuda13x (the cuda13 extra)"),
], ids=["cuda-12.4", "cuda-13.0"])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_cuda_extra_follows_the_driver(tmp_path, smi, extra, said, mode):
    assert _cuda_extra(tmp_path, mode, smi=smi) == (extra, said)


def test_cuda_extra_cuda_11_is_unsupported(tmp_path):
    extra, said = _cuda_extra(tmp_path, "train", smi=SMI_CUDA_11_8)
    assert extra == ""
    assert said == ("NVIDIA driver 520.61.05 reports CUDA 11.8, which xpnet does not support (it "
                    "needs CUDA 12 or newer: update the driver); training on the CPU")
    # make test still installs cupy-cuda12x: with this driver it is "installed, no usable GPU"
    assert _cuda_extra(tmp_path, "test", smi=SMI_CUDA_11_8)[0] == "cuda12"


@pytest.mark.parametrize("smi", [None, SMI_NO_DRIVER], ids=["no-nvidia-smi", "driver-unreachable"])
def test_cuda_extra_without_a_driver(tmp_path, smi):
    extra, said = _cuda_extra(tmp_path, "train", smi=smi, smi_rc=9)
    assert extra == ""
    why = ("no NVIDIA driver found (no nvidia-smi on PATH)" if smi is None else
           "no usable NVIDIA driver (nvidia-smi failed: NVIDIA-SMI has failed because it "
           "couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver "
           "is installed and running.)")
    assert said == f"{why}; training on the CPU"
    extra, said = _cuda_extra(tmp_path, "test", smi=smi, smi_rc=9)
    assert extra == "cuda12"
    assert said.startswith(f"{why}; installing cupy-cuda12x (the cuda12 extra) anyway")
    extra, said = _cuda_extra(tmp_path, "train", "cuda", smi=smi, smi_rc=9)
    assert extra == "" and "so --device cuda will fail" in said


def test_cuda_extra_device_cpu_skips_detection(tmp_path):
    # the driver would pick cuda13; DEVICE=cpu does not look (nor run nvidia-smi)
    extra, said = _cuda_extra(tmp_path, "train", "cpu", smi=SMI_CUDA_13_0)
    assert (extra, said) == ("", "DEVICE=cpu: not looking for a GPU; installing the CPU packages "
                                 "only")


def _pyproject():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def test_cuda_extras_exist_and_test_extra_has_no_cupy():
    """The extras the error message and tools/cuda_extra.sh name are there and hold the CuPy of
    their CUDA; the test extra holds none (make test adds the one the driver needs)."""
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    assert extras["cuda12"] == ["cupy-cuda12x>=13"]
    assert extras["cuda13"] == ["cupy-cuda13x>=13"]
    assert not [r for r in extras["test"] if r.lower().startswith("cupy")]
    # SPDX form: the TOML-table form prints a setuptools deprecation banner on every install
    assert project["license"] == "MIT"
    assert _pyproject()["build-system"]["requires"] == ["setuptools>=77"]


# The stand-in interpreter for .venv/bin/python: it records every call in calls.log and keeps a
# list of installed CuPy packages, so `pip show` answers as pip would.
_FAKE_PYTHON = """\
#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls.log"
if [ "$1 $2 $3" = "-m pip show" ]; then
    for name; do :; done
    exec grep -qx "$name" "$here/installed"
fi
if [ "$1 $2 $3" = "-m pip uninstall" ]; then
    for name; do :; done
    grep -vx "$name" "$here/installed" > "$here/left"; cat "$here/left" > "$here/installed"
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
    case "$*" in
        *cuda12*) echo cupy-cuda12x >> "$here/installed" ;;
        *cuda13*) echo cupy-cuda13x >> "$here/installed" ;;
    esac
fi
exit 0
"""


def test_make_installs_the_chosen_extra_and_again_when_it_changes(tmp_path):
    """`make .venv/.stamp-train` / `.venv/.stamp-test` (the install steps of `make train` /
    `make test`) under real make: the pip commands they issue as the driver changes, and none
    when nothing changed."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    work = tmp_path / "clone"
    (work / "tools").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", os.path.join("tools", "cuda_extra.sh")):
        shutil.copy(os.path.join(ROOT, name), work / name)
    os.utime(work / "pyproject.toml", (1_000_000_000, 1_000_000_000))  # older than any stamp
    venv_bin = work / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(_FAKE_PYTHON)
    (venv_bin / "python").chmod(0o755)
    (venv_bin / "installed").write_text("")
    for tool in ("grep", "dirname"):
        assert shutil.which(tool), f"the stand-in python needs {tool}"

    def run(target, smi=None, **variables):
        bin_dir = _bin_dir(tmp_path, smi, smi_rc=0 if smi is not SMI_NO_DRIVER else 9)
        for tool in ("grep", "dirname"):
            (bin_dir / tool).symlink_to(shutil.which(tool))
        log = venv_bin / "calls.log"
        log.write_text("")
        args = [f"{k}={v}" for k, v in variables.items()]
        proc = subprocess.run([make, "--no-print-directory", target, *args], cwd=work,
                              env={"PATH": str(bin_dir), "LC_ALL": "C"}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout
        calls = [c.replace(" -q", "") for c in log.read_text().splitlines()
                 if not c.startswith("-m pip show")]
        return calls, proc.stdout.splitlines()

    stamp = work / ".venv" / ".stamp-train"
    calls, out = run(".venv/.stamp-train", SMI_CUDA_12_4)
    assert calls == ["-m pip install -e .[train,cuda12]"]
    assert out[0] == "NVIDIA driver 550.54.15 reports CUDA 12.4: installing cupy-cuda12x (the " \
                     "cuda12 extra)"
    assert stamp.read_text() == "train,cuda12\n"
    assert run(".venv/.stamp-train", SMI_CUDA_12_4)[0] == []  # nothing changed: nothing installed

    # a new driver: the other CuPy goes first (both install the `cupy` package)
    calls, out = run(".venv/.stamp-train", SMI_CUDA_13_0)
    assert calls == ["-m pip uninstall -y cupy-cuda12x", "-m pip install -e .[train,cuda13]"]
    assert "removing cupy-cuda12x: it and cupy-cuda13x would overwrite each other's files" in out
    assert stamp.read_text() == "train,cuda13\n"

    calls, out = run(".venv/.stamp-train", SMI_CUDA_13_0, DEVICE="cpu")
    assert calls == ["-m pip install -e .[train]"]
    assert out[0].startswith("DEVICE=cpu: not looking for a GPU")

    calls, out = run(".venv/.stamp-train", None)
    assert calls == [] and out[0] == "no NVIDIA driver found (no nvidia-smi on PATH); training " \
                                     "on the CPU"

    # make test: cupy-cuda12x without a driver, cupy-cuda13x (and not 12x) with a CUDA 13 one
    calls, _ = run(".venv/.stamp-test", SMI_NO_DRIVER, TORCH="")
    assert calls == ["-m pip uninstall -y cupy-cuda13x",
                     "-m pip install -e .[test,train,lint,cuda12]"]
    calls, _ = run(".venv/.stamp-test", SMI_CUDA_13_0, TORCH="torch==2.13.0")
    assert calls == ["-m pip uninstall -y cupy-cuda12x",
                     "-m pip install -e .[test,train,lint,cuda13]", "-m pip install torch==2.13.0"]
    assert (venv_bin / "installed").read_text().split() == ["cupy-cuda13x"]

    # make train swapped the CuPy under make test's stamp: make test notices and swaps it back
    assert run(".venv/.stamp-test", SMI_CUDA_13_0, TORCH="")[0] == []
    calls, _ = run(".venv/.stamp-train", SMI_CUDA_12_4)
    assert calls == ["-m pip uninstall -y cupy-cuda13x", "-m pip install -e .[train,cuda12]"]
    calls, _ = run(".venv/.stamp-test", SMI_CUDA_13_0, TORCH="")
    assert calls == ["-m pip uninstall -y cupy-cuda12x",
                     "-m pip install -e .[test,train,lint,cuda13]"]

    # pyproject.toml newer than the stamp: installed again, though the list is the same
    later = (work / ".venv" / ".stamp-test").stat().st_mtime + 10  # test -nt may count seconds
    os.utime(work / "pyproject.toml", (later, later))
    calls, _ = run(".venv/.stamp-test", SMI_CUDA_13_0, TORCH="")
    assert calls == ["-m pip install -e .[test,train,lint,cuda13]"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_agrees_with_the_elementwise_test(dtype):
    """The sum's shortcut never decides wrongly: finite data, a NaN, each infinity, both
    infinities (their sum is NaN), and finite values whose sum overflows the dtype (the
    elementwise test then decides, and they are finite)."""
    big = np.finfo(dtype).max
    cases = {
        "finite": np.arange(12, dtype=dtype).reshape(3, 4),
        "nan": np.array([[1, np.nan], [2, 3]], dtype=dtype),
        "+inf": np.array([[1, np.inf]], dtype=dtype),
        "-inf": np.array([[-np.inf, 1]], dtype=dtype),
        "both infinities": np.array([[np.inf, -np.inf]], dtype=dtype),
        "overflowing sum": np.full((2, 3), big, dtype=dtype),
        "empty": np.empty((0, 3), dtype=dtype),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shortcut's overflow or NaN sum warns nobody
        for name, a in cases.items():
            assert backend.all_finite(np, a) is bool(np.isfinite(a).all()), name
    assert backend.all_finite(np, cases["overflowing sum"]) is True
    assert backend.all_finite(np, cases["both infinities"]) is False
