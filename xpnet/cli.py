"""What the command-line programs share: one-line errors and exit codes.

Exit codes: 0 success, 1 runtime failure (missing data, unusable device, divergence, out of
memory, unreadable checkpoint), 2 usage error (bad flags or values), 130/143 interrupted by
SIGINT/SIGTERM. User errors print one line and no traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import unicodedata

from .backend import DeviceUnavailableError, is_out_of_memory

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line: exit code 2."""


class Failure(Exception):
    """A runtime failure already described in one sentence: exit code 1."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (no usage dump) and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # "--deb" must not quietly mean --debug
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


def check_writable(flag, path) -> None:
    """Fail before any work when ``path``'s folder cannot take a new file."""
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent):
        raise Failure(f"{flag} {path}: the folder {parent} does not exist")
    if os.path.isdir(path):
        raise Failure(f"{flag} {path} is a folder; give a file name")
    if not os.access(parent, os.W_OK):
        raise Failure(f"{flag} {path}: the folder {parent} is not writable")


def run(main_fn, argv, prog) -> int:
    """Call ``main_fn(argv)`` and turn known errors into one line on stderr and an exit code."""
    debug = argv is not None and "--debug" in argv or argv is None and "--debug" in sys.argv
    try:
        return main_fn(argv)
    except SystemExit as exc:  # --help, or argparse exiting by itself
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        return _fail(prog, str(exc), EXIT_USAGE, debug)
    except (Failure, DeviceUnavailableError) as exc:
        return _fail(prog, str(exc), EXIT_FAILURE, debug)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if is_out_of_memory(exc):
            msg = ("out of memory (" + type(exc).__name__ + "); use a smaller --batch-size "
                   "or a smaller network")
            return _fail(prog, msg, EXIT_FAILURE, debug)
        if isinstance(exc, (ValueError, OSError)):
            return _fail(prog, str(exc), EXIT_FAILURE, debug)
        # A bug, not a user error: show everything.
        traceback.print_exc()
        return EXIT_FAILURE


def _fail(prog, message, code, debug) -> int:
    if debug:
        traceback.print_exc()
    print(f"{prog}: error: {_one_line(message)}", file=sys.stderr)
    return code


def _one_line(message: str) -> str:
    """Escape control characters and line separators (argparse echoes raw argv tokens, paths
    may hold newlines) so the error stays a single line."""
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in str(message))
