"""Property tests for the command lines: random argument lists built from the real flag names,
random text values and junk tokens never escape as an exception, never exit with anything but
the documented codes, and any error is exactly one line on stderr.

Two levels for each program:

* the parse stage alone: ``xpnet.cli.run`` around ``build_parser().parse_args`` (0 or 2);
* the whole ``main`` up to the first thing that would need real resources: MNIST is pointed at
  a directory that does not exist with downloads off, CuPy is disabled and the checkpoint paths
  do not exist, so every run ends in 0 (``--help``), 2 (usage) or 1 (runtime failure) within
  milliseconds and writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet.predict
import xpnet.train
from xpnet.cli import run

SETTINGS = settings(max_examples=200, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


def _flags(parser):
    return sorted({s for action in parser._actions for s in action.option_strings})


TRAIN_FLAGS = _flags(xpnet.train.build_parser())
PREDICT_FLAGS = _flags(xpnet.predict.build_parser())

# Values that parse (so later stages are reached) mixed with arbitrary text.
PLAUSIBLE = st.sampled_from([
    "0", "1", "-1", "3", "0.5", "1e-3", "nan", "inf", "-inf", "1e309", "full", "FULL", "",
    " ", "784,32,10", "784,10", "10,10", "784,,10", "784,-3,10", "auto", "cpu", "cuda",
    "cuda:0", "cuda:7", "gpu", "tpu", "relu", "tanh", "adam", "gd", "sgd", "cosine", "step",
    "constant", "float32", "float64", "he", "xavier", "=", "--", "-", "x.npz", "/", ".",
])
VALUE = st.one_of(PLAUSIBLE, st.text(max_size=12), st.integers(-10**6, 10**6).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))


def _argv(flags):
    flag = st.sampled_from(flags)
    with_value = st.tuples(flag, VALUE).map(list)
    glued = st.tuples(flag, VALUE).map(lambda fv: [f"{fv[0]}={fv[1]}"])
    abbreviated = flag.filter(lambda f: f.startswith("--") and len(f) > 4).flatmap(
        lambda f: st.integers(3, len(f) - 1).map(lambda n: [f[:n]]))
    junk = st.text(max_size=10).map(lambda t: [t])
    token = st.one_of(flag.map(lambda f: [f]), with_value, glued, abbreviated, junk)
    return st.lists(token, max_size=6).map(lambda parts: [t for part in parts for t in part])


@contextlib.contextmanager
def _sandbox(tmp):
    """Offline, CuPy off, no MNIST anywhere, environment restored afterwards (--tf32 sets
    CUPY_TF32)."""
    saved = dict(os.environ)
    os.environ.update(XPNET_OFFLINE="1", XPNET_DISABLE_CUPY="1", HOME=str(tmp))
    os.environ.pop("XPNET_DATA_DIR", None)
    os.environ.pop("XPNET_MNIST_SUBSET", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _call(fn, argv, prog):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(fn, argv, prog)
    return code, out.getvalue(), err.getvalue()


def _check(code, err, argv, prog, allowed):
    assert code in allowed, (code, argv, err)
    if code == 0:
        assert err == "", (argv, err)
        return
    lines = err.splitlines()
    if "--debug" in argv:  # a traceback first, then the one line
        assert lines and lines[-1].startswith(f"{prog}: error: "), (argv, err)
        return
    assert len(lines) == 1, f"argv={argv!r} gave {len(lines)} stderr lines: {err!r}"
    assert lines[0].startswith(f"{prog}: error: "), (argv, err)
    assert "Traceback" not in err


def _parse_only(build_parser):
    def main(argv):
        build_parser().parse_args(argv)
        return 0
    return main


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with _sandbox(tmp):
        yield tmp


# ------------------------------------------------------------------------------ xpnet.train
@SETTINGS
@given(argv=_argv(TRAIN_FLAGS))
def test_train_parser_exits_0_or_2_with_one_line(argv):
    code, _, err = _call(_parse_only(xpnet.train.build_parser), argv, "xpnet.train")
    _check(code, err, argv, "xpnet.train", {0, 2})


@SETTINGS
@given(argv=_argv(TRAIN_FLAGS))
def test_train_main_fails_cleanly_before_any_work(sandbox, argv):
    nowhere = str(sandbox / "no-mnist-here")
    full = [*argv, "--data-dir", nowhere]
    code, out, err = _call(xpnet.train._main, full, "xpnet.train")
    _check(code, err, full, "xpnet.train", {0, 1, 2})
    if code == 0:
        assert "usage: xpnet.train" in out  # only --help succeeds without data
    assert sorted(p.name for p in sandbox.iterdir()) == []  # nothing written or downloaded


# ------------------------------------------------------------------------------ xpnet.predict
@SETTINGS
@given(argv=_argv(PREDICT_FLAGS), positional=st.lists(VALUE, max_size=2))
def test_predict_parser_exits_0_or_2_with_one_line(argv, positional):
    full = [*positional, *argv]
    code, _, err = _call(_parse_only(xpnet.predict.build_parser), full, "xpnet.predict")
    _check(code, err, full, "xpnet.predict", {0, 2})


@SETTINGS
@given(argv=_argv(PREDICT_FLAGS))
def test_predict_main_fails_cleanly(sandbox, argv):
    full = [str(sandbox / "absent.npz"), *argv]
    code, out, err = _call(xpnet.predict._main, full, "xpnet.predict")
    _check(code, err, full, "xpnet.predict", {0, 1, 2})
    if code == 0:
        assert "usage: xpnet.predict" in out
    assert sorted(p.name for p in sandbox.iterdir()) == []
