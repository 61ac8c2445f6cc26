"""Helpers shared by the test suite: device parametrisation, optional-package and slow-test decorators,
synthetic graphs, loading a benchmark script as a module. Importable by users who test their own models against sciml."""
from sciml.testing.decorators import on_devices, requires_cuda, with_package
from sciml.testing.graphs import random_graph
from sciml.testing.scripts import load_script

__all__ = ["on_devices", "requires_cuda", "with_package", "random_graph", "load_script"]
