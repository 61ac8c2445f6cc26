"""Converters from public raw formats to in-memory records (``sciml.datasets.records``).

Each converter is a function ``fn(path, *, <typed options>, shard=None) -> DataSpec`` registered in
:data:`CONVERTERS` by name; the names and options are the ``sciml data convert`` command's. Converters only parse:
nothing in an input file is ever executed (pickles go through a restricted unpickler, ``.pt`` files are read with
``weights_only=True``), and bad input raises :class:`~sciml.errors.DataFormatError` with a one-line message naming
the file and the problem. See docs/converters.md.
"""
from __future__ import annotations

from sciml.config import Registry

__all__ = ["CONVERTERS"]

#: name -> converter function.
CONVERTERS = Registry("converter")

for _name, _path in (
    ("planetoid", "sciml.datasets.sources.planetoid:convert_planetoid"),
    ("npz_graph", "sciml.datasets.sources.npz_graphs:convert_npz_graph"),
    ("tudataset", "sciml.datasets.sources.tudataset:convert_tudataset"),
    ("uea_ts", "sciml.datasets.sources.ts_format:convert_ts"),
    ("ase", "sciml.datasets.sources.ase_atoms:convert_ase"),
    ("neuraloperator_pt", "sciml.datasets.sources.torch_pt:convert_neuraloperator_pt"),
    ("matlab", "sciml.datasets.sources.matlab:convert_matlab"),
    ("npz_fields", "sciml.datasets.sources.npz_arrays:convert_npz_fields"),
    ("dgl", "sciml.datasets.sources.dgl_graphs:convert_dgl"),
):
    CONVERTERS.register_lazy(_name, _path, runtime=("path", "shard"))
