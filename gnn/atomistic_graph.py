r"""Periodic neighbour graphs and the interaction index sets of directional atomistic models (GemNet-OC).

Everything here works on a *batch* of structures stored back to back: ``pos [N, 3]`` with a pointer ``ptr [B + 1]``
(structure ``b`` owns atoms ``ptr[b]:ptr[b+1]``), one cell ``cell [B, 3, 3]`` (rows are the lattice vectors) and
periodic flags ``pbc [B, 3]`` per structure. Edges never cross structures.

**Edge convention.** An edge ``e = (s, t)`` (``edge_index[0] = s`` source, ``edge_index[1] = t`` target) with integer
``cell_offset[e] = S`` connects the image of the source atom at :math:`\mathbf{p}_s + S\,\mathbf{C}` to the target
atom :math:`\mathbf{p}_t`. Its vector points from the source image to the target,

.. math::
    \mathbf{r}_e = \mathbf{p}_t - \mathbf{p}_s - S\,\mathbf{C}, \qquad d_e = \lVert \mathbf{r}_e \rVert,

and its reverse is ``(t, s)`` with offset :math:`-S`. Graphs are sorted by ``(target, distance, source,
offset)``, so the incoming edges of every atom are contiguous and nearest first. Index construction runs under
``no_grad``; :func:`edge_vectors` recomputes vectors and distances from ``pos`` differentiably (for conservative
forces).

Contents:

* :func:`radius_graph_pbc`: all source images within ``cutoff`` of every target (brute force over the periodic
  images that can reach the cell, vectorised and chunked), optionally capped at the ``max_neighbors`` nearest per
  target with a deterministic tie rule (below).
* :func:`select_edges`: the same cap/cutoff applied to an existing graph (GemNet-OC cuts its four graphs out of
  the largest one; the result equals building the smaller graph directly).
* :func:`symmetrize_edges` and :func:`reverse_edge_index`: a graph that holds every edge in both directions, and
  the exact index of each edge's reverse (an involution).
* :func:`triplet_index` and :func:`quadruplet_index`: the triplets :math:`b \to a \leftarrow c` (also between two
  graphs, and :math:`d \to b \to a`) and quadruplets :math:`d \to b \to a \leftarrow c`, periodic images
  included, built on :class:`sciml.sparse.CSRAdjacency`.
* :func:`gemnet_oc_graphs`: GemNet-OC's four graphs (atom-to-atom, embedding, atom-edge, quadruplet) and all their
  index sets in one :class:`GemNetOCGraphs`.
* :func:`oc20_tags`: OC20 tags for files that did not save them.

**Nearest-k caps and ties.** With ``strict=True`` exactly ``min(k, degree)`` edges are kept per target: the
nearest, ties in distance broken by the lower source index, then the lexicographically lower cell offset
(deterministic, but the result can depend on the atom order when distances tie exactly). With ``strict=False``
every edge no longer than the ``k``-th distance plus ``tie_tolerance`` is kept, so tied (and nearly tied)
neighbours are kept or dropped together: the graph then does not depend on the atom order or the unit-cell
choice. (fairchem's non-strict rule compares with the ``(k+1)``-th distance instead, and keeps ``k + 1`` edges
even without ties; ours keeps exactly ``k`` when there are no ties.)
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Iterable, Sequence

import torch
from torch import Tensor

from sciml.errors import ConfigError, ShapeError
from sciml.sparse import CSRAdjacency, index_to_ptr, ragged_arange, segment_rank

__all__ = ["AtomGraph", "TripletIndex", "QuadrupletIndex", "GemNetOCGraphs", "radius_graph_pbc", "select_edges",
           "edge_vectors", "symmetrize_edges", "reverse_edge_index", "triplet_index", "quadruplet_index",
           "tag_edge_mask", "gemnet_oc_graphs", "graphs_to", "oc20_tags"]


# ---------------------------------------------------------------------------------------------------- containers
@dataclass
class AtomGraph:
    r"""A directed periodic neighbour graph over the atoms of a batch (see the module doc for the conventions).

    Attributes:
        edge_index (torch.Tensor): ``[2, E]`` int64 (source, target), sorted by target.
        cell_offset (torch.Tensor): ``[E, 3]`` int64 image shift :math:`S` of the source atom.
        distance (torch.Tensor): ``[E]`` float64 edge lengths at construction time (no gradient; used to select
            and order edges).
        num_atoms (int): number of atoms ``N`` of the batch.
    """

    edge_index: Tensor
    cell_offset: Tensor
    distance: Tensor
    num_atoms: int

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def source(self) -> Tensor:
        return self.edge_index[0]

    @property
    def target(self) -> Tensor:
        return self.edge_index[1]

    def subset(self, mask_or_index: Tensor) -> "AtomGraph":
        """The edges selected by a boolean mask or an index tensor (order kept)."""
        return AtomGraph(self.edge_index[:, mask_or_index], self.cell_offset[mask_or_index],
                         self.distance[mask_or_index], self.num_atoms)

    def target_ptr(self) -> Tensor:
        """CSR pointer ``[N + 1]`` of the (sorted) targets."""
        return index_to_ptr(self.edge_index[1], self.num_atoms)

    def in_degree(self) -> Tensor:
        return torch.bincount(self.edge_index[1], minlength=self.num_atoms)

    def to(self, device: torch.device | str) -> "AtomGraph":
        return AtomGraph(self.edge_index.to(device), self.cell_offset.to(device), self.distance.to(device),
                         self.num_atoms)


@dataclass
class TripletIndex:
    r"""Triplets: pairs of an input edge and an output edge that share a hub atom.

    Attributes:
        edge_in (torch.Tensor): ``[T]`` index of the input edge (into the input graph).
        edge_out (torch.Tensor): ``[T]`` index of the output edge (into the output graph), non-decreasing.
        rank (torch.Tensor): ``[T]`` position of the triplet among those of its output edge (``0..kmax-1``), for
            zero-padded ``[num_out_edges, kmax, *]`` tensors.
        kmax (int): largest number of triplets of one output edge (0 if there are none).
    """

    edge_in: Tensor
    edge_out: Tensor
    rank: Tensor
    kmax: int

    @property
    def num_triplets(self) -> int:
        return int(self.edge_in.numel())


@dataclass
class QuadrupletIndex:
    r"""Quadruplets :math:`d \to b \to a \leftarrow c` of an embedding graph (edges :math:`d \to b`,
    :math:`c \to a`) and an interaction graph (edge :math:`b \to a`).

    Attributes:
        triplet_in (TripletIndex): input triplets :math:`d \to b \to a`: ``edge_in`` = embedding edge
            :math:`d \to b`, ``edge_out`` = interaction edge :math:`b \to a`.
        triplet_out (TripletIndex): output triplets :math:`c \to a \leftarrow b`: ``edge_in`` = interaction edge
            :math:`b \to a`, ``edge_out`` = embedding edge :math:`c \to a`.
        triplet_in_of_quad (torch.Tensor): ``[Q]`` the input triplet of each quadruplet.
        triplet_out_of_quad (torch.Tensor): ``[Q]`` the output triplet of each quadruplet.
        edge_out (torch.Tensor): ``[Q]`` embedding edge :math:`c \to a` of each quadruplet, non-decreasing.
        rank (torch.Tensor): ``[Q]`` position among the quadruplets of the same output edge.
        kmax (int): largest number of quadruplets of one output edge.
    """

    triplet_in: TripletIndex
    triplet_out: TripletIndex
    triplet_in_of_quad: Tensor
    triplet_out_of_quad: Tensor
    edge_out: Tensor
    rank: Tensor
    kmax: int

    @property
    def num_quadruplets(self) -> int:
        return int(self.edge_out.numel())


@dataclass
class GemNetOCGraphs:
    r"""GemNet-OC's graphs and index sets for one batch (built by :func:`gemnet_oc_graphs`).

    Attributes:
        main (AtomGraph): embedding graph (edge embeddings, triplets, outputs), symmetric.
        reverse (torch.Tensor): ``[E_main]`` index of each main edge's reverse (``id_swap``).
        triplets (TripletIndex): main-graph triplets :math:`b \to a \leftarrow c`.
        a2a (AtomGraph or None): atom-to-atom interaction graph (the largest), with ``a2a_rank``/``a2a_kmax``.
        a2ee2a (AtomGraph or None): atom-to-edge / edge-to-atom graph, with ``a2ee2a_rank``/``a2ee2a_kmax``.
        triplets_a2e (TripletIndex or None): a2ee2a edge :math:`b \to a` into main edge :math:`c \to a`.
        triplets_e2a (TripletIndex or None): main edge :math:`b \to a` into a2ee2a edge :math:`c \to a`.
        qint (AtomGraph or None): quadruplet interaction graph (only edges touching ``qint_tags`` atoms).
        quadruplets (QuadrupletIndex or None).
    """

    main: AtomGraph
    reverse: Tensor
    triplets: TripletIndex
    a2a: AtomGraph | None = None
    a2a_rank: Tensor | None = None
    a2a_kmax: int = 0
    a2ee2a: AtomGraph | None = None
    a2ee2a_rank: Tensor | None = None
    a2ee2a_kmax: int = 0
    triplets_a2e: TripletIndex | None = None
    triplets_e2a: TripletIndex | None = None
    qint: AtomGraph | None = None
    quadruplets: QuadrupletIndex | None = None
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ index helpers
def _offset_code(offset: Tensor, bound: int) -> Tensor:
    """An int64 code of integer offsets with ``|offset| <= bound`` that sorts like the offsets lexicographically."""
    base = 2 * bound + 1
    o = offset + bound
    return (o[:, 0] * base + o[:, 1]) * base + o[:, 2]


def _sort_edges(target: Tensor, source: Tensor, offset: Tensor, distance: Tensor) -> Tensor:
    """Permutation sorting edges by (target, distance, source, offset): stable sorts from the last key."""
    if target.numel() == 0:
        return target.new_zeros(0)
    bound = int(offset.abs().max()) if offset.numel() else 0
    perm = torch.argsort(_offset_code(offset, bound), stable=True)
    perm = perm[torch.argsort(source[perm], stable=True)]
    perm = perm[torch.argsort(distance[perm], stable=True)]
    return perm[torch.argsort(target[perm], stable=True)]


def _as_batch(pos: Tensor, ptr: Tensor | None, cell: Tensor | None,
              pbc: Tensor | Sequence[bool] | None) -> tuple[Tensor, Tensor, Tensor]:
    """Normalise ``ptr [B+1]``, ``cell [B,3,3]`` (float64) and ``pbc [B,3]`` (bool) and check their shapes."""
    if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(1) != 3 or not pos.is_floating_point():
        raise ShapeError(f"`pos` must be a floating-point tensor of shape [num_atoms, 3], got "
                         f"{tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__}")
    n, device = pos.size(0), pos.device
    if ptr is None:
        ptr = torch.tensor([0, n], device=device)
    ptr = torch.as_tensor(ptr, device=device).long().view(-1)
    if ptr.numel() < 2 or int(ptr[0]) != 0 or int(ptr[-1]) != n or bool((ptr[1:] < ptr[:-1]).any()):
        raise ShapeError(f"`ptr` must be a non-decreasing pointer from 0 to num_atoms={n}, got {ptr.tolist()[:8]}")
    b = ptr.numel() - 1
    if cell is None:
        cell_t = torch.zeros(b, 3, 3, dtype=torch.float64, device=device)
        default_pbc = False
    else:
        cell_t = torch.as_tensor(cell, device=device).to(torch.float64)
        if cell_t.shape == (3, 3):
            cell_t = cell_t.expand(b, 3, 3)
        if cell_t.shape != (b, 3, 3):
            raise ShapeError(f"`cell` must have shape [num_structures={b}, 3, 3] or [3, 3], got {tuple(cell_t.shape)}")
        default_pbc = True
    if pbc is None:
        pbc_t = torch.full((b, 3), default_pbc, dtype=torch.bool, device=device)
    else:
        pbc_t = torch.as_tensor(pbc, device=device).bool()
        if pbc_t.shape == (3,):
            pbc_t = pbc_t.expand(b, 3)
        if pbc_t.shape != (b, 3):
            raise ShapeError(f"`pbc` must have shape [num_structures={b}, 3] or [3], got {tuple(pbc_t.shape)}")
    return ptr, cell_t, pbc_t


def _completed_basis(cell: Tensor, pbc: Tensor, structure: int) -> Tensor:
    """The cell with its non-periodic rows replaced by unit vectors orthogonal to the periodic ones, so that
    fractional coordinates along the periodic directions are defined (a slab or wire may have a zero vacuum
    vector)."""
    basis = cell.clone()
    periodic = [k for k in range(3) if bool(pbc[k])]
    norms = cell.norm(dim=1)
    for k in periodic:
        if float(norms[k]) <= 1e-12:
            raise ShapeError(f"structure {structure}: lattice vector {k} is zero but pbc[{k}] is True")
    if len(periodic) == 2:
        n = torch.linalg.cross(cell[periodic[0]], cell[periodic[1]])
        if float(n.norm()) <= 1e-12 * float(norms[periodic[0]] * norms[periodic[1]]):
            raise ShapeError(f"structure {structure}: the periodic lattice vectors are parallel")
        basis[[k for k in range(3) if k not in periodic][0]] = n / n.norm()
    elif len(periodic) == 1:
        u = cell[periodic[0]] / norms[periodic[0]]
        a = torch.tensor([1.0, 0.0, 0.0], dtype=cell.dtype, device=cell.device)
        if abs(float(u[0])) > 0.9:
            a = torch.tensor([0.0, 1.0, 0.0], dtype=cell.dtype, device=cell.device)
        v1 = a - (a @ u) * u
        v1 = v1 / v1.norm()
        others = [k for k in range(3) if k != periodic[0]]
        basis[others[0]], basis[others[1]] = v1, torch.linalg.cross(u, v1)
    det = float(torch.linalg.det(basis))
    if abs(det) <= 1e-9 * float(basis.norm(dim=1).prod()):
        raise ShapeError(f"structure {structure}: the cell is singular (det {det:.3g}); periodic lattice vectors "
                         "must be linearly independent")
    return basis


def _image_shifts(frac_span: Tensor, recip_norm: Tensor, pbc: Tensor, cutoff: float) -> Tensor:
    """All integer shifts that can bring a source image within ``cutoff`` of a target: along a periodic direction
    ``k`` the fractional coordinates of two atoms differ by at most the span of the structure, and the distance is
    at least ``|Δf_k + n_k| / |b_k|`` (``b_k`` the reciprocal vector), so ``|n_k| <= cutoff |b_k| + span_k``."""
    ranges = []
    for k in range(3):
        if bool(pbc[k]):
            m = int(torch.ceil(cutoff * recip_norm[k] + frac_span[k]))
            ranges.append(torch.arange(-m, m + 1))
        else:
            ranges.append(torch.zeros(1, dtype=torch.long))
    return torch.cartesian_prod(*ranges).view(-1, 3)


# ------------------------------------------------------------------------------------------------ radius graph
def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_cap(max_neighbors: int | None) -> int | None:
    if max_neighbors is None:
        return None
    if isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int) or max_neighbors < 1:
        raise ConfigError(f"max_neighbors must be a positive integer or None, got {max_neighbors!r}")
    return max_neighbors


@torch.no_grad()
def radius_graph_pbc(pos: Tensor, cutoff: float, *, ptr: Tensor | None = None, cell: Tensor | None = None,
                     pbc: Tensor | Sequence[bool] | None = None, max_neighbors: int | None = None,
                     strict: bool = True, tie_tolerance: float = 0.01, chunk_size: int = 1 << 20) -> AtomGraph:
    r"""Periodic radius graph: an edge from every source image within ``cutoff`` (inclusive) of every target atom.

    For each structure, the periodic images that can reach it are enumerated from the reciprocal lattice and the
    fractional extent of its atoms (atoms need not be wrapped into the cell), and all (target, source, image)
    distances are computed in float64, vectorised in chunks of at most ``chunk_size`` triples. The atom itself at
    zero offset is excluded; its own periodic images are not. Edges are sorted by ``(target, distance, source,
    offset)``.

    Args:
        pos (torch.Tensor): ``[N, 3]`` positions (Å).
        cutoff (float): radius (Å).
        ptr (torch.Tensor, optional): ``[B + 1]`` structure pointer. (default: one structure)
        cell (torch.Tensor, optional): ``[B, 3, 3]`` or ``[3, 3]`` lattice vectors as rows. (default: no cell)
        pbc (torch.Tensor or list, optional): ``[B, 3]`` or ``[3]`` periodic flags. (default: all True when a
            cell is given, else all False)
        max_neighbors (int, optional): keep only the nearest ``max_neighbors`` sources per target (see the tie
            rule in the module doc). (default: :obj:`None`, no cap)
        strict (bool): exactly ``max_neighbors`` per target (deterministic tie-break) or keep near-ties.
            (default: :obj:`True`)
        tie_tolerance (float): distance tolerance (Å) of the non-strict cap. (default: ``0.01``)
        chunk_size (int): largest number of (target, source, image) triples held at once. (default: ``2**20``)

    Returns:
        AtomGraph
    """
    cutoff = _check_positive("cutoff", cutoff)
    max_neighbors = _check_cap(max_neighbors)
    ptr, cell_t, pbc_t = _as_batch(pos, ptr, cell, pbc)
    device = pos.device
    p64 = pos.detach().to(torch.float64)
    targets, sources, offsets, dists = [], [], [], []
    cut2 = cutoff * cutoff
    for b in range(ptr.numel() - 1):
        lo, hi = int(ptr[b]), int(ptr[b + 1])
        n = hi - lo
        if n == 0:
            continue
        p = p64[lo:hi]
        if bool(pbc_t[b].any()):
            basis = _completed_basis(cell_t[b], pbc_t[b], b)
            inv = torch.linalg.inv(basis)
            frac = p @ inv
            span = frac.max(0).values - frac.min(0).values
            shifts = _image_shifts(span.cpu(), inv.norm(dim=0).cpu(), pbc_t[b].cpu(), cutoff).to(device)
        else:
            shifts = torch.zeros(1, 3, dtype=torch.long, device=device)
        num_shifts = shifts.size(0)
        zero_shift = int(((shifts == 0).all(1)).nonzero()[0, 0])
        images = (p[:, None, :] + (shifts.to(torch.float64) @ cell_t[b])[None, :, :]).reshape(n * num_shifts, 3)
        block = max(1, chunk_size // max(1, n * num_shifts))
        for t0 in range(0, n, block):
            t1 = min(n, t0 + block)
            diff = p[t0:t1, None, :] - images[None, :, :]
            d2 = (diff * diff).sum(-1)                                   # [tb, n * S]
            mask = d2 <= cut2
            rows = torch.arange(t0, t1, device=device)
            mask[rows - t0, rows * num_shifts + zero_shift] = False      # the atom itself
            ti, flat = mask.nonzero(as_tuple=True)
            targets.append(ti + t0 + lo)
            sources.append(flat // num_shifts + lo)
            offsets.append(shifts[flat % num_shifts])
            dists.append(d2[ti, flat].sqrt())
    if targets:
        t = torch.cat(targets)
        s = torch.cat(sources)
        off = torch.cat(offsets)
        d = torch.cat(dists)
    else:
        t = s = torch.zeros(0, dtype=torch.long, device=device)
        off = torch.zeros(0, 3, dtype=torch.long, device=device)
        d = torch.zeros(0, dtype=torch.float64, device=device)
    perm = _sort_edges(t, s, off, d)
    graph = AtomGraph(torch.stack([s[perm], t[perm]]), off[perm], d[perm], pos.size(0))
    if max_neighbors is not None:
        graph = graph.subset(_cap_mask(graph, max_neighbors, strict, tie_tolerance))
    return graph


def _cap_mask(graph: AtomGraph, k: int, strict: bool, tie_tolerance: float) -> Tensor:
    """Keep-mask of the nearest-``k`` cap on a graph sorted by (target, distance, ...)."""
    e = graph.num_edges
    if e == 0:
        return torch.ones(0, dtype=torch.bool, device=graph.edge_index.device)
    target = graph.edge_index[1]
    ptr = graph.target_ptr()
    rank = torch.arange(e, device=target.device) - ptr[target]
    if strict:
        return rank < k
    deg = ptr[1:] - ptr[:-1]
    kth = (ptr[:-1] + k - 1).clamp(max=e - 1)
    threshold = torch.where(deg > k, graph.distance[kth] + tie_tolerance,
                            torch.full_like(graph.distance[kth], float("inf")))
    return graph.distance <= threshold[target]


@torch.no_grad()
def select_edges(graph: AtomGraph, *, cutoff: float | None = None, max_neighbors: int | None = None,
                 strict: bool = True, tie_tolerance: float = 0.01) -> AtomGraph:
    """Edges of a graph built by :func:`radius_graph_pbc` (sorted by target, then distance) within a smaller
    ``cutoff`` and/or capped at ``max_neighbors`` per target, with the same tie rule; equal to building the
    smaller graph directly (when the original cap was at least as large)."""
    out = graph
    if cutoff is not None:
        cutoff = _check_positive("cutoff", cutoff)
        out = out.subset(out.distance <= cutoff)
    max_neighbors = _check_cap(max_neighbors)
    if max_neighbors is not None:
        out = out.subset(_cap_mask(out, max_neighbors, strict, tie_tolerance))
    return out


def edge_vectors(pos: Tensor, graph: AtomGraph, cell: Tensor | None, ptr: Tensor | None = None,
                 batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Differentiable edge vectors :math:`\mathbf{r}_e = \mathbf{p}_t - \mathbf{p}_s - S_e\mathbf{C}` (from the
    source image to the target) and their lengths, in the dtype of ``pos``.

    Args:
        pos (torch.Tensor): ``[N, 3]`` positions (may require grad).
        graph (AtomGraph): the edges.
        cell (torch.Tensor, optional): ``[B, 3, 3]`` or ``[3, 3]`` cells (may require grad, for stress).
        ptr (torch.Tensor, optional): ``[B + 1]`` structure pointer (or give ``batch``).
        batch (torch.Tensor, optional): ``[N]`` structure of every atom.
    """
    s, t = graph.edge_index
    vec = pos.index_select(0, t) - pos.index_select(0, s)
    if cell is not None and graph.num_edges > 0 and bool(graph.cell_offset.any()):
        cell = cell.to(pos.dtype)
        if cell.dim() == 2:
            shift = graph.cell_offset.to(pos.dtype) @ cell
        else:
            if batch is None:
                if ptr is None:
                    raise ShapeError("edge_vectors: give `ptr` or `batch` when `cell` has one cell per structure")
                ptr = ptr.to(pos.device).long()
                batch = torch.repeat_interleave(torch.arange(ptr.numel() - 1, device=pos.device),
                                                ptr[1:] - ptr[:-1], output_size=pos.size(0))
            shift = torch.einsum("ek,ekj->ej", graph.cell_offset.to(pos.dtype), cell[batch[s]])
        vec = vec - shift
    return vec, vec.norm(dim=-1)


