"""Periodic radius graphs, nearest-k caps (ties), symmetrisation and reverse index, triplets and quadruplets
against brute-force enumeration (periodic images included, identified by their positions), the GemNet-OC graph
set (tags), degenerate structures, and OC20 tag derivation."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.atomistic_graph import (AtomGraph, edge_vectors, gemnet_oc_graphs, oc20_tags, quadruplet_index,
                                       radius_graph_pbc, reverse_edge_index, select_edges, symmetrize_edges,
                                       tag_edge_mask, triplet_index)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "molecular" / "oc20_relaxation_trajs"


# ------------------------------------------------------------------------------------------------ references
def brute_radius(pos, cell, pbc, cutoff, reach=5):
    """{(source, target, shift): distance} over a generous box of images, plain numpy loops."""
    pos, cell = np.asarray(pos, float), np.asarray(cell, float)
    n = len(pos)
    rng = [range(-reach, reach + 1) if p else range(1) for p in pbc]
    shifts = np.array(list(itertools.product(*rng)), dtype=np.int64).reshape(-1, 3)
    out = {}
    for t in range(n):
        for s in range(n):
            img = pos[s] + shifts @ cell
            d = np.linalg.norm(pos[t] - img, axis=1)
            for k in np.nonzero(d <= cutoff)[0]:
                if s == t and not shifts[k].any():
                    continue
                out[(s, t, tuple(int(v) for v in shifts[k]))] = d[k]
    return out


def edges_of(graph: AtomGraph, offset=0):
    s, t = graph.edge_index.tolist()
    return {(a - offset, b - offset, tuple(o)): float(d)
            for a, b, o, d in zip(s, t, graph.cell_offset.tolist(), graph.distance.tolist())}


def brute_cap(edges: dict, k: int, strict: bool, tol: float = 0.01):
    """Nearest-k per target from a dict of edges: sorted by (distance, source, shift)."""
    keep = {}
    by_target: dict = {}
    for (s, t, o), d in edges.items():
        by_target.setdefault(t, []).append((d, s, o))
    for t, lst in by_target.items():
        lst.sort()
        if strict or len(lst) <= k:
            chosen = lst[:k]
        else:
            chosen = [x for x in lst if x[0] <= lst[k - 1][0] + tol]
        for d, s, o in chosen:
            keep[(s, t, o)] = d
    return keep


def image_positions(graph, pos, cell):
    """Position of each edge's source image, and its target position (numpy)."""
    s, t = graph.edge_index.numpy()
    src = pos[s] + graph.cell_offset.numpy() @ cell
    return src, pos[t]


def random_structure(n, seed, cell_scale=3.0, pbc=(True, True, True), outside=True):
    g = np.random.default_rng(seed)
    cell = np.eye(3) * cell_scale + g.normal(0, 0.4, (3, 3))
    frac = g.uniform(-0.3 if outside else 0.0, 1.3 if outside else 1.0, (n, 3))
    pos = frac @ cell
    for k in range(3):
        if not pbc[k]:
            cell[k] = 0.0 if k == 2 else cell[k]
    return pos, cell


# ------------------------------------------------------------------------------------------------ radius graph
@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (True, False, False),
                                 (False, False, False)])
def test_radius_graph_matches_brute_force(pbc):
    pos, cell = random_structure(5, seed=sum(pbc), pbc=pbc)
    cutoff = 3.7  # larger than the cell: several images of every atom, including itself
    g = radius_graph_pbc(torch.tensor(pos), cutoff, cell=torch.tensor(cell), pbc=torch.tensor(pbc))
    ref = brute_radius(pos, cell, pbc, cutoff, reach=6)
    got = edges_of(g)
    assert set(got) == set(ref)
    assert np.allclose([got[k] for k in ref], [ref[k] for k in ref], rtol=0, atol=1e-12)
    t, d = g.edge_index[1], g.distance
    assert bool((t[1:] >= t[:-1]).all())                               # sorted by target
    same = t[1:] == t[:-1]
    assert bool((d[1:][same] >= d[:-1][same]).all())                  # then by distance
    vec, dist = edge_vectors(torch.tensor(pos), g, torch.tensor(cell))
    src, tgt = image_positions(g, pos, cell)
    assert np.allclose(vec.numpy(), tgt - src) and np.allclose(dist.numpy(), g.distance.numpy())


