"""``bench_conftest()``: bench/conftest.py as a plain module, for the scripts in bench/ that are
not pytest files (run.py, time_to_accuracy.py, sklearn_compare.py, own_data_compare.py,
cache_blocking.py): the machine description and the never-overwrite result naming.

It is loaded under its own name, ``xpnet_bench_conftest``, because a plain ``import conftest``
could return tests/conftest.py when pytest has already imported that one; and once per process.
"""

from __future__ import annotations

import importlib.util
import os
import sys

NAME = "xpnet_bench_conftest"


def bench_conftest():
    """The module bench/conftest.py, loaded on the first call and reused after."""
    if NAME not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
        spec = importlib.util.spec_from_file_location(NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[NAME]
