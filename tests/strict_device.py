"""A strict CPU stand-in for CuPy: proves xpnet's device path on machines without a GPU.

:func:`StrictDevice` returns an ordinary :class:`xpnet.backend.Device` (name ``"cuda:0"``,
``is_gpu`` True) whose ``xp`` is the stand-in namespace below instead of :mod:`cupy`. Tests pass
that Device wherever xpnet takes a device (``MLP(device=dev)``, ``load_checkpoint(...,
device=dev)``, ``layer.build(dev)``); nothing in ``xpnet/`` knows the stand-in exists.

The arrays (:class:`ndarray` here, ``strict_cupy.ndarray`` to xpnet) hold a NumPy array but behave
like ``cupy.ndarray`` where CPU-only code goes wrong on a GPU (checked against CuPy 14's
sources, ``cupy/_core/core.pyx``, ``_kernel.pyx``, ``_routines_indexing.pyx``):

* **No implicit conversion to NumPy.** ``np.asarray(a)`` / ``np.array(a)`` / anything that calls
  ``__array__`` raises CuPy's ``TypeError``; there is no ``__array_interface__``,
  ``__array_struct__`` or buffer protocol. ``float(a)``, ``int(a)``, ``complex(a)``, ``bool(a)``
  (size-1 arrays), ``a.item()``, ``a.tolist()``, ``repr``/``str``/``format`` work, as in CuPy,
  and are counted as ``"implicit"`` device-to-host syncs. ``a.get()`` / ``xp.asnumpy(a)`` copy to
  the host (counted ``"get"``). There is no ``__index__`` (CuPy has none).
* **No host operands.** A ``numpy.ndarray`` (0-d included) as an input of a ufunc, an operator
  or any namespace function raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``, as
  CuPy does; Python and NumPy *scalars* are fine. NumPy functions called on stand-in arrays
  dispatch through ``__array_ufunc__`` / ``__array_function__`` to the stand-in, like CuPy's.
* **Assignment** ``a[basic index] = host_array`` raises CuPy's ``ValueError('non-scalar
  numpy.ndarray cannot be used for fill')`` (0-d host arrays and scalars fill); with an
  advanced (integer-array or mask) index CuPy copies the host value over: allowed, counted
  ``"h2d"``. Host arrays (and lists) used *as indices* are copied over too (``"h2d"``); a
  boolean-mask index needs the result size on the host (``"implicit"``).
* **Copies, not aliases.** ``xp.asarray(host)`` / ``xp.array(host)`` copy (counted ``"h2d"``),
  so a later change of the host array is not seen on the "device"; ``.get()`` copies back.
  Basic indexing returns views, 0-d ones included (``a[i, j]`` is a 0-d array, not a scalar).
* **Only CuPy's API.** The namespace exposes only names the CuPy in use has (``import cupy``
  works without a GPU: it is introspected, nothing is allocated; without CuPy, the committed
  CuPy 13 description ``tests/fixtures/cupy_api/cupy13.json`` is used). Array methods likewise.
  Keyword arguments are checked against CuPy's signatures: a keyword CuPy would reject (e.g.
  ``where=`` of a ufunc, ``mode=`` of ``take``, ``initial=`` of ``sum``) raises ``TypeError``.
  Names CuPy has but the stand-in does not implement raise ``AttributeError`` saying so.
* ``xp.random.default_rng(seed)`` gives a generator with ``cupy.random.Generator``'s methods
  (``random(size, dtype, out)`` with CuPy's ``out`` checks, ``integers``, ``standard_normal``,
  ...) drawing stand-in arrays.
* ``xp.cuda.Device(i)`` (context manager, ``use``, ``synchronize``),
  ``xp.cuda.get_current_stream().synchronize()``, ``xp.get_default_memory_pool()
  .free_all_blocks()`` are no-ops that count their calls (``"device"``, ``"synchronize"``,
  ``"free_all_blocks"``).

Not modelled (NumPy's behaviour stands): dtype promotion and rounding (so parity on the stand-in
is exact: precision is what the real-GPU run measures), asynchronous execution and streams,
device memory and its limits, CuPy's random streams, lists passed where CuPy wants an array to
a function other than ``asarray``/``array``.

Counts are in ``xp.counters`` (a :class:`collections.Counter`); ``xp.listeners`` receives every
counted event as ``(kind, detail, where)``, ``where`` the innermost ``xpnet/`` source line.
Transfers are the kinds in :data:`TRANSFER_KINDS`.

The module registers the namespace as ``sys.modules["strict_cupy"]`` and names the array type's
module ``strict_cupy``, as CuPy's arrays name ``cupy``: xpnet finds an array's module through
``type(array).__module__`` (``xpnet/optimizers.py``, ``xpnet/parameters.py``).

:func:`describe_cupy` (the introspection) is also what ``tests/fixtures/cupy_api/make_cupy13.py``
runs under CuPy 13 to write the fixture; it needs nothing but NumPy and the given CuPy module.
"""

