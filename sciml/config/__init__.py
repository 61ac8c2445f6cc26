"""Typed configs: YAML -> dataclasses, key=value overrides, the name -> class registry."""
