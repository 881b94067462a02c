"""GPU suite plumbing: the device each test runs on, the ``gpu`` marker, and the parity summary.

* **Two devices.** A test that takes the ``gpu_device`` fixture runs twice: on ``strict``, the
  strict CPU stand-in for CuPy (``tests/strict_device.py``: CuPy's API and CuPy's refusals,
  NumPy underneath), on every machine; and on ``cuda``, the real CuPy device, marked
  ``pytest.mark.gpu`` and skipped, with :func:`xpnet.backend.cuda_status`'s explanation, when no
  GPU is usable. So ``pytest tests/gpu`` proves the device path (no implicit host conversion,
  no host operand, only CuPy's functions and keywords, no transfer in the step loop) without a
  GPU, and ``pytest -m gpu`` on a GPU machine runs exactly the real-GPU tests. Tests that only
  make sense on real CuPy (device resolution, out-of-memory) take the ``cuda`` fixture instead
  and are marked and skipped the same way. Nothing here or in the test modules imports CuPy at
  import time; tests reach it through ``xpnet.get_device("cuda").xp``.
* The ``parity`` fixture compares a device array with its CPU reference, asserts the tolerance
  and keeps the worst error of every named check for the whole session, per device;
  ``pytest_terminal_summary`` prints those tables at the end of the run, so the raw pytest
  output is the parity report. (On the stand-in the numbers are NumPy's own, so the errors are
  ~0: its tables show the checks ran, the real-GPU table is the one that measures precision.)

Tolerances (``TOLERANCES``), applied elementwise as ``|gpu - cpu| <= atol + rtol * |cpu|`` with
``atol = atol_base * max(1, max |cpu|)``:

* float64: rtol 1e-10, atol_base 1e-12. Both backends run the same formulas on the same inputs,
  so the only differences are the order in which cuBLAS / CuPy reductions and OpenBLAS / NumPy
  reductions add their terms: about ``1e-16 * n * cond`` for a sum of ``n`` terms (n <= a few
  hundred here, cond modest for these small random nets), i.e. 1e-14..1e-13 even after a few
  layers and optimizer steps. 1e-10 leaves three orders of magnitude of headroom and still catches
  any real bug (a wrong formula shows up at 1e-3 or worse).
* float32: rtol 1e-4, atol_base 1e-5. The same summation-order effect at float32's unit roundoff
  (6e-8), amplified through a few layers, a softmax and up to five optimizer steps, gives 1e-6 to
  1e-5 relative; real bugs are still orders of magnitude above it.

The absolute floor grows with the array's scale (never shrinks below ``atol_base``) because an
element that is the small result of cancelling terms carries the rounding error of those terms,
not of itself.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradcheck import host_copy as to_host

GPU_DIR = os.path.dirname(os.path.abspath(__file__))

TOLERANCES = {  # dtype: (rtol, atol_base); see the module docstring for the reasoning
    "float64": (1e-10, 1e-12),
    "float32": (1e-4, 1e-5),
}

_STATUS: dict[str, tuple[bool, str]] = {}


def gpu_status() -> tuple[bool, str]:
    """``(usable, reason)`` for GPU 0, probed once per session."""
    if "cuda" not in _STATUS:
        from xpnet import backend  # noqa: PLC0415  (attribute lookup, so tests can patch it)

        _STATUS["cuda"] = backend.cuda_status(0)
    return _STATUS["cuda"]


def _in_gpu_dir(item) -> bool:
    path = os.path.abspath(str(getattr(item, "path", None) or item.fspath))
    return path.startswith(GPU_DIR + os.sep)


def _skip_without_gpu():
    usable, reason = gpu_status()
    return [] if usable else [pytest.mark.skip(reason=f"no usable CUDA device: {reason}")]


def pytest_generate_tests(metafunc):
    """``gpu_device`` runs each test on the strict stand-in and on the real GPU."""
    if "gpu_device" in metafunc.fixturenames:
        metafunc.parametrize("gpu_device", [
            pytest.param("strict", id="strict"),
            pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, *_skip_without_gpu()]),
        ], indirect=True)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection sees the items
def pytest_collection_modifyitems(config, items):
    """Tests that take the real-only ``cuda`` fixture: marked ``gpu``, skipped without a GPU."""
    for item in items:
        if not _in_gpu_dir(item) or "cuda" not in getattr(item, "fixturenames", ()):
            continue
        if getattr(getattr(item, "callspec", None), "params", {}).get("gpu_device") == "strict":
            continue
        if item.get_closest_marker("gpu") is None:
            item.add_marker(pytest.mark.gpu)
            for mark in _skip_without_gpu():
                item.add_marker(mark)


# ------------------------------------------------------------------------------ parity records

class _Check:
    """The worst error seen for one named check over the session."""

    def __init__(self, name, rtol, atol_base):
        self.name, self.rtol, self.atol_base = name, rtol, atol_base
        self.count = 0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.max_used = 0.0  # max of |d| / (atol + rtol |ref|): 1.0 is the tolerance
        self.where = ""

    def line(self) -> str:
        tol = "exact" if self.rtol == 0 and self.atol_base == 0 else (
            f"rtol {self.rtol:.0e} atol {self.atol_base:.0e}")
        return (f"{self.name:<44} n={self.count:<4d} max_abs={self.max_abs:.3e} "
                f"max_rel={self.max_rel:.3e} tol_used={self.max_used:.3f} ({tol}) "
                f"worst at: {self.where}")


class Parity:
    """Compares GPU results with CPU references and remembers the worst error per check."""

    def __init__(self):
        self.checks: dict[str, _Check] = {}
        self.bounds: dict[str, list] = {}  # name: [worst, limit, where, count]

    def bound(self, name, value, limit, where=""):
        """Record a scalar error measure (worst kept per ``name``) and assert ``value < limit``."""
        rec = self.bounds.setdefault(name, [0.0, limit, "-", 0])
        rec[3] += 1
        if value >= rec[0]:
            rec[0], rec[2] = float(value), where or "-"
        assert value < limit, f"{name} {where}: {value:.3e} is not below {limit:g}"

    def check(self, name, got, want, dtype=None, where="", exact=False):
        """Assert ``got`` (GPU) matches ``want`` (CPU reference) within the tolerance of
        ``dtype`` (``exact=True``: bit-identical), recording the errors under ``name``."""
        g = to_host(got)
        w = to_host(want)
        assert g.shape == w.shape, f"{name} {where}: shape {g.shape} != {w.shape}"
        if exact:
            rtol, atol_base = 0.0, 0.0
            key = f"{name} [exact]"
        else:
            rtol, atol_base = TOLERANCES[np.dtype(dtype).name]
            key = f"{name} [{np.dtype(dtype).name}]"
        rec = self.checks.get(key)
        if rec is None:
            rec = self.checks[key] = _Check(key, rtol, atol_base)
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        diff = np.abs(g64 - w64)
        scale = float(np.max(np.abs(w64))) if w64.size else 0.0
        atol = atol_base * max(1.0, scale)
        max_abs = float(diff.max()) if diff.size else 0.0
        # relative to the element, but never to less than the point where atol takes over
        floor = atol / rtol if rtol else 1e-300
        max_rel = float((diff / np.maximum(np.abs(w64), floor)).max()) if diff.size else 0.0
        limit = atol + rtol * np.abs(w64)
        if exact:
            used = 0.0 if max_abs == 0.0 else float("inf")
        else:
            used = float((diff / limit).max()) if diff.size else 0.0
        rec.count += 1
        if used >= rec.max_used or not rec.where:
            rec.max_used, rec.where = used, where or "-"
        rec.max_abs = max(rec.max_abs, max_abs)
        rec.max_rel = max(rec.max_rel, max_rel)
        if exact:
            assert np.array_equal(g, w), (
                f"{name} {where}: not bit-identical (max abs {max_abs:.3e})")
        else:
            assert used <= 1.0, (
                f"{name} {where}: GPU and CPU differ by max abs {max_abs:.3e}, max rel "
                f"{max_rel:.3e} ({used:.2f}x the {np.dtype(dtype).name} tolerance rtol {rtol:g}, "
                f"atol {atol:.3g})"
            )
        return max_abs, max_rel


_PARITY = {"cuda": Parity(), "strict": Parity()}
_TITLES = {"cuda": "xpnet GPU (CuPy) vs CPU parity (worst error per check)",
           "strict": "xpnet strict CuPy stand-in vs CPU parity (NumPy both sides: the checks ran)"}


def _device_param(request) -> str:
    return getattr(getattr(request.node, "callspec", None), "params", {}).get("gpu_device",
                                                                              "cuda")


@pytest.fixture
def parity(request) -> Parity:
    """The session's parity recorder for this test's device (one object per device, so the
    summary sees every check)."""
    return _PARITY[_device_param(request)]


def pytest_terminal_summary(terminalreporter):
    for device, rec in _PARITY.items():
        if not (rec.checks or rec.bounds):
            continue
        terminalreporter.section(_TITLES[device])
        terminalreporter.write_line(
            "tol_used = max |gpu-cpu| / (atol + rtol |cpu|), atol = atol_base * max(1, max|cpu|)"
            "; a check passes while tol_used <= 1")
        for name in sorted(rec.checks):
            terminalreporter.write_line(rec.checks[name].line())
        for name in sorted(rec.bounds):
            worst, limit, where, count = rec.bounds[name]
            terminalreporter.write_line(
                f"{name:<44} n={count:<4d} worst={worst:.3e} (must be < {limit:g}) "
                f"worst at: {where}")


# ------------------------------------------------------------------------------ shared fixtures
@pytest.fixture
def cuda():
    """The real GPU :class:`~xpnet.backend.Device` (tests taking it are marked ``gpu`` and
    skipped without one)."""
    from xpnet import get_device  # noqa: PLC0415

    return get_device("cuda")


@pytest.fixture
def gpu_device(request):
    """The device under test: the strict CuPy stand-in (``strict``) or the real GPU (``cuda``,
    marked ``gpu``); see the module docstring."""
    if request.param == "strict":
        from strict_device import StrictDevice  # noqa: PLC0415

        return StrictDevice()
    from xpnet import get_device  # noqa: PLC0415

    return get_device("cuda")


@pytest.fixture
def make_pair(gpu_device):
    """``make_pair(sizes, dtype, seed=0, **mlp_kwargs) -> (cpu_net, gpu_net)``, the second on
    ``gpu_device``.

    Both nets are built with the same seed, so their initial weights (drawn on the host) are
    identical; then both get the same random non-zero biases (and batch-norm scales and shifts),
    drawn on the host and sent to each device, so no test runs at the special point b = 0,
    gamma = 1, beta = 0.
    """

    def make(sizes, dtype, seed=0, random_biases=True, **kwargs):
        from xpnet import MLP  # noqa: PLC0415
        from xpnet.layers import BatchNorm1d  # noqa: PLC0415

        cpu = MLP(sizes, dtype=dtype, device="cpu", seed=seed, **kwargs)
        gpu = MLP(sizes, dtype=dtype, device=gpu_device, seed=seed, **kwargs)
        if random_biases:
            rng = np.random.default_rng(seed + 1000)
            host = [(to_host(W), rng.normal(0.0, 0.2, size=b.shape)) for W, b in cpu.params]
            bns = [layer for layer in cpu.layers if isinstance(layer, BatchNorm1d)]
            gammas = [1.0 + rng.normal(0.0, 0.2, size=bn.num_features) for bn in bns]
            betas = [rng.normal(0.0, 0.2, size=bn.num_features) for bn in bns]
            for net in (cpu, gpu):
                net.set_params(host)
                norms = [layer for layer in net.layers if isinstance(layer, BatchNorm1d)]
                for bn, gamma, beta in zip(norms, gammas, betas):
                    bn.params["weight"][...] = net.device.send(gamma, net.dtype)
                    bn.params["bias"][...] = net.device.send(beta, net.dtype)
        return cpu, gpu

    return make
