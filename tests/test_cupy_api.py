"""Static check: every CuPy function and array method xpnet calls exists in CuPy 13 and in CuPy 14,
and takes the keyword arguments xpnet passes.

xpnet is written once against an array module ``xp`` (NumPy or CuPy). A NumPy-only function or
keyword (``np.take(..., mode=)``, a ufunc's ``where=``, ``sum(initial=)``) passes every CPU test
and fails only on a GPU. This test reads ``xpnet/**/*.py`` with :mod:`ast` and collects:

* calls and attributes on the array module: ``xp.<name>``, ``self.xp.<name>``,
  ``device.xp.<name>``, ``net.xp.<name>`` (any ``<expr>.xp``), and ``cp`` / ``cupy`` in the
  backend, following sub-modules (``xp.random.default_rng``, ``cp.cuda.runtime.getDeviceCount``);
* methods of objects those return: ``xp.cuda.get_current_stream().synchronize()``,
  ``xp.get_default_memory_pool().free_all_blocks()``, and the device random generator's
  ``random(size, dtype=, out=)`` (``<device>.rng(...)`` and the dropout layer's ``self.rng``);
* array methods: any ``<expr>.<m>(...)`` whose ``m`` is a public ``numpy.ndarray`` method and
  whose receiver is not an imported module (``.sum(axis=, out=)``, ``.astype(dtype, copy=)``,
  ``.argmax(axis=)``, ...). Host-only calls (MNIST parsing, scaling) are checked too: harmless,
  and it keeps the rule simple.

Each use is checked against ``tests/fixtures/cupy_api/cupy13.json`` (CuPy 13.6, written by
``make_cupy13.py`` in that directory) and against the installed CuPy, introspected live (CuPy 14;
skipped, saying why, when CuPy cannot be imported). The introspection is
``strict_device.describe_cupy``; the strict stand-in enforces the same description at run time.
A use CuPy rejects is a real GPU bug: fix it in xpnet (or, while it is open, mark its parameter
``xfail(strict=True)`` with the file:line and the fix in :data:`KNOWN_INCOMPATIBLE`).
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import strict_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XPNET = os.path.join(ROOT, "xpnet")
FIXTURE13 = strict_device.FIXTURE

ARRAY_MODULE_NAMES = {"xp", "cp", "cupy"}  # local names of the array module (any ``<expr>.xp`` too)
SUBMODULES = {"random": "cupy.random", "cuda": "cupy.cuda", "linalg": "cupy.linalg",
              "runtime": "cupy.cuda.runtime"}
RETURNS = {  # what a CuPy call returns, when xpnet calls a method on the result
    ("cupy.cuda", "get_current_stream"): "cupy.cuda.Stream",
    ("cupy.cuda", "Device"): "cupy.cuda.Device",
    ("cupy", "get_default_memory_pool"): "cupy.cuda.MemoryPool",
    ("cupy.random", "default_rng"): "cupy.random.Generator",
}
NDARRAY_METHODS = {m for m in dir(np.ndarray) if not m.startswith("_")}
# Uses CuPy rejects that are not fixed yet: {(owner, name, keywords): "file:line: the fix"}.
KNOWN_INCOMPATIBLE: dict[tuple, str] = {}


@dataclass(frozen=True)
class Use:
    owner: str  # "cupy", "cupy.random", "cupy.ndarray", "cupy.random.Generator", ...
    name: str
    keywords: tuple  # keyword arguments passed (sorted); () for attribute reads
    call: bool

    def label(self) -> str:
        args = f"({', '.join(k + '=' for k in self.keywords)})" if self.call else ""
        return f"{self.owner}.{self.name}{args}"


def _is_array_module(node) -> bool:
    return (isinstance(node, ast.Name) and node.id in ARRAY_MODULE_NAMES) or \
        (isinstance(node, ast.Attribute) and node.attr == "xp")


def _module_chain(node):
    """``(cupy module, name)`` for ``xp.a.b`` (``("cupy.random", "default_rng")`` for
    ``xp.random.default_rng``), or None when ``node`` is not an attribute of the array module."""
    parts = []
    while isinstance(node, ast.Attribute) and not _is_array_module(node):
        parts.append(node.attr)
        node = node.value
    if not _is_array_module(node) or not parts:
        return None
    parts.reverse()
    module = "cupy"
    for part in parts[:-1]:
        if part not in SUBMODULES:
            return None
        module = SUBMODULES[part]
    return module, parts[-1]


def _is_device_generator(node, path) -> bool:
    """``<device>.rng(...)`` (Device.rng) or a layer's ``self.rng`` (the dropout stream)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "rng":
        return True
    return (os.sep + "layers" + os.sep in path and isinstance(node, ast.Attribute)
            and node.attr == "rng" and isinstance(node.value, ast.Name)
            and node.value.id == "self")