from __future__ import annotations

import collections
import inspect
import json
import numbers
import os
import re
import sys
import traceback
import types
import warnings

import numpy as np

__all__ = ["StrictDevice", "TRANSFER_KINDS", "describe_cupy", "load_spec", "ndarray", "xp"]

MODULE_NAME = "strict_cupy"
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cupy_api",
                       "cupy13.json")
TRANSFER_KINDS = ("get", "implicit", "h2d", "synchronize")

# ============================================================================ CuPy description
# Modules and classes described (everything xpnet, its tests and benchmarks can reach).
SPEC_MODULES = ("cupy", "cupy.random", "cupy.cuda", "cupy.cuda.runtime", "cupy.linalg")
CALLABLES_ONLY = ("cupy.cuda.runtime",)  # its hundreds of integer constants are left out
SPEC_CLASSES = ("cupy.ndarray", "cupy.random.Generator", "cupy.cuda.Device", "cupy.cuda.Stream",
                "cupy.cuda.MemoryPool")
# Special methods whose presence matters to strictness (conversions, NumPy protocols).
SPEC_DUNDERS = ("__array__", "__array_function__", "__array_interface__", "__array_struct__",
                "__array_ufunc__", "__bool__", "__buffer__", "__complex__", "__copy__",
                "__cuda_array_interface__", "__deepcopy__", "__dlpack__", "__float__",
                "__index__", "__int__", "__iter__", "__len__")
# Keywords NumPy's ufuncs take; each is offered to every CuPy ufunc, which rejects an unknown
# one with ``TypeError('Wrong arguments ...')`` before it looks at its arguments or the GPU.
UFUNC_PROBE_KEYWORDS = ("axes", "axis", "casting", "dtype", "keepdims", "order", "out",
                        "signature", "subok", "where")


def _split_params(text):
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def keywords_from_text(line):
    """``(keywords, varkw)`` from a signature line such as Cython's embedded
    ``"_ndarray_base.sum(self, axis=None, dtype=None, out=None, keepdims=False) -> ..."`` or
    ``"get_current_stream(int device_id=-1)"``; None when the line is not a signature."""
    start = line.find("(")
    if start < 1 or not re.match(r"^[\w.]+$", line[:start].strip()):
        return None
    depth = 0
    for end in range(start, len(line)):
        depth += {"(": 1, ")": -1}.get(line[end], 0)
        if depth == 0:
            break
    else:
        return None
    params = _split_params(line[start + 1:end])
    if "/" in params:
        params = params[params.index("/") + 1:]
    keywords, varkw = [], False
    for p in params:
        if p.startswith("**"):
            varkw = True
            continue
        if p.startswith("*") or not p:
            continue
        name = p.split("=")[0].split(":")[0].strip().split()[-1]
        if name != "self" and name.isidentifier():
            keywords.append(name)
    return keywords, varkw


def _callable_spec(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        P = inspect.Parameter
        keywords = [p.name for p in sig.parameters.values()
                    if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY) and p.name != "self"]
        varkw = any(p.kind == P.VAR_KEYWORD for p in sig.parameters.values())
        return {"keywords": keywords, **({"varkw": True} if varkw else {})}
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    parsed = keywords_from_text(doc[0]) if doc else None
    if parsed is None:
        return {"keywords": None, "varkw": True}  # unknown: not checked
    return {"keywords": parsed[0], **({"varkw": True} if parsed[1] else {})}


_REJECTED = ("Wrong arguments", "Unknown kwargs", "unexpected keyword argument")


def _probe_keywords(fn):
    """The keywords of :data:`UFUNC_PROBE_KEYWORDS` that CuPy's (g)ufunc ``fn`` accepts: it
    rejects an unknown one (``Wrong arguments`` / ``Unknown kwargs`` / ``unexpected keyword``)
    before it looks at its (here missing) arguments or at a GPU."""
    accepted = []
    for key in UFUNC_PROBE_KEYWORDS:
        try:
            fn(**{key: None})
        except Exception as exc:  # noqa: BLE001  (anything else got past the keyword check)
            if any(marker in str(exc) for marker in _REJECTED):
                continue
        accepted.append(key)
    return accepted


