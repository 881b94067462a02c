"""``xpnet.progress.progress_bar``: a tqdm bar when enabled and installed, ``None`` otherwise."""

from __future__ import annotations

import io
import sys

import pytest

from xpnet.progress import progress_bar


def test_disabled_gives_none():
    assert progress_bar(False, total=10) is None


def test_enabled_gives_a_bar_with_the_options():
    tqdm_auto = pytest.importorskip("tqdm.auto")
    out = io.StringIO()
    bar = progress_bar(total=4, desc="epoch 3", unit="batch", file=out)
    assert isinstance(bar, tqdm_auto.tqdm)
    bar.update(4)
    bar.close()
    text = out.getvalue()
    assert "epoch 3" in text and "4/4" in text and "batch" in text


def test_without_tqdm_gives_none_even_after_tqdm_auto_was_imported(monkeypatch):
    pytest.importorskip("tqdm.auto")  # cached in sys.modules, as after an earlier bar
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    assert progress_bar(total=10) is None
