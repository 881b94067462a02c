"""``xpnet.plot_history``: the learning-curve panels and their data, the PNG it writes
(atomically, exactly where asked), its errors, and where the figure lives (pyplot or not)."""

from __future__ import annotations

import io
import math
import sys
import types

import numpy as np
import pytest

import xpnet
from xpnet import plotting
from xpnet.training import History

matplotlib = pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def classifier_history():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=90)
    X = rng.normal(scale=2.0, size=(3, 5))[y] + rng.standard_normal((90, 5))
    net = xpnet.MLP([5, 8, 3], device="cpu", seed=0)
    return xpnet.fit(net, X, y, epochs=4, lr=0.01, optimizer="adam", batch_size=32, seed=0,
                     validation_fraction=0.2)


@pytest.fixture(scope="module")
def regression_history():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4))
    Y = X @ rng.standard_normal((4, 2))
    net = xpnet.MLP([4, 8, 2], output="identity", device="cpu", seed=0)
    return xpnet.fit(net, X, Y, epochs=3, lr=0.01, optimizer="adam", seed=0)


@pytest.fixture
def no_backend_switch(monkeypatch):
    """``matplotlib.use`` fails the test, and a backend already chosen stays chosen (one not
    chosen yet may be resolved by pyplot by matplotlib's own rule, on the first pyplot
    figure)."""
    before = dict.__getitem__(matplotlib.rcParams, "backend")

    def forbidden(*args, **kwargs):
        raise AssertionError(f"plot_history switched the backend: use{args}")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    yield
    if isinstance(before, str):
        assert dict.__getitem__(matplotlib.rcParams, "backend") == before


def curves(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()}


def test_classifier_png_has_two_panels_of_train_and_dev(classifier_history, tmp_path,
                                                        no_backend_switch):
    h = classifier_history
    path = tmp_path / "curves.png"
    fig = xpnet.plot_history(h, path)
    with Image.open(path) as img:
        assert (img.format, img.size) == ("PNG", (1000, 400))
    assert len(fig.axes) == 2
    loss, acc = fig.axes
    assert (loss.get_ylabel(), acc.get_ylabel()) == ("loss", "accuracy")
    assert curves(loss) == {"train": (h.epoch, h.loss), "dev": (h.epoch, h.val_loss)}
    assert curves(acc) == {"train": (h.epoch, h.accuracy), "dev": (h.epoch, h.val_accuracy)}
    assert fig.canvas.manager is None  # standalone: pyplot never saw it
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temp file left


def test_regression_png_has_only_the_loss_panel(regression_history, tmp_path,
                                                no_backend_switch):
    h = regression_history
    assert all(math.isnan(a) for a in h.accuracy)
    path = tmp_path / "reg.PNG"  # the suffix in any case
    fig = xpnet.plot_history(h, str(path))
    with Image.open(path) as img:
        assert (img.format, img.size) == ("PNG", (600, 400))
    assert len(fig.axes) == 1
    assert fig.axes[0].get_ylabel() == "loss"
    assert curves(fig.axes[0]) == {"train": (h.epoch, h.loss)}  # no dev set: no dev curve


def test_history_dict_plots_the_same(classifier_history, tmp_path):
    h = classifier_history
    a = xpnet.plot_history(h, tmp_path / "a.png")
    b = xpnet.plot_history(h.to_dict(), tmp_path / "b.png")
    assert [curves(ax) for ax in a.axes] == [curves(ax) for ax in b.axes]


def test_a_single_epoch_is_drawn_as_a_point(tmp_path):
    h = History()
    h.append(epoch=1, loss=0.5, accuracy=0.75, val_loss=float("nan"),
             val_accuracy=float("nan"), lr=0.1, seconds=0.1)
    fig = xpnet.plot_history(h, tmp_path / "one.png")
    assert all(line.get_marker() == "o" for ax in fig.axes for line in ax.get_lines())


@pytest.mark.parametrize("name", ["curves.pdf", "curves", "curves.png.txt"])
def test_path_must_end_in_png(classifier_history, tmp_path, name):
    with pytest.raises(ValueError) as info:
        xpnet.plot_history(classifier_history, tmp_path / name)
    assert str(info.value) == (f"plot_history writes PNG images, so the path must end in "
                               f".png; got {str(tmp_path / name)!r}")
    assert list(tmp_path.iterdir()) == []


def test_not_a_history_is_a_type_error():
    with pytest.raises(TypeError, match=r"needs an xpnet.History .* got list"):
        xpnet.plot_history([0.5, 0.4])


def test_without_matplotlib_says_how_to_install_it(classifier_history, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as info:
        xpnet.plot_history(classifier_history, tmp_path / "c.png")
    assert str(info.value) == ("plot_history needs matplotlib, which is not installed: "
                               "pip install -e '.[plot]'")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file(classifier_history, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "curves.png"
    path.write_bytes(b"old")

    def failing_savefig(self, f, **kwargs):
        f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        xpnet.plot_history(classifier_history, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_without_a_path_the_figure_is_pyplots(classifier_history, no_backend_switch):
    import matplotlib.pyplot as plt

    fig = xpnet.plot_history(classifier_history)
    try:
        assert fig.number in plt.get_fignums()  # plt.show() would show it
        assert len(fig.axes) == 2
    finally:
        plt.close(fig)


@pytest.mark.parametrize("with_path", [False, True])
def test_in_a_notebook_the_figure_is_not_left_open(classifier_history, monkeypatch, tmp_path,
                                                   with_path, no_backend_switch):
    """Jupyter: built by pyplot under the notebook's backend, then taken off pyplot's list,
    so that the inline backend does not draw it a second time after the cell's value."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plotting, "in_notebook", lambda: True)
    open_before = plt.get_fignums()
    path = tmp_path / "nb.png" if with_path else None
    fig = xpnet.plot_history(classifier_history, path)
    assert plt.get_fignums() == open_before
    # still displayable, as Jupyter displays a cell's value: rendered to PNG bytes
    buf = io.BytesIO()
    fig.canvas.print_figure(buf, format="png", dpi=50)
    with Image.open(buf) as img:
        assert img.size == (500, 200)
    if with_path:
        with Image.open(path) as img:
            assert img.size == (1000, 400)


def test_notebook_detection_is_shared_with_the_progress_bars(monkeypatch):
    instance = type("ZMQInteractiveShell", (), {})()
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: instance
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
    for key in ("QT_API",):
        monkeypatch.delenv(key, raising=False)
    assert plotting.in_notebook()