def _ufunc_spec(uf):
    return {"kind": "ufunc", "keywords": _probe_keywords(uf), "nin": int(uf.nin),
            "nout": int(uf.nout)}


def _describe(obj, name, numpy_module):
    is_numpys = numpy_module is not None and getattr(numpy_module, name, None) is obj
    same = {"numpy": True} if is_numpys else {}
    if type(obj).__name__ == "ufunc" and type(obj).__module__.startswith("cupy"):
        return _ufunc_spec(obj)
    if type(obj).__name__ == "_GUFunc":  # matmul: (*args, **kwargs) in CuPy 13
        return {"kind": "function", "keywords": _probe_keywords(obj)}
    if isinstance(obj, types.ModuleType) or type(obj).__name__ == "_LazyModule":
        return {"kind": "module"}
    if isinstance(obj, type):
        return {"kind": "class", **same}
    if callable(obj):
        return {"kind": "function", **same, **_callable_spec(obj)}
    return {"kind": "constant", **same}


def _resolve(root, dotted):
    obj = root
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def describe_cupy(cupy) -> dict:
    """A JSON-able description of ``cupy``'s public API: for each name of :data:`SPEC_MODULES`
    its kind (ufunc, function, class, constant, module), the keyword arguments it accepts
    (None when they cannot be introspected) and whether it is NumPy's own object; for each class
    of :data:`SPEC_CLASSES` its public methods and attributes (and :data:`SPEC_DUNDERS`).
    Imports nothing but what is given; allocates nothing on a GPU."""
    modules = {}
    for dotted in SPEC_MODULES:
        mod = _resolve(cupy, dotted)
        np_mod = {"cupy": np, "cupy.random": np.random, "cupy.linalg": np.linalg}.get(dotted)
        entries = {}
        for name in sorted(dir(mod)):
            if name.startswith("_"):
                continue
            try:
                obj = getattr(mod, name)
            except Exception:  # noqa: BLE001  (a lazy attribute that needs a GPU)
                continue
            if dotted in CALLABLES_ONLY and not callable(obj):
                continue
            entries[name] = _describe(obj, name, np_mod)
        modules[dotted] = entries
    classes = {}
    for dotted in SPEC_CLASSES:
        cls = _resolve(cupy, dotted)
        entries = {}
        for name in sorted(dir(cls)):
            if name.startswith("_") and name not in SPEC_DUNDERS:
                continue
            attr = inspect.getattr_static(cls, name, None)
            if name in SPEC_DUNDERS:
                entries[name] = {"kind": "special"}
            elif callable(attr) and not isinstance(attr, (property, type)) \
                    and type(attr).__name__ != "getset_descriptor":
                entries[name] = {"kind": "method", **_callable_spec(getattr(cls, name))}
            else:
                entries[name] = {"kind": "attribute"}
        classes[dotted] = entries
    return {"cupy_version": cupy.__version__, "modules": modules, "classes": classes}


_SPEC = None


def load_spec() -> dict:
    """The description of the installed CuPy (introspected once), or of CuPy 13 from the
    committed fixture when CuPy cannot be imported (``spec["source"]`` says which)."""
    global _SPEC
    if _SPEC is None:
        try:
            import cupy  # noqa: PLC0415  (importing works without a GPU; nothing is allocated)

            _SPEC = describe_cupy(cupy)
            _SPEC["source"] = f"installed cupy {cupy.__version__}"
        except Exception:  # noqa: BLE001  (not installed, or a broken install)
            with open(FIXTURE) as f:
                _SPEC = json.load(f)
            _SPEC["source"] = f"{os.path.relpath(FIXTURE)} (cupy {_SPEC['cupy_version']})"
    return _SPEC


# ============================================================================ counting
class _Counts(collections.Counter):
    """Counted events by kind; ``since(snapshot)`` gives the increase since ``dict(self)``."""

    def since(self, snapshot) -> dict:
        return {k: v - snapshot.get(k, 0) for k, v in self.items() if v != snapshot.get(k, 0)}

    def transfers_since(self, snapshot) -> int:
        return sum(v for k, v in self.since(snapshot).items() if k in TRANSFER_KINDS)


def _xpnet_dir():
    mod = sys.modules.get("xpnet")
    return os.path.dirname(os.path.abspath(mod.__file__)) if mod and mod.__file__ else None


