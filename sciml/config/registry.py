"""Name -> object registries: the only link between the string ``model: {name: gcn}`` in a config and a class.

A registry only adds names; every registered class or function stays usable on its own. Entries are registered
either with a decorator (the object is imported already) or *lazily* by import path, so that a catalogue of
names can be declared without importing any model code: the module is imported on the first lookup of the name.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Iterator, TypeVar

from sciml.errors import ConfigError

__all__ = ["Registry", "RegistryEntry", "MODELS", "DATA", "TASKS", "close_matches"]

T = TypeVar("T")


def close_matches(word: str, candidates: Any, n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``candidates`` that look like ``word`` (``difflib``, most similar first)."""
    return difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=0.6)


@dataclass
class RegistryEntry:
    """One registered name.

    Args:
        name (str): The registered name.
        path (str, optional): ``"package.module:attribute"`` for a lazy entry. (default: :obj:`None`)
        obj (Any, optional): The object, once known. (default: :obj:`None`)
        runtime (tuple[str, ...]): Parameters of ``obj`` that are supplied in code at build time (data tensors,
            the model handed to a trainer...) and therefore are not config keys. (default: :obj:`()`)
    """

    name: str
    path: str | None = None
    obj: Any = None
    runtime: tuple[str, ...] = field(default=())

    @property
    def loaded(self) -> bool:
        return self.obj is not None


class Registry:
    r"""A registry mapping names to classes or functions of one kind (``"model"``, ``"data"``, ``"solver"``...).

    .. code-block:: python

        MODELS = Registry("model")

        @MODELS.register("gcn")
        class GCN(torch.nn.Module): ...

        MODELS.register_lazy("dagnn", "sciml.gnn.dagnn:DAGNN")   # imported on first lookup
        MODELS.get("gcn")                                         # -> GCN

    Registering a name twice is an error, except when a module named by a lazy entry registers the very object the
    entry points to (a module may both be listed lazily and decorate its class).

    Args:
        kind (str): What the entries are, used in error messages (``"model"`` gives "unknown model 'gnc'").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry] = {}

    # ------------------------------------------------------------------ registration
    def register(self, name: str, obj: T | None = None, *,
                 runtime: tuple[str, ...] | list[str] = ()) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does so.

        Args:
            name (str): The name used in configs.
            obj (Any, optional): The class or function. (default: :obj:`None`, use as a decorator)
            runtime (tuple[str, ...]): Parameter names supplied in code when building, excluded from the config
                schema. (default: :obj:`()`)
        """
        self._check_name(name)
        runtime = tuple(runtime)

        def decorator(target: T) -> T:
            if not callable(target):
                raise TypeError(f"{self.kind} {name!r}: can only register a class or function, got {target!r}")
            existing = self._entries.get(name)
            if existing is not None:
                if existing.obj is target:
                    return target
                if existing.obj is None and existing.path == _import_path(target):
                    existing.obj = target  # the lazily listed module is registering its own object
                    existing.runtime = existing.runtime or runtime
                    return target
                raise ValueError(f"{self.kind} {name!r} is already registered "
                                 f"({existing.path or _import_path(existing.obj)}); cannot register "
                                 f"{_import_path(target)} under the same name")
            self._entries[name] = RegistryEntry(name=name, obj=target, runtime=runtime)
            return target

        return decorator if obj is None else decorator(obj)

    def register_lazy(self, name: str, path: str, *, runtime: tuple[str, ...] | list[str] = ()) -> None:
        """Register ``name`` for the object at ``path`` (``"package.module:Attribute"``) without importing it.

        Args:
            name (str): The name used in configs.
            path (str): Import path of the object, ``module:qualified.name``.
            runtime (tuple[str, ...]): As in :meth:`register`. (default: :obj:`()`)
        """
        self._check_name(name)
        module, sep, attr = path.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"{self.kind} {name!r}: lazy path must look like 'package.module:Attribute', "
                             f"got {path!r}")
        existing = self._entries.get(name)
        if existing is not None:
            if existing.path == path or (existing.obj is not None and _import_path(existing.obj) == path):
                return
            raise ValueError(f"{self.kind} {name!r} is already registered "
                             f"({existing.path or _import_path(existing.obj)}); cannot register {path} "
                             "under the same name")
        self._entries[name] = RegistryEntry(name=name, path=path, runtime=tuple(runtime))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions)."""
        self.entry(name)
        del self._entries[name]

    # ------------------------------------------------------------------ lookup
    def entry(self, name: str, *, key: str | None = None) -> RegistryEntry:
        """The entry for ``name`` with its object imported.

        Raises:
            ConfigError: ``name`` is not registered; the message names ``key`` (the config key path that held the
                name, e.g. ``model.name``), suggests close matches and lists the registered names.
            ImportError: the module of a lazy entry cannot be imported or lacks the attribute.
        """
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            where = f"{key}: " if key else ""
            msg = f"{where}unknown {self.kind} {name!r}"
            guesses = close_matches(name, self._entries)
            if guesses:
                msg += "; did you mean " + " or ".join(repr(g) for g in guesses) + "?"
            names = ", ".join(sorted(self._entries)) or "(none registered)"
            err = ConfigError(f"{msg}{' ' if guesses else '. '}Registered {self.kind} names: {names}")
            err.key_path = key
            raise err
        if entry.obj is None:
            entry.obj = self._import(entry)
        return entry

    def get(self, name: str, *, key: str | None = None) -> Any:
        """The class or function registered as ``name`` (importing it for a lazy entry). See :meth:`entry`."""
        return self.entry(name, key=key).obj

    def _import(self, entry: RegistryEntry) -> Any:
        module_name, _, attr = entry.path.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(f"{self.kind} {entry.name!r} is registered as {entry.path}, but importing "
                              f"{module_name} failed: {err}") from err
        # Importing the module may have run `register` for this name already.
        if entry.obj is not None:
            return entry.obj
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ImportError(f"{self.kind} {entry.name!r} is registered as {entry.path}, but "
                                  f"{module_name} has no attribute {attr!r}") from None
        return obj

    # ------------------------------------------------------------------ container protocol
    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def is_loaded(self, name: str) -> bool:
        """Whether the object for ``name`` has been imported (always true for decorator registrations)."""
        return self._entries[name].loaded

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} names must be non-empty strings without surrounding spaces, got {name!r}")


def _import_path(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


#: Models, selected by ``model.name``.
MODELS = Registry("model")
#: Data builders (datasets, generators), selected by ``data.name``.
DATA = Registry("data")
#: Tasks (how a model's loss and metrics are computed from a batch), selected by ``task.name``.
TASKS = Registry("task")
