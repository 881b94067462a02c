"""Array-module shim: the only module in xpnet that knows CuPy exists.

Every numerical routine receives a :class:`Device` and computes through ``device.xp``, which
is :mod:`numpy` on the CPU and :mod:`cupy` on a CUDA GPU.

``import cupy`` succeeds on machines without a GPU; the failure only comes with the first
allocation (``CUDARuntimeError``). So a GPU counts as usable only after a real allocation and a
small kernel ran on it, and any exception on the way means "not usable".
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Device",
    "DeviceUnavailableError",
    "get_device",
    "cuda_status",
    "is_device_array",
    "is_sparse",
    "all_finite",
    "as_array",
    "enable_tf32",
    "is_out_of_memory",
]

# xpnet is installed from its clone (it is not on PyPI), so the fix is an editable install there;
# `make train` does the same after reading the driver's CUDA version.
_FIX_INSTALL = (
    "install the CuPy for the CUDA version nvidia-smi shows by running "
    "`pip install -e '.[cuda12]'` (CUDA 12) or `pip install -e '.[cuda13]'` (CUDA 13) in the "
    "xpnet clone, or use --device cpu"
)


class DeviceUnavailableError(RuntimeError):
    """Raised when an explicitly requested device cannot be used."""


def _import_cupy():
    """Return the cupy module, or raise ImportError. Tests monkeypatch this to simulate absence."""
    if os.environ.get("XPNET_DISABLE_CUPY") == "1":
        raise ImportError("CuPy disabled by XPNET_DISABLE_CUPY=1")
    import cupy  # noqa: PLC0415  (the one place cupy is imported)

    return cupy


def _probe_cuda(index: int) -> tuple[Any, str | None]:
    """Try to run a small kernel on GPU ``index``.

    Returns ``(cupy, None)`` when the GPU is usable, else ``(None, reason)`` with a plain-language
    reason that names the cause.
    """
    try:
        cp = _import_cupy()
    except Exception as exc:  # ImportError, or a broken CUDA install raising something else
        return None, f"CuPy is not installed ({type(exc).__name__}: {exc})"
    try:
        n = cp.cuda.runtime.getDeviceCount()
        if index >= n:
            return None, f"CuPy is installed but GPU {index} does not exist ({n} visible)"
        with cp.cuda.Device(index):
            a = cp.arange(8, dtype=cp.float32)
            total = float((a * 2.0).sum())  # a real kernel plus a device-to-host copy
        if total != 56.0:
            return None, f"CuPy is installed but a test kernel on GPU {index} gave a wrong result"
    except Exception as exc:  # CUDARuntimeError, CompileException, driver errors: all "not usable"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"CuPy is installed but no usable GPU: {type(exc).__name__}: {msg}"
    return cp, None


def cuda_status(index: int = 0) -> tuple[bool, str]:
    """``(usable, reason)`` for CUDA GPU ``index``; the reason is empty when it is usable."""
    cp, reason = _probe_cuda(index)
    return cp is not None, reason or ""


@dataclass
class Device:
    """Where arrays live and which array module computes on them.

    Attributes:
        name: ``"cpu"`` or ``"cuda:N"``.
        xp: :mod:`numpy` or :mod:`cupy`.
        fallback_reason: when ``get_device("auto")`` chose the CPU, why the GPU was not used.
    """

    name: str
    xp: Any
    fallback_reason: str = ""
    _index: int | None = field(default=None, repr=False)

    @property
    def is_gpu(self) -> bool:
        return self._index is not None

    def __str__(self) -> str:
        return self.name

    def activate(self):
        """Context manager that makes this device current (a no-op on the CPU)."""
        if self.is_gpu:
            return self.xp.cuda.Device(self._index)
        return _NullContext()

    def send(self, array, dtype=None):
        """Return ``array`` on this device (no copy when it is already there with that dtype).
        Array-likes (lists, pandas objects, CPU torch tensors) go through :func:`as_array`.
        A SciPy sparse matrix stays sparse: CSR on a GPU (``cupyx.scipy.sparse``), as it is on
        the CPU (cast to ``dtype`` when given)."""
        if is_sparse(array):
            return self._send_sparse(array, dtype)
        if not isinstance(array, np.ndarray) or isinstance(array, np.ma.MaskedArray):
            if not is_device_array(array):
                array = as_array(array, "array")
        with self.activate():
            out = self.xp.asarray(array)
            if dtype is not None and out.dtype != np.dtype(dtype):
                out = out.astype(dtype)
            return out

    def _send_sparse(self, matrix, dtype):
        if dtype is not None and matrix.dtype != np.dtype(dtype):
            matrix = matrix.astype(dtype)
        on_gpu = type(matrix).__module__.startswith("cupyx")
        if not self.is_gpu or on_gpu:
            return matrix
        import cupyx.scipy.sparse  # noqa: PLC0415  (CuPy's sparse module, only here)

        with self.activate():
            return cupyx.scipy.sparse.csr_matrix(matrix.tocsr())

    def to_numpy(self, array) -> np.ndarray:
        """Return a host NumPy copy (or view, on the CPU) of ``array``; array-likes go through
        :func:`as_array`."""
        if isinstance(array, np.ndarray):
            return array
        if is_device_array(array):
            return array.get()
        return as_array(array, "array")

    def take_rows(self, X, idx, out):
        """``out[:] = X[idx]`` without allocating (the mini-batch gather of the step loop)."""
        if self.is_gpu:
            return self.xp.take(X, idx, axis=0, out=out)
        # mode="clip" lets NumPy write straight into ``out``; "raise" would buffer a copy.
        return np.take(X, idx, axis=0, out=out, mode="clip")

    def synchronize(self) -> None:
        """Wait for queued GPU work; call it before reading a clock."""
        if self.is_gpu:
            with self.activate():
                self.xp.cuda.get_current_stream().synchronize()

    def rng(self, seed=None):
        """A seeded random generator that draws on this device."""
        with self.activate():
            return self.xp.random.default_rng(seed)

    def free_memory(self) -> None:
        """Return cached blocks of the GPU memory pool to the driver (no-op on the CPU)."""
        if self.is_gpu:
            self.xp.get_default_memory_pool().free_all_blocks()


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_CPU = Device("cpu", np)
_GPU_CACHE: dict[int, Device] = {}


def _parse(spec: str) -> tuple[str, int | None]:
    if not isinstance(spec, str):
        raise ValueError(
            f"device must be a string like 'auto', 'cpu', 'cuda' or 'cuda:0'; got {spec!r}"
        )
    s = spec.strip().lower()
    if s in ("auto", "cpu"):
        return s, None
    if s in ("cuda", "gpu"):
        return "cuda", 0
    if s.startswith("cuda:"):
        tail = s[5:]
        if tail.isdigit():
            return "cuda", int(tail)
    raise ValueError(
        f"unknown device {spec!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N' (N a GPU index)"
    )


def get_device(spec: str | Device = "auto") -> Device:
    """Resolve a device spec to a :class:`Device`.

    ``"auto"`` picks GPU 0 when it is usable and otherwise the CPU, recording why in
    ``fallback_reason``. ``"cuda"``/``"cuda:N"`` raise :class:`DeviceUnavailableError` when the
    GPU cannot be used; ``"cpu"`` always works. A bad spec raises ``ValueError``.

    A GPU counts as usable only after a real allocation and a small kernel ran on it; the
    answer is cached per GPU.

    Args:
        spec: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"``, or a :class:`Device` (returned
            as it is).

    Returns:
        The :class:`Device`: its ``xp`` is :mod:`numpy` or :mod:`cupy`.

    Raises:
        DeviceUnavailableError: ``"cuda"`` or ``"cuda:N"`` and that GPU cannot be used (the
            message names the cause and the fix).
        ValueError: a spec that is none of the above.
    """
    if isinstance(spec, Device):
        return spec
    kind, index = _parse(spec)
    if kind == "cpu":
        return _CPU
    probe_index = 0 if index is None else index
    if probe_index in _GPU_CACHE:
        return _GPU_CACHE[probe_index]
    cp, reason = _probe_cuda(probe_index)
    if cp is None:
        if kind == "auto":
            return Device("cpu", np, fallback_reason=reason)
        fix = _FIX_INSTALL if reason.startswith("CuPy is not installed") else (
            "check `nvidia-smi` and the NVIDIA driver, or use --device cpu"
        )
        raise DeviceUnavailableError(f"cannot use device {spec!r}: {reason}; {fix}.")
    dev = Device(f"cuda:{probe_index}", cp, _index=probe_index)
    _GPU_CACHE[probe_index] = dev
    return dev


def is_device_array(array) -> bool:
    """True for a GPU array: an instance of the own ``ndarray`` type of an array module other
    than NumPy, found through ``type(array).__module__`` (``cupy.ndarray`` reports ``cupy``).
    Duck typing is not enough: pandas objects have a ``.get`` method and torch tensors a
    ``.device``, and neither is a device array."""
    if isinstance(array, np.ndarray):
        return False
    top = type(array).__module__.partition(".")[0]
    if top == "cupy":
        return True
    module = sys.modules.get(top)  # a CuPy stand-in registered under its own module name
    return module is not None and module is not np and getattr(module, "ndarray", None) is \
        type(array)


def is_sparse(array) -> bool:
    """True for a SciPy sparse matrix or array, or a CuPy one (``cupyx.scipy.sparse``): found by
    the type's module, so neither SciPy nor CuPy is imported to answer."""
    return type(array).__module__.startswith(("scipy.sparse", "cupyx.scipy.sparse"))


