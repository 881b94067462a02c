"""The one exception type of :mod:`xpnet.data`.

Its own module so that the loader (:mod:`.mnist`) and the downloader (:mod:`.download`) can both
raise it without importing each other.
"""

from __future__ import annotations

__all__ = ["MnistDataError"]


class MnistDataError(ValueError):
    """An MNIST file is missing, damaged or not the original; the message says which and the fix."""
