"""Checking and converting config values against type hints.

:func:`coerce` takes a value as it comes out of YAML (``None``, bool, int, float, str, list, dict) and a type hint,
and returns the value in the hinted type or raises :class:`~sciml.errors.ConfigError` naming the key path, the
value and the expected type. The rules are strict on purpose:

=====================================  ==================================================================
hint                                   accepted
=====================================  ==================================================================
``int``                                int (not bool, not float, not str)
``float``                              float, or int (converted)
``bool``                               bool only (not 0/1, not ``"true"``)
``str``                                str only (``lr: 1e-3`` is a float: quote it for a string)
``None``                               ``None``
``X | Y``, ``Optional[X]``             the first member that accepts it without conversion, else with conversion;
                                       a mapping goes to the dataclass members only, if there are any
``Literal[a, b]``                      one of the values, of the same type
``list[X]``, ``Sequence[X]``           list (or tuple), each item checked; gives a list
``tuple[X, ...]``, ``tuple[X, Y]``     list or tuple, items (and length) checked; gives a tuple
``dict[K, V]``, ``Mapping[K, V]``      mapping, keys and values checked; gives a dict
a dataclass                            a mapping of its fields (unknown/missing fields are errors), or an instance
``pathlib.Path``                       str (converted) or a path
an ``Enum``                            a member, a member's value, or a member's name
``Any``, ``object``                    anything
any other class                        an instance of it
=====================================  ==================================================================
"""
from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import pathlib
import types
import typing
from typing import Any, Literal, Union

from sciml.errors import ConfigError

from .registry import close_matches

__all__ = ["coerce", "describe_type", "describe_value", "config_error", "dataclass_from_mapping",
           "is_representable"]

_NONE = type(None)
_SEQUENCE_ORIGINS = (list, cabc.Sequence, cabc.MutableSequence, cabc.Collection, cabc.Iterable)
_MAPPING_ORIGINS = (dict, cabc.Mapping, cabc.MutableMapping)


def config_error(path: str | None, message: str) -> ConfigError:
    """A :class:`ConfigError` whose message starts with ``path`` and that carries it as ``err.key_path``."""
    err = ConfigError(f"{path}: {message}" if path else message)
    err.key_path = path
    return err


def join_path(path: str | None, key: Any) -> str:
    """``join_path("trainer", "lr") == "trainer.lr"``; ``join_path("dims", 0) == "dims[0]"``."""
    if isinstance(key, int):
        return f"{path or ''}[{key}]"
    return f"{path}.{key}" if path else str(key)