# ------------------------------------------------------------------------------------------------ symmetry
def _edge_keys(source: Tensor, target: Tensor, offset: Tensor, num_atoms: int, bound: int) -> Tensor:
    base = (2 * bound + 1) ** 3
    return (source * num_atoms + target) * base + _offset_code(offset, bound)


def reverse_edge_index(graph: AtomGraph, *, check: bool = True) -> Tensor:
    r"""For every edge :math:`(s, t, S)` the index of its reverse :math:`(t, s, -S)`, matched exactly on atoms and
    integer offsets (``id_swap`` of GemNet-OC). ``rev[rev] == arange(E)``.

    Raises:
        ShapeError: an edge has no reverse (``check=True``); symmetrise the graph first.
    """
    e = graph.num_edges
    if e == 0:
        return graph.edge_index.new_zeros(0)
    s, t = graph.edge_index
    off = graph.cell_offset
    bound = int(off.abs().max())
    key = _edge_keys(s, t, off, graph.num_atoms, bound)
    rkey = _edge_keys(t, s, -off, graph.num_atoms, bound)
    order = torch.argsort(key)
    sorted_key = key[order]
    pos = torch.searchsorted(sorted_key, rkey).clamp(max=e - 1)
    rev = order[pos]
    if check:
        missing = key[rev] != rkey
        if bool(missing.any()):
            i = int(missing.nonzero()[0, 0])
            raise ShapeError(f"edge {i} ({int(s[i])} -> {int(t[i])}, offset {off[i].tolist()}) has no reverse edge; "
                             "symmetrize the graph first (symmetrize_edges)")
        if bool((torch.bincount(rev, minlength=e) != 1).any()):
            raise ShapeError("the graph has duplicate edges (same atoms and offset); the reverse index is not unique")
    return rev


