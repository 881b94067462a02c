"""``xpnet.progress.progress_bar`` (a tqdm bar when enabled and installed, ``None`` otherwise;
the notebook widget only where it can draw) and the trainer's bar per epoch."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import types
import warnings

import numpy as np
import pytest

import xpnet
import xpnet.callbacks
from xpnet import progress
from xpnet.progress import progress_bar

tqdm = pytest.importorskip("tqdm")


def test_disabled_gives_none():
    assert progress_bar(False, total=10) is None


def test_enabled_gives_a_text_bar_with_the_options():
    out = io.StringIO()
    bar = progress_bar(total=4, desc="epoch 3/7", unit="batch", file=out)
    assert type(bar) is tqdm.tqdm  # not tqdm.auto's: no notebook here
    bar.update(4)
    bar.close()
    text = out.getvalue()
    assert "epoch 3/7" in text and "4/4" in text and "batch" in text


def test_without_tqdm_gives_none_even_after_tqdm_auto_was_imported(monkeypatch):
    pytest.importorskip("tqdm.auto")  # cached in sys.modules, as after an earlier bar
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    assert progress_bar(total=10) is None


# ------------------------------------------------------------------ notebooks
@pytest.fixture
def fake_kernel(monkeypatch):
    """Make this process look like a Jupyter kernel (or another IPython shell): returns a
    function ``shell(class_name, widgets)``. tqdm.auto and tqdm.notebook are imported first,
    so their own one-time detection has already run (outside a notebook)."""
    import tqdm.auto  # noqa: F401
    import tqdm.notebook

    for key in [k for k in os.environ if k == "QT_API" or k.startswith("SPYDER")]:
        monkeypatch.delenv(key)

    def shell(class_name, widgets, kernel=True):
        instance = type(class_name, (), {})()
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: instance
        monkeypatch.setitem(sys.modules, "IPython", ipython)
        if kernel:
            monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
        monkeypatch.setattr(tqdm.notebook, "IProgress", object if widgets else None)

    return shell


def test_notebook_without_ipywidgets_gets_the_text_bar_and_no_warning(fake_kernel):
    fake_kernel("ZMQInteractiveShell", widgets=False)
    assert progress.in_notebook() and not progress._has_widgets()
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = progress_bar(total=3, desc="epoch 1/1", file=out)
        bar.update(3)
        bar.close()
    assert [str(w.message) for w in caught] == []
    assert type(bar) is tqdm.tqdm and "3/3" in out.getvalue()


def test_notebook_with_ipywidgets_gets_the_widget_bar(fake_kernel):
    import tqdm.auto

    fake_kernel("ZMQInteractiveShell", widgets=True)
    assert progress._bar_class() is tqdm.auto.tqdm


@pytest.mark.parametrize("shell", ["TerminalInteractiveShell", "ZMQInteractiveShellQt"])
def test_terminal_ipython_and_qtconsole_get_the_text_bar(fake_kernel, shell):
    fake_kernel(shell, widgets=True, kernel=not shell.startswith("Terminal"))
    assert progress._bar_class() is tqdm.tqdm


# ------------------------------------------------------------------ the trainer's bars
def render(text):
    """What a terminal shows for ``text`` written to it: each line after carriage returns
    overwrote it from the first column, trailing blanks dropped, empty lines dropped."""
    screen = []
    for raw in text.split("\n"):
        cells = []
        for i, part in enumerate(raw.split("\r")):
            col = 0 if i else len(cells)
            for ch in part:
                if col < len(cells):
                    cells[col] = ch
                else:
                    cells.append(ch)
                col += 1
        line = "".join(cells).rstrip()
        if line:
            screen.append(line)
    return screen


def blobs(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    return rng.normal(scale=2.0, size=(k, d))[y] + rng.standard_normal((n, d)), y


def test_one_bar_per_epoch_closed_before_the_callback(monkeypatch):
    bars = []

    def recording_bar(enabled=True, **kwargs):
        bar = progress_bar(enabled, file=io.StringIO(), mininterval=0, **kwargs)
        bars.append((bar, kwargs))
        return bar

    monkeypatch.setattr(xpnet.callbacks, "progress_bar", recording_bar)
    X, y = blobs()
    seen = []

    def callback(trainer, record):
        bar, kwargs = bars[-1]
        out = bar.fp.getvalue()
        # this epoch's bar: closed (cleared, cursor back in the first column) with all samples
        seen.append((len(bars), kwargs["desc"], bar.n, bar.total, bar.disable, out[-1]))

    net = xpnet.MLP([6, 8, 3], device="cpu", seed=0)
    xpnet.fit(net, X, y, epochs=3, batch_size=32, lr=0.01, optimizer="adam", seed=0,
              progress=True, callback=callback)
    assert seen == [(e, f"epoch {e}/3", 96, 96, True, "\r") for e in (1, 2, 3)]
    assert all(kwargs["leave"] is False and kwargs["unit"] == "sample" for _, kwargs in bars)
    # each bar was drawn: its final count appears in its stream before the clearing
    assert all("100%|" in bar.fp.getvalue() for bar, _ in bars)


def test_verbose_lines_start_on_a_clean_line_after_the_bars(monkeypatch):
    """Bar (stderr) and lines (stdout) on one terminal: every line reads exactly as printed,
    with no bar glued in front of it, and no bar is left on the screen."""
    terminal = io.StringIO()

    def terminal_bar(enabled=True, **kwargs):
        return progress_bar(enabled, file=terminal, mininterval=0, **kwargs)

    monkeypatch.setattr(xpnet.callbacks, "progress_bar", terminal_bar)
    X, y = blobs()
    net = xpnet.MLP([6, 8, 3], device="cpu", seed=0)
    with contextlib.redirect_stdout(terminal):
        history = xpnet.fit(net, X, y, epochs=3, batch_size=16, lr=0.01, optimizer="adam",
                            seed=0, progress=True, verbose=True)
    screen = render(terminal.getvalue())
    assert "epoch 1/3" in terminal.getvalue()  # the bars were drawn
    assert len(screen) == 3
    for i, line in enumerate(screen):
        assert line.startswith(f"Epoch {i + 1}/3 - ")
        assert line.endswith(f" - loss: {history.loss[i]:.4f} - accuracy: "
                             f"{history.accuracy[i]:.4f}")


def test_progress_without_tqdm_trains_the_same(monkeypatch):
    X, y = blobs()
    runs = []
    for blocked in (False, True):
        if blocked:
            monkeypatch.setitem(sys.modules, "tqdm", None)
        net = xpnet.MLP([6, 8, 3], device="cpu", seed=0, dtype="float64")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            hist = xpnet.fit(net, X, y, epochs=2, batch_size=32, lr=0.01, optimizer="adam",
                             seed=0, progress=True)
        runs.append((hist.loss, err.getvalue()))
    assert runs[0][0] == runs[1][0]
    assert "epoch 2/2" in runs[0][1] and runs[1][1] == ""
