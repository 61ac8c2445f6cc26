"""Index arithmetic on ragged (segmented) data: pointers ↔ segment ids, ranges, ranks inside segments, padding.

Everything is vectorised (no Python loop over segments) and runs on any device; the returned indices are int64
(except :func:`index_to_ptr`, which keeps the dtype of its input). ``ptr`` is a CSR-style pointer ``[S + 1]`` (segment ``s`` holds items ``ptr[s]:ptr[s+1]``);
a *sorted index* is the non-decreasing segment id of every item.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ptr_to_index", "index_to_ptr", "ragged_arange", "segment_rank", "pad_segments"]


def ptr_to_index(ptr: Tensor, num_items: int | None = None) -> Tensor:
    """Segment id of every item of a pointer ``[S + 1]`` (``num_items = ptr[-1]``; give it to avoid a sync)."""
    counts = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=ptr.device), counts,
                                   output_size=int(ptr[-1]) if num_items is None else num_items)


def index_to_ptr(sorted_index: Tensor, num_segments: int) -> Tensor:
    """Pointer ``[num_segments + 1]`` of a sorted index (a binary search: deterministic, no atomics)."""
    bounds = torch.arange(num_segments + 1, device=sorted_index.device, dtype=sorted_index.dtype)
    return torch.searchsorted(sorted_index, bounds)


def ragged_arange(counts: Tensor, starts: Tensor | None = None) -> Tensor:
    """``cat([arange(starts[i], starts[i] + counts[i]) for i])`` (``starts`` default 0): e.g. the positions inside
    each segment, or the item ids of a selection of segments (``starts = ptr[ids]``, ``counts = sizes[ids]``).

    Args:
        counts (Tensor): non-negative integer lengths ``[S]``.
        starts (Tensor, optional): first value of every range ``[S]``. (default: zeros)
    """
    total = int(counts.sum()) if counts.numel() else 0
    if total == 0:
        return counts.new_zeros(0)
    shift = torch.cumsum(counts, 0) - counts
    if starts is not None:
        shift = shift - starts
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(shift, counts, output_size=total)


def segment_rank(sorted_index: Tensor, num_segments: int) -> tuple[Tensor, int]:
    """Position of every item inside its segment of a sorted index, and the largest segment size (0 without
    items)."""
    if sorted_index.numel() == 0:
        return sorted_index.new_zeros(0), 0
    ptr = index_to_ptr(sorted_index, num_segments)
    rank = torch.arange(sorted_index.numel(), device=sorted_index.device) - ptr[sorted_index]
    return rank, int((ptr[1:] - ptr[:-1]).max())


def pad_segments(values: Tensor, outer: Tensor, inner: Tensor, num_outer: int, kmax: int) -> Tensor:
    """Zero-padded ``[num_outer, kmax, *]`` tensor with ``values[i]`` at ``(outer[i], inner[i])``; the positions
    must be distinct (e.g. ``inner`` from :func:`segment_rank`). Differentiable: the backward is a gather."""
    rest = tuple(values.shape[1:])
    out = values.new_zeros((num_outer * kmax,) + rest)
    if values.size(0) > 0:
        out = out.index_copy(0, outer * kmax + inner, values)
    return out.view((num_outer, kmax) + rest)
