"""In-memory records: what converters and generators produce, what the HDF5 writer packs and the readers return.

Four kinds of data, one record type each:

* ``"graphs"``: a PyG :class:`~torch_geometric.data.Data` per graph (one big graph is a collection of one).
  Node-level tensors have ``num_nodes`` rows, edge-level tensors ``num_edges`` rows (``edge_index`` holds local
  ids), anything else is graph-level.
* ``"atoms"``: a PyG ``Data`` per structure with ``pos [n, 3]`` (Å), ``z [n]`` (atomic numbers), ``cell [1, 3, 3]``,
  ``pbc [1, 3]`` (bool), ``tags [n]`` (0 sub-surface, 1 surface, 2 adsorbate), ``fixed [n]`` (bool), and when
  known ``energy [1]`` and ``forces [n, 3]``.
* ``"fields"``: a :class:`FieldSample` per sample: named arrays ``[T, *spatial, C]`` on a shared grid, plus scalar
  parameters.
* ``"series"``: a :class:`TimeSeries` per instance: irregular times, values with an observation mask, a label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("graphs", "atoms", "fields", "series")


@dataclass
class FieldSample:
    """One sample of gridded fields.

    Args:
        fields: name -> array ``[T, *spatial, C]`` (float32 on write); every field of a dataset has the same
            ``T`` and spatial shape (``T = 1`` for steady problems such as Darcy).
        params: name -> scalar parameter of this sample (viscosity, seed...), stored per sample, never in file names.
    """

    fields: dict[str, np.ndarray]
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class TimeSeries:
    """One (possibly irregular, multivariate) time series.

    Args:
        times: ``[L]`` float64 observation times, non-decreasing.
        values: ``[L, D]`` float32 values (anything where ``mask`` is False is ignored; stored as NaN).
        mask: ``[L, D]`` bool, True where observed.
        y: label: an int class index or a float regression target (``None`` if unlabelled).
    """

    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    y: int | float | None = None
