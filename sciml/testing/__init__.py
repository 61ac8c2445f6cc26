"""Helpers shared by the test suite: device parametrisation, optional-package and slow-test decorators,
synthetic graphs, benchmark scripts (loaded as a module, or run in their quick mode). Importable by users who test
their own models against sciml."""
from sciml.testing.decorators import on_devices, requires_cuda, with_package
from sciml.testing.graphs import random_graph
from sciml.testing.scripts import load_script, run_quick

__all__ = ["on_devices", "requires_cuda", "with_package", "random_graph", "load_script", "run_quick"]
