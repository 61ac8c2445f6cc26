"""Typed config sections built from the signature of the class or function they configure.

A section such as ``model: {name: gcn, hidden_channels: 64}`` is checked against the parameters of the registered
target (``inspect.signature`` + ``typing.get_type_hints``) and becomes an instance of a dataclass generated for
that target: one field per configurable parameter, with the parameter's type hint and default. The generated
classes are cached, so two loads of the same config compare equal.

Parameters that are *not* config keys:

* ``*args``, ``**kwargs`` and positional-only parameters,
* parameters declared *runtime-supplied* (``runtime=("model", "train_data")``): objects only the calling code
  has, passed to :meth:`SectionConfig.build`,
* parameters whose default cannot be written as YAML (a function, a module...): they keep their default, and
  setting one in a config is an error that says why.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Optional

from sciml.errors import ConfigError

from .registry import Registry
from .typecheck import check_keys, coerce, config_error, is_representable, join_path

__all__ = ["SectionConfig", "ComponentConfig", "Target", "section_class", "parse_section", "resolve_target"]

#: Names the generated dataclasses use for their own attributes; a target parameter may not use them (nor any name
#: starting with ``_sciml_``, the prefix of the class-level bookkeeping).
RESERVED = frozenset({"name", "kwargs", "build", "target_of"})


class SectionConfig:
    """Base of the generated section dataclasses (for a fixed target such as the trainer).

    Subclasses are dataclasses whose fields are the target's configurable parameters. Constructing one checks and
    converts every field against its type hint (raising :class:`~sciml.errors.ConfigError`).
    """

    # Class-level bookkeeping, prefixed so that no target parameter can shadow it.
    _sciml_target: ClassVar[Callable[..., Any]]
    _sciml_runtime: ClassVar[tuple[str, ...]] = ()
    _sciml_hidden: ClassVar[Mapping[str, str]] = {}
    _sciml_path: ClassVar[str] = ""
    _sciml_kind: ClassVar[str] = "section"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(getattr(self, f.name), hints[f.name], join_path(self._sciml_path, f.name))
            object.__setattr__(self, f.name, value)

    def __reduce__(self) -> tuple:
        # Generated classes cannot be found by name; rebuild the class from its target instead (pickling for
        # spawned workers and DDP processes).
        cls = type(self)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _rebuild_section, (cls._sciml_target, cls._sciml_runtime, values.get("name") if
                                  isinstance(self, ComponentConfig) else None, cls._sciml_kind, cls._sciml_path,
                                  values)

    @classmethod
    def target_of(cls) -> Callable[..., Any]:
        """The class or function this section configures."""
        return cls._sciml_target

    def kwargs(self) -> dict[str, Any]:
        """The validated keyword arguments for the target (a deep copy; ``name`` excluded)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "name"}

    def build(self, *args: Any, **runtime: Any) -> Any:
        """Call the target with ``*args``, the runtime-supplied keyword arguments and :meth:`kwargs`.

        Raises:
            TypeError: a keyword in ``runtime`` is also set by the config.
        """
        kwargs = self.kwargs()
        clash = sorted(set(runtime) & set(kwargs))
        if clash:
            raise TypeError(f"{type(self).__name__}.build(): {', '.join(clash)} come(s) from the config and cannot "
                            "also be passed at build time")
        return type(self)._sciml_target(*args, **runtime, **kwargs)


class ComponentConfig(SectionConfig):
    """Base of the generated dataclasses for registry-selected sections (``model``, ``data``, ``task``...).

    The first field is ``name``, the registered name that selected the target.
    """

    name: str


