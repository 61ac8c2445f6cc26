"""Loading an experiment config: YAML file (or dict) + overrides -> :class:`ExperimentConfig`."""
from __future__ import annotations

import dataclasses
import enum
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

import yaml

from sciml.errors import ConfigError

from ._yaml import yaml_dump, yaml_load
from .overrides import Override, apply_overrides, parse_overrides
from .registry import DATA, MODELS, TASKS, Registry
from .schema import ComponentConfig, SectionConfig, Target, parse_section
from .typecheck import check_keys, config_error, describe_value

__all__ = ["ExperimentSchema", "ExperimentConfig", "SECTIONS", "DEFAULT_TRAINER", "load_config",
           "read_config_file", "config_to_dict", "dump_config", "save_config"]

#: The sections of an experiment config, in file order.
SECTIONS = ("model", "data", "task", "trainer")

#: The trainer section validates against ``sciml.train.Trainer``, imported when a config is loaded. Its model,
#: task, data and collate function are objects built in code, never config keys.
DEFAULT_TRAINER = Target("sciml.train:Trainer", runtime=("model", "task", "train_data", "val_data", "collate_fn"))

SectionSpec = Union[Registry, Target, Callable[..., Any], str, None]


@dataclasses.dataclass(frozen=True)
class ExperimentSchema:
    """What each section of an experiment config is checked against.

    Each field is a :class:`Registry` (the section's ``name`` key selects the target), a :class:`Target` / class /
    function / import path (a fixed target), or :obj:`None` (the section must be absent).

    Args:
        model (SectionSpec): (default: :data:`MODELS`)
        data (SectionSpec): (default: :data:`DATA`)
        task (SectionSpec): (default: :data:`TASKS`)
        trainer (SectionSpec): (default: :data:`DEFAULT_TRAINER`, ``sciml.train:Trainer``)
    """

    model: SectionSpec = MODELS
    data: SectionSpec = DATA
    task: SectionSpec = TASKS
    trainer: SectionSpec = DEFAULT_TRAINER


@dataclasses.dataclass
class ExperimentConfig:
    """A resolved experiment config: one typed section per part of the experiment.

    ``cfg.model`` is a dataclass with ``name`` and the model's constructor arguments; ``cfg.model.build()``
    instantiates it; ``cfg.trainer.build(model=..., task=..., train_data=..., val_data=...)`` the trainer.
    A section is :obj:`None` when the schema does not use it.
    """

    model: ComponentConfig | SectionConfig | None = None
    data: ComponentConfig | SectionConfig | None = None
    task: ComponentConfig | SectionConfig | None = None
    trainer: SectionConfig | None = None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file into a dict.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (the message gives file, line and
            column), is empty, or does not hold a mapping at the top level.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err}") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise ConfigError(f"{where}: invalid YAML in config file {str(path)!r} (line "
                          f"{mark.line + 1 if mark else '?'}): {detail}") from None
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty; expected a mapping with sections "
                          f"{', '.join(SECTIONS)}")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping (section: settings) at the top level, "
                          f"got {describe_value(data)}")
    return data


def _origin_note(err: ConfigError, overrides: list[Override], source: str | None) -> str:
    key = getattr(err, "key_path", None)
    notes = []
    if key:
        for ov in reversed(overrides):
            if key == ov.key or key.startswith(ov.key + ".") or key.startswith(ov.key + "["):
                return f"set by override {ov.text!r}"
        below = [ov.text for ov in overrides if ov.key.startswith(key + ".")]
        if below:
            notes.append("after override(s) " + ", ".join(repr(t) for t in below))
    if source:
        notes.append(f"in {source}")
    return "; ".join(notes)


def load_config(source: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str | Override] = (), *,
                schema: ExperimentSchema | None = None) -> ExperimentConfig:
    """Load, override and check an experiment config.

    .. code-block:: python

        cfg = load_config("configs/gcn.yaml", ["model.hidden_channels=128", "trainer.lr=1e-3"])
        model = cfg.model.build()

    Args:
        source (str or PathLike or Mapping): A YAML file or an already-parsed mapping.
        overrides (Sequence[str]): ``key.sub=value`` / ``~key`` strings applied in order (see
            :mod:`sciml.config.overrides`). (default: :obj:`()`)
        schema (ExperimentSchema, optional): What the sections are checked against.
            (default: :class:`ExperimentSchema()`: the global registries and ``sciml.train:Trainer``)

    Raises:
        ConfigError: bad file, bad override, unknown section or key, missing key, unknown registered name, or a
            value of the wrong type. The message names the key path (``trainer.max_epochs``), the value and what
            was expected, and where it came from (the file, or the override that set it).
    """
    schema = ExperimentSchema() if schema is None else schema
    if isinstance(source, Mapping):
        raw, origin = dict(source), None
    elif isinstance(source, (str, os.PathLike)):
        raw, origin = read_config_file(source), f"config file {os.fspath(source)!r}"
    else:
        raise ConfigError(f"load_config expects a YAML file path or a mapping, got {describe_value(source)}")
    parsed = parse_overrides(overrides)
    raw = apply_overrides(raw, parsed)

    active = {s: getattr(schema, s) for s in SECTIONS if getattr(schema, s) is not None}
    sections: dict[str, Any] = {}
    try:
        check_keys(raw, active, None, what="an experiment config (sections)",
                   hidden={s: "this experiment schema does not use the section" for s in SECTIONS
                           if s not in active})
        for section, spec in active.items():
            if section not in raw and isinstance(spec, Registry):
                raise config_error(section, f"missing section; it needs at least 'name' (one of: "
                                            f"{', '.join(spec.names()) or 'none registered'})")
            sections[section] = parse_section(spec, raw.get(section), path=section)
    except ConfigError as err:
        note = _origin_note(err, parsed, origin)
        if not note:
            raise
        augmented = ConfigError(f"{err} [{note}]")
        augmented.key_path = getattr(err, "key_path", None)
        raise augmented from None
    return ExperimentConfig(**sections)


def _plain(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
                for f in dataclasses.fields(value) if f.init}
    raise ConfigError(f"{path}: {describe_value(value)} cannot be written as YAML")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-ready data (dicts, lists, scalars); unused (:obj:`None`) sections are left out.

    ``load_config(config_to_dict(cfg), schema=...) == cfg`` for every config built by :func:`load_config`.
    """
    if isinstance(cfg, ExperimentConfig):
        return {s: _plain(getattr(cfg, s), s) for s in SECTIONS if getattr(cfg, s) is not None}
    out = _plain(cfg, "")
    if not isinstance(out, dict):
        raise TypeError(f"config_to_dict expects a config dataclass, got {type(cfg).__name__}")
    return out


def dump_config(cfg: Any) -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal config."""
    return yaml_dump(config_to_dict(cfg))


def save_config(cfg: Any, path: str | os.PathLike) -> pathlib.Path:
    """Write :func:`dump_config` to ``path`` atomically (temporary file + rename); returns the path."""
    from .run_info import atomic_write_text

    return atomic_write_text(path, dump_config(cfg))
