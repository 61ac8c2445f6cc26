"""Softmax within segments (e.g. over the incoming edges of every node, as in attention)."""
from __future__ import annotations

from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._utils import check_float, check_index, check_ptr, check_same_device
from sciml.sparse.index import ptr_to_index
from sciml.sparse._scatter import gather, scatter
from sciml.sparse.segment import segment_reduce


def segment_softmax(src: Tensor, ptr: Tensor | None = None, index: Tensor | None = None,
                    num_segments: int | None = None, *, validate: bool = True) -> Tensor:
    r"""Softmax of ``src`` within segments along dimension 0:

    .. math::
        \mathbf{out}_k = \frac{\exp(\mathbf{src}_k - m_{s(k)})}{\sum_{l:\, s(l) = s(k)} \exp(\mathbf{src}_l -
        m_{s(k)})}, \qquad m_s = \max_{l:\, s(l)=s} \mathbf{src}_l

    computed independently for every trailing channel (e.g. attention heads). Segments are given either by a CSR
    pointer ``ptr`` (``src`` sorted by segment; the fast path) or by an ``index`` per row (any order). The maximum
    is subtracted for stability and treated as a constant (the softmax is invariant to it). Deterministic mode is
    honoured through :func:`scatter`/:func:`gather`.

    Args:
        src (torch.Tensor): ``[num_items, *]`` floating-point scores.
        ptr (torch.Tensor, optional): ``[num_segments + 1]`` CSR pointer. (default: :obj:`None`)
        index (torch.Tensor, optional): ``[num_items]`` segment of each row. (default: :obj:`None`)
        num_segments (int, optional): Number of segments with ``index``; ``index.max() + 1`` if :obj:`None`.
        validate (bool, optional): Validate ``ptr``/``index`` (O(items), a host sync). (default: :obj:`True`)

    Shapes:
        ``src: [E, *]`` → ``out: [E, *]``
    """
    check_float(src, "src")
    if src.dim() == 0:
        raise ShapeError("`src` must have at least one dimension [num_items, *]")
    if (ptr is None) == (index is None):
        raise ShapeError("segment_softmax needs exactly one of `ptr` (sorted segments) or `index`")
    if src.size(0) == 0:
        return src.clone()
    if ptr is not None:
        ptr = check_ptr(ptr, "ptr", src.size(0), src.device) if validate else ptr.long()
        seg = ptr_to_index(ptr, src.size(0))
        smax = segment_reduce(src.detach(), ptr, "max", validate=False)
        exp = (src - smax.index_select(0, seg)).exp()
        denom = segment_reduce(exp, ptr, "sum", validate=False)
        return exp / gather(denom, seg, validate=False)
    index = check_index(index, "index")
    check_same_device(index, "index", src.device, "`src`")
    if index.numel() != src.size(0):
        raise ShapeError(f"`index` must have shape [src.size(0)={src.size(0)}], got {tuple(index.shape)}")
    if num_segments is None:
        num_segments = int(index.max()) + 1
    smax = scatter(src.detach(), index, num_segments, "max", validate=validate)
    exp = (src - smax.index_select(0, index)).exp()
    denom = scatter(exp, index, num_segments, "sum", validate=False)
    return exp / gather(denom, index, validate=False)
