"""Typed configs: YAML -> dataclasses, ``key=value`` overrides, the name -> class registry.

.. code-block:: python

    from sciml.config import MODELS, load_config, write_run_info

    cfg = load_config("configs/gcn.yaml", ["trainer.lr=1e-3"])
    model = cfg.model.build()
    write_run_info(cfg.trainer.run_dir, cfg)

Importing this package imports no model code: lazily registered names are imported on first lookup.
See ``docs/configs.md``.
"""
from .loader import (DEFAULT_TRAINER, SECTIONS, ExperimentConfig, ExperimentSchema, config_to_dict, dump_config,
                     load_config, read_config_file, save_config)
from .overrides import Override, apply_overrides, parse_override, parse_overrides
from .registry import DATA, MODELS, TASKS, Registry, RegistryEntry
from .run_info import atomic_write_text, collect_run_info, git_info, write_run_info
from .schema import ComponentConfig, SectionConfig, Target, parse_section, section_class
from .typecheck import coerce
from . import catalogue  # noqa: F401  (declares the built-in names, lazily)

__all__ = [
    # registry
    "Registry", "RegistryEntry", "MODELS", "DATA", "TASKS",
    # schema
    "SectionConfig", "ComponentConfig", "Target", "section_class", "parse_section", "coerce",
    # loading
    "ExperimentSchema", "ExperimentConfig", "SECTIONS", "DEFAULT_TRAINER", "load_config", "read_config_file",
    "config_to_dict", "dump_config", "save_config",
    # overrides
    "Override", "parse_override", "parse_overrides", "apply_overrides",
    # provenance
    "write_run_info", "collect_run_info", "git_info", "atomic_write_text",
]