def test_radius_graph_batch_equals_separate_structures():
    parts = [random_structure(n, seed=10 + n) for n in (4, 1, 6)]
    parts[1] = (parts[1][0], np.zeros((3, 3)))
    pbcs = [(True, True, True), (False, False, False), (True, True, False)]
    pos = torch.tensor(np.concatenate([p for p, _ in parts]))
    cell = torch.tensor(np.stack([c for _, c in parts]))
    ptr = torch.tensor([0, 4, 5, 11])
    g = radius_graph_pbc(pos, 3.1, ptr=ptr, cell=cell, pbc=torch.tensor(pbcs), max_neighbors=7)
    got = edges_of(g)
    expect = {}
    for (p, c), pb, lo in zip(parts, pbcs, [0, 4, 5]):
        one = radius_graph_pbc(torch.tensor(p), 3.1, cell=torch.tensor(c), pbc=torch.tensor(pb), max_neighbors=7)
        expect.update({(s + lo, t + lo, o): d for (s, t, o), d in edges_of(one).items()})
        ref = brute_cap(brute_radius(p, c, pb, 3.1), 7, strict=True)
        assert set(edges_of(one)) == set(ref)
    assert set(got) == set(expect)


def lattice_with_ties():
    """Simple cubic 2x2x2 supercell of spacing 1 Å in float64: neighbour shells at exactly 1, sqrt 2, sqrt 3."""
    pos = np.array(list(itertools.product(range(2), repeat=3)), dtype=float)
    return pos, np.eye(3) * 2.0


@pytest.mark.parametrize("k", [3, 6, 7, 12, 13])
@pytest.mark.parametrize("strict", [True, False])
def test_nearest_k_cap_ties_against_brute_force(k, strict):
    pos, cell = lattice_with_ties()
    pos[0] += [0.003, 0.0, 0.0]   # a near-tie (within the 0.01 Å tolerance) next to exact ties
    cutoff = 1.8
    g = radius_graph_pbc(torch.tensor(pos), cutoff, cell=torch.tensor(cell), max_neighbors=k, strict=strict)
    ref = brute_cap(brute_radius(pos, cell, (True,) * 3, cutoff), k, strict)
    assert set(edges_of(g)) == set(ref)
    deg = g.in_degree()
    if strict:
        assert int(deg.max()) <= k
    else:
        assert int(deg.min()) >= k   # tied shells are kept whole


def test_non_strict_cap_is_independent_of_atom_order():
    pos, cell = lattice_with_ties()
    perm = np.random.default_rng(0).permutation(len(pos))
    inv = np.argsort(perm)
    a = radius_graph_pbc(torch.tensor(pos), 1.8, cell=torch.tensor(cell), max_neighbors=8, strict=False)
    b = radius_graph_pbc(torch.tensor(pos[perm]), 1.8, cell=torch.tensor(cell), max_neighbors=8, strict=False)
    mapped = {(int(perm[s]), int(perm[t]), o) for (s, t, o) in edges_of(b)}
    assert mapped == set(edges_of(a))
    assert len(inv) == len(pos)


@pytest.mark.parametrize("strict", [True, False])
def test_select_edges_equals_direct_construction(strict):
    pos, cell = random_structure(7, seed=3)
    big = radius_graph_pbc(torch.tensor(pos), 4.0, cell=torch.tensor(cell), max_neighbors=200, strict=strict)
    for cutoff, k in [(3.0, 10), (4.0, 5), (2.5, None)]:
        sub = select_edges(big, cutoff=cutoff, max_neighbors=k, strict=strict)
        direct = radius_graph_pbc(torch.tensor(pos), cutoff, cell=torch.tensor(cell), max_neighbors=k,
                                  strict=strict)
        assert torch.equal(sub.edge_index, direct.edge_index)
        assert torch.equal(sub.cell_offset, direct.cell_offset)


