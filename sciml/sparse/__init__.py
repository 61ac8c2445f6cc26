"""Shared sparse graph kernels: CSR adjacency, SpMM, segment reductions, softmax, gather/scatter, SDDMM.

Convention (PyG, ``flow="source_to_target"``): ``edge_index[0]`` are sources :math:`j`, ``edge_index[1]`` targets
:math:`i`; CSR rows are targets, so ``(A @ x)[i] = sum_j w_ij x[j]`` aggregates incoming messages. See
``docs/sparse.md``.
"""
from sciml.sparse.csr import CSRAdjacency
from sciml.sparse._deterministic import deterministic, is_deterministic
from sciml.sparse._scatter import gather, scatter
from sciml.sparse._sddmm import sddmm
from sciml.sparse.index import (SegmentBuckets, index_to_ptr, pad_buckets, pad_segments, ptr_to_index, ragged_arange,
                                segment_buckets, segment_rank)
from sciml.sparse.segment import segment_reduce
from sciml.sparse.softmax import segment_softmax
from sciml.sparse._spmm import spmm

__all__ = ["CSRAdjacency", "spmm", "segment_reduce", "segment_softmax", "gather", "scatter", "sddmm",
           "deterministic", "is_deterministic", "ptr_to_index", "index_to_ptr", "ragged_arange", "segment_rank",
           "segment_buckets", "pad_buckets", "SegmentBuckets",
           "pad_segments"]
