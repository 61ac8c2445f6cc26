"""Data generators: our own numerical solvers that produce training data (see ``docs/generators.md``).

``GENERATORS`` maps a name to a function ``fn(*, num_train, num_val, num_test, seed, <options>, shard) -> DataSpec``.
All options are keyword-only with typed defaults (the ``sciml data generate NAME OUT key=value ...`` CLI checks them
against the hints). The returned spec holds lazy per-split iterators over the samples ``shard=(i, n)`` owns; sample
``k`` of a split depends on ``(seed, split, k)`` only, so any sharding or worker count gives identical samples.

Names are registered lazily: importing this package imports no solver.
"""
from sciml.config import Registry

__all__ = ["GENERATORS"]

#: Generator name -> function returning a ``DataSpec``.
GENERATORS = Registry("generator")

GENERATORS.register_lazy("darcy", "sciml.datasets.generators.darcy:generate_darcy")
GENERATORS.register_lazy("navier_stokes", "sciml.datasets.generators.navier_stokes:generate_navier_stokes")
GENERATORS.register_lazy("diffusion_reaction",
                         "sciml.datasets.generators.diffusion_reaction:generate_diffusion_reaction")
GENERATORS.register_lazy("burgers", "sciml.datasets.generators.burgers:generate_burgers")
GENERATORS.register_lazy("catalyst", "sciml.datasets.generators.catalyst:generate_catalyst")