def test_radius_graph_errors():
    with pytest.raises(ShapeError, match="pos"):
        radius_graph_pbc(torch.zeros(3, 2), 1.0)
    with pytest.raises(ConfigError, match="cutoff"):
        radius_graph_pbc(torch.zeros(3, 3), -1.0)
    with pytest.raises(ConfigError, match="max_neighbors"):
        radius_graph_pbc(torch.zeros(3, 3), 1.0, max_neighbors=0)
    cell = torch.eye(3)
    cell[2] = 0
    with pytest.raises(ShapeError, match="lattice vector 2 is zero"):
        radius_graph_pbc(torch.rand(3, 3), 1.0, cell=cell, pbc=[True, True, True])
    with pytest.raises(ShapeError, match="ptr"):
        radius_graph_pbc(torch.rand(3, 3), 1.0, ptr=torch.tensor([0, 2]))


# ------------------------------------------------------------------------------------------------ symmetry
@pytest.mark.parametrize("mode", ["union", "reference"])
def test_symmetrize_and_reverse_index(mode):
    pos, cell = random_structure(6, seed=5)
    directed = radius_graph_pbc(torch.tensor(pos), 3.5, cell=torch.tensor(cell), max_neighbors=6)
    d_edges = set(edges_of(directed))
    sym, rev = symmetrize_edges(directed, mode)
    edges = [(s, t, o) for (s, t, o) in edges_of(sym)]
    assert len(edges) == sym.num_edges   # no duplicates
    if mode == "union":
        expect = d_edges | {(t, s, tuple(-v for v in o)) for (s, t, o) in d_edges}
    else:
        def forward(s, t, o):
            first = next((v for v in o if v != 0), 0)
            return s < t or (s == t and first > 0)
        kept = {e for e in d_edges if forward(*e)}
        expect = kept | {(t, s, tuple(-v for v in o)) for (s, t, o) in kept}
    assert set(edges) == expect
    # exact reverse: atoms swapped, offset negated; an involution
    assert torch.equal(rev[rev], torch.arange(sym.num_edges))
    assert torch.equal(sym.edge_index[:, rev], sym.edge_index.flip(0))
    assert torch.equal(sym.cell_offset[rev], -sym.cell_offset)
    assert torch.allclose(sym.distance[rev], sym.distance)
    vec, _ = edge_vectors(torch.tensor(pos), sym, torch.tensor(cell))
    assert torch.allclose(vec[rev], -vec)
    # sorted like a radius graph
    t = sym.edge_index[1]
    assert bool((t[1:] >= t[:-1]).all())


def test_reverse_index_requires_symmetric_graph():
    g = AtomGraph(torch.tensor([[0], [1]]), torch.zeros(1, 3, dtype=torch.long), torch.ones(1, dtype=torch.float64),
                  2)
    with pytest.raises(ShapeError, match="no reverse"):
        reverse_edge_index(g)


# ------------------------------------------------------------------------------------------------ triplets
def small_periodic_graphs(seed=7, n=4):
    pos, cell = random_structure(n, seed=seed, cell_scale=2.6)
    main = symmetrize_edges(radius_graph_pbc(torch.tensor(pos), 3.0, cell=torch.tensor(cell),
                                             max_neighbors=8))[0]
    other = radius_graph_pbc(torch.tensor(pos), 2.6, cell=torch.tensor(cell), max_neighbors=5)
    return pos, cell, main, other


def same_point(a, b):
    return bool(np.allclose(a, b, atol=1e-9))


@pytest.mark.parametrize("mixed", [False, True])
def test_triplets_target_hub_against_brute_force(mixed):
    pos, cell, main, other = small_periodic_graphs()
    g_in = other if mixed else main
    trip = triplet_index(g_in, main, hub="target")
    src_in, _ = image_positions(g_in, pos, cell)
    src_out, _ = image_positions(main, pos, cell)
    ref = set()
    for o in range(main.num_edges):
        for i in range(g_in.num_edges):
            if int(g_in.edge_index[1, i]) == int(main.edge_index[1, o]) and not same_point(src_in[i], src_out[o]):
                ref.add((i, o))
    got = set(zip(trip.edge_in.tolist(), trip.edge_out.tolist()))
    assert got == ref and len(got) == trip.num_triplets
    assert any(int(g_in.edge_index[0, i]) == int(main.edge_index[0, o]) for i, o in got)  # b = c, other image
    check_ranks(trip.edge_out, trip.rank, trip.kmax)


