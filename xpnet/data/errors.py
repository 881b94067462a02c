"""The exceptions of :mod:`xpnet.data`.

Their own module so that the readers (:mod:`.mnist`, :mod:`.tabular`) and the downloader
(:mod:`.download`) can all raise them without importing each other. Every message is one
sentence: what is wrong, where, and the fix; the CLIs print it as it is, without a traceback.

* :class:`DataError`: any data that cannot be used as given (the base class; :func:`.load_table`
  raises it directly).
* :class:`MnistDataError`: a file of an IDX image dataset (MNIST, Fashion-MNIST, KMNIST) is
  missing, damaged or not the original (the name is historical; it covers all three).
* :class:`DownloadError`: no mirror delivered a file; it also carries each URL tried and why it
  failed, so that the loader can report every missing file and every URL in one message.
"""

from __future__ import annotations

__all__ = ["DataError", "DownloadError", "MnistDataError"]


class DataError(ValueError):
    """Data that cannot be used as given; the message says which file, what is wrong and the fix."""


class MnistDataError(DataError):
    """A file of an IDX dataset (MNIST, Fashion-MNIST, KMNIST) is missing, damaged or not the
    original; the message says which and the fix."""


class DownloadError(MnistDataError):
    """Every mirror failed to deliver ``filename``; ``failures`` lists ``(url, reason)`` for each
    URL tried, in order."""

    def __init__(self, message: str, filename: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.filename = filename
        self.failures = list(failures)