def _where() -> str:
    """``file:line`` of the innermost frame in ``xpnet/`` (outside backend.py) on the stack."""
    root = _xpnet_dir()
    if root is None:
        return "outside xpnet"
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if path.startswith(root + os.sep) and not path.endswith("backend.py"):
            return f"{os.path.relpath(path, os.path.dirname(root))}:{frame.lineno}"
    return "outside xpnet"


# ============================================================================ arrays
_PY_SCALARS = (bool, int, float, complex)
_HOST_HINT = ("(strict CuPy stand-in: CuPy does not take host numpy.ndarray operands; send "
              "the array to the device first, e.g. device.send(a) / xp.asarray(a))")
_IMPLICIT_MSG = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                 "construct a NumPy array explicitly.")


def _is_scalar(x) -> bool:
    return isinstance(x, _PY_SCALARS) or isinstance(x, np.generic)


def _unsupported(x):
    msg = f"Unsupported type {type(x)}"
    if isinstance(x, np.ndarray):
        msg += f" {_HOST_HINT}"
    return TypeError(msg)


def _operand(x):
    """A ufunc / operator input: a stand-in array or a scalar, as CuPy's ``_preprocess_arg``."""
    if isinstance(x, ndarray):
        return x._a
    if _is_scalar(x):
        return x
    raise _unsupported(x)