def test_triplets_source_hub_against_brute_force():
    pos, cell, main, other = small_periodic_graphs(seed=8)
    trip = triplet_index(main, other, hub="source")       # d -> b (main), b -> a (other)
    src_in, _ = image_positions(main, pos, cell)
    # the image of d seen from a: b's image relative to a, then d relative to b
    ref = set()
    for o in range(other.num_edges):
        b_img = pos[int(other.edge_index[0, o])] + other.cell_offset[o].numpy() @ cell
        a = pos[int(other.edge_index[1, o])]
        for i in range(main.num_edges):
            if int(main.edge_index[1, i]) != int(other.edge_index[0, o]):
                continue
            d_img = b_img + (src_in[i] - pos[int(main.edge_index[1, i])])
            if not same_point(d_img, a):
                ref.add((i, o))
    got = set(zip(trip.edge_in.tolist(), trip.edge_out.tolist()))
    assert got == ref
    check_ranks(trip.edge_out, trip.rank, trip.kmax)


def check_ranks(outer, rank, kmax):
    pairs = set(zip(outer.tolist(), rank.tolist()))
    assert len(pairs) == outer.numel()
    if outer.numel():
        assert int(rank.max()) == kmax - 1 and int(rank.min()) == 0
        assert bool((outer[1:] >= outer[:-1]).all())
    else:
        assert kmax == 0


def test_quadruplets_against_brute_force():
    pos, cell, main, other = small_periodic_graphs(seed=9)
    quad = quadruplet_index(main, other)
    r_main, _ = edge_vectors(torch.tensor(pos), main, torch.tensor(cell))
    r_q, _ = edge_vectors(torch.tensor(pos), other, torch.tensor(cell))
    r_main, r_q = r_main.numpy(), r_q.numpy()
    ref = set()
    for e_ca in range(main.num_edges):
        a = int(main.edge_index[1, e_ca])
        c_img = pos[a] - r_main[e_ca]
        for e_ba in range(other.num_edges):
            if int(other.edge_index[1, e_ba]) != a:
                continue
            b_img = pos[a] - r_q[e_ba]
            if same_point(b_img, c_img):
                continue
            b = int(other.edge_index[0, e_ba])
            for e_db in range(main.num_edges):
                if int(main.edge_index[1, e_db]) != b:
                    continue
                d_img = b_img - r_main[e_db]
                if same_point(d_img, pos[a]) or same_point(d_img, c_img):
                    continue
                ref.add((e_db, e_ba, e_ca))
    ti, to = quad.triplet_in, quad.triplet_out
    got = list(zip(ti.edge_in[quad.triplet_in_of_quad].tolist(), ti.edge_out[quad.triplet_in_of_quad].tolist(),
                   quad.edge_out.tolist()))
    assert set(got) == ref and len(got) == len(ref) > 0
    assert torch.equal(to.edge_in[quad.triplet_out_of_quad], ti.edge_out[quad.triplet_in_of_quad])
    assert torch.equal(to.edge_out[quad.triplet_out_of_quad], quad.edge_out)
    check_ranks(quad.edge_out, quad.rank, quad.kmax)


# ------------------------------------------------------------------------------------------------ GemNet-OC graphs
def slab(seed=0):
    """8 metal atoms in two layers and a 2-atom adsorbate in a periodic cell; OC20 tags 0/1/2."""
    g = np.random.default_rng(seed)
    cell = np.array([[5.0, 0.0, 0.0], [2.4, 4.4, 0.0], [0.0, 0.0, 14.0]])
    frac = np.concatenate([g.uniform(0, 1, (8, 2)), np.repeat([[0.1], [0.25]], 4, axis=0)], 1)
    frac[:, 2] += g.normal(0, 0.005, 8)
    ads = np.array([[0.3, 0.4, 0.37], [0.33, 0.42, 0.45]])
    pos = np.concatenate([frac, ads]) @ cell
    tags = np.array([0] * 4 + [1] * 4 + [2] * 2)
    z = np.array([29] * 8 + [6, 8])
    return pos, cell, tags, z


