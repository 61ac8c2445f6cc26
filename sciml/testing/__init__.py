"""Helpers shared by the test suite: device parametrisation, optional-package and slow-test decorators,
synthetic graphs. Importable by users who test their own models against sciml."""
from sciml.testing.decorators import on_devices, requires_cuda, with_package
from sciml.testing.graphs import random_graph

__all__ = ["on_devices", "requires_cuda", "with_package", "random_graph"]