@torch.no_grad()
def symmetrize_edges(graph: AtomGraph, mode: str = "union") -> tuple[AtomGraph, Tensor]:
    r"""A graph that holds every edge in both directions, sorted like :func:`radius_graph_pbc`, and the index of
    each edge's reverse.

    Args:
        graph (AtomGraph): a directed graph without duplicate edges (e.g. after a nearest-k cap, where
            :math:`c \to a` may be kept while :math:`a \to c` is not).
        mode (str): ``"union"``: an atom pair (with its offset) is kept in both directions if either direction is
            present (independent of the atom order). ``"reference"``: GemNet-OC's rule: keep the edges with
            ``source < target`` (and, between images of the same atom, those whose offset is lexicographically
            positive) and add their reverses; an edge present only as ``source > target`` is dropped.
            (default: ``"union"``)

    Returns:
        (AtomGraph, torch.Tensor): the symmetric graph and its reverse-edge index (an involution).
    """
    if mode not in ("union", "reference"):
        raise ConfigError(f"symmetrize mode must be 'union' or 'reference', got {mode!r}")
    s, t = graph.edge_index
    off = graph.cell_offset
    if graph.num_edges == 0:
        return graph, graph.edge_index.new_zeros(0)
    # lexicographic sign of the offset: +1 if the first non-zero component is positive
    nz = off != 0
    first = torch.where(nz.any(1), nz.float().argmax(1), torch.zeros_like(s))
    lex_positive = off.gather(1, first[:, None]).squeeze(1) > 0
    forward = (s < t) | ((s == t) & lex_positive)
    if mode == "reference":
        cs, ct, coff, cd = s[forward], t[forward], off[forward], graph.distance[forward]
    else:
        cs = torch.where(forward, s, t)
        ct = torch.where(forward, t, s)
        coff = torch.where(forward[:, None], off, -off)
        bound = int(off.abs().max())
        key = _edge_keys(cs, ct, coff, graph.num_atoms, bound)
        _, first_idx = _unique_first(key)
        cs, ct, coff, cd = cs[first_idx], ct[first_idx], coff[first_idx], graph.distance[first_idx]
    ns = torch.cat([cs, ct])
    nt = torch.cat([ct, cs])
    noff = torch.cat([coff, -coff])
    nd = torch.cat([cd, cd])
    perm = _sort_edges(nt, ns, noff, nd)
    out = AtomGraph(torch.stack([ns[perm], nt[perm]]), noff[perm], nd[perm], graph.num_atoms)
    return out, reverse_edge_index(out)