def test_gemnet_oc_graphs_four_graphs_and_tags():
    pos, cell, tags, _ = slab()
    kw = dict(cell=torch.tensor(cell), pbc=torch.tensor([True, True, True]), tags=torch.tensor(tags), cutoff=5.0,
              max_neighbors=10, max_neighbors_qint=4, max_neighbors_aeaint=6, max_neighbors_aint=30)
    g = gemnet_oc_graphs(torch.tensor(pos), **kw)
    a2a = radius_graph_pbc(torch.tensor(pos), 5.0, cell=torch.tensor(cell), max_neighbors=30)
    assert set(edges_of(g.a2a)) == set(edges_of(a2a))
    main_directed = edges_of(radius_graph_pbc(torch.tensor(pos), 5.0, cell=torch.tensor(cell), max_neighbors=10))
    assert set(edges_of(g.main)) == set(main_directed) | {(t, s, tuple(-v for v in o))
                                                           for (s, t, o) in main_directed}
    assert set(edges_of(g.a2ee2a)) == set(brute_cap(edges_of(a2a), 6, True))
    q_all = brute_cap(edges_of(a2a), 4, True)
    assert set(edges_of(g.qint)) == {(s, t, o) for (s, t, o) in q_all if tags[s] in (1, 2) or tags[t] in (1, 2)}
    assert g.quadruplets.num_quadruplets > 0
    assert torch.equal(g.reverse[g.reverse], torch.arange(g.main.num_edges))
    assert g.a2a_kmax == int(g.a2a.in_degree().max())
    # no tagged atom: no quadruplets, everything else unchanged
    g0 = gemnet_oc_graphs(torch.tensor(pos), **{**kw, "tags": torch.zeros(10, dtype=torch.long)})
    assert g0.qint.num_edges == 0 and g0.quadruplets.num_quadruplets == 0 and g0.quadruplets.kmax == 0
    assert torch.equal(g0.main.edge_index, g.main.edge_index)
    with pytest.raises(ConfigError, match="tags"):
        gemnet_oc_graphs(torch.tensor(pos), **{**kw, "tags": None})
    assert tag_edge_mask(g.main, torch.tensor(tags), [2]).sum() > 0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_degenerate_structures(n):
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 1.2, 0.3]], dtype=torch.float64)[:n]
    g = gemnet_oc_graphs(pos, tags=torch.full((n,), 2), cutoff=3.0)
    assert g.main.num_edges == n * (n - 1)
    assert g.triplets.num_triplets == n * (n - 1) * (n - 2)
    assert g.quadruplets.num_quadruplets == 0     # a chain d-b-a-c needs 4 distinct atoms without periodicity
    far = gemnet_oc_graphs(pos * 10, tags=torch.full((n,), 2), cutoff=3.0)
    assert far.main.num_edges == 0 and far.triplets.kmax == 0 and far.a2a_kmax == 0


# ------------------------------------------------------------------------------------------------ tags
def test_oc20_tags_rule():
    z = torch.tensor([29, 29, 29, 29, 8, 1, 29, 6, 8])
    fixed = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
    # trailing non-fixed H/C/N/O run of the second structure only (ptr splits after index 5)
    tags = oc20_tags(z, fixed, torch.tensor([0, 6, 9]))
    assert tags.tolist() == [0, 0, 1, 1, 2, 2, 1, 2, 2]


@pytest.mark.skipif(not (DATA / "random1000100.traj").exists(), reason="../shared/data OC20 trajectories absent")
def test_oc20_tags_on_shared_trajectory():
    ase_io = pytest.importorskip("ase.io")
    from ase.constraints import FixAtoms

    atoms = ase_io.read(DATA / "random1000100.traj", 0)
    fixed = np.zeros(len(atoms), dtype=bool)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.get_indices()] = True
    tags = oc20_tags(torch.tensor(atoms.numbers), torch.tensor(fixed))
    assert torch.bincount(tags, minlength=3).tolist() == [17, 15, 1]   # counts recorded in reference/peers.md