def _imported_modules(tree) -> set:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


# Modules that only ever hold host data of other libraries, whose methods share names with
# ndarray's (Pillow's Image.resize(box=...) is not cupy.ndarray.resize).
HOST_ONLY = {"imaging.py"}


def scan(root=XPNET) -> dict[Use, list[str]]:
    """``{use: ["xpnet/file.py:line", ...]}`` for every CuPy use in the package at ``root``."""
    uses: dict[Use, list[str]] = {}

    def add(use, path, node):
        where = f"{os.path.relpath(path, os.path.dirname(root))}:{node.lineno}"
        uses.setdefault(use, []).append(where)

    for dirpath, _, files in os.walk(root):
        for fname in sorted(files):
            if not fname.endswith(".py") or fname in HOST_ONLY:
                continue
            path = os.path.join(dirpath, fname)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            modules = _imported_modules(tree) - ARRAY_MODULE_NAMES
            called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and id(node) not in called:
                    hit = _module_chain(node)
                    if hit and hit[1] not in SUBMODULES:
                        add(Use(*hit, (), False), path, node)
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                keywords = tuple(sorted(k.arg for k in node.keywords if k.arg))
                hit = _module_chain(node.func)
                if hit:
                    add(Use(*hit, keywords, True), path, node)
                    continue
                receiver, method = node.func.value, node.func.attr
                if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute):
                    made = _module_chain(receiver.func)
                    if made in RETURNS:
                        add(Use(RETURNS[made], method, keywords, True), path, node)
                        continue
                if _is_device_generator(receiver, path):
                    add(Use("cupy.random.Generator", method, keywords, True), path, node)
                    continue
                if method in NDARRAY_METHODS and _module_chain(receiver) is None \
                        and not _is_array_module(receiver) \
                        and not (isinstance(receiver, ast.Name) and receiver.id in modules):
                    add(Use("cupy.ndarray", method, keywords, True), path, node)
    return uses


USES = scan()


def check(use: Use, spec: dict) -> str | None:
    """Why CuPy (described by ``spec``) rejects ``use``; None when it accepts it."""
    version = spec["cupy_version"]
    table = spec["modules"].get(use.owner) or spec["classes"].get(use.owner)
    if table is None:
        return f"the description of CuPy {version} has no {use.owner}"
    entry = table.get(use.name)
    if entry is None:
        return f"CuPy {version} has no {use.owner}.{use.name}"
    if not use.keywords:
        return None
    if entry["kind"] in ("class", "constant", "module", "attribute"):
        return None if entry["kind"] == "class" else \
            f"CuPy {version}'s {use.owner}.{use.name} is a {entry['kind']}, not callable"
    accepted = entry.get("keywords")
    if accepted is None or entry.get("varkw"):
        return None  # CuPy does not say: nothing to check against
    bad = [k for k in use.keywords if k not in accepted]
    if bad:
        return (f"CuPy {version}'s {use.owner}.{use.name} does not take "
                f"{', '.join(k + '=' for k in bad)} (it takes: {', '.join(accepted) or 'none'})")
    return None


def _cupy13():
    with open(FIXTURE13) as f:
        return json.load(f)


_LIVE: dict = {}


def _cupy_installed():
    if "spec" not in _LIVE:
        try:
            import cupy  # noqa: PLC0415  (importing works without a GPU; nothing is allocated)
        except Exception as exc:  # noqa: BLE001  (not installed, or broken)
            _LIVE["spec"], _LIVE["why"] = None, f"CuPy cannot be imported ({exc})"
        else:
            _LIVE["spec"] = strict_device.describe_cupy(cupy)
            _LIVE["why"] = ""
    if _LIVE["spec"] is None:
        pytest.skip(f"the CuPy-14 half needs CuPy installed: {_LIVE['why']}")
    return _LIVE["spec"]


def _params():
    out = []
    for use, where in sorted(USES.items(), key=lambda kv: kv[0].label()):
        marks = []
        key = (use.owner, use.name, use.keywords)
        if key in KNOWN_INCOMPATIBLE:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_INCOMPATIBLE[key]))
        out.append(pytest.param(use, where, id=use.label(), marks=marks))
    return out


