"""Progress bars when tqdm is installed, silence when it is not.

tqdm is an optional dependency (``pip install 'xpnet[train]'``); the library must work without
it. Callers ask :func:`progress_bar` for a bar and skip updating when they get ``None``::

    bar = progress_bar(enabled=show, total=n, desc="epoch 3", unit="batch")
    ...
    if bar is not None:
        bar.update(1)
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(enabled: bool = True, **tqdm_kwargs: Any):
    """A ``tqdm.auto.tqdm(**tqdm_kwargs)`` (a notebook widget in Jupyter, text on stderr
    elsewhere), or ``None`` when ``enabled`` is false or tqdm is not installed.

    The caller closes the bar (``bar.close()`` or ``with``) when it is done.
    """
    if not enabled:
        return None
    try:
        # The top-level import first: it is what fails when tqdm is missing (or blocked with
        # sys.modules["tqdm"] = None), even after tqdm.auto has been cached by an earlier call.
        import tqdm  # noqa: F401
        from tqdm.auto import tqdm as bar_class
    except ImportError:
        return None
    return bar_class(**tqdm_kwargs)
