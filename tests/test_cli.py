"""What the command-line programs share (xpnet/cli.py): argument values, the outputs check
and atomic output files."""

from __future__ import annotations

import argparse
import os

import pytest

from xpnet import cli


def test_number_types_say_what_was_expected():
    parse = cli.number(0.0, 1.0, hi_open=True)
    assert parse("0.5") == 0.5 and parse("0") == 0.0
    for text, words in [("1", "expected a number < 1.0, got '1'"), ("x", "expected a number"),
                        ("nan", "expected a finite number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            parse(text)
    whole = cli.whole_number(1, 3)
    assert whole("3") == 3
    with pytest.raises(argparse.ArgumentTypeError,
                       match=r"^expected a whole number from 1 to 3, got '9'$"):
        whole("9")
    with pytest.raises(argparse.ArgumentTypeError, match=r"\.\.\. \(400 characters\)"):
        whole("9" * 400)
    assert cli.names(" a, b ") == ["a", "b"]
    assert cli.layer_sizes("--hidden", "8,4", 1)("8,4") == [8, 4]
    with pytest.raises(argparse.ArgumentTypeError, match="would need more than"):
        cli.layer_sizes("--hidden", "8,4", 1)("100000,100000")


def test_list_flags_written_with_spaces_get_the_comma_form():
    cli.check_list_flags(["--layers", "784,10", "--epochs", "3"], ("--layers",))
    with pytest.raises(cli.UsageError, match="write --layers 784,256,10 \\(no spaces\\)"):
        cli.check_list_flags(["--layers", "784", "256", "10"], ("--layers",))


def test_check_outputs_refuses_collisions(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    cli.check_outputs([("--save", a), ("--plot", b)], [("the --data file", b, {"--plot"})])
    with pytest.raises(cli.UsageError, match=r"^--save .*a and --plot .*a name the same file"):
        cli.check_outputs([("--save", a), ("--plot", os.path.join(str(tmp_path), ".", "a"))])
    with pytest.raises(cli.UsageError, match=r"^--save .*b is the --data file, which it would "
                                             r"overwrite; choose another file$"):
        cli.check_outputs([("--save", b)], [("the --data file", b, ())])


def test_output_file_is_atomic_and_a_failure_is_one_line(tmp_path):
    with cli.output_file(tmp_path / "m.json", "w") as f:
        f.write("{}")
    assert (tmp_path / "m.json").read_text() == "{}"
    with pytest.raises(cli.Failure, match=r"^cannot write .*nowhere.*m.json: "):
        with cli.output_file(tmp_path / "nowhere" / "m.json", "w") as f:
            f.write("{}")


def test_default_blas_threads_follow_the_measured_rule():
    """One thread per MPI rank and for mini-batches up to ONE_THREAD_MAX_BATCH rows; full batch
    and larger mini-batches keep the BLAS library's choice (None)."""
    n = cli.ONE_THREAD_MAX_BATCH
    assert [cli.default_blas_threads(b) for b in (1, 128, n)] == [1, 1, 1]
    assert cli.default_blas_threads(n + 1) is None
    assert cli.default_blas_threads(None) is None  # full batch
    assert cli.default_blas_threads(None, distributed=True) == 1
    assert cli.default_blas_threads(60000, distributed=True) == 1


@pytest.mark.parametrize("batch, limited", [("16", True), ("full", False)])
def test_the_training_cli_applies_the_default_for_the_run_only(tmp_path, monkeypatch, batch,
                                                               limited):
    """Without --threads, a mini-batch run trains on one BLAS thread and a full-batch run on
    the library's own count; either way the count is as before once main returns."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    import xpnet.session
    import xpnet.train

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    before = blas_threads()
    if not before or max(before) == 1:
        pytest.skip("the BLAS uses one thread here already: nothing to tell apart")
    seen = []
    fit = xpnet.session.TrainingRun.fit

    def watched_fit(self, *a, **k):  # the real fit, with the thread count it ran under
        seen.append(blas_threads())
        return fit(self, *a, **k)

    monkeypatch.setattr(xpnet.session.TrainingRun, "fit", watched_fit)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    rows = ["label,a,b,c"] + [f"{int(x[0] > 0)},{x[0]},{x[1]},{x[2]}" for x in X]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    rc = xpnet.train.main(["--data", str(tmp_path / "t.csv"), "--target", "label", "--device",
                           "cpu", "--epochs", "1", "--batch-size", batch, "--quiet"])
    assert rc == 0
    assert seen == [[1] * len(before) if limited else before]
    assert blas_threads() == before


def test_a_flag_given_the_end_of_options_marker_is_a_usage_error():
    """argparse turns "--optimizer=--" into an empty list, past the flag's choices and type
    (hypothesis found it in test_cli_fuzz.py): the parser refuses it in one line; after a bare
    "--" the same text is a value and passes."""
    parser = cli.Parser(prog="xpnet.train")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("rest", nargs="*")
    message = "^argument --optimizer: expected one value, not '--'$"
    with pytest.raises(cli.UsageError, match=message):
        parser.parse_args(["--optimizer=--"])
    args = parser.parse_args(["--optimizer=sgd", "--", "--optimizer=--"])
    assert args.optimizer == "sgd" and args.rest == ["--optimizer=--"]