def _unwrap(x):
    """A namespace function's argument: stand-in arrays unwrapped (also inside lists and tuples);
    a host ``numpy.ndarray`` anywhere is refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise _unsupported(x)
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v) for v in x)
    return x


def _out(x):
    if x is None:
        return None
    if not isinstance(x, ndarray):
        raise TypeError("Output arguments type must be cupy.ndarray")
    return x._a


def _wrap(r, outs=()):
    """NumPy results as stand-in arrays (NumPy scalars as 0-d arrays, as CuPy returns them);
    a result that is an ``out`` array comes back as that stand-in object."""
    if isinstance(r, np.ndarray):
        for o in outs:
            if o is not None and r is o._a:
                return o
        return ndarray._of(r)
    if isinstance(r, np.generic):
        return ndarray._of(np.asarray(r))
    if type(r) is tuple:
        return tuple(_wrap(v, outs) for v in r)
    if type(r) is list:
        return [_wrap(v, outs) for v in r]
    return r


def _check_keywords(where, spec, kwargs):
    if not kwargs or spec is None or spec.get("keywords") is None or spec.get("varkw"):
        return
    bad = [k for k in kwargs if k not in spec["keywords"]]
    if bad:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {', '.join(map(repr, bad))}"
                        f" (CuPy {load_spec()['cupy_version']} accepts: "
                        f"{', '.join(spec['keywords']) or 'none'})")


def _is_basic_key(key) -> bool:
    items = key if type(key) is tuple else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, slice)
               or (isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)))
               for k in items)


def _index(key):
    """An index with stand-in arrays unwrapped; host arrays and lists are copied over (CuPy
    runs them through ``cupy.array``), a boolean mask needs its count on the host."""
    if type(key) is tuple:
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        if key.dtype == np.bool_:
            _ns()._count("implicit", "boolean-mask index (result size read on the host)")
        return key._a
    if isinstance(key, (np.ndarray, list)):
        _ns()._count("h2d", f"host {type(key).__name__} used as an index")
        arr = np.asarray(key)
        if arr.dtype == np.bool_:
            _ns()._count("implicit", "boolean-mask index (result size read on the host)")
        return key
    return key


_HOST_METHODS = frozenset({"tobytes", "tofile", "dump", "dumps"})  # CuPy copies to the host


def _method_spec(name):
    return load_spec()["classes"]["cupy.ndarray"].get(name)


class ndarray:  # noqa: N801  (it stands in for cupy.ndarray)
    """A stand-in ``cupy.ndarray`` holding a NumPy array (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None  # unhashable, as cupy.ndarray

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the strict stand-in has no device memory pointers")
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # ------------------------------------------------------------------ attributes
    shape = property(lambda self: self._a.shape)

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    base = property(lambda self: None if self._a.base is None else ndarray._of(self._a.base))
    device = property(lambda self: _CudaDevice(0))

    if "mT" in dir(np.ndarray):
        mT = property(lambda self: ndarray._of(self._a.mT))

    def __getattr__(self, name):
        if name.startswith("__") or name == "_a":
            raise AttributeError(name)
        spec = _method_spec(name)
        if spec is None:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} (strict CuPy "
                                 f"stand-in, CuPy {load_spec()['cupy_version']})")
        attr = getattr(self._a, name, None)
        if attr is None or spec["kind"] != "method" or not callable(attr):
            raise AttributeError(f"cupy.ndarray.{name} is not implemented by the strict CuPy "
                                 f"stand-in (tests/strict_device.py)")

        def method(*args, **kwargs):
            _check_keywords(f"cupy.ndarray.{name}", spec, kwargs)
            if name in _HOST_METHODS:
                self._sync(f"{name}()")
            out = kwargs.get("out")
            if "out" in kwargs:
                kwargs["out"] = _out(out)
            return _wrap(attr(*_unwrap(args), **{k: v if k == "out" else _unwrap(v)
                                                 for k, v in kwargs.items()}), (out,))

        method.__name__ = name
        return method

    # ------------------------------------------------------------------ host transfers
    def get(self, stream=None, order="C", out=None, blocking=True):
        """A host copy (counted as ``"get"``)."""
        _ns()._count("get", f"ndarray.get() of {self.shape} {self.dtype}")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy the host array ``arr`` in (counted as ``"h2d"``)."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch")
        _ns()._count("h2d", f"ndarray.set() of {arr.shape} {arr.dtype}")
        np.copyto(self._a, arr)

    def _sync(self, what):
        _ns()._count("implicit", f"{what} of a {self.shape} {self.dtype} array")

    def item(self, *args):
        self._sync("item()")
        return self._a.item(*args)

    def tolist(self):
        self._sync("tolist()")
        return self._a.tolist()

    def __float__(self):
        self._sync("float()")
        return float(self._a)

    def __int__(self):
        self._sync("int()")
        return int(self._a)

    def __complex__(self):
        self._sync("complex()")
        return complex(self._a)

    def __bool__(self):
        if self.size == 0:
            warnings.warn("The truth value of an empty array is ambiguous. Returning False, but "
                          "in future this will result in an error. Use `array.size > 0` to "
                          "check that an array is not empty.", DeprecationWarning, stacklevel=2)
            return False
        if self.size == 1:
            self._sync("bool()")
            return bool(self._a)
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all()")

    def __repr__(self):
        self._sync("repr()")
        return repr(self._a)

    def __str__(self):
        self._sync("str()")
        return str(self._a)

    def __format__(self, spec):
        self._sync("format()")
        return format(self._a, spec)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT_MSG)

    # ------------------------------------------------------------------ copies
    def copy(self, order="C"):
        return ndarray._of(self._a.copy(order=order))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        kwargs = {"order": order, "copy": copy}
        if casting is not None:
            kwargs["casting"] = casting
        r = self._a.astype(dtype, **kwargs)
        return self if r is self._a else ndarray._of(r)

    def fill(self, value):
        if isinstance(value, ndarray):
            if value.shape != ():
                raise ValueError("non-scalar cupy.ndarray cannot be used for fill")
            value = value._a
        else:
            value = np.asarray(value, dtype=self.dtype)
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(value)

    # ------------------------------------------------------------------ containers
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        key = _index(key)
        if _is_basic_key(key) and not (type(key) is tuple and Ellipsis in key) \
                and key is not Ellipsis:
            key = (key if type(key) is tuple else (key,)) + (Ellipsis,)  # a view, 0-d included
        return _wrap(self._a[key])

    def __setitem__(self, key, value):
        key = _index(key)
        if isinstance(value, ndarray):
            self._a[key] = value._a
            return
        if _is_basic_key(key) or key is Ellipsis:
            # CuPy's _scatter_op('update') on a view: anything but a device array goes to fill()
            value = np.asarray(value, dtype=self.dtype)
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            self._a[key] = value[()]
            return
        if isinstance(value, (np.ndarray, list, tuple)):
            _ns()._count("h2d", f"host {type(value).__name__} assigned through an advanced index")
        self._a[key] = value

    # ------------------------------------------------------------------ NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """As CuPy: run the stand-in ufunc of the same name (which refuses host arrays)."""
        inout = inputs
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            inout += out
            kwargs["out"] = out[0]
        if method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        try:
            func = getattr(_ns(), ufunc.__name__)
            if method != "__call__":
                func = getattr(func, method)
        except AttributeError:
            return NotImplemented
        for x in inout:
            if not (_is_scalar(x) or isinstance(x, (ndarray, np.ndarray))):
                return NotImplemented
        if ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal",
                              "not_equal"):
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        return func(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        """As CuPy: ``numpy.f(stand-in array)`` calls the stand-in's ``f`` when it has one."""
        try:
            target = _ns()
            for part in func.__module__.split(".")[1:]:
                target = getattr(target, part)
            impl = getattr(target, func.__name__)
        except AttributeError:
            return NotImplemented
        if not all(issubclass(t, (ndarray, np.ndarray)) for t in types_):
            return NotImplemented
        return impl(*args, **kwargs)

    def __neg__(self):
        return _ns().negative(self)

    def __pos__(self):
        return _ns().positive(self)

    def __abs__(self):
        return _ns().absolute(self)

    def __invert__(self):
        return _ns().invert(self)


def _binary_operator(ufunc_name, reflected=False, inplace=False):
    def op(self, other):
        uf = getattr(_ns(), ufunc_name)
        if inplace:
            return uf(self, other, out=self)
        return uf(other, self) if reflected else uf(self, other)

    return op


def _comparison(ufunc_name, never_equal):
    def op(self, other):
        if never_equal is not None and (other is None or type(other).__eq__ is object.__eq__):
            return _ns().full(self.shape, never_equal, dtype=np.bool_)  # as CuPy
        if isinstance(other, np.ndarray) and other.ndim == 0:
            other = other.item()  # as CuPy
        return getattr(_ns(), ufunc_name)(self, other)

    return op


for _name, _uf in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                   ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                   ("pow", "power"), ("matmul", "matmul"), ("and", "bitwise_and"),
                   ("or", "bitwise_or"), ("xor", "bitwise_xor"), ("lshift", "left_shift"),
                   ("rshift", "right_shift")):
    setattr(ndarray, f"__{_name}__", _binary_operator(_uf))
    setattr(ndarray, f"__r{_name}__", _binary_operator(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _binary_operator(_uf, inplace=True))
for _name, _uf, _never in (("eq", "equal", False), ("ne", "not_equal", True),
                           ("lt", "less", None), ("le", "less_equal", None),
                           ("gt", "greater", None), ("ge", "greater_equal", None)):
    setattr(ndarray, f"__{_name}__", _comparison(_uf, _never))
del _name, _uf, _never


ndarray.__module__ = MODULE_NAME
ndarray.__qualname__ = "ndarray"


# ============================================================================ namespace objects
class _Ufunc:
    """A stand-in CuPy ufunc: scalars and stand-in arrays only, CuPy's keywords only."""

    def __init__(self, name, np_ufunc, spec):
        self.name, self._np, self._spec = name, np_ufunc, spec
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout
        self.nargs = self.nin + self.nout
        self.__name__ = name

    def __repr__(self):
        return f"<ufunc 'strict_cupy.{self.name}'>"

    def __call__(self, *args, **kwargs):
        accepted = self._spec["keywords"]
        bad = {k: v for k, v in kwargs.items() if k not in accepted}
        if bad:
            raise TypeError(f"Wrong arguments {sorted(bad)}: cupy.{self.name} takes only the "
                            f"keywords {', '.join(accepted)} (strict CuPy stand-in)")
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either "
                            f"{self.nin} or {self.nargs} (with outputs), but given {len(args)}.")
        outs = list(args[self.nin:])
        out = kwargs.pop("out", None)
        if out is not None:
            if outs:
                raise ValueError("Cannot specify 'out' as both a positional and keyword argument")
            outs = list(out) if isinstance(out, tuple) else [out]
        ins = [_operand(a) for a in args[:self.nin]]
        np_outs = [_out(o) for o in outs]
        if np_outs:
            kwargs["out"] = tuple(np_outs) + (None,) * (self.nout - len(np_outs))
        return _wrap(self._np(*ins, **kwargs), tuple(o for o in outs if o is not None))