# ------------------------------------------------------------------------------------- tests
def test_scanner_finds_the_device_code():
    """Guards the scanner itself: the calls every training step makes are among its finds."""
    labels = {u.label() for u in USES}
    expected = {
        "cupy.matmul(out=)", "cupy.take(axis=, out=)", "cupy.copyto(where=)",
        "cupy.multiply(out=)", "cupy.zeros(dtype=)", "cupy.asarray()", "cupy.stack()",
        "cupy.argsort()", "cupy.random.default_rng()", "cupy.cuda.Device()",
        "cupy.cuda.Stream.synchronize()", "cupy.cuda.MemoryPool.free_all_blocks()",
        "cupy.random.Generator.random(dtype=, out=)", "cupy.ndarray.sum(axis=, out=)",
        "cupy.ndarray.astype(copy=)", "cupy.ndarray.argmax(axis=)", "cupy.float64",
        "cupy.cuda.runtime.getDeviceCount()", "cupy.bincount(minlength=)",
    }
    missing = expected - labels
    assert not missing, f"the scan of xpnet/ no longer finds {sorted(missing)} in {sorted(labels)}"
    assert len({(u.owner, u.name) for u in USES if u.owner == "cupy"}) >= 25


def test_cupy13_fixture_describes_cupy13():
    spec = _cupy13()
    assert spec["cupy_version"].startswith("13."), spec["cupy_version"]
    assert os.path.exists(os.path.join(os.path.dirname(FIXTURE13), "make_cupy13.py"))
    assert set(strict_device.SPEC_MODULES) <= set(spec["modules"])
    assert set(strict_device.SPEC_CLASSES) <= set(spec["classes"])
    assert len(spec["modules"]["cupy"]) > 400  # the whole top-level namespace
    # the probe really distinguishes: CuPy ufuncs take out/dtype/casting, not where
    assert spec["modules"]["cupy"]["add"]["keywords"] == ["casting", "dtype", "out"]


@pytest.mark.parametrize("use,where", _params())
def test_use_exists_in_cupy13(use, where):
    problem = check(use, _cupy13())
    assert problem is None, f"{problem}; used at {', '.join(where)}"


@pytest.mark.parametrize("use,where", _params())
def test_use_exists_in_installed_cupy14(use, where):
    spec = _cupy_installed()
    if not spec["cupy_version"].startswith("14."):
        pytest.skip(f"the installed CuPy is {spec['cupy_version']}, not 14.x")
    problem = check(use, spec)
    assert problem is None, f"{problem}; used at {', '.join(where)}"


def test_strict_stand_in_implements_every_use():
    """The parity suite's stand-in can run every CuPy call xpnet makes (else the GPU path would
    fail there with "not implemented by the strict CuPy stand-in", not prove anything)."""
    from strict_device import xp  # noqa: PLC0415

    instances = {"cupy.ndarray": xp.zeros(3), "cupy.random.Generator": xp.random.default_rng(0),
                 "cupy.cuda.Stream": xp.cuda.get_current_stream(),
                 "cupy.cuda.MemoryPool": xp.get_default_memory_pool(),
                 "cupy.cuda.Device": xp.cuda.Device(0)}
    missing = []
    for use, where in USES.items():
        if use.owner in instances:
            target = instances[use.owner]
        else:
            target = xp
            for part in use.owner.split(".")[1:]:
                target = getattr(target, part)
        try:
            getattr(target, use.name)
        except AttributeError as exc:
            missing.append(f"{use.label()} at {where[0]}: {exc}")
    assert not missing, "\n".join(missing)


def test_check_catches_numpy_only_keywords():
    """The checker itself: uses CuPy rejects are reported (against both descriptions)."""
    spec = _cupy13()
    assert "does not take mode=" in check(Use("cupy", "take", ("axis", "mode", "out"), True),
                                          spec)
    assert "does not take where=" in check(Use("cupy", "maximum", ("out", "where"), True), spec)
    assert "does not take initial=" in check(Use("cupy.ndarray", "sum", ("initial",), True),
                                             spec)
    assert "has no cupy.ndarray.resize" in check(Use("cupy.ndarray", "resize", (), True), spec)
    assert "has no cupy.random.Generator.normal" in check(
        Use("cupy.random.Generator", "normal", (), True), spec)
    assert check(Use("cupy", "take", ("axis", "out"), True), spec) is None
