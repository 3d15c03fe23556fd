"""The errors that ``minideep.data`` raises, each with a message a student can act on."""
from __future__ import annotations


class DataError(Exception):
    """Base class of every data error in minideep."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """No copy of a data set could be found or downloaded.

    The message lists every place that was searched, every download that was tried and
    why it failed, and how to put the files in place by hand.
    """


class ChecksumError(DataError, ValueError):
    """A file's checksum differs from the published one (corrupt, truncated or tampered)."""


class UnsafePickleError(DataError, ValueError):
    """A pickle asked to import something other than the few NumPy names CIFAR needs."""


class DataFormatError(DataError, ValueError):
    """A verified file does not have the layout of the official release."""


class NotEnoughSpaceError(DataError, OSError):
    """The disk has no room for a file minideep is about to write (checked before writing)."""


class NonFiniteDataError(DataError, ValueError):
    """Input images hold NaN or inf: bad data, named by split and sample index (not a divergence)."""
