"""Learning curves of a training run: :func:`plot_history`.

matplotlib is an optional dependency (``pip install -e '.[plot]'``), imported on the first
call, so ``import xpnet`` never needs it.

No backend is ever chosen or switched here (``matplotlib.use`` is not called); where the
figure lives depends on what the call is for:

* Writing a file outside Jupyter (the training CLI, scripts, servers): the figure is a
  standalone :class:`matplotlib.figure.Figure`, never registered with pyplot. Saving it uses
  the Agg renderer whatever the backend is, with or without a display; it opens no window, can
  be built in a worker thread, and leaves nothing to close (it is freed with the last
  reference).
* In a Jupyter notebook: a pyplot figure under the notebook's backend (inline, by default),
  taken off pyplot's list of open figures at once, so it is shown exactly once: as the cell's
  value (``plot_history(history)`` as its last line) or with ``display(fig)``. Left on the
  list, the inline backend would draw it again at the end of the cell.
* Without ``path`` elsewhere (you want to look at it): a pyplot figure under the backend
  already in use, left open: ``plt.show()`` shows it in a desktop session; on a headless
  machine matplotlib itself falls back to Agg (save it with ``fig.savefig``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from .io import atomic_write
from .progress import in_notebook
from .training import History

__all__ = ["plot_history"]

PNG_DPI = 100
SIZES = {2: (10.0, 4.0), 1: (6.0, 4.0)}  # inches, by number of panels; x PNG_DPI pixels


def plot_history(history, path=None):
    """Draw the learning curves of a run and return the matplotlib ``Figure``.

    Args:
        history: a :class:`~xpnet.History` (what ``fit`` returns, also ``net.history_``), or
            its ``to_dict()`` (such as the ``"history"`` of the training CLI's
            ``--metrics-json`` file).
        path: ``None``, or a file name ending in ``.png`` (any case; else ``ValueError``)
            where the figure is written as a PNG at 100 dpi, through
            :func:`xpnet.io.atomic_write`: readers see the old file or the new one, never a part.

    Returns:
        The ``Figure``. For a classifier, two panels (``fig.axes``), loss and accuracy per
        epoch, 10 x 4 inches (1000 x 400 pixels in the PNG); for a regression history, whose
        accuracies are all NaN, only the loss panel, 6 x 4 inches (600 x 400 pixels). Each
        panel has the training curve (``train``) and, when the history has dev values, the
        dev curve (``dev``). Whether pyplot knows the figure depends on where it runs (see
        the module docstring): in Jupyter it shows once, as the cell's value.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
        ValueError: ``path`` does not end in ``.png``.
        TypeError: ``history`` is neither a ``History`` nor a mapping.
        OSError: ``path`` cannot be written (a file already there is left as it was).
    """
    if path is not None:
        name = os.fsdecode(os.fspath(path))
        if not name.lower().endswith(".png"):
            raise ValueError(f"plot_history writes PNG images, so the path must end in .png; "
                             f"got {name!r}")
    if isinstance(history, Mapping):
        history = History.from_dict(history)
    elif not isinstance(history, History):
        raise TypeError(f"plot_history needs an xpnet.History (what fit returns) or its "
                        f"to_dict(); got {type(history).__name__}")
    notebook = in_notebook()
    fig = _figure(history, standalone=path is not None and not notebook)
    if notebook:  # shown as the cell's value, not a second time when the cell ends
        import matplotlib.pyplot as plt

        plt.close(fig)
    if path is not None:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=PNG_DPI)
    return fig


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plot_history needs matplotlib, which is not installed: "
                          "pip install -e '.[plot]'") from None
    return matplotlib


def _has_values(values) -> bool:
    return any(not math.isnan(v) for v in values)


def _figure(history, standalone):
    _matplotlib()
    from matplotlib.ticker import MaxNLocator

    panels = [("loss", history.loss, history.val_loss)]
    if _has_values(history.accuracy):
        panels.append(("accuracy", history.accuracy, history.val_accuracy))
    size = SIZES[len(panels)]
    if standalone:
        from matplotlib.figure import Figure

        fig = Figure(figsize=size, dpi=PNG_DPI, layout="tight")
    else:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size, dpi=PNG_DPI, layout="tight")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    marker = "o" if len(history.epoch) == 1 else None  # a single epoch is a point, not a line
    for ax, (name, train, dev) in zip(axes, panels):
        ax.plot(history.epoch, train, label="train", marker=marker)
        if _has_values(dev):
            ax.plot(history.epoch, dev, label="dev", marker=marker)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