class _Function:
    """A stand-in CuPy function: NumPy's implementation behind CuPy's rules."""

    def __init__(self, qualname, impl, spec, unwrap=True):
        self._qualname, self._impl, self._spec, self._unwrap = qualname, impl, spec, unwrap
        self.__name__ = qualname.rpartition(".")[2]
        self.__doc__ = f"strict stand-in for {qualname}"

    def __repr__(self):
        return f"<strict stand-in for {self._qualname}>"

    def __call__(self, *args, **kwargs):
        _check_keywords(self._qualname, self._spec, kwargs)
        if not self._unwrap:
            return self._impl(*args, **kwargs)
        out = kwargs.get("out")
        if "out" in kwargs:
            kwargs["out"] = _out(out)
        args = _unwrap(args)
        kwargs = {k: v if k == "out" else _unwrap(v) for k, v in kwargs.items()}
        return _wrap(self._impl(*args, **kwargs), (out,))


def _to_device(obj, dtype=None, copy=True, order="K", ndmin=0, what="asarray"):
    if isinstance(obj, ndarray):
        r = np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        return obj if r is obj._a else ndarray._of(r)
    if type(obj) in (list, tuple) and any(isinstance(v, ndarray) for v in obj):
        return _ns().stack(list(obj)).astype(dtype) if dtype is not None else \
            _ns().stack(list(obj))
    _ns()._count("h2d", f"xp.{what}() of a host {type(obj).__name__}")
    return ndarray._of(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return _to_device(a, dtype=dtype, copy=copy, order=order or "K")


def _array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    return _to_device(obj, dtype=dtype, copy=copy, order=order, ndmin=ndmin, what="array")


def _asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def _get_array_module(*args):
    return _ns() if any(isinstance(a, ndarray) for a in args) else np


class _CudaDevice:
    """``cupy.cuda.Device``: the stand-in has one device, 0."""

    _stack: list = []

    def __init__(self, device=None):
        self.id = int(device) if device is not None else (
            _CudaDevice._stack[-1] if _CudaDevice._stack else 0)

    def _check(self):
        if self.id != 0:
            raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal (strict CuPy "
                               "stand-in: it has only device 0)")

    def __enter__(self):
        self._check()
        _ns()._count("device", f"cuda.Device({self.id}) entered")
        _CudaDevice._stack.append(self.id)
        return self

    def __exit__(self, *exc):
        _CudaDevice._stack.pop()
        return False

    def use(self):
        self._check()
        _ns()._count("device", f"cuda.Device({self.id}).use()")

    def synchronize(self):
        _ns()._count("synchronize", "cuda.Device.synchronize()")

    @property
    def compute_capability(self):
        return "90"

    def __eq__(self, other):
        return isinstance(other, _CudaDevice) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id} (strict stand-in)>"


