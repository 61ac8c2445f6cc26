"""Index arithmetic on ragged (segmented) data: pointers ↔ segment ids, ranges, ranks inside segments, padding.

Everything is vectorised (no Python loop over segments) and runs on any device; the returned indices are int64
(except :func:`index_to_ptr`, which keeps the dtype of its input). ``ptr`` is a CSR-style pointer ``[S + 1]`` (segment ``s`` holds items ``ptr[s]:ptr[s+1]``);
a *sorted index* is the non-decreasing segment id of every item.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["ptr_to_index", "index_to_ptr", "ragged_arange", "segment_rank", "pad_segments", "SegmentBuckets",
           "segment_buckets", "pad_buckets"]


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
    must be distinct (e.g. ``inner`` from :func:`segment_rank`). Differentiable: the backward is a gather, and
    autograd keeps only the index for it (not ``values``: an in-place ``index_put_`` into fresh zeros, where
    ``index_copy`` would also save its source)."""
    rest = tuple(values.shape[1:])
    out = values.new_zeros((num_outer * kmax,) + rest)
    if values.size(0) > 0:
        out.index_put_((outer * kmax + inner,), values)
    return out.view((num_outer, kmax) + rest)


class SegmentBuckets(NamedTuple):
    """Layout of ragged segments padded in a few buckets of similar sizes (:func:`segment_buckets`).

    Attributes:
        rows (Tensor): ``[R]`` the non-empty segments, by decreasing size (ties by segment id); bucket ``b``
            holds ``rows[r_b : r_b + n_b]``.
        slot (Tensor): ``[T]`` position of every item in the flat padded buffer of :func:`pad_buckets`.
        sizes (list of (int, int)): ``(n_b, k_b)`` per bucket: its number of segments and its padding size.
        num_slots (int): ``sum(n_b * k_b)``, the length of the flat buffer.
    """
    rows: Tensor
    slot: Tensor
    sizes: list
    num_slots: int


def _bucket_bounds(values: list[int], mult: list[int], num_buckets: int) -> list[int]:
    """Start indices (into the distinct sizes ``values``, decreasing, with multiplicities ``mult``) of at most
    ``num_buckets`` buckets minimising ``sum(rows_b * max_size_b)``: an exact dynamic programme over the distinct
    sizes, ``O(B V^2)`` in a few tensor operations."""
    v = len(values)
    cum = torch.tensor([0] + mult, dtype=torch.float64).cumsum(0)                     # [V + 1]
    vals = torch.tensor(values + [0], dtype=torch.float64)
    i = torch.arange(v + 1)[:, None]
    j = torch.arange(v + 1)[None, :]
    # cost[i, j]: one bucket over the distinct sizes i..j-1, padded to values[i] (the largest)
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    cost = torch.where(j > i, (cum[None, :] - cum[:, None]) * vals[:, None], inf)   # [V + 1, V + 1]
    f = [torch.where(torch.arange(v + 1) == 0, torch.zeros((), dtype=torch.float64), inf)]  # 0 buckets
    args = []
    for _ in range(max(1, num_buckets)):
        val, arg = (f[-1][:, None] + cost).min(0)                                   # over the last start i
        f.append(val)
        args.append(arg)
    b = min(range(1, len(f)), key=lambda k: (float(f[k][v]), k))                     # fewest buckets on ties
    starts, j = [], v
    for k in range(b, 0, -1):
        j = int(args[k - 1][j])
        starts.append(j)
    return starts[::-1]


