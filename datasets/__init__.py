"""sciml.datasets: one versioned HDF5 layout (sciml-h5) for graphs, atoms, fields and time series.

* :mod:`~sciml.datasets.records`: the in-memory record types converters and generators produce;
* :mod:`~sciml.datasets.schema`: the layout specification and validator;
* :mod:`~sciml.datasets.writer`: :class:`H5Writer`, :func:`write_dataset`, :class:`DataSpec`;
* :mod:`~sciml.datasets.reader`: :func:`open_dataset` and the torch ``Dataset`` per kind;
* :mod:`~sciml.datasets.shards`: shard names, ``--shard`` / Slurm array defaults, :func:`merge_shards`.

Atom-count-balanced batches: :class:`sciml.train.BalancedBatchSampler` (also a ``DataLoader`` batch sampler).

Submodules are imported on first attribute access (``import sciml.datasets`` stays cheap). See docs/data.md.
"""
if __name__ != "sciml.datasets":  # imported as a top-level `datasets`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.datasets`, not a top-level `datasets` package. "
        "Import it as `sciml.datasets`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )
import importlib as _importlib

_EXPORTS = {
    "FieldSample": "records", "TimeSeries": "records", "KINDS": "records",
    "FORMAT": "schema", "FORMAT_VERSION": "schema", "validate_file": "schema",
    "DataSpec": "writer", "H5Writer": "writer", "write_dataset": "writer", "write_spec": "writer",
    "open_dataset": "reader", "GraphDataset": "reader", "AtomsDataset": "reader", "FieldDataset": "reader",
    "SeriesDataset": "reader", "collate_series": "reader",
    "shard_path": "shards", "shard_range": "shards", "merge_shards": "shards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sciml.datasets' has no attribute {name!r}")
    return getattr(_importlib.import_module(f"{__name__}.{module}"), name)