class _Stream:
    null = None

    def synchronize(self):
        _ns()._count("synchronize", "Stream.synchronize()")

    def use(self):
        return self

    done = property(lambda self: True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_STREAM = _Stream()
_Stream.null = _STREAM


class _MemoryPool:
    def free_all_blocks(self, stream=None):
        _ns()._count("free_all_blocks", "MemoryPool.free_all_blocks()")

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_POOL, _PINNED_POOL = _MemoryPool(), _MemoryPool()


class _Generator:
    """``cupy.random.Generator``: NumPy's PCG64 underneath, stand-in arrays out, CuPy's methods
    and keywords only."""

    def __init__(self, seed=None):
        if isinstance(seed, ndarray):
            seed = seed.get()
        self._rng = np.random.default_rng(np.random.SeedSequence(seed)
                                          if not isinstance(seed, np.random.SeedSequence)
                                          else seed)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        spec = load_spec()["classes"]["cupy.random.Generator"].get(name)
        if spec is None or spec["kind"] != "method":
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r} "
                                 f"(strict CuPy stand-in)")
        impl = getattr(self._rng, name, None)
        if impl is None:
            raise AttributeError(f"cupy.random.Generator.{name} is not implemented by the "
                                 f"strict CuPy stand-in")
        return _Function(f"cupy.random.Generator.{name}", impl, spec)

    def _spec(self, name):
        return load_spec()["classes"]["cupy.random.Generator"][name]

    def _check_out(self, dtype, size, out):  # CuPy's Generator._check_output_array
        if not isinstance(out, ndarray):
            raise TypeError("Output arguments type must be cupy.ndarray")
        dtype = np.dtype(dtype)
        if out.dtype.char != dtype.char:
            raise TypeError(f"Supplied output array has the wrong type. Expected {dtype.name}, "
                            f"got {out.dtype.name}")
        if not out.flags.c_contiguous and not out.flags.f_contiguous:
            raise ValueError("Supplied output array is not contiguous, writable or aligned.")
        if size is not None:
            try:
                tup = tuple(size)
            except TypeError:
                tup = (size,)
            if tup != out.shape:
                raise ValueError("size must match out.shape when used together")

    def _draw(self, name, size, dtype, out, **kw):
        _check_keywords(f"cupy.random.Generator.{name}", self._spec(name), kw | {"size": size,
                        "dtype": dtype, "out": out})
        if out is not None:
            self._check_out(dtype, size, out)
        dtype = np.dtype(dtype)
        if dtype.char not in "fd":
            raise TypeError(f"Unsupported dtype {dtype.name} for {name}")
        values = getattr(self._rng, name)(size=size if out is None else out.shape, dtype=dtype)
        if out is not None:
            out._a[...] = values
            return out
        return _wrap(values)

    def random(self, size=None, dtype=np.float64, out=None):
        return self._draw("random", size, dtype, out)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return self._draw("standard_normal", size, dtype, out)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _wrap(self._rng.integers(low, high, size=size, dtype=dtype, endpoint=endpoint))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _wrap(self._rng.uniform(low, high, size=size).astype(dtype, copy=False))


