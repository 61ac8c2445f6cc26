"""``key.sub=value`` overrides, as given on the command line after the config file.

* ``trainer.lr=1e-3``: set a value. The value is parsed as YAML (:func:`~sciml.config._yaml.yaml_load`), so
  ``1e-3`` is a float, ``true`` a bool, ``[64, 64]`` a list, ``{patience: 5}`` a mapping and ``null`` is None;
  quote to force a string: ``data.split='10'``.
* ``~model.dropout``: delete a key (e.g. one the new target does not take after ``model.name=mlp``).

Setting a mapping replaces the old value (it is not merged key by key). Missing intermediate mappings are created;
whether a key exists at all is decided when the result is checked against the schema, so an unknown key given as an
override fails with the same message as one written in the file.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from sciml.errors import ConfigError

from ._yaml import yaml_load

__all__ = ["Override", "parse_override", "parse_overrides", "apply_overrides"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*$")


@dataclass(frozen=True)
class Override:
    """One parsed override.

    Args:
        path (tuple[str, ...]): The key path, ``("trainer", "lr")``.
        value (Any): The parsed value (:obj:`None` for a deletion).
        delete (bool): Whether the key is removed (``~trainer.lr``).
        text (str): The override as given, for error messages.
    """

    path: tuple[str, ...]
    value: Any
    delete: bool
    text: str

    @property
    def key(self) -> str:
        """The dotted key path, ``"trainer.lr"``."""
        return ".".join(self.path)


def parse_override(text: str) -> Override:
    """Parse one ``key.sub=value`` or ``~key.sub`` string.

    Raises:
        ConfigError: malformed key, missing ``=``, or a value that is not valid YAML.
    """
    if not isinstance(text, str):
        raise ConfigError(f"override {text!r}: expected a 'key=value' string, got {type(text).__name__}")
    if text.startswith("~"):
        key = text[1:].strip()
        if "=" in key or not _KEY.match(key):
            raise ConfigError(f"override {text!r}: a deletion looks like '~key.sub' (dotted names, no value)")
        return Override(tuple(key.split(".")), None, True, text)
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError(f"override {text!r}: expected 'key=value' (e.g. trainer.lr=1e-3) or '~key' to delete")
    if not _KEY.match(key):
        raise ConfigError(f"override {text!r}: the key {key!r} must be dotted names such as trainer.lr")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        detail = str(getattr(err, "problem", None) or err).strip()
        raise ConfigError(f"override {text!r}: the value {raw!r} is not valid YAML ({detail}); quote it to pass "
                          "a string") from None
    return Override(tuple(key.split(".")), value, False, text)


def parse_overrides(texts: Iterable[str | Override]) -> list[Override]:
    """Parse every override (already parsed ones pass through). A bare string is refused, not split into chars."""
    if isinstance(texts, (str, bytes)):
        raise ConfigError(f"overrides must be a list of 'key=value' strings, got the single string {texts!r}")
    return [t if isinstance(t, Override) else parse_override(t) for t in texts]


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str | Override]) -> dict[str, Any]:
    """Return a deep copy of ``config`` with the overrides applied in order.

    Raises:
        ConfigError: an override goes through a value that is not a mapping, or deletes a key that is absent.
    """
    out = copy.deepcopy(dict(config))
    for ov in parse_overrides(overrides):
        node: Any = out
        for depth, part in enumerate(ov.path[:-1]):
            child = node.get(part)
            if child is None and not ov.delete:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(ov.path[: depth + 1])
                state = "is not set" if child is None else f"is a {type(child).__name__}, not a mapping"
                raise ConfigError(f"override {ov.text!r}: {where} {state}")
            node = child
        last = ov.path[-1]
        if ov.delete:
            if last not in node:
                raise ConfigError(f"override {ov.text!r}: cannot delete {ov.key}, it is not set")
            del node[last]
        else:
            node[last] = copy.deepcopy(ov.value)
    return out
