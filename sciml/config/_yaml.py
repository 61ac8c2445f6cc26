"""YAML reading and writing for configs: PyYAML's *safe* loader and dumper with three fixes.

PyYAML implements YAML 1.1, whose implicit typing surprises config authors. Our loader and dumper are subclasses
of :class:`yaml.SafeLoader` / :class:`yaml.SafeDumper` (so only plain YAML types are ever constructed, never Python
objects) with the implicit resolvers changed as follows:

* ``1e-3`` and ``1E5`` are floats (YAML 1.1 needs a dot: ``1.0e-3``; plain :func:`yaml.safe_load` gives the *string*
  ``'1e-3'``),
* only ``true``/``false`` (any case) are booleans; ``yes``, ``no``, ``on``, ``off`` stay strings (YAML 1.2),
* dates and timestamps stay strings,
* a key repeated in one mapping is an error (plain PyYAML silently keeps the last one).

The dumper quotes any string that either rule set would retype, so a string such as ``'1e-3'``, ``'no'`` or
``'2024-01-01'`` is quoted when written and reads back as the same string.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["ConfigLoader", "ConfigDumper", "yaml_load", "yaml_dump"]

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_FLOAT_WITH_EXPONENT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _fixed_resolvers(base: dict, *, drop_yaml11: bool) -> dict:
    # Build fresh lists: `add_implicit_resolver` on a subclass would append to lists shared with yaml.SafeLoader
    # and change `yaml.safe_load` for the whole process.
    dropped = (_BOOL_TAG, _TIMESTAMP_TAG) if drop_yaml11 else ()
    resolvers = {ch: [(tag, rx) for tag, rx in rules if tag not in dropped] for ch, rules in base.items()}
    for ch in "tTfF":
        resolvers.setdefault(ch, []).append((_BOOL_TAG, _BOOL))
    for ch in "-+0123456789":
        resolvers.setdefault(ch, []).append((_FLOAT_TAG, _FLOAT_WITH_EXPONENT))
    return resolvers


class ConfigLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` with YAML 1.2-style booleans, ``1e-3`` floats, no timestamps, no duplicate keys."""

    yaml_implicit_resolvers = _fixed_resolvers(yaml.SafeLoader.yaml_implicit_resolvers, drop_yaml11=True)

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: let PyYAML raise its own error below
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first defined on line {first.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class ConfigDumper(yaml.SafeDumper):
    """:class:`yaml.SafeDumper` that quotes every string either YAML 1.1 or :class:`ConfigLoader` would retype.

    ``'yes'``, ``'1e-3'`` and ``'2024-01-01'`` come out quoted, so the file reads back the same with
    :class:`ConfigLoader` *and* with plain :func:`yaml.safe_load`.
    """

    yaml_implicit_resolvers = _fixed_resolvers(yaml.SafeDumper.yaml_implicit_resolvers, drop_yaml11=False)


def yaml_load(text: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader` (safe: plain YAML types only)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 -- ConfigLoader is a SafeLoader subclass


def yaml_dump(data: Any) -> str:
    """Write plain data (dicts, lists, scalars) as block-style YAML that :func:`yaml_load` reads back equal."""
    return yaml.dump(data, Dumper=ConfigDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