def _unique_first(key: Tensor) -> tuple[Tensor, Tensor]:
    """Unique keys and the index of the first occurrence of each (in input order)."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, torch.arange(key.numel(), device=key.device), "amin")
    return uniq, torch.sort(first).values


# ------------------------------------------------------------------------------------------------ triplets
@torch.no_grad()
def triplet_index(graph_in: AtomGraph, graph_out: AtomGraph | None = None, *, hub: str = "target") -> TripletIndex:
    r"""Pairs (input edge, output edge) meeting at a hub atom, excluding pairs whose two outer atoms are the same
    image (so :math:`b = c` is allowed when they are different periodic images).

    * ``hub="target"``: input :math:`b \to a` and output :math:`c \to a` (both end at :math:`a`); excluded when
      :math:`b = c` with the same offset. With ``graph_out = graph_in`` these are the triplets
      :math:`b \to a \leftarrow c`, :math:`b \to a \ne c \to a`.
    * ``hub="source"``: input :math:`d \to b` ends where the output :math:`b \to a` starts; excluded when
      :math:`d = a` as the same image (:math:`S_{db} + S_{ba} = 0`).

    Built on the CSR adjacency of ``graph_in`` (:class:`sciml.sparse.CSRAdjacency`, rows = targets): the input
    edges of a hub are one CSR row, expanded per output edge with ``repeat_interleave``. Triplets are ordered by
    output edge (``edge_out`` non-decreasing).

    Args:
        graph_in (AtomGraph): graph of the input edges.
        graph_out (AtomGraph, optional): graph of the output edges. (default: ``graph_in``)
        hub (str): ``"target"`` or ``"source"`` (the hub is the output edge's target or source).
    """
    if hub not in ("target", "source"):
        raise ConfigError(f"hub must be 'target' or 'source', got {hub!r}")
    graph_out = graph_in if graph_out is None else graph_out
    if graph_in.num_atoms != graph_out.num_atoms:
        raise ShapeError(f"graph_in has {graph_in.num_atoms} atoms but graph_out has {graph_out.num_atoms}")
    device = graph_in.edge_index.device
    adj = CSRAdjacency.from_edge_index(graph_in.edge_index, num_nodes=graph_in.num_atoms)
    rowptr, csr_to_edge = adj.rowptr, adj.perm
    hub_atom = graph_out.edge_index[1] if hub == "target" else graph_out.edge_index[0]
    counts = (rowptr[1:] - rowptr[:-1])[hub_atom]
    num_out = graph_out.num_edges
    edge_out = torch.repeat_interleave(torch.arange(num_out, device=device), counts)
    start = torch.repeat_interleave(rowptr[hub_atom], counts)
    edge_in = csr_to_edge[start + ragged_arange(counts)]
    s_in, off_in = graph_in.edge_index[0][edge_in], graph_in.cell_offset[edge_in]
    if hub == "target":
        other = graph_out.edge_index[0][edge_out]
        same_image = (s_in == other) & (off_in == graph_out.cell_offset[edge_out]).all(1)
    else:
        other = graph_out.edge_index[1][edge_out]
        same_image = (s_in == other) & ((off_in + graph_out.cell_offset[edge_out]) == 0).all(1)
    keep = ~same_image
    edge_in, edge_out = edge_in[keep], edge_out[keep]
    rank, kmax = segment_rank(edge_out, num_out)
    return TripletIndex(edge_in, edge_out, rank, kmax)


@torch.no_grad()
def quadruplet_index(main: AtomGraph, qint: AtomGraph) -> QuadrupletIndex:
    r"""Quadruplets :math:`d \to b \to a \leftarrow c` with :math:`d \to b` and :math:`c \to a` in the embedding
    graph ``main`` and the middle edge :math:`b \to a` in the interaction graph ``qint``, all periodic images
    distinct along the chain (:math:`d \ne a`, :math:`b \ne c`, :math:`c \ne d` as images; :math:`d \ne b` and
    :math:`a \ne c` hold for any edge).

    Built from the input triplets :math:`d \to b \to a` (:func:`triplet_index` with ``hub="source"``) and the
    output triplets :math:`c \to a \leftarrow b` (``hub="target"``) that share the edge :math:`b \to a`.
    Quadruplets are ordered by output edge :math:`c \to a`.
    """
    trip_in = triplet_index(main, qint, hub="source")      # edge_in: d->b (main), edge_out: b->a (qint)
    trip_out = triplet_index(qint, main, hub="target")     # edge_in: b->a (qint), edge_out: c->a (main)
    device = main.edge_index.device
    # input triplets are sorted by their qint edge: a CSR pointer over qint edges
    ptr_in = index_to_ptr(trip_in.edge_out, qint.num_edges)
    middle = trip_out.edge_in
    counts = (ptr_in[1:] - ptr_in[:-1])[middle]
    t_out = torch.repeat_interleave(torch.arange(trip_out.num_triplets, device=device), counts)
    t_in = torch.repeat_interleave(ptr_in[middle], counts) + ragged_arange(counts)
    e_ca = trip_out.edge_out[t_out]
    e_db = trip_in.edge_in[t_in]
    e_ba = trip_out.edge_in[t_out]
    same = (main.edge_index[0][e_ca] == main.edge_index[0][e_db]) & (
        main.cell_offset[e_ca] == main.cell_offset[e_db] + qint.cell_offset[e_ba]).all(1)
    keep = ~same
    t_in, t_out, e_ca = t_in[keep], t_out[keep], e_ca[keep]
    rank, kmax = segment_rank(e_ca, main.num_edges)
    return QuadrupletIndex(trip_in, trip_out, t_in, t_out, e_ca, rank, kmax)


def tag_edge_mask(graph: AtomGraph, tags: Tensor, allowed: Iterable[int]) -> Tensor:
    """Edges whose source or target has a tag in ``allowed`` (GemNet-OC's quadruplet graph: tags 1 and 2)."""
    allowed_t = torch.as_tensor(list(allowed), dtype=tags.dtype, device=tags.device)
    ok = torch.isin(tags, allowed_t)
    return ok[graph.edge_index[0]] | ok[graph.edge_index[1]]


# ------------------------------------------------------------------------------------------------ GemNet-OC
@torch.no_grad()
def gemnet_oc_graphs(pos: Tensor, *, ptr: Tensor | None = None, cell: Tensor | None = None,
                     pbc: Tensor | Sequence[bool] | None = None, tags: Tensor | None = None,
                     cutoff: float = 12.0, max_neighbors: int = 30,
                     cutoff_qint: float | None = None, max_neighbors_qint: int | None = 8,
                     cutoff_aeaint: float | None = None, max_neighbors_aeaint: int | None = 20,
                     cutoff_aint: float | None = None, max_neighbors_aint: int | None = 1000,
                     quad_interaction: bool = True, atom_edge_interaction: bool = True,
                     edge_atom_interaction: bool = True, atom_interaction: bool = True,
                     qint_tags: Sequence[int] | None = (1, 2), symmetrize: str = "union",
                     strict: bool = True, tie_tolerance: float = 0.01) -> GemNetOCGraphs:
    r"""GemNet-OC's four graphs and index sets.

    The atom-to-atom graph (largest cutoff and cap) is built once with :func:`radius_graph_pbc`; the embedding
    (``main``), atom-edge (``a2ee2a``) and quadruplet (``qint``) graphs are cut out of it with
    :func:`select_edges`. ``main`` is symmetrised (:func:`symmetrize_edges`) for symmetric message passing; the
    quadruplet graph keeps only edges touching an atom whose tag is in ``qint_tags`` (all atoms when
    ``qint_tags`` is :obj:`None`). Unused graphs (interaction switched off) are :obj:`None`. A cutoff or cap left
    :obj:`None` falls back to the embedding graph's.

    Args:
        pos, ptr, cell, pbc: the batch (see :func:`radius_graph_pbc`).
        tags (torch.Tensor, optional): ``[N]`` OC20 tags (0 sub-surface, 1 surface, 2 adsorbate); required when
            quadruplets are on and ``qint_tags`` is not :obj:`None`.
        cutoff, max_neighbors: embedding graph. (default: ``12.0``, ``30``)
        cutoff_qint, max_neighbors_qint: quadruplet graph. (default: cutoff, ``8``)
        cutoff_aeaint, max_neighbors_aeaint: atom-edge graph. (default: cutoff, ``20``)
        cutoff_aint, max_neighbors_aint: atom-to-atom graph. (default: the largest cutoff, ``1000``)
        quad_interaction, atom_edge_interaction, edge_atom_interaction, atom_interaction (bool): which index sets
            to build. (default: all :obj:`True`)
        qint_tags (sequence of int, optional): tags of the quadruplet atoms. (default: ``(1, 2)``)
        symmetrize (str): ``"union"`` or ``"reference"`` (see :func:`symmetrize_edges`). (default: ``"union"``)
        strict, tie_tolerance: the nearest-k tie rule (module doc).
    """
    cutoff_qint = cutoff if cutoff_qint is None else cutoff_qint
    cutoff_aeaint = cutoff if cutoff_aeaint is None else cutoff_aeaint
    max_neighbors_qint = max_neighbors if max_neighbors_qint is None else max_neighbors_qint
    max_neighbors_aeaint = max_neighbors if max_neighbors_aeaint is None else max_neighbors_aeaint
    used_cutoffs = [cutoff] + ([cutoff_qint] if quad_interaction else []) + (
        [cutoff_aeaint] if atom_edge_interaction or edge_atom_interaction else [])
    used_caps = [max_neighbors] + ([max_neighbors_qint] if quad_interaction else []) + (
        [max_neighbors_aeaint] if atom_edge_interaction or edge_atom_interaction else [])
    inf = float("inf")
    need_cap = max(inf if c is None else c for c in used_caps)
    big_cutoff = max(used_cutoffs) if cutoff_aint is None or not atom_interaction else cutoff_aint
    big_cap = need_cap if not atom_interaction else (inf if max_neighbors_aint is None else max_neighbors_aint)
    if big_cutoff < max(used_cutoffs) or big_cap < need_cap:
        raise ConfigError(f"cutoff_aint ({big_cutoff}) and max_neighbors_aint ({big_cap}) must be at least the other "
                          f"graphs' cutoffs {used_cutoffs} and caps {used_caps}")
    sel = dict(strict=strict, tie_tolerance=tie_tolerance)
    a2a = radius_graph_pbc(pos, big_cutoff, ptr=ptr, cell=cell, pbc=pbc,
                           max_neighbors=None if big_cap == inf else int(big_cap), **sel)
    main_directed = select_edges(a2a, cutoff=cutoff, max_neighbors=max_neighbors, **sel)
    main, reverse = symmetrize_edges(main_directed, symmetrize)
    out = GemNetOCGraphs(main=main, reverse=reverse, triplets=triplet_index(main))
    if atom_interaction:
        out.a2a = a2a
        out.a2a_rank, out.a2a_kmax = segment_rank(a2a.edge_index[1], a2a.num_atoms)
    if atom_edge_interaction or edge_atom_interaction:
        g = select_edges(a2a, cutoff=cutoff_aeaint, max_neighbors=max_neighbors_aeaint, **sel)
        out.a2ee2a = g
        out.a2ee2a_rank, out.a2ee2a_kmax = segment_rank(g.edge_index[1], g.num_atoms)
        if atom_edge_interaction:
            out.triplets_a2e = triplet_index(g, main, hub="target")
        if edge_atom_interaction:
            out.triplets_e2a = triplet_index(main, g, hub="target")
    if quad_interaction:
        q = select_edges(a2a, cutoff=cutoff_qint, max_neighbors=max_neighbors_qint, **sel)
        if qint_tags is not None:
            if tags is None:
                raise ConfigError("quadruplet interactions with qint_tags need `tags` (OC20: 0 sub-surface, "
                                  "1 surface, 2 adsorbate); derive them with sciml.gnn.atomistic_graph.oc20_tags "
                                  "or pass qint_tags=None to use every atom")
            if tags.shape != (pos.size(0),):
                raise ShapeError(f"`tags` must have shape [num_atoms={pos.size(0)}], got {tuple(tags.shape)}")
            q = q.subset(tag_edge_mask(q, tags.to(pos.device), qint_tags))
        out.qint = q
        out.quadruplets = quadruplet_index(main, q)
    return out


def graphs_to(graphs: GemNetOCGraphs, device: torch.device | str) -> GemNetOCGraphs:
    """Move every tensor of a :class:`GemNetOCGraphs` to ``device``."""
    def move(x):
        if isinstance(x, Tensor):
            return x.to(device)
        if isinstance(x, AtomGraph):
            return x.to(device)
        if isinstance(x, (TripletIndex, QuadrupletIndex)):
            return type(x)(**{f.name: move(getattr(x, f.name)) for f in fields(x)})
        return x
    return GemNetOCGraphs(**{f.name: move(getattr(graphs, f.name)) for f in fields(graphs)})


# ------------------------------------------------------------------------------------------------ tags
def oc20_tags(z: Tensor, fixed: Tensor, ptr: Tensor | None = None) -> Tensor:
    """OC20 tags for structures whose files did not keep them: 0 for fixed (sub-surface) atoms, 2 for the trailing
    run of non-fixed H/C/N/O atoms of each structure (OC20 appends the adsorbate after the slab), 1 for the rest.
    Per structure the rule of :func:`sciml.datasets.sources.ase_atoms.oc20_tags` (which documents its limits).

    Args:
        z (torch.Tensor): ``[N]`` atomic numbers.
        fixed (torch.Tensor): ``[N]`` bool, atoms held by constraints.
        ptr (torch.Tensor, optional): ``[B + 1]`` structure pointer. (default: one structure)
    """
    from sciml.datasets.sources.ase_atoms import oc20_tags as _rule

    if z.shape != fixed.shape or z.dim() != 1:
        raise ShapeError(f"`z` and `fixed` must both have shape [num_atoms], got {tuple(z.shape)} and "
                         f"{tuple(fixed.shape)}")
    ptr_l = [0, z.numel()] if ptr is None else [int(v) for v in ptr]
    zn, fn = z.detach().cpu().numpy(), fixed.detach().cpu().bool().numpy()
    parts = [torch.from_numpy(_rule(zn[lo:hi], fn[lo:hi])) for lo, hi in zip(ptr_l[:-1], ptr_l[1:])]
    return (torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)).to(z.device)
