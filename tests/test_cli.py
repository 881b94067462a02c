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