@dataclasses.dataclass(frozen=True)
class Target:
    """A fixed section target (not chosen by name), e.g. the trainer.

    Args:
        obj (Callable or str): The class or function, or its import path ``"package.module:Attribute"``, imported
            when a config is loaded (never when :mod:`sciml.config` is imported).
        runtime (tuple[str, ...]): Parameters supplied in code at build time, excluded from the schema. Names that
            are not parameters of the target are ignored. (default: :obj:`()`)
    """

    obj: Callable[..., Any] | str
    runtime: tuple[str, ...] = ()

    def resolve(self) -> Callable[..., Any]:
        """The target object (imported if given as a path)."""
        return resolve_target(self.obj)


def resolve_target(obj: Callable[..., Any] | str) -> Callable[..., Any]:
    """Import ``"package.module:Attribute"`` or return ``obj`` unchanged."""
    if not isinstance(obj, str):
        return obj
    module_name, sep, attr = obj.partition(":")
    if not sep:
        raise ValueError(f"import path must look like 'package.module:Attribute', got {obj!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"cannot import {obj}: {module_name} has no attribute {attr!r}") from None
    return target


def _describe_target(target: Any) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _parameter_hints(target: Any, params: list[inspect.Parameter]) -> dict[str, Any]:
    """Resolved type hints of ``params``; string annotations that cannot be evaluated raise a TypeError."""
    func = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 -- fall back to one parameter at a time below
        pass
    namespace = dict(getattr(inspect.unwrap(func), "__globals__", {}))
    hints = {}
    for p in params:
        if p.annotation is inspect.Parameter.empty:
            continue
        ann = p.annotation
        if isinstance(ann, str):
            try:
                ann = eval(ann, namespace)  # noqa: S307 -- a type annotation from the target's own module
            except Exception as err:  # noqa: BLE001
                raise TypeError(f"cannot resolve the type hint {p.annotation!r} of parameter {p.name!r} of "
                                f"{_describe_target(target)}: {err}. Import the type at module level, or declare "
                                "the parameter runtime-supplied") from err
        hints[p.name] = ann
    return hints


_CACHE: dict[tuple, type[SectionConfig]] = {}


def section_class(target: Callable[..., Any], *, runtime: tuple[str, ...] | list[str] = (),
                  name: str | None = None, kind: str = "section", path: str | None = None) -> type[SectionConfig]:
    """The dataclass describing the configurable parameters of ``target`` (cached).

    Args:
        target (Callable): The class or function configured by the section.
        runtime (tuple[str, ...]): Parameters supplied in code, excluded from the schema. (default: :obj:`()`)
        name (str, optional): The registered name; when given, the class derives from :class:`ComponentConfig`
            and its first field is ``name: Literal[name]``. (default: :obj:`None`)
        kind (str): What the section configures (``"model"``), for messages and the class name.
            (default: :obj:`"section"`)
        path (str, optional): Key path of the section in the experiment config, for messages raised when an
            instance is built directly. (default: ``kind``)

    Raises:
        TypeError: the target has no inspectable signature, a parameter uses a reserved name (``name``,
            ``kwargs``, ``build``, ``target``), a type hint cannot be resolved, or a default does not fit its hint.
    """
    runtime = tuple(runtime)
    path = kind if path is None else path
    key = (target, runtime, name, kind, path)
    cls = _CACHE.get(key)
    if cls is not None:
        return cls
    where = f"{kind} {name!r} ({_describe_target(target)})" if name else f"{kind} ({_describe_target(target)})"
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot read the signature of {where}: {err}") from err

    params = [p for p in signature.parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in runtime]
    hints = _parameter_hints(target, params)
    fields: list[tuple[str, Any, dataclasses.Field]] = []
    hidden: dict[str, str] = {}
    if name is not None:
        fields.append(("name", Literal[name], dataclasses.field(default=name)))
    for p in params:
        if p.name in RESERVED or p.name.startswith("_sciml_"):
            raise TypeError(f"{where}: parameter {p.name!r} clashes with a reserved config attribute "
                            f"({', '.join(sorted(RESERVED))}, _sciml_*); rename it or declare it runtime-supplied")
        hint = hints.get(p.name, Any)
        if p.default is inspect.Parameter.empty:
            fields.append((p.name, hint, dataclasses.field()))
            continue
        default = p.default
        if not is_representable(default):
            hidden[p.name] = (f"the default of {where} parameter {p.name!r} ({default!r}) cannot be written as "
                              "YAML; it keeps its default, or is passed in code to build()")
            continue
        if default is None and hint is not Any:
            hint = Optional[hint]  # `x: int = None` means int or None
        try:
            default = coerce(default, hint, join_path(path, p.name))
        except ConfigError as err:
            raise TypeError(f"{where}: the default of parameter {p.name!r} does not match its type hint: "
                            f"{err}") from None
        if default.__class__.__hash__ is None or dataclasses.is_dataclass(default):
            spec = dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d))
        else:
            spec = dataclasses.field(default=default)
        fields.append((p.name, hint, spec))

    base = ComponentConfig if name is not None else SectionConfig
    stem = re.sub(r"\W+", "_", f"{name}_{kind}" if name else kind).strip("_")
    cls_name = "".join(part[:1].upper() + part[1:] for part in stem.split("_")) + "Config"
    namespace = {"_sciml_target": staticmethod(target), "_sciml_runtime": runtime, "_sciml_hidden": hidden,
                 "_sciml_path": path, "_sciml_kind": kind,
                 "__doc__": f"Config of {where}: its parameters, checked against their type hints."}
    cls = dataclasses.make_dataclass(cls_name, fields, bases=(base,), namespace=namespace, kw_only=True)
    cls.__module__ = __name__
    _CACHE[key] = cls
    return cls


