"""The strict CuPy stand-in (tests/strict_device.py) is strict: every operation CuPy refuses raises,
what CuPy allows works and returns stand-in arrays, and the counters count.

The GPU parity suite (tests/gpu/) runs on this stand-in on every machine, so its value rests on
these refusals: each test here names the CuPy behaviour it mirrors.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import strict_device
from strict_device import StrictDevice, xp

import xpnet
from xpnet.backend import is_device_array

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def a():
    return xp.asarray(np.arange(6.0).reshape(2, 3))


@pytest.fixture
def host():
    return np.ones((2, 3))


def counted(fn):
    """``(result, {kind: count})`` of the events ``fn()`` counted."""
    before = dict(xp.counters)
    result = fn()
    return result, xp.counters.since(before)


# ------------------------------------------------------------------ no implicit conversion
@pytest.mark.parametrize("convert", [
    pytest.param(np.asarray, id="np.asarray"),
    pytest.param(np.array, id="np.array"),
    pytest.param(lambda a: np.asarray([a, a]), id="np.asarray-of-list"),
    pytest.param(lambda a: np.asarray(a, dtype=np.float32), id="np.asarray-dtype"),
    pytest.param(lambda a: a.__array__(), id="__array__"),
    pytest.param(lambda a: np.float64(a), id="np.float64"),
    pytest.param(lambda a: np.frombuffer(a), id="np.frombuffer"),
    pytest.param(memoryview, id="memoryview"),
])
def test_implicit_conversion_to_numpy_raises(convert, a):
    """CuPy: ``__array__`` raises TypeError ("Implicit conversion to a NumPy array is not
    allowed"); there is no buffer protocol or ``__array_interface__``."""
    with pytest.raises(TypeError):
        convert(a)


def test_no_array_interface_and_no_index(a):
    for name in ("__array_interface__", "__array_struct__", "__buffer__", "__index__"):
        assert not hasattr(a, name), name
    with pytest.raises(TypeError):
        range(a[0, 1].astype(np.int64))  # CuPy has no __index__
    with pytest.raises(TypeError):
        [1, 2][xp.asarray(1)]


def test_host_array_target_of_device_value_raises(a, host):
    """``host[...] = device`` converts the device array: refused, as CuPy."""
    with pytest.raises(TypeError):
        host[...] = a
    with pytest.raises(TypeError):
        np.copyto(host, a)  # dispatched to cupy.copyto, which needs a device destination


def test_dunders_match_installed_cupy():
    """The conversion and protocol special methods the stand-in has are exactly CuPy's."""
    spec = strict_device.load_spec()["classes"]["cupy.ndarray"]
    for name in ("__array__", "__array_function__", "__array_interface__", "__array_struct__",
                 "__array_ufunc__", "__bool__", "__buffer__", "__complex__", "__copy__",
                 "__deepcopy__", "__float__", "__index__", "__int__", "__iter__", "__len__"):
        assert hasattr(strict_device.ndarray, name) == (name in spec), name


# ------------------------------------------------------------------ allowed conversions
def test_scalar_conversions_work_and_count(a):
    """CuPy: ``float``/``int``/``complex``/``bool`` of a size-1 array sync and copy one value."""
    s = a[1, 2]
    (f, i, c, b, item), counts = counted(lambda: (float(s), int(s), complex(s), bool(s),
                                                  s.item()))
    assert (f, i, c, b, item) == (5.0, 5, 5 + 0j, True, 5.0)
    assert counts == {"implicit": 5}
    assert math.isfinite(a.sum())  # through __float__
    with pytest.raises(ValueError, match="ambiguous"):
        bool(a)
    with pytest.raises(TypeError):
        float(a)  # size 6
    with pytest.warns(DeprecationWarning):
        assert not bool(xp.zeros(0))


def test_get_copies_to_the_host_and_counts(a):
    h, counts = counted(a.get)
    assert isinstance(h, np.ndarray) and counts == {"get": 1}
    h[0, 0] = 99.0
    assert float(a[0, 0]) == 0.0  # a copy, not a view
    assert np.array_equal(xp.asnumpy(a), np.arange(6.0).reshape(2, 3))
    out = np.empty((2, 3))
    assert a.get(out=out) is out and out[1, 2] == 5.0
    (_, text), counts = counted(lambda: (a.tolist(), repr(a)))
    assert "5." in text and counts == {"implicit": 2}


def test_send_copies_from_the_host_and_counts(host):
    d, counts = counted(lambda: xp.asarray(host))
    assert counts == {"h2d": 1} and isinstance(d, xp.ndarray)
    host[0, 0] = 42.0
    assert float(d[0, 0]) == 1.0  # the device has its own copy
    assert xp.asarray(d) is d and counted(lambda: xp.asarray(d))[1] == {}
    assert xp.array(d) is not d and counted(lambda: xp.array([1, 2]))[1] == {"h2d": 1}
    d.set(np.full((2, 3), 7.0))
    assert float(d.sum()) == 42.0


# ------------------------------------------------------------------ no host operands
@pytest.mark.parametrize("op", [
    pytest.param(lambda a, h: a + h, id="device+host"),
    pytest.param(lambda a, h: h + a, id="host+device"),
    pytest.param(lambda a, h: a * h[0], id="device*host-row"),
    pytest.param(lambda a, h: a @ h.T, id="matmul"),
    pytest.param(lambda a, h: a == h, id="compare"),
    pytest.param(lambda a, h: a.__iadd__(h), id="inplace-add"),
    pytest.param(lambda a, h: h.__iadd__(a), id="host-inplace-add"),
    pytest.param(lambda a, h: xp.add(a, h), id="xp.add"),
    pytest.param(lambda a, h: xp.multiply(a, 2.0, out=h), id="ufunc-host-out"),
    pytest.param(lambda a, h: np.add(a, h), id="np.add"),
    pytest.param(lambda a, h: np.maximum(h, a), id="np.maximum"),
    pytest.param(lambda a, h: xp.add(a, np.asarray(1.0)), id="0-d-host-array"),
    pytest.param(lambda a, h: xp.stack([a, h]), id="xp.stack"),
    pytest.param(lambda a, h: xp.concatenate([a, h]), id="xp.concatenate"),
    pytest.param(lambda a, h: xp.copyto(a, h), id="xp.copyto"),
    pytest.param(lambda a, h: xp.take(a, np.array([0]), axis=0), id="xp.take-host-index"),
    pytest.param(lambda a, h: a.sum(axis=0, out=h[0]), id="sum-host-out"),
    pytest.param(lambda a, h: xp.vdot(a, h), id="xp.vdot"),
    pytest.param(lambda a, h: a + [1.0, 2.0, 3.0], id="device+list"),
])
def test_host_operands_raise(op, a, host):
    """CuPy's ``_preprocess_args``: a ``numpy.ndarray`` (even 0-d) is "Unsupported type"."""
    with pytest.raises(TypeError):
        op(a, host)


def test_python_and_numpy_scalars_are_fine(a):
    for s in (2, 2.0, True, np.float32(2), np.int64(2)):
        assert isinstance(a * s, xp.ndarray) and isinstance(s + a, xp.ndarray)
    assert float((a == np.asarray(5.0)).sum()) == 1.0  # CuPy compares with a 0-d host item
    assert bool((a == None).any()) is False  # noqa: E711  (CuPy: never equal)


def test_setitem_with_host_values_mirrors_cupy(a, host):
    """CuPy 14 ``_scatter_op``: with a basic index, a non-device value goes to ``fill()``, which
    refuses a non-scalar host array (ValueError); with an advanced index it is copied over."""
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[...] = host
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[0] = np.ones(3)
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[:, 1] = [1.0, 2.0]
    a[0, 0] = 3.5
    a[1] = np.asarray(-1.0)  # a 0-d host array fills
    a[...] = xp.asarray(host) * 2  # device values are fine
    assert float(a.sum()) == 12.0
    _, counts = counted(lambda: a.__setitem__((np.array([0, 1]), np.array([2, 0])),
                                              np.array([7.0, 8.0])))
    assert counts == {"h2d": 3}  # two host index arrays and the host value
    assert float(a[0, 2]) == 7.0 and float(a[1, 0]) == 8.0
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a.fill(np.ones(2))


# ------------------------------------------------------------------ CuPy's API only
@pytest.mark.parametrize("call", [
    pytest.param(lambda a: xp.add(a, 1, where=a > 0), id="ufunc-where"),
    pytest.param(lambda a: xp.maximum(a, 0, order="C"), id="ufunc-order"),
    pytest.param(lambda a: xp.take(a, xp.asarray([0]), axis=0, mode="clip"), id="take-mode"),
    pytest.param(lambda a: a.sum(initial=0.0), id="sum-initial"),
    pytest.param(lambda a: a.max(axis=0, where=a > 0), id="max-where"),
    pytest.param(lambda a: xp.zeros(3, like=a), id="zeros-like"),
    pytest.param(lambda a: xp.asarray([1.0], device="cpu"), id="asarray-device"),
    pytest.param(lambda a: xp.random.default_rng(0).random(3, dtype=np.float32, foo=1),
                 id="generator-keyword"),
])
def test_keywords_cupy_rejects_raise(call, a):
    with pytest.raises(TypeError):
        call(a)


def test_only_cupy_names_exist(a):
    numpy_only = sorted(n for n in dir(np) if not n.startswith("_") and callable(getattr(np, n))
                        and n not in strict_device.load_spec()["modules"]["cupy"])
    assert numpy_only, "expected NumPy functions that CuPy lacks"
    for name in numpy_only[:20]:
        with pytest.raises(AttributeError, match="has no attribute"):
            getattr(xp, name)
    with pytest.raises(AttributeError):
        a.resize((3, 2))  # numpy.ndarray has it, cupy.ndarray does not
    with pytest.raises(AttributeError):
        xp.random.default_rng(0).normal(size=3)  # cupy.random.Generator has no normal()
    with pytest.raises(AttributeError):
        xp.random.default_rng(0).permutation(3)
    assert set(dir(xp)) <= set(strict_device.load_spec()["modules"]["cupy"])


def test_numpy_functions_dispatch_to_the_stand_in(a):
    """CuPy's ``__array_ufunc__`` / ``__array_function__``: NumPy calls on device arrays run
    the device implementation and return device arrays."""
    assert isinstance(np.exp(a), xp.ndarray)
    assert isinstance(np.sum(a, axis=0), xp.ndarray)
    assert np.shape(a) == (2, 3)
    with pytest.raises(TypeError):
        np.take(a, xp.asarray([1]), axis=0, mode="clip")  # cupy.take has no mode


# ------------------------------------------------------------------ results stay on the device
def test_results_are_stand_in_arrays(a):
    results = {
        "copy": a.copy(), "T": a.T, "reshape": a.reshape(3, 2), "astype": a.astype(np.float32),
        "index": a[1], "scalar index": a[1, 2], "fancy": a[xp.asarray([1, 0])],
        "sum": a.sum(), "sum axis": a.sum(axis=0), "argmax": a.argmax(axis=1),
        "ufunc": xp.exp(a), "scalar ufunc": xp.add(1.0, 2.0), "vdot": xp.vdot(a, a),
        "compare": a > 2, "mean": a.mean(), "var": a.var(axis=0), "ravel": a.ravel(),
        "copy.copy": copy.copy(a), "deepcopy": copy.deepcopy(a), "iter": next(iter(a)),
    }
    for what, r in results.items():
        assert isinstance(r, xp.ndarray) and is_device_array(r), what
    assert results["scalar index"].shape == () and results["sum"].shape == ()
    out = xp.zeros(3)
    assert a.sum(axis=0, out=out) is out and out.get().tolist() == [3.0, 5.0, 7.0]
    assert xp.multiply(a, 2.0, out=a) is a and float(a[1, 2]) == 10.0
    assert a.astype(a.dtype, copy=False) is a


def test_views_share_memory_like_cupy(a):
    """Basic indexing gives views, 0-d included (``a[i, j]`` is a 0-d view in CuPy)."""
    v = a[1, 2]
    v += 100.0
    row = a[0]
    row[...] = -1.0
    a.T[0, 1] = 50.0
    assert a.get().tolist() == [[-1.0, -1.0, -1.0], [50.0, 4.0, 105.0]]
    c = a.copy()
    c[...] = 0.0
    assert float(a.sum()) != 0.0


def test_array_module_resolution_like_cupy(a):
    """xpnet finds an array's module through ``type(a).__module__``, as for cupy.ndarray."""
    from xpnet.optimizers import _array_module
    from xpnet.parameters import FlatParameters

    assert type(a).__module__ == "strict_cupy" and sys.modules["strict_cupy"] is xp
    assert _array_module(a) is xp
    flat = FlatParameters.from_arrays({"w": a})
    assert isinstance(flat.data, xp.ndarray) and flat.xp is xp
    assert xp.get_array_module(a) is xp and xp.get_array_module(np.ones(1)) is np


def test_boolean_mask_index_counts_a_sync(a):
    r, counts = counted(lambda: a[a > 2])
    assert isinstance(r, xp.ndarray) and r.shape == (3,) and counts == {"implicit": 1}


# ------------------------------------------------------------------ random generator
def test_generator_mirrors_cupy():
    rng = xp.random.default_rng(0)
    for r in (rng.random(4), rng.random((2, 2), dtype=np.float32), rng.standard_normal(3),
              rng.integers(0, 5, size=4), rng.uniform(size=2)):
        assert isinstance(r, xp.ndarray)
    out = xp.empty((2, 3), dtype=np.float32)
    assert rng.random((2, 3), dtype=np.float32, out=out) is out
    assert 0.0 <= float(out.min()) and float(out.max()) < 1.0
    with pytest.raises(TypeError, match="wrong type"):
        rng.random((2, 3), dtype=np.float64, out=out)
    with pytest.raises(ValueError, match="size must match"):
        rng.random((3, 2), dtype=np.float32, out=out)
    with pytest.raises(TypeError):
        rng.random((2, 3), dtype=np.float32, out=np.empty((2, 3), np.float32))
    same = [xp.random.default_rng(np.int64(7)).random(3).get() for _ in range(2)]
    assert np.array_equal(*same)


# ------------------------------------------------------------------ counted no-ops
def test_cuda_no_ops_count():
    def use():
        with xp.cuda.Device(0) as d:
            assert xp.cuda.Device().id == d.id == 0
        xp.cuda.get_current_stream().synchronize()
        xp.get_default_memory_pool().free_all_blocks()
        xp.cuda.Device(0).synchronize()

    _, counts = counted(use)
    assert counts == {"device": 1, "synchronize": 2, "free_all_blocks": 1}
    with pytest.raises(RuntimeError, match="invalid device"):
        with xp.cuda.Device(1):
            pass
    assert xp.cuda.runtime.getDeviceCount() == 1


def test_strict_device_is_an_xpnet_gpu_device():
    dev = StrictDevice()
    assert isinstance(dev, xpnet.Device) and dev.name == "cuda:0" and dev.is_gpu
    assert dev.xp is xp and xpnet.get_device(dev) is dev
    def use():
        with dev.activate():
            pass
        dev.synchronize()  # activates, then synchronises the stream
        dev.free_memory()
        dev.to_numpy(dev.send(np.ones(3), "float32"))  # send activates
        dev.rng(0)  # activates

    _, counts = counted(use)
    assert counts == {"device": 4, "synchronize": 1, "free_all_blocks": 1, "h2d": 1, "get": 1}
    idx, X = dev.send(np.array([2, 0])), dev.send(np.arange(6.0).reshape(3, 2))
    out = xp.empty((2, 2))
    assert dev.take_rows(X, idx, out) is out and out.get().tolist() == [[4.0, 5.0], [0.0, 1.0]]


def test_listeners_see_where_in_xpnet():
    dev = StrictDevice()
    net = xpnet.MLP([3, 4, 2], device=dev, seed=0)
    seen = []
    xp.listeners.append(lambda kind, detail, where: seen.append((kind, where)))
    try:
        net.evaluate(np.ones((5, 3)), np.array([0, 1, 0, 1, 0]))
    finally:
        xp.listeners.clear()
    assert ("get", "outside xpnet") not in seen
    assert any(kind == "implicit" and where.startswith("xpnet/") for kind, where in seen), seen


def test_a_cpu_only_mistake_fails_on_the_stand_in():
    """What the stand-in is for: code that passes on NumPy but would fail on CuPy fails here."""
    dev = StrictDevice()
    W = dev.send(np.eye(3))

    def cpu_only(W, x):  # a typical slip: the host array meets the device one
        return W @ np.asarray(x)

    assert cpu_only(np.eye(3), np.ones(3)).shape == (3,)  # fine on the CPU
    with pytest.raises(TypeError):
        cpu_only(W, np.ones(3))
    with pytest.raises(TypeError):
        np.take(W, [0], axis=0, mode="clip")  # backend.py's CPU branch, if it ran on the GPU


# ------------------------------------------------------------------ without CuPy installed
def test_falls_back_to_the_cupy13_fixture_without_cupy():
    """With ``import cupy`` failing, the stand-in uses the committed CuPy 13 description and a
    network still trains on it (so the GPU suite runs on machines without CuPy too)."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["cupy"] = None  # import cupy -> ImportError
        sys.path.insert(0, {TESTS_DIR!r})
        import numpy as np
        import strict_device, xpnet
        spec = strict_device.load_spec()
        assert "cupy13.json" in spec["source"] and spec["cupy_version"].startswith("13."), spec
        net = xpnet.MLP([4, 6, 3], device=strict_device.StrictDevice(), seed=0, dropout=0.1)
        X = np.random.default_rng(0).standard_normal((20, 4))
        h = xpnet.fit(net, X, X[:, :3].argmax(1), epochs=2, batch_size=8, optimizer="adam")
        print("OK", spec["cupy_version"], h.loss)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, XPNET_DISABLE_CUPY="1"))
    assert proc.returncode == 0 and proc.stdout.startswith("OK 13."), proc.stdout + proc.stderr