class _Namespace(types.ModuleType):
    """A stand-in for a CuPy module: only the names CuPy has, NumPy's implementations."""

    def __init__(self, name, cupy_name, overrides):
        super().__init__(name)
        self._cupy_name, self._overrides = cupy_name, overrides

    def _entries(self):
        return load_spec()["modules"][self._cupy_name]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        entry = self._entries().get(name)
        if entry is None:
            raise AttributeError(f"module {self._cupy_name!r} has no attribute {name!r} (strict "
                                 f"CuPy stand-in, {load_spec()['source']})")
        value = self._resolve(name, entry)
        setattr(self, name, value)  # cached
        return value

    def _resolve(self, name, entry):
        qual = f"{self._cupy_name}.{name}"
        if name in self._overrides:
            value = self._overrides[name]
            if isinstance(value, tuple):  # (implementation, unwrap arguments?)
                return _Function(qual, value[0], entry, unwrap=value[1])
            return value
        np_mod = {"cupy": np, "cupy.random": np.random, "cupy.linalg": np.linalg}.get(
            self._cupy_name)
        np_obj = getattr(np_mod, name, None) if np_mod is not None else None
        kind = entry["kind"]
        if kind == "ufunc" and isinstance(np_obj, np.ufunc):
            return _Ufunc(name, np_obj, entry)
        if kind in ("class", "constant") and np_obj is not None:
            return np_obj
        if kind == "function" and entry.get("numpy") and np_obj is not None:
            return np_obj  # CuPy re-exports NumPy's own (dtype helpers)
        if kind == "function" and callable(np_obj) and self._cupy_name in ("cupy", "cupy.linalg"):
            return _Function(qual, np_obj, entry)
        raise AttributeError(f"{qual} exists in CuPy but is not implemented by the strict CuPy "
                             f"stand-in (add it to tests/strict_device.py)")

    def __dir__(self):
        return sorted(self._entries())


class _Root(_Namespace):
    """The stand-in ``cupy`` module, with the counters."""

    def __init__(self):
        super().__init__(MODULE_NAME, "cupy", {})
        self.counters = _Counts()
        self.listeners = []

    def _count(self, kind, detail=""):
        self.counters[kind] += 1
        if self.listeners:
            where = _where()
            for fn in list(self.listeners):
                fn(kind, detail, where)

    def reset_counters(self):
        self.counters.clear()


xp = _Root()
xp._overrides.update({
    "ndarray": ndarray,
    "asarray": (_asarray, False),
    "array": (_array, False),
    "asnumpy": (_asnumpy, False),
    "get_array_module": (_get_array_module, False),
    "get_default_memory_pool": (lambda: _POOL, False),
    "get_default_pinned_memory_pool": (lambda: _PINNED_POOL, False),
    "random": _Namespace(f"{MODULE_NAME}.random", "cupy.random", {
        "default_rng": (_Generator, False),
        "Generator": _Generator,
    }),
    "cuda": _Namespace(f"{MODULE_NAME}.cuda", "cupy.cuda", {
        "Device": _CudaDevice,
        "Stream": _Stream,
        "MemoryPool": _MemoryPool,
        "get_current_stream": (lambda device_id=-1: _STREAM, False),
        "get_device_id": (lambda: _CudaDevice().id, False),
        "is_available": (lambda: True, False),
        "runtime": _Namespace(f"{MODULE_NAME}.cuda.runtime", "cupy.cuda.runtime", {
            "getDeviceCount": (lambda: 1, False),
            "getDevice": (lambda: _CudaDevice().id, False),
            "deviceSynchronize": (lambda: xp._count("synchronize", "runtime.deviceSynchronize()"),
                                  False),
        }),
    }),
})
sys.modules[MODULE_NAME] = xp


def _ns() -> _Root:
    return xp


def StrictDevice():  # noqa: N802  (a factory that reads like the class it returns)
    """An :class:`xpnet.backend.Device` named ``cuda:0`` (``is_gpu``) computing with the strict
    stand-in namespace :data:`xp`."""
    from xpnet.backend import Device  # noqa: PLC0415  (describe_cupy must not need xpnet)

    return Device("cuda:0", xp, _index=0)
