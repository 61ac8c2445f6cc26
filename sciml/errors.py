"""Typed exceptions shared by the whole suite.

Every error raised for bad user input is one of these, with a message naming the file, key, shape or value at
fault and what was expected. They subclass the matching built-in (``ValueError``, ``KeyError``...) so that generic
handlers keep working.
"""


class SciMLError(Exception):
    """Base class of every error raised by sciml for bad input or a failed run."""


class ShapeError(SciMLError, ValueError):
    """A tensor has the wrong shape, dtype or device for the operation."""


class IndexOutOfRangeError(SciMLError, IndexError):
    """An index (node id, segment pointer...) points outside the tensor it indexes."""


class ConfigError(SciMLError, ValueError):
    """A configuration key is unknown, missing, or has a value of the wrong type."""


class NonFiniteError(SciMLError, FloatingPointError):
    """A loss or gradient became NaN or infinite during training."""


class CheckpointError(SciMLError, RuntimeError):
    """A checkpoint is missing, truncated, or does not match the run it is loaded into."""


class DataFormatError(SciMLError, ValueError):
    """An input data file is truncated, corrupted or inconsistent (wrong columns, counts that disagree, unknown
    labels...); the message names the file and what was wrong."""


def check_int(value: object, name: str, owner: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` if it is an ``int`` (not a ``bool``) ``>= minimum`` (or ``None`` with ``allow_none``); otherwise a
    :class:`ConfigError` naming ``owner``, the argument ``name`` and the bad value."""
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}{extra}, got {value!r}")
    return value
