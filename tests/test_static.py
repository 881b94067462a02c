"""Static check: only xpnet/backend.py may import CuPy.

Every other module computes through ``device.xp``; a stray ``import cupy`` would break CPU-only
installs and bypass the device probe. Every ``.py`` file under ``xpnet/`` (recursively) is parsed
with :mod:`ast`, and imports are found at any depth (inside functions, ``try`` blocks, classes),
including ``importlib.import_module("cupy...")`` and ``__import__("cupy...")`` with a literal.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "xpnet")
FORBIDDEN = {"cupy", "cupyx"}
ALLOWED = {os.path.join("xpnet", "backend.py")}


def _top(name: str | None) -> str:
    return (name or "").split(".")[0]


def cupy_imports(source: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """``(line, text)`` for every import of cupy/cupyx in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if _top(a.name) in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _top(node.module) in FORBIDDEN:
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _top(arg.value) in FORBIDDEN):
                found.append((node.lineno, f"{name}({arg.value!r})"))
    return found


def _modules():
    paths = []
    for dirpath, _, files in os.walk(PACKAGE):
        paths += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def test_package_modules_found():
    mods = _modules()
    for expected in ("__init__.py", "backend.py", "network.py", "heads.py", "parameters.py",
                     "initializers.py", "optimizers.py", "layers/__init__.py",
                     "layers/activations.py", "layers/linear.py"):
        assert os.path.join("xpnet", *expected.split("/")) in mods  # subpackages are walked


@pytest.mark.parametrize("module", _modules())
def test_no_cupy_import_outside_backend(module):
    with open(os.path.join(ROOT, module), encoding="utf-8") as fh:
        found = cupy_imports(fh.read(), module)
    if module in ALLOWED:
        assert found, "backend.py is where CuPy is imported; the detector should see it"
    else:
        assert not found, f"{module} imports CuPy: {found}; go through device.xp instead"


@pytest.mark.parametrize(
    "source",
    [
        "import cupy",
        "import cupy as cp",
        "import numpy, cupyx.scipy.sparse",
        "from cupy import cuda",
        "from cupyx.scipy import special",
        "def f():\n    try:\n        import cupy.cuda\n    except ImportError:\n        pass",
        "class A:\n    def m(self):\n        from cupy.cuda import runtime",
        "import importlib\nxp = importlib.import_module('cupy')",
        "xp = __import__('cupyx.scipy')",
    ],
)
def test_detector_finds_cupy_imports(source):
    assert cupy_imports(source)


@pytest.mark.parametrize(
    "source",
    ["import numpy as np", "from . import backend", "from .cupy_helpers import x",
     "import cupyish", "s = 'import cupy'", "import importlib\nimportlib.import_module('numpy')"],
)
def test_detector_ignores_other_imports(source):
    assert not cupy_imports(source)


# ------------------------------------------------------------------ private names stay private
def private_imports(source: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """``(line, text)`` for every ``from X import _name`` of another module in ``source``
    (``__future__`` and dunder names such as ``__version__`` aside)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [(node.lineno, f"from {'.' * node.level}{node.module or ''} import "
                                    f"{a.name}")
                      for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def _sources(*folders):
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in sorted(files):
                if f.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


@pytest.mark.parametrize("module", sorted(_sources("xpnet", "bench")))
def test_no_module_imports_another_modules_private_names(module):
    with open(os.path.join(ROOT, module), encoding="utf-8") as f:
        found = private_imports(f.read(), module)
    assert not found, f"{module} imports private names: {found}"


def test_private_import_detector():
    assert private_imports("from xpnet.train import _split, RECIPES\n") == [
        (1, "from xpnet.train import _split")]
    assert private_imports("from . import __version__\nfrom .a import b\n") == []
