r"""GemNet-OC: energies and forces of periodic atomistic systems (catalyst slabs with adsorbates).

From *GemNet-OC: Developing Graph Neural Networks for Large and Diverse Molecular Simulation Datasets*
(Johannes Gasteiger, Muhammed Shuaibi, Anuroop Sriram, Stephan Günnemann, Zachary Ulissi, C. Lawrence Zitnick,
Abhishek Das; TMLR 2022). See docs/gemnet_oc.md.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError, check_int
from sciml.gnn.atomistic_graph import GemNetOCGraphs, edge_vectors, gemnet_oc_graphs
from sciml.gnn.gemnet_oc.bases import CircularBasis, RadialBasis, SphericalBasis
from sciml.gnn.gemnet_oc.layers import (AtomEmbedding, BasisEmbedding, Dense, EdgeEmbedding, InteractionBlock,
                                        OutputBlock, ResidualLayer, ScaleFactor, load_scale_factors)
from sciml.sparse import pad_segments, segment_reduce
from sciml.sparse.index import SegmentBuckets, segment_buckets

__all__ = ["GemNetOC", "BASE_CONFIG", "LARGE_CONFIG"]

#: largest number of padding buckets of the triplet / quadruplet bilinear layers (:func:`_buckets`)
NUM_BUCKETS = 4

#: OC20 S2EF base configuration (fairchem ``configs/s2ef/all/gemnet/gemnet-oc.yml``): 38.9 M parameters.
BASE_CONFIG: dict[str, Any] = dict(
    num_spherical=7, num_radial=128, num_blocks=4, emb_size_atom=256, emb_size_edge=512, emb_size_trip_in=64,
    emb_size_trip_out=64, emb_size_quad_in=32, emb_size_quad_out=32, emb_size_aint_in=64, emb_size_aint_out=64,
    emb_size_rbf=16, emb_size_cbf=16, emb_size_sbf=32, num_before_skip=2, num_after_skip=2, num_concat=1,
    num_atom=3, num_output_afteratom=3, num_atom_emb_layers=2, num_global_out_layers=2, cutoff=12.0,
    max_neighbors=30, max_neighbors_qint=8, max_neighbors_aeaint=20, max_neighbors_aint=1000,
    direct_forces=True, forces_coupled=False, quad_interaction=True, atom_edge_interaction=True,
    edge_atom_interaction=True, atom_interaction=True, qint_tags=(1, 2))
#: OC20 large configuration (``gemnet-oc-large.yml``).
LARGE_CONFIG: dict[str, Any] = {**BASE_CONFIG, **dict(
    num_blocks=6, emb_size_edge=1024, emb_size_trip_out=128, emb_size_quad_in=64, emb_size_quad_out=32,
    emb_size_rbf=32, emb_size_sbf=64, num_concat=4)}


class GemNetOC(nn.Module):
    r"""GemNet-OC energy (and force) model for periodic atomistic structures.

    Atoms are embedded by element, edges of the embedding graph by their two atoms and a radial basis; each of
    ``num_blocks`` interaction blocks updates the edge embeddings with triplet (:math:`b \to a \leftarrow c`,
    one angle), quadruplet (:math:`d \to b \to a \leftarrow c`, two angles; only around atoms tagged
    ``qint_tags``), atom-to-edge and edge-to-atom interactions, and the atom embeddings with an atom-to-atom
    interaction; an output block after the embedding and after every interaction block produces per-atom energy
    features (and per-edge force features); global MLPs on their concatenation give the atomic energies
    :math:`E_a` and edge force magnitudes :math:`f_{ca}`:

    .. math::
        E = \sigma \sum_a E_a + \mu + \textstyle\sum_a e_{Z_a},\qquad
        \mathbf{F}_a = \sigma \sum_{c} f_{ca}\,\hat{\mathbf{r}}_{ca}\ \ (\text{direct})
        \quad\text{or}\quad \mathbf{F} = -\partial E / \partial \mathbf{x}\ \ (\text{conservative}),

    with the energy normaliser :math:`\sigma, \mu` and optional per-element reference energies :math:`e_Z`
    (buffers set by :meth:`set_normalizer`, so checkpoints carry them). The four graphs and all index sets are
    built by :func:`sciml.gnn.atomistic_graph.gemnet_oc_graphs`; every ``ScaleFactor`` should be fitted before
    training (:func:`sciml.gnn.gemnet_oc.fit_scale_factors`). Shared basis projections (one per interaction type
    for all blocks) get their gradients divided by the number of blocks that use them.

    The defaults are the OC20 base configuration (:data:`BASE_CONFIG`; :data:`LARGE_CONFIG` for the large one).

    Args:
        num_spherical (int): :math:`L` of the circular basis (spherical basis :math:`L^2`). (default: ``7``)
        num_radial (int): radial basis size. (default: ``128``)
        num_blocks (int): interaction blocks. (default: ``4``)
        emb_size_atom, emb_size_edge (int): atom / edge embedding sizes. (default: ``256``, ``512``)
        emb_size_trip_in, emb_size_trip_out, emb_size_quad_in, emb_size_quad_out, emb_size_aint_in,
            emb_size_aint_out (int): down-projected sizes before/after the bilinear layers. (default: ``64, 64,
            32, 32, 64, 64``)
        emb_size_rbf, emb_size_cbf, emb_size_sbf (int): basis projection sizes. (default: ``16, 16, 32``)
        num_before_skip, num_after_skip, num_concat, num_atom, num_output_afteratom, num_atom_emb_layers,
            num_global_out_layers (int): residual layer counts. (default: ``2, 2, 1, 3, 3, 2, 2``)
        regress_forces (bool): compute forces by default. (default: :obj:`True`)
        direct_forces (bool): direct force head (not energy-conserving) or :math:`-\partial E/\partial x`.
            (default: :obj:`True`)
        forces_coupled (bool): average the direct edge force magnitudes of the two directions of an edge.
            (default: :obj:`False`)
        cutoff, cutoff_qint, cutoff_aeaint, cutoff_aint (float): graph cutoffs in Å (:obj:`None`: ``cutoff``;
            ``cutoff_aint``: the largest). (default: ``12.0``)
        max_neighbors, max_neighbors_qint, max_neighbors_aeaint, max_neighbors_aint (int): nearest-neighbour caps.
            (default: ``30, 8, 20, 1000``)
        strict_max_neighbors (bool), tie_tolerance (float): cap tie rule (see
            :mod:`sciml.gnn.atomistic_graph`). (default: :obj:`True`, ``0.01``)
        symmetrize (str): ``"union"`` or ``"reference"`` edge symmetrisation. (default: ``"union"``)
        rbf (str): ``"gaussian"`` or ``"spherical_bessel"``. (default: ``"gaussian"``)
        envelope_exponent (int): polynomial envelope exponent. (default: ``5``)
        cbf (str): ``"spherical_harmonics"`` or ``"gaussian"``. sbf (str): ``"legendre_outer"`` or
            ``"gaussian_outer"``.
        extensive (bool): energy = sum (else mean) of atomic energies. (default: :obj:`True`)
        quad_interaction, atom_edge_interaction, edge_atom_interaction, atom_interaction (bool): interaction
            types. (default: all :obj:`True`)
        qint_tags (tuple of int, optional): tags of the atoms with quadruplets; :obj:`None` = all atoms.
            (default: ``(1, 2)``)
        num_elements (int): largest atomic number. (default: ``83``)
        energy_mean, energy_std (float): the energy normaliser :math:`\mu, \sigma` (:meth:`set_normalizer`;
            OC20 S2EF: ``-0.7554``, ``2.8873``). (default: ``0.0``, ``1.0``)
        scale_file (str, optional): a JSON file of fitted scale factors
            (:func:`~sciml.gnn.gemnet_oc.save_scale_factors`), loaded at construction, as fairchem's
            ``scale_file``. (default: :obj:`None`: unfitted, fit with :func:`fit_scale_factors`)
        fit_scales (int or dict, optional): fit the scale factors on the training data before training when a
            config is run (``sciml train``; :meth:`prepare_training`): ``{batches: N, batch_size: B, seed: S}``
            (or just ``N``): ``N`` batches of ``B`` training structures (default: the trainer's batch size) drawn
            at random with seed ``S`` (default 0). Skipped when the factors are already fitted (``scale_file``)
            and when the run resumes from a checkpoint (the factors are buffers, so checkpoints hold them).
            (default: :obj:`None`)

    Inputs: a PyG ``Data``/``Batch`` with ``z`` (or ``atomic_numbers``) ``[N]``, ``pos [N, 3]``, optionally
    ``cell [B, 3, 3]``, ``pbc [B, 3]``, ``tags [N]`` and ``ptr``/``batch``.
    Returns: ``{"energy": [B], "forces": [N, 3]}`` (forces only when computed).
    """

    def __init__(self, *, num_spherical: int = 7, num_radial: int = 128, num_blocks: int = 4,
                 emb_size_atom: int = 256, emb_size_edge: int = 512, emb_size_trip_in: int = 64,
                 emb_size_trip_out: int = 64, emb_size_quad_in: int = 32, emb_size_quad_out: int = 32,
                 emb_size_aint_in: int = 64, emb_size_aint_out: int = 64, emb_size_rbf: int = 16,
                 emb_size_cbf: int = 16, emb_size_sbf: int = 32, num_before_skip: int = 2, num_after_skip: int = 2,
                 num_concat: int = 1, num_atom: int = 3, num_output_afteratom: int = 3, num_atom_emb_layers: int = 2,
                 num_global_out_layers: int = 2, regress_forces: bool = True, direct_forces: bool = True,
                 forces_coupled: bool = False, cutoff: float = 12.0, cutoff_qint: float | None = None,
                 cutoff_aeaint: float | None = None, cutoff_aint: float | None = None, max_neighbors: int = 30,
                 max_neighbors_qint: int | None = 8, max_neighbors_aeaint: int | None = 20,
                 max_neighbors_aint: int | None = 1000, strict_max_neighbors: bool = True,
                 tie_tolerance: float = 0.01, symmetrize: str = "union", rbf: str = "gaussian",
                 envelope_exponent: int = 5, cbf: str = "spherical_harmonics", sbf: str = "legendre_outer",
                 extensive: bool = True, quad_interaction: bool = True, atom_edge_interaction: bool = True,
                 edge_atom_interaction: bool = True, atom_interaction: bool = True,
                 qint_tags: tuple[int, ...] | None = (1, 2), num_elements: int = 83, energy_mean: float = 0.0,
                 energy_std: float = 1.0, scale_file: str | None = None,
                 fit_scales: int | dict | None = None) -> None:
        super().__init__()
        for name, v in (("num_spherical", num_spherical), ("num_radial", num_radial), ("num_blocks", num_blocks),
                        ("emb_size_atom", emb_size_atom), ("emb_size_edge", emb_size_edge),
                        ("emb_size_trip_in", emb_size_trip_in), ("emb_size_trip_out", emb_size_trip_out),
                        ("emb_size_quad_in", emb_size_quad_in), ("emb_size_quad_out", emb_size_quad_out),
                        ("emb_size_aint_in", emb_size_aint_in), ("emb_size_aint_out", emb_size_aint_out),
                        ("emb_size_rbf", emb_size_rbf), ("emb_size_cbf", emb_size_cbf),
                        ("emb_size_sbf", emb_size_sbf), ("num_elements", num_elements)):
            check_int(v, name, "GemNetOC")
        if num_radial < 2:
            raise ConfigError(f"GemNetOC: num_radial must be >= 2, got {num_radial}")
        for name, v in (("num_before_skip", num_before_skip), ("num_after_skip", num_after_skip),
                        ("num_concat", num_concat), ("num_atom", num_atom),
                        ("num_output_afteratom", num_output_afteratom), ("num_atom_emb_layers", num_atom_emb_layers),
                        ("num_global_out_layers", num_global_out_layers)):
            check_int(v, name, "GemNetOC", minimum=0)
        if symmetrize not in ("union", "reference"):
            raise ConfigError(f"GemNetOC: symmetrize must be 'union' or 'reference', got {symmetrize!r}")
        self.num_blocks, self.extensive = num_blocks, extensive
        self.regress_forces, self.direct_forces, self.forces_coupled = regress_forces, direct_forces, forces_coupled
        self.quad, self.a2e = quad_interaction, atom_edge_interaction
        self.e2a, self.a2a = edge_atom_interaction, atom_interaction
        self.qint_tags = None if qint_tags is None else tuple(int(t) for t in qint_tags)
        self.num_elements = num_elements
        self.cutoff = float(cutoff)
        self.cutoff_qint = self.cutoff if cutoff_qint is None else float(cutoff_qint)
        self.cutoff_aeaint = self.cutoff if cutoff_aeaint is None else float(cutoff_aeaint)
        used = [self.cutoff] + ([self.cutoff_qint] if quad_interaction else []) + (
            [self.cutoff_aeaint] if atom_edge_interaction or edge_atom_interaction else [])
        self.cutoff_aint = max(used) if cutoff_aint is None else float(cutoff_aint)
        self.graph_kwargs = dict(
            cutoff=self.cutoff, max_neighbors=max_neighbors, cutoff_qint=self.cutoff_qint,
            max_neighbors_qint=max_neighbors_qint, cutoff_aeaint=self.cutoff_aeaint,
            max_neighbors_aeaint=max_neighbors_aeaint, cutoff_aint=self.cutoff_aint,
            max_neighbors_aint=max_neighbors_aint, quad_interaction=quad_interaction,
            atom_edge_interaction=atom_edge_interaction, edge_atom_interaction=edge_atom_interaction,
            atom_interaction=atom_interaction, qint_tags=self.qint_tags, symmetrize=symmetrize,
            strict=strict_max_neighbors, tie_tolerance=tie_tolerance)

        # bases (parameter-free except for Bessel frequencies); one radial basis per cutoff
        rb = dict(rbf=rbf, envelope_exponent=envelope_exponent)
        self.rbf_main = RadialBasis(num_radial, self.cutoff, **rb)
        self.rbf_qint = RadialBasis(num_radial, self.cutoff_qint, **rb) if quad_interaction else None
        self.rbf_aeaint = (RadialBasis(num_radial, self.cutoff_aeaint, **rb)
                           if atom_edge_interaction or edge_atom_interaction else None)
        self.rbf_aint = RadialBasis(num_radial, self.cutoff_aint, **rb) if atom_interaction else None
        self.cbf = CircularBasis(num_spherical, cbf)
        self.sbf = SphericalBasis(num_spherical, sbf) if quad_interaction else None

        # shared basis projections
        S = num_spherical
        self.mlp_rbf_tint = Dense(num_radial, emb_size_rbf)
        self.mlp_cbf_tint = BasisEmbedding(num_radial, emb_size_cbf, S)
        self.mlp_rbf_h = Dense(num_radial, emb_size_rbf)
        self.mlp_rbf_out = Dense(num_radial, emb_size_rbf)
        shared = [(self.mlp_rbf_tint, num_blocks), (self.mlp_cbf_tint, num_blocks), (self.mlp_rbf_h, num_blocks),
                  (self.mlp_rbf_out, num_blocks + 1)]
        if quad_interaction:
            self.mlp_rbf_qint = Dense(num_radial, emb_size_rbf)
            self.mlp_cbf_qint = BasisEmbedding(num_radial, emb_size_cbf, S)
            self.mlp_sbf_qint = BasisEmbedding(num_radial, emb_size_sbf, S * S)
            shared += [(self.mlp_rbf_qint, num_blocks), (self.mlp_cbf_qint, num_blocks),
                       (self.mlp_sbf_qint, num_blocks)]
        if atom_edge_interaction:
            self.mlp_rbf_aeint = Dense(num_radial, emb_size_rbf)
            self.mlp_cbf_aeint = BasisEmbedding(num_radial, emb_size_cbf, S)
            shared += [(self.mlp_rbf_aeint, num_blocks), (self.mlp_cbf_aeint, num_blocks)]
        if edge_atom_interaction:
            self.mlp_rbf_eaint = Dense(num_radial, emb_size_rbf)
            self.mlp_cbf_eaint = BasisEmbedding(num_radial, emb_size_cbf, S)
            shared += [(self.mlp_rbf_eaint, num_blocks), (self.mlp_cbf_eaint, num_blocks)]
        if atom_interaction:
            self.mlp_rbf_aint = BasisEmbedding(num_radial, emb_size_rbf)
            shared += [(self.mlp_rbf_aint, num_blocks)]
        for module, factor in shared:
            module.grad_scale = float(factor)

        self.atom_emb = AtomEmbedding(emb_size_atom, num_elements)
        self.edge_emb = EdgeEmbedding(emb_size_atom, num_radial, emb_size_edge)
        self.int_blocks = nn.ModuleList([InteractionBlock(
            emb_size_atom=emb_size_atom, emb_size_edge=emb_size_edge, emb_size_trip_in=emb_size_trip_in,
            emb_size_trip_out=emb_size_trip_out, emb_size_quad_in=emb_size_quad_in,
            emb_size_quad_out=emb_size_quad_out, emb_size_a2a_in=emb_size_aint_in,
            emb_size_a2a_out=emb_size_aint_out, emb_size_rbf=emb_size_rbf, emb_size_cbf=emb_size_cbf,
            emb_size_sbf=emb_size_sbf, num_before_skip=num_before_skip, num_after_skip=num_after_skip,
            num_concat=num_concat, num_atom=num_atom, num_atom_emb_layers=num_atom_emb_layers,
            quad_interaction=quad_interaction, atom_edge_interaction=atom_edge_interaction,
            edge_atom_interaction=edge_atom_interaction, atom_interaction=atom_interaction)
            for _ in range(num_blocks)])
        self.out_blocks = nn.ModuleList([OutputBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom,
                                                     num_output_afteratom, direct_forces=direct_forces)
                                         for _ in range(num_blocks + 1)])
        self.out_mlp_E = nn.Sequential(Dense(emb_size_atom * (num_blocks + 1), emb_size_atom, activation="silu"),
                                       *[ResidualLayer(emb_size_atom) for _ in range(num_global_out_layers)])
        self.out_energy = Dense(emb_size_atom, 1)
        if direct_forces:
            self.out_mlp_F = nn.Sequential(
                Dense(emb_size_edge * (num_blocks + 1), emb_size_edge, activation="silu"),
                *[ResidualLayer(emb_size_edge) for _ in range(num_global_out_layers)])
            self.out_forces = Dense(emb_size_edge, 1)

        self.register_buffer("energy_mean", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("energy_std", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("atom_ref", torch.zeros(num_elements + 1, dtype=torch.float64))
        self.set_normalizer(energy_mean, energy_std)
        self.fit_scales = _fit_scales_option(fit_scales)
        self.scale_file = scale_file
        if scale_file is not None:
            load_scale_factors(self, scale_file)

    # ---------------------------------------------------------------------------------------------- helpers
    def set_normalizer(self, mean: float = 0.0, std: float = 1.0, atom_ref: Tensor | None = None) -> None:
        r"""Set the energy normaliser: the network predicts :math:`(E - \mu - \sum_a e_{Z_a}) / \sigma` (forces
        in units of :math:`\sigma`), and outputs are returned in physical units.

        Args:
            mean (float): :math:`\mu` (per structure). std (float): :math:`\sigma > 0`.
            atom_ref (torch.Tensor, optional): ``[num_elements + 1]`` per-element reference energies
                :math:`e_Z` (index = atomic number). (default: zeros)
        """
        if not std > 0:
            raise ConfigError(f"GemNetOC.set_normalizer: std must be positive, got {std!r}")
        self.energy_mean.fill_(float(mean))
        self.energy_std.fill_(float(std))
        if atom_ref is not None:
            atom_ref = torch.as_tensor(atom_ref, dtype=torch.float64).view(-1)
            if atom_ref.numel() != self.num_elements + 1:
                raise ShapeError(f"atom_ref must have num_elements + 1 = {self.num_elements + 1} entries, "
                                 f"got {atom_ref.numel()}")
            self.atom_ref.copy_(atom_ref)

    def scale_factors(self) -> dict[str, ScaleFactor]:
        return {name: m for name, m in self.named_modules() if isinstance(m, ScaleFactor)}

    @property
    def scale_factors_fitted(self) -> bool:
        return all(bool(m.fitted) for m in self.scale_factors().values())

    def prepare_training(self, train_data: Any, *, batch_size: int | None = None, collate_fn: Any = None
                         ) -> dict[str, float] | None:
        """Fit the unfitted scale factors on the training data when ``fit_scales`` is set (called by
        :func:`sciml.experiment.build` before the trainer is built); returns the fitted values, or :obj:`None`
        when there is nothing to do."""
        if self.fit_scales is None or self.scale_file is not None or self.scale_factors_fitted:
            return None
        from sciml.gnn.gemnet_oc.layers import fit_scale_factors, scale_fit_batches

        opt = self.fit_scales
        size = opt.get("batch_size") or batch_size or 16
        batches = scale_fit_batches(train_data, opt["batches"], size, collate_fn=collate_fn, seed=opt["seed"])
        return fit_scale_factors(self, batches, num_batches=opt["batches"])

    @staticmethod
    def _inputs(data: Any) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
        z = getattr(data, "z", None)
        if z is None:
            z = getattr(data, "atomic_numbers", None)
        pos = getattr(data, "pos", None)
        if z is None or pos is None:
            raise ShapeError("GemNetOC needs `z` (or `atomic_numbers`) and `pos` on the input graph")
        n = pos.size(0)
        if z.shape != (n,):
            raise ShapeError(f"`z` must have shape [num_atoms={n}], got {tuple(z.shape)}")
        ptr = getattr(data, "ptr", None)
        if ptr is None:
            batch = getattr(data, "batch", None)
            if batch is None:
                ptr = torch.tensor([0, n], device=pos.device)
            else:
                counts = torch.bincount(batch, minlength=int(batch.max()) + 1 if n else 0)
                ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        cell = getattr(data, "cell", None)
        pbc = getattr(data, "pbc", None)
        tags = getattr(data, "tags", None)
        return z.long(), pos, ptr.long(), cell, pbc, tags

    def build_graphs(self, data: Any) -> GemNetOCGraphs:
        """The graphs and index sets of a batch (what :meth:`forward` builds when none are given)."""
        z, pos, ptr, cell, pbc, tags = self._inputs(data)
        return gemnet_oc_graphs(pos, ptr=ptr, cell=cell, pbc=pbc, tags=tags, **self.graph_kwargs)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, data: Any, *, compute_forces: bool | None = None,
                graphs: GemNetOCGraphs | None = None) -> dict[str, Tensor]:
        """Energies ``[B]`` and (if ``compute_forces``, default ``regress_forces``) forces ``[N, 3]``.

        Args:
            data: PyG ``Data``/``Batch`` (see the class doc).
            compute_forces (bool, optional): override ``regress_forces`` for this call.
            graphs (GemNetOCGraphs, optional): prebuilt graphs (e.g. from a data loader worker).
        """
        compute_forces = self.regress_forces if compute_forces is None else compute_forces
        conservative = compute_forces and not self.direct_forces
        z, pos, ptr, cell, pbc, tags = self._inputs(data)
        if z.numel() and (int(z.min()) < 1 or int(z.max()) > self.num_elements):
            raise ShapeError(f"GemNetOC: atomic numbers must lie in [1, {self.num_elements}], "
                             f"got range [{int(z.min())}, {int(z.max())}]")
        if graphs is None:
            graphs = gemnet_oc_graphs(pos, ptr=ptr, cell=cell, pbc=pbc, tags=tags, **self.graph_kwargs)
        outer_grad = torch.is_grad_enabled()
        if conservative and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        with torch.set_grad_enabled(outer_grad or conservative):
            cell_f = None if cell is None else cell.to(pos.dtype)
            energy, forces = self._energy(z, pos, ptr, cell_f, graphs, direct=compute_forces and self.direct_forces)
            if conservative:
                grad = None
                if energy.requires_grad:
                    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=outer_grad, allow_unused=True)
                forces = -grad if grad is not None else torch.zeros_like(pos)  # no edges: no dependence on pos
        out = {"energy": energy if outer_grad else energy.detach()}
        if compute_forces:
            out["forces"] = forces if outer_grad else forces.detach()
        return out

    def _geometry(self, pos: Tensor, graph, cell: Tensor | None, ptr: Tensor) -> tuple[Tensor, Tensor]:
        vec, dist = edge_vectors(pos, graph, cell, ptr=ptr)
        return dist, vec / dist.unsqueeze(-1)

    def _energy(self, z: Tensor, pos: Tensor, ptr: Tensor, cell: Tensor | None, g: GemNetOCGraphs,
                direct: bool) -> tuple[Tensor, Tensor | None]:
        n = pos.size(0)
        d_main, u_main = self._geometry(pos, g.main, cell, ptr)
        target_ptr = g.main.target_ptr()
        rbf_main = self.rbf_main(d_main)
        ctx: dict[str, Any] = {"graphs": g, "target_ptr": target_ptr,
                               "rbf_h": self.mlp_rbf_h(rbf_main), "rbf_e2e": self.mlp_rbf_tint(rbf_main)}
        t = g.triplets
        cos = _cosine(u_main.index_select(0, t.edge_out), u_main.index_select(0, t.edge_in))
        ctx["cbf_e2e"] = self.mlp_cbf_tint.padded(rbf_main, self.cbf(cos), _buckets(t, g.main.num_edges))
        if self.quad:
            d_q, u_q = self._geometry(pos, g.qint, cell, ptr)
            q = g.quadruplets
            ti, to = q.triplet_in, q.triplet_out
            u_db, u_ba_in = u_main.index_select(0, ti.edge_in), u_q.index_select(0, ti.edge_out)
            u_ca, u_ba_out = u_main.index_select(0, to.edge_out), u_q.index_select(0, to.edge_in)
            ctx["rbf_qint"] = self.mlp_rbf_qint(rbf_main)
            ctx["cbf_qint"] = self.mlp_cbf_qint.per_triplet(self.rbf_qint(d_q), self.cbf(_cosine(u_ba_in, u_db)),
                                                           ti.edge_out)
            cross_db = torch.linalg.cross(u_db, u_ba_in).index_select(0, q.triplet_in_of_quad)
            cross_ca = torch.linalg.cross(u_ca, u_ba_out).index_select(0, q.triplet_out_of_quad)
            cos_cab = _cosine(u_ca, u_ba_out).index_select(0, q.triplet_out_of_quad)
            ctx["sbf_qint"] = self.mlp_sbf_qint.padded(rbf_main, self.sbf(cos_cab, _cosine(cross_ca, cross_db)),
                                                       _buckets(q, g.main.num_edges))
        if self.a2e or self.e2a:
            d_ae, u_ae = self._geometry(pos, g.a2ee2a, cell, ptr)
            rbf_ae = self.rbf_aeaint(d_ae)
            if self.a2e:
                t = g.triplets_a2e
                ctx["rbf_a2e"] = self.mlp_rbf_aeint(rbf_ae)
                cos = _cosine(u_main.index_select(0, t.edge_out), u_ae.index_select(0, t.edge_in))
                ctx["cbf_a2e"] = self.mlp_cbf_aeint.padded(rbf_main, self.cbf(cos), _buckets(t, g.main.num_edges))
            if self.e2a:
                t = g.triplets_e2a
                ctx["rbf_e2a"] = self.mlp_rbf_eaint(rbf_main)
                cos = _cosine(u_ae.index_select(0, t.edge_out), u_main.index_select(0, t.edge_in))
                ctx["cbf_e2a"] = self.mlp_cbf_eaint.padded(
                    rbf_ae, self.cbf(cos), _buckets(t, g.a2ee2a.num_edges),
                    agg2=(g.a2ee2a.edge_index[1], g.a2ee2a_rank, n, g.a2ee2a_kmax))
        if self.a2a:
            d_aa, _ = self._geometry(pos, g.a2a, cell, ptr)
            rad = self.mlp_rbf_aint(self.rbf_aint(d_aa))
            ctx["rbf_a2a"] = pad_segments(rad, g.a2a.edge_index[1], g.a2a_rank, n, g.a2a_kmax).transpose(1, 2)

        rbf_out = self.mlp_rbf_out(rbf_main)
        h = self.atom_emb(z)
        m = self.edge_emb(h, rbf_main, g.main.edge_index)
        x_e, x_f = self.out_blocks[0](h, m, rbf_out, target_ptr)
        xs_e, xs_f = [x_e], [x_f]
        for block, out_block in zip(self.int_blocks, self.out_blocks[1:]):
            h, m = block(h, m, ctx)
            x_e, x_f = out_block(h, m, rbf_out, target_ptr)
            xs_e.append(x_e)
            xs_f.append(x_f)
        e_atom = self.out_energy(self.out_mlp_E(torch.cat(xs_e, dim=-1)))           # [N, 1]
        std = self.energy_std.to(e_atom.dtype)
        e_atom = e_atom.squeeze(-1) * std + self.atom_ref.to(e_atom.dtype).index_select(0, z)
        energy = segment_reduce(e_atom.unsqueeze(-1), ptr, "sum" if self.extensive else "mean",
                                validate=False).squeeze(-1) + self.energy_mean.to(e_atom.dtype)
        forces = None
        if direct:
            f_edge = self.out_forces(self.out_mlp_F(torch.cat(xs_f, dim=-1)))        # [E, 1]
            if self.forces_coupled:
                f_edge = 0.5 * (f_edge + f_edge.index_select(0, g.reverse))
            forces = segment_reduce(f_edge * u_main, target_ptr, "sum", validate=False) * std
        return energy, forces


def _fit_scales_option(value: Any) -> dict | None:
    """``fit_scales`` as ``{"batches", "batch_size", "seed"}`` (or :obj:`None`)."""
    if value is None or value is False:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"batches": value}
    if not isinstance(value, dict):
        raise ConfigError(f"GemNetOC: fit_scales must be null, a number of batches or a mapping "
                          f"{{batches, batch_size, seed}}, got {value!r}")
    unknown = sorted(set(value) - {"batches", "batch_size", "seed"})
    if unknown:
        raise ConfigError(f"GemNetOC: fit_scales has unknown keys {unknown} (allowed: batches, batch_size, seed)")
    out = {"batches": value.get("batches", 16), "batch_size": value.get("batch_size"), "seed": value.get("seed", 0)}
    check_int(out["batches"], "fit_scales.batches", "GemNetOC")
    if out["batch_size"] is not None:
        check_int(out["batch_size"], "fit_scales.batch_size", "GemNetOC")
    check_int(out["seed"], "fit_scales.seed", "GemNetOC", minimum=0)
    return out


def _buckets(index, num_out: int) -> SegmentBuckets:
    """Padding layout of a triplet/quadruplet index per output edge: up to :data:`NUM_BUCKETS` buckets of similar
    neighbour counts (the counts are skewed: the quadruplets of the base config fill 40-55 % of one
    ``[E, kmax]`` block, 93 % of four buckets)."""
    return segment_buckets(index.edge_out, num_out, NUM_BUCKETS, rank=index.rank)


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine of the angle between rows of ``a`` and ``b`` (any lengths; 0 for a zero vector), clamped to
    ``[-1, 1]``."""
    den2 = (a * a).sum(-1) * (b * b).sum(-1)
    return ((a * b).sum(-1) * torch.rsqrt(den2.clamp(min=1e-18))).clamp(-1.0, 1.0)