def segment_buckets(sorted_index: Tensor, num_segments: int, num_buckets: int = 4,
                    rank: Tensor | None = None) -> SegmentBuckets:
    """Pad ragged segments in up to ``num_buckets`` buckets instead of one ``[num_segments, kmax]`` block: the
    non-empty segments sorted by decreasing size and cut where that minimises the padded size (an exact dynamic
    programme over the distinct sizes). Each bucket is a dense ``[n_b, k_b, *]`` block (:func:`pad_buckets`), so
    batched matmuls over the segments waste little on padding when the sizes are skewed (empty segments take no
    space at all).

    Args:
        sorted_index (Tensor): ``[T]`` non-decreasing segment id of every item.
        num_segments (int): number of segments.
        num_buckets (int): largest number of buckets (1: one block of the non-empty segments). (default: ``4``)
        rank (Tensor, optional): ``[T]`` position of every item in its segment (:func:`segment_rank`; computed
            when not given).

    Returns:
        SegmentBuckets: the rows (segments) of the buckets, the slot of every item and the bucket sizes.
    """
    if num_buckets < 1:
        raise ValueError(f"segment_buckets: num_buckets must be >= 1, got {num_buckets}")
    device = sorted_index.device
    if rank is None:
        rank, _ = segment_rank(sorted_index, num_segments)
    counts = torch.bincount(sorted_index, minlength=num_segments) if sorted_index.numel() else \
        torch.zeros(num_segments, dtype=torch.long, device=device)
    order = torch.sort(counts, descending=True, stable=True).indices
    num_rows = int((counts > 0).sum())
    rows = order[:num_rows]
    if num_rows == 0:
        return SegmentBuckets(rows, sorted_index.new_zeros(0), [], 0)
    sizes_sorted = counts.index_select(0, rows)
    values, mult = torch.unique_consecutive(sizes_sorted.cpu(), return_counts=True)
    values, mult = values.tolist(), mult.tolist()
    starts = _bucket_bounds(values, mult, num_buckets)
    row_start = [0]
    for m in mult:
        row_start.append(row_start[-1] + m)
    sizes, base = [], torch.empty(num_rows, dtype=torch.long)
    slot0 = 0
    for a, b in zip(starts, starts[1:] + [len(values)]):
        r0, r1, k = row_start[a], row_start[b], values[a]
        sizes.append((r1 - r0, k))
        base[r0:r1] = slot0 + torch.arange(r1 - r0) * k
        slot0 += (r1 - r0) * k
    row_base = torch.zeros(num_segments, dtype=torch.long, device=device)
    row_base[rows] = base.to(device)
    slot = row_base.index_select(0, sorted_index) + rank
    return SegmentBuckets(rows, slot, sizes, slot0)


class _PadBuckets(torch.autograd.Function):
    """Scatter into one flat zero buffer, returned as one block per bucket; the backward concatenates the blocks'
    gradients once and gathers (a view-per-bucket of a differentiable buffer would instead materialise a zero
    buffer per bucket in the backward). Twice differentiable: the backward is made of differentiable ops."""

    @staticmethod
    def forward(ctx, values: Tensor, slot: Tensor, sizes: tuple, num_slots: int):
        rest = tuple(values.shape[1:])
        flat = values.new_zeros((num_slots,) + rest)
        if values.size(0) > 0:
            flat.index_put_((slot,), values)
        ctx.save_for_backward(slot)
        ctx.sizes, ctx.rest = sizes, rest
        out, start = [], 0
        for n, k in sizes:
            out.append(flat[start:start + n * k].view((n, k) + rest))
            start += n * k
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        (slot,) = ctx.saved_tensors
        pieces = []
        ref = next((g for g in grads if g is not None), None)
        for (n, k), g in zip(ctx.sizes, grads):
            pieces.append(g.reshape((n * k,) + ctx.rest) if g is not None
                          else ref.new_zeros((n * k,) + ctx.rest))
        if ref is None:
            return None, None, None, None
        flat = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return flat.index_select(0, slot), None, None, None


def pad_buckets(values: Tensor, buckets: SegmentBuckets) -> list[Tensor]:
    """Zero-padded blocks ``[n_b, k_b, *]`` (views of one flat buffer) with ``values[i]`` at its slot of
    :func:`segment_buckets`; block ``b`` row ``r`` is segment ``rows[r_b + r]``. Differentiable (twice): autograd
    keeps only the slot index, and the backward is one gather."""
    if not buckets.sizes:
        return []
    return list(_PadBuckets.apply(values, buckets.slot, tuple(buckets.sizes), buckets.num_slots))
