"""Progress bars when tqdm is installed, silence when it is not.

tqdm is an optional dependency (``pip install -e '.[train]'``); the library must work without
it. Callers ask :func:`progress_bar` for a bar and skip updating when they get ``None``::

    bar = progress_bar(enabled=show, total=n, desc="epoch 3/7", unit="sample", leave=False)
    ...
    if bar is not None:
        bar.update(batch_size)

The bar is text (``tqdm.tqdm``, on stderr) everywhere except in a Jupyter notebook that has
ipywidgets, where it is the notebook widget (``tqdm.auto``). Without ipywidgets, tqdm.auto
would warn "IProgress not found" and show no bar at all, so the text bar is used there too
(Jupyter renders its carriage returns).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(enabled: bool = True, **tqdm_kwargs: Any):
    """A tqdm bar built with ``tqdm_kwargs`` (a notebook widget in Jupyter with ipywidgets,
    text on stderr elsewhere), or ``None`` when ``enabled`` is false or tqdm is not installed.

    The caller closes the bar (``bar.close()`` or ``with``) when it is done.
    """
    if not enabled:
        return None
    bar_class = _bar_class()
    return None if bar_class is None else bar_class(**tqdm_kwargs)


def _bar_class():
    """``tqdm.auto.tqdm`` in a notebook with ipywidgets, else ``tqdm.tqdm``; ``None`` without
    tqdm."""
    try:
        # The top-level import first: it is what fails when tqdm is missing (or blocked with
        # sys.modules["tqdm"] = None), even after a submodule has been cached by an earlier call.
        import tqdm
    except ImportError:
        return None
    if in_notebook() and _has_widgets():
        try:
            from tqdm.auto import tqdm as notebook_bar
        except ImportError:
            return tqdm.tqdm
        return notebook_bar
    return tqdm.tqdm


def in_notebook() -> bool:
    """Running in a Jupyter kernel that renders widgets (notebook, lab, VS Code, Colab); not
    in a terminal IPython, the Qt console or Spyder. Only looks at modules already imported."""
    if "IPython.utils._process_emscripten" in sys.modules:  # JupyterLite
        return True
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    if "ipykernel.zmqshell" not in sys.modules or get_ipython is None:
        return False
    if any(key == "QT_API" or key.startswith("SPYDER") for key in os.environ):
        return False
    try:
        shell = get_ipython()
    except Exception:  # a broken IPython must not break training
        return False
    name = type(shell).__name__.lower()
    return shell is not None and "qt" not in name and "spyder" not in name


def _has_widgets() -> bool:
    """Whether tqdm's notebook bar can draw: its ``IProgress`` imports from ipywidgets."""
    try:
        from tqdm.notebook import IProgress
    except ImportError:
        return False
    return IProgress is not None