def _rebuild_section(target: Callable[..., Any], runtime: tuple[str, ...], name: str | None, kind: str, path: str,
                     values: dict[str, Any]) -> SectionConfig:
    return section_class(target, runtime=runtime, name=name, kind=kind, path=path)(**values)


def parse_section(spec: Registry | Target | Callable[..., Any] | str, mapping: Any, *,
                  path: str) -> SectionConfig:
    """Check one config section against its target and return the typed section.

    Args:
        spec (Registry or Target or Callable or str): A :class:`Registry` (the section's ``name`` key picks the
            target), a :class:`Target`, or a target / import path without runtime parameters.
        mapping (Mapping): The section as read from YAML.
        path (str): Key path of the section (``"model"``), used in messages.

    Raises:
        ConfigError: unknown or missing key, unknown ``name``, or a value of the wrong type; the message names the
            key path.
    """
    if isinstance(spec, Registry):
        what = f"{spec.kind}"
        if not isinstance(mapping, Mapping):
            raise config_error(path, f"expected a mapping with a 'name' key selecting the {what}, got "
                                     f"{type(mapping).__name__} {mapping!r}")
        if "name" not in mapping:
            raise config_error(path, f"missing required key 'name' (the {what} to use). Registered {what} "
                                     f"names: {', '.join(spec.names()) or '(none registered)'}")
        name = mapping["name"]
        entry = spec.entry(name, key=join_path(path, "name"))
        cls = section_class(entry.obj, runtime=entry.runtime, name=name, kind=spec.kind, path=path)
        what = f"{spec.kind} {name!r}"
    else:
        target = spec if isinstance(spec, Target) else Target(spec)
        cls = section_class(target.resolve(), runtime=target.runtime, kind=path.rsplit(".", 1)[-1], path=path)
        what = path
        if mapping is None:
            mapping = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(mapping, fields, path, what=what, hidden=cls._sciml_hidden)
    missing = [k for k, f in fields.items() if k not in mapping
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise config_error(path, f"missing required key(s) {', '.join(repr(join_path(path, m)) for m in missing)} "
                                 f"for {what}")
    hints = typing.get_type_hints(cls)
    values = {k: coerce(v, hints[k], join_path(path, k)) for k, v in mapping.items()}
    return cls(**values)