def describe_type(hint: Any) -> str:
    """A short readable name for a type hint: ``int``, ``list[float]``, ``str | None``, ``one of 'a', 'b'``."""
    if hint is Any:
        return "any value"
    if hint is _NONE or hint is None:
        return "null"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is Union or origin is types.UnionType:
        return " | ".join(describe_type(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", repr(origin))
        if not args:
            return name
        inner = ", ".join("..." if a is Ellipsis else describe_type(a) for a in args)
        return f"{name}[{inner}]"
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return f"a mapping of {hint.__name__} fields"
    return getattr(hint, "__name__", repr(hint).replace("typing.", ""))


def describe_value(value: Any, limit: int = 60) -> str:
    """``str 'ten'``, ``int 3``, ``list [1, 2]``..., truncated to about ``limit`` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def _mismatch(path: str | None, hint: Any, value: Any, note: str = "") -> ConfigError:
    msg = f"expected {describe_type(hint)}, got {describe_value(value)}"
    if note:
        msg += f" ({note})"
    return config_error(path, msg)


def coerce(value: Any, hint: Any, path: str | None = None, *, strict: bool = False) -> Any:
    """Check ``value`` against the type ``hint`` and return it in that type.

    Args:
        value (Any): The value, typically parsed from YAML.
        hint (Any): A type hint (see the module docstring for the supported forms).
        path (str, optional): The key path of the value, used in error messages. (default: :obj:`None`)
        strict (bool): Refuse conversions (int -> float, str -> Path, list -> tuple...). Used to try the members of
            a union without conversion first. (default: :obj:`False`)

    Raises:
        ConfigError: the value does not fit the hint; the message names ``path``, the value and the expected type.
    """
    if hint is Any or hint is object:
        return value
    if hint is None or hint is _NONE:
        if value is None:
            return None
        raise _mismatch(path, hint, value)
    if isinstance(hint, typing.NewType):
        return coerce(value, hint.__supertype__, path, strict=strict)
    if isinstance(hint, typing.TypeVar):
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return _coerce_union(value, hint, args, path, strict)
    if origin is Literal:
        for allowed in args:
            if type(value) is type(allowed) and value == allowed:
                return allowed
        note = ""
        if isinstance(value, str):
            guesses = close_matches(value, [a for a in args if isinstance(a, str)])
            if guesses:
                note = f"did you mean {guesses[0]!r}?"
        raise _mismatch(path, hint, value, note)
    if origin is typing.Annotated:  # only reached when a caller kept extras
        return coerce(value, args[0], path, strict=strict)
    if origin is not None:
        return _coerce_generic(value, hint, origin, args, path, strict)
    if not isinstance(hint, type):
        raise config_error(path, f"unsupported type hint {hint!r}")
    return _coerce_class(value, hint, path, strict)


def _coerce_union(value: Any, hint: Any, args: tuple, path: str | None, strict: bool) -> Any:
    if value is None:
        if _NONE in args:
            return None
        raise _mismatch(path, hint, value)
    members = [a for a in args if a is not _NONE]
    if isinstance(value, cabc.Mapping):
        # A dataclass is the more specific schema for a mapping: `EarlyStopping | dict[str, Any]` must not let a
        # misspelt EarlyStopping key slip through as a free-form dict.
        dataclass_members = [m for m in members if isinstance(m, type) and dataclasses.is_dataclass(m)]
        if dataclass_members:
            first_error = None
            for member in dataclass_members:
                try:
                    return coerce(value, member, path, strict=strict)
                except ConfigError as err:
                    first_error = first_error or err
            raise first_error
    passes = (True,) if strict else (True, False)
    errors: dict[Any, ConfigError] = {}
    for strict_pass in passes:
        for member in members:
            try:
                return coerce(value, member, path, strict=strict_pass)
            except ConfigError as err:
                errors[member] = err  # the lenient pass overwrites the strict one
    # When only one member could take a value of this shape (a mapping for `Window | None`, a list for
    # `int | list[int]`), its own error ("window.size: missing", "dims[1]: expected int") says more.
    shaped = [m for m in members if _same_shape(value, m)]
    if len(shaped) == 1:
        raise errors[shaped[0]]
    raise _mismatch(path, hint, value)


def _same_shape(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    if isinstance(value, cabc.Mapping):
        return (isinstance(hint, type) and dataclasses.is_dataclass(hint)) or origin in _MAPPING_ORIGINS
    if isinstance(value, (list, tuple)):
        return origin is tuple or origin in _SEQUENCE_ORIGINS
    return False


def _coerce_class(value: Any, hint: type, path: str | None, strict: bool) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        note = "write true or false" if isinstance(value, (str, int)) else ""
        raise _mismatch(path, hint, value, note)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        note = "use a whole number" if isinstance(value, float) else ""
        raise _mismatch(path, hint, value, note)
    if hint is float:
        if isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and not strict:
            return float(value)
        raise _mismatch(path, hint, value)
    if hint is str:
        if isinstance(value, str):
            return value
        note = "quote it to pass a string" if isinstance(value, (bool, int, float)) or value is None else ""
        raise _mismatch(path, hint, value, note)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, cabc.Mapping):
            return dataclass_from_mapping(hint, value, path)
        raise _mismatch(path, hint, value)
    if issubclass(hint, enum.Enum):
        if isinstance(value, hint):
            return value
        for member in hint:
            if type(member.value) is type(value) and member.value == value:
                return member
        if isinstance(value, str) and value in hint.__members__:
            return hint.__members__[value]
        choices = ", ".join(repr(m.value) for m in hint)
        raise _mismatch(path, hint, value, f"choose from {choices}")
    if issubclass(hint, pathlib.PurePath):
        if isinstance(value, hint):
            return value
        if isinstance(value, str) and not strict:
            return hint(value)
        raise _mismatch(path, hint, value)
    # Bare containers (`list`, `dict`, `tuple`) behave like their parametrised form with Any items.
    if hint in (list, tuple, dict) or hint in _SEQUENCE_ORIGINS or hint in _MAPPING_ORIGINS:
        return _coerce_generic(value, hint, hint, (), path, strict)
    if isinstance(value, hint):
        return value
    raise _mismatch(path, hint, value)


def _coerce_generic(value: Any, hint: Any, origin: Any, args: tuple, path: str | None, strict: bool) -> Any:
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or (strict and not isinstance(value, tuple)):
            raise _mismatch(path, hint, value)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], join_path(path, i)) for i, v in enumerate(value))
        if args == ((),):  # tuple[()]
            args = ()
        if len(value) != len(args):
            raise _mismatch(path, hint, value, f"needs exactly {len(args)} items, got {len(value)}")
        return tuple(coerce(v, a, join_path(path, i)) for i, (v, a) in enumerate(zip(value, args)))
    if origin in _SEQUENCE_ORIGINS:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) \
                or (strict and not isinstance(value, list)):
            raise _mismatch(path, hint, value)
        item = args[0] if args else Any
        return [coerce(v, item, join_path(path, i)) for i, v in enumerate(value)]
    if origin in _MAPPING_ORIGINS:
        if not isinstance(value, cabc.Mapping):
            raise _mismatch(path, hint, value)
        key_hint, value_hint = (args if len(args) == 2 else (Any, Any))
        out = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)  # mapping keys are dotted even when they are ints
            out[coerce(k, key_hint, f"{sub} (the key)")] = coerce(v, value_hint, sub)
        return out
    if origin in (type, cabc.Callable) or not isinstance(origin, type):
        if isinstance(origin, type) and isinstance(value, origin):
            return value
        raise _mismatch(path, hint, value)
    if isinstance(value, origin):  # other parametrised classes: check the class only
        return value
    raise _mismatch(path, hint, value)


def _resolved_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception as err:  # noqa: BLE001 -- any failure to evaluate a forward reference
        raise TypeError(f"cannot resolve the type hints of {obj!r}: {err}") from err


def dataclass_from_mapping(cls: type, mapping: cabc.Mapping, path: str | None = None) -> Any:
    """Build the dataclass ``cls`` from a mapping of its ``init`` fields, checking every value against its hint.

    Raises:
        ConfigError: unknown key (with a close-match suggestion and the valid keys), missing required field or a
            value of the wrong type; the message names the key path.
    """
    hints = _resolved_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(mapping, fields, path, what=cls.__name__)
    missing = [name for name, f in fields.items() if name not in mapping
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise config_error(path, f"missing required key(s) {', '.join(repr(join_path(path, m)) for m in missing)} "
                                 f"for {cls.__name__}")
    kwargs = {k: coerce(v, hints.get(k, Any), join_path(path, k)) for k, v in mapping.items()}
    return cls(**kwargs)


def check_keys(mapping: Any, valid: cabc.Iterable[str], path: str | None, *, what: str,
               hidden: cabc.Mapping[str, str] | None = None) -> None:
    """Raise a :class:`ConfigError` for the first key of ``mapping`` not in ``valid``.

    Args:
        mapping (Mapping): The section as read from YAML.
        valid (Iterable[str]): The accepted keys.
        path (str, optional): Key path of the section.
        what (str): What the section configures, for the message (``"model 'gcn'"``).
        hidden (Mapping[str, str], optional): Keys that exist on the target but are not config keys, with the
            reason; setting one gives that reason instead of "unknown key".
    """
    if not isinstance(mapping, cabc.Mapping):
        raise config_error(path, f"expected a mapping of {what} settings, got {describe_value(mapping)}")
    valid = list(valid)
    for key in mapping:
        if key in valid:
            continue
        sub = join_path(path, key)
        if hidden and key in hidden:
            raise config_error(sub, f"cannot be set in a config: {hidden[key]}")
        msg = f"unknown key {key!r} for {what}"
        guesses = close_matches(key, valid)
        if guesses:
            msg += "; did you mean " + " or ".join(repr(g) for g in guesses) + "?"
        msg += (" " if guesses else ". ") + "Valid keys: " + (", ".join(valid) or "(none)")
        raise config_error(sub, msg)


def is_representable(value: Any) -> bool:
    """Whether ``value`` can be written as plain YAML by :func:`~sciml.config.config_to_dict` and read back."""
    if value is None or isinstance(value, (bool, int, float, str, pathlib.PurePath)):
        return True
    if isinstance(value, enum.Enum):
        return is_representable(value.value)
    if isinstance(value, (list, tuple)):
        return all(is_representable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int, float, bool)) and is_representable(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(is_representable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init)
    return False