def all_finite(xp, array) -> bool:
    """True when every element of the dense ``array`` (on ``xp``'s device) is finite.

    The sum is tested first: NaN and infinity carry through a sum (``inf - inf`` is NaN), so a
    finite sum proves every element finite, in one read of the data and without the
    ``array.size`` booleans that ``isfinite(array).all()`` allocates (47 MB for MNIST's
    training images). Only a sum that is not finite, from a NaN, an infinity or finite values
    whose sum overflows, pays for the element-by-element test, which decides."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing or NaN sum decides nothing
        if bool(xp.isfinite(array.sum())):
            return True
    return bool(xp.isfinite(array).all())


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def as_array(data, name="X"):
    """``data`` as an array: NumPy and device arrays as they are, array-likes (lists, pandas
    DataFrames and Series, CPU torch tensors) converted through :func:`numpy.asarray`.

    Raises ``ValueError`` with one sentence for a masked array (its mask would be lost), for
    anything ``np.asarray`` cannot convert (ragged lists, GPU or grad-tracking torch tensors), and
    for an object array (mixed types, missing values or ragged rows), which holds no numbers.
    """
    if isinstance(data, np.ma.MaskedArray):
        raise ValueError(
            f"{name} is a masked array, whose mask xpnet would silently ignore; pass "
            f"{name}.filled(value) or drop the masked rows first."
        )
    if isinstance(data, np.ndarray) or is_device_array(data):
        out = data
    else:
        try:
            out = np.asarray(data)
        except Exception as exc:  # ragged lists, CUDA or requires-grad torch tensors, ...
            raise ValueError(
                f"{name} cannot be converted to a NumPy array ({type(exc).__name__}: "
                f"{_first_sentence(exc)}); pass numbers in equal-length rows: a NumPy array, "
                f"lists, a pandas DataFrame or Series, or a detached CPU torch tensor."
            ) from None
    if out.dtype == object:
        raise ValueError(
            f"{name} holds Python objects (dtype object: mixed types, missing values or ragged "
            f"rows), not numbers; convert it first, e.g. np.asarray({name}, dtype=float)."
        )
    return out


def enable_tf32(enabled: bool = True) -> None:
    """Let cuBLAS use TF32 tensor cores for float32 matrix products (CuPy reads ``CUPY_TF32``).

    Faster on Ampere and newer GPUs at about 10 bits of mantissa in the products; call it before
    the first :func:`get_device` so CuPy sees the setting. No effect on the CPU.
    """
    os.environ["CUPY_TF32"] = "1" if enabled else "0"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for host ``MemoryError`` and CuPy's device ``OutOfMemoryError`` (and cuBLAS's
    allocation failures), so callers can suggest a smaller batch instead of a traceback."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return "OutOfMemory" in name or "CUBLAS_STATUS_ALLOC_FAILED" in str(exc)
