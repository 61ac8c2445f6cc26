r"""Building blocks of GemNet-OC: dense and residual layers, scale factors, embeddings, the efficient bilinear
layer, the triplet / quadruplet / pair interactions, and the atom-update, output and interaction blocks.

Conventions: ``m`` are edge embeddings of the (symmetric, target-sorted) embedding graph, ``h`` atom embeddings.
Sums over a variable number of neighbours go through zero-padded dense tensors ``[num_out, kmax, F]`` (built
with one ``index_copy``) and batched matrix products, which is what makes the bilinear layers affordable
(GemNet-OC's "efficient" reformulation); edge-to-atom sums use sorted segment sums
(:func:`sciml.sparse.segment_reduce`).
"""
from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError
from sciml.sparse import pad_segments, segment_reduce
from sciml.sparse.index import SegmentBuckets, pad_buckets

__all__ = ["he_orthogonal_", "ScaledSiLU", "Dense", "ResidualLayer", "ScaleFactor", "AtomEmbedding",
           "EdgeEmbedding", "BasisEmbedding", "EfficientBilinear", "TripletInteraction", "QuadrupletInteraction",
           "PairInteraction", "AtomUpdateBlock", "OutputBlock", "InteractionBlock",
           "fit_scale_factors", "save_scale_factors", "load_scale_factors", "scale_grad", "scale_fit_batches"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


# ------------------------------------------------------------------------------------------------ basic layers
@torch.no_grad()
def he_orthogonal_(weight: Tensor, fan_in_dims: int = 1) -> Tensor:
    r"""He-scaled (semi-)orthogonal initialisation: a random orthogonal matrix of shape ``[fan_out, fan_in]``,
    standardised to zero mean and unit variance per output unit, times :math:`1/\sqrt{\text{fan\_in}}`.

    Args:
        weight (torch.Tensor): ``[out, in]`` (``fan_in_dims=1``) or ``[*in_dims, out]`` with the leading
            ``fan_in_dims`` dimensions as inputs (the basis-embedding tensors).
    """
    if weight.dim() == 2 and fan_in_dims == 1:
        mat = torch.empty_like(weight)
        nn.init.orthogonal_(mat)
    else:
        fan_in = math.prod(weight.shape[:fan_in_dims])
        mat = torch.empty(weight.shape[-1], fan_in, dtype=weight.dtype, device=weight.device)
        nn.init.orthogonal_(mat)
    var, mean = torch.var_mean(mat, dim=1, keepdim=True)
    mat = (mat - mean) / (var + 1e-6).sqrt() / math.sqrt(mat.size(1))
    if weight.dim() == 2 and fan_in_dims == 1:
        weight.copy_(mat)
    else:
        weight.copy_(mat.t().reshape(weight.shape))
    return weight


class _ScaleGrad(torch.autograd.Function):
    """Identity in the forward, gradient divided by ``factor`` in the backward (for parameters shared by several
    blocks, whose summed gradient would otherwise be ``factor`` times larger)."""

    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad / ctx.factor, None


def scale_grad(x: Tensor, factor: float) -> Tensor:
    """``x`` whose gradient is divided by ``factor`` (identity when ``factor == 1``)."""
    return x if factor == 1.0 else _ScaleGrad.apply(x, factor)


class ScaledSiLU(nn.Module):
    r""":math:`\mathrm{SiLU}(x) / 0.6` (keeps the activations' variance close to 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x).mul_(1.0 / 0.6)  # in place: SiLU's backward needs its input, not its output


class Dense(nn.Module):
    r"""Linear layer (bias-free by default, He-orthogonal initialisation) optionally followed by
    :class:`ScaledSiLU`.

    Args:
        in_features (int), out_features (int): sizes.
        activation (str, optional): ``"silu"`` or :obj:`None`. (default: :obj:`None`)
        bias (bool): add a bias (initialised to 0). (default: :obj:`False`)
    """

    def __init__(self, in_features: int, out_features: int, *, activation: str | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        he_orthogonal_(self.linear.weight)
        if bias:
            nn.init.zeros_(self.linear.bias)
        if activation not in (None, "silu", "swish"):
            raise ConfigError(f"activation must be 'silu' or None, got {activation!r}")
        self.act = ScaledSiLU() if activation is not None else nn.Identity()
        self.grad_scale = 1.0  # > 1 for a layer shared by several blocks (gradient divided by it)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(F.linear(x, scale_grad(self.linear.weight, self.grad_scale), self.linear.bias))


class ResidualLayer(nn.Module):
    r""":math:`(\mathbf{x} + \mathrm{Dense}_2(\mathrm{Dense}_1(\mathbf{x}))) / \sqrt 2` with SiLU dense layers."""

    def __init__(self, units: int, *, num_layers: int = 2, activation: str | None = "silu") -> None:
        super().__init__()
        self.layers = nn.Sequential(*[Dense(units, units, activation=activation) for _ in range(num_layers)])

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.layers(x)).mul_(_INV_SQRT2)  # in place on the fresh sum (saved by nothing)


def _mlp(units_in: int, units: int, num_residual: int, activation: str | None) -> nn.Sequential:
    first = [Dense(units_in, units, activation=activation)] if units_in != units else []
    return nn.Sequential(*first, *[ResidualLayer(units, activation=activation) for _ in range(num_residual)])


class _FitStop(Exception):
    """Raised by the scale factor being fitted once it has observed its input: the rest of the forward pass is not
    needed for that factor."""


class ScaleFactor(nn.Module):
    r"""Multiplies its input by a constant fitted before training (:func:`fit_scale_factors`) so that the output
    has about the variance of a reference tensor (GemNet's scale factors). Unfitted it is the identity. The
    factor and a ``fitted`` flag are buffers, so they travel with the model's ``state_dict`` and checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))
        self._stats: dict | None = None
        self._order: list | None = None
        self.name = ""

    def forward(self, x: Tensor, ref: Tensor | None = None) -> Tensor:
        if self._order is not None and self.name not in self._order:
            self._order.append(self.name)
        # an unfitted factor (scale 1) is skipped, as fairchem does: x * 1 is x, and the multiply and its backward
        # cost a pass over the tensor each (54 factors in the base model); on an accelerator the check would
        # synchronise, so there the factor always multiplies
        if self.scale.device.type != "cpu" or float(self.scale) != 1.0:
            x = x * self.scale.to(x.dtype)
        if self._stats is not None:
            self._observe(x, ref)
            raise _FitStop
        return x

    @torch.no_grad()
    def _observe(self, x: Tensor, ref: Tensor | None) -> None:
        n = x.size(0)
        if n < 2 or (ref is not None and ref.size(0) < 2):
            return
        self._stats["out"] += float(x.double().var(dim=0).mean()) * n
        self._stats["in"] += (float(ref.double().var(dim=0).mean()) if ref is not None else 1.0) * n
        self._stats["n"] += n

    def extra_repr(self) -> str:
        return f"scale={float(self.scale):.4f}, fitted={bool(self.fitted)}"


def fit_scale_factors(model: nn.Module, batches: Iterable, forward: Callable[[nn.Module, object], object] | None = None,
                      *, num_batches: int = 16, refit: bool = False) -> dict[str, float]:
    r"""Fit every :class:`ScaleFactor` of ``model`` in the order the forward pass meets them: for each factor in
    turn (earlier ones already fitted), run ``num_batches`` batches without gradients, accumulate the mean
    per-feature variance of its output and of its reference, and set the factor to
    :math:`\sqrt{\mathrm{Var}_{ref} / \mathrm{Var}_{out}}` (reference variance 1 when there is none). Each pass
    stops right after the factor being fitted (nothing later can change its input), so a fit costs about half of
    ``num_factors * num_batches`` forward passes.

    A factor that saw fewer than 2 rows in every batch (e.g. quadruplets when no atom is tagged) stays unfitted
    (identity) and is reported as ``nan``.

    Args:
        model (torch.nn.Module): the model (put in eval mode during the fit, mode restored afterwards).
        batches (iterable): batches; the first ``num_batches`` are used (they are materialised once).
        forward (callable, optional): ``forward(model, batch)``; the default calls ``model(batch)`` (GemNetOC
            models are called with ``compute_forces=False``).
        num_batches (int): batches per factor. (default: ``16``)
        refit (bool): also refit factors that are already fitted (otherwise they are kept). (default:
            :obj:`False`)

    Returns:
        dict: factor name -> fitted value.
    """
    factors = {name: m for name, m in model.named_modules() if isinstance(m, ScaleFactor)}
    for name, m in factors.items():
        m.name = name
    data = []
    for b in batches:
        data.append(b)
        if len(data) >= num_batches:
            break
    if not data:
        raise ConfigError("fit_scale_factors needs at least one batch")
    if forward is None:
        params = inspect.signature(model.forward).parameters
        kwargs = {"compute_forces": False} if "compute_forces" in params else {}
        # the graphs of each batch are built once, not once per factor
        graphs = ([model.build_graphs(b) for b in data]
                  if "graphs" in params and callable(getattr(model, "build_graphs", None)) else None)
        index = {id(b): k for k, b in enumerate(data)}

        def forward(mod, batch):
            extra = {"graphs": graphs[index[id(batch)]]} if graphs is not None else {}
            return mod(batch, **kwargs, **extra)
    was_training = model.training
    model.eval()
    result: dict[str, float] = {}
    try:
        order: list[str] = []
        for m in factors.values():
            if refit or not bool(m.fitted):
                m.scale.fill_(1.0)
                m.fitted.fill_(False)
            m._order = order
        with torch.no_grad():
            forward(model, data[0])
        for m in factors.values():
            m._order = None
        for name in order + [n for n in factors if n not in order]:
            m = factors[name]
            if bool(m.fitted):
                result[name] = float(m.scale)
                continue
            m._stats = {"in": 0.0, "out": 0.0, "n": 0}
            with torch.no_grad():
                for batch in data:
                    try:
                        forward(model, batch)
                    except _FitStop:  # the factor has seen this batch; the rest of the pass is not needed
                        pass
            stats, m._stats = m._stats, None
            if stats["n"] == 0 or stats["out"] <= 0 or stats["in"] <= 0:
                result[name] = float("nan")
                continue
            value = math.sqrt(stats["in"] / stats["out"])
            m.scale.fill_(value)
            m.fitted.fill_(True)
            result[name] = value
    finally:
        for m in factors.values():
            m._stats, m._order = None, None
        model.train(was_training)
    return result


def scale_fit_batches(structures: Any, num_batches: int, batch_size: int, *, collate_fn: Callable | None = None,
                      seed: int = 0) -> list:
    """``num_batches`` batches of ``batch_size`` structures drawn without replacement at random (``seed``) from
    ``structures`` (fewer when there are not enough): the data :func:`fit_scale_factors` sees before training
    (random, so that the batches cover the data set rather than its first trajectory).

    Args:
        structures (sequence): the training structures (PyG ``Data``).
        num_batches (int), batch_size (int): how many batches of how many structures.
        collate_fn (callable, optional): list of structures -> batch. (default: PyG ``Batch.from_data_list``)
        seed (int): seed of the draw. (default: ``0``)
    """
    if collate_fn is None:
        from torch_geometric.data import Batch

        collate_fn = Batch.from_data_list
    n = len(structures)
    take = min(n, num_batches * batch_size)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:take].tolist()
    return [collate_fn([structures[i] for i in order[k:k + batch_size]]) for k in range(0, take, batch_size)]


SCALE_FILE_FORMAT = "sciml-gemnet-oc-scale-factors"


def save_scale_factors(model: nn.Module, path: str | os.PathLike) -> dict[str, float | None]:
    """Write the fitted :class:`ScaleFactor` values of ``model`` to a JSON file (written atomically), fairchem's
    ``scale_file`` workflow: fit once on the training data, then name the file in the model config.

    Returns:
        dict: factor name -> value (:obj:`None` for a factor that is not fitted).
    """
    from sciml.io import atomic_write_text

    scales = {name: (float(m.scale) if bool(m.fitted) else None) for name, m in model.named_modules()
              if isinstance(m, ScaleFactor)}
    atomic_write_text(path, json.dumps({"format": SCALE_FILE_FORMAT, "version": 1, "scales": scales},
                                       indent=1, sort_keys=True) + "\n")
    return scales


@torch.no_grad()
def load_scale_factors(model: nn.Module, path: str | os.PathLike) -> dict[str, float | None]:
    """Set the :class:`ScaleFactor` values of ``model`` from a file written by :func:`save_scale_factors`. The file
    must name exactly the model's factors (another architecture needs its own fit)."""
    from sciml.errors import DataFormatError

    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"scale_file {str(path)!r} does not exist; fit one with "
                          "sciml.gnn.gemnet_oc.data.fit_scale_file (or leave scale_file unset)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"scale_file {str(path)!r} is not JSON: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != SCALE_FILE_FORMAT:
        raise DataFormatError(f"scale_file {str(path)!r} is not a {SCALE_FILE_FORMAT} file")
    scales = payload.get("scales") or {}
    factors = {name: m for name, m in model.named_modules() if isinstance(m, ScaleFactor)}
    missing, extra = sorted(set(factors) - set(scales)), sorted(set(scales) - set(factors))
    if missing or extra:
        raise ConfigError(f"scale_file {str(path)!r} does not match this model: missing {missing[:3]}, "
                          f"unknown {extra[:3]} ({len(missing)} missing, {len(extra)} unknown)")
    for name, m in factors.items():
        value = scales[name]
        m.scale.fill_(1.0 if value is None else float(value))
        m.fitted.fill_(value is not None)
    return scales


# ------------------------------------------------------------------------------------------------ embeddings
class AtomEmbedding(nn.Module):
    r"""Learned embedding of the atomic number :math:`Z \in [1, \text{num\_elements}]` (uniform init in
    :math:`\pm\sqrt 3`, unit variance)."""

    def __init__(self, emb_size: int, num_elements: int = 83) -> None:
        super().__init__()
        self.num_elements = num_elements
        self.embeddings = nn.Embedding(num_elements, emb_size)
        nn.init.uniform_(self.embeddings.weight, -math.sqrt(3), math.sqrt(3))

    def forward(self, z: Tensor) -> Tensor:
        return self.embeddings(z - 1)


class EdgeEmbedding(nn.Module):
    r""":math:`\mathbf{m}_{ca} = \mathrm{Dense}([\mathbf{h}_c \Vert \mathbf{h}_a \Vert \mathbf{x}_{ca}])` (SiLU)."""

    def __init__(self, atom_features: int, edge_features: int, out_features: int,
                 activation: str | None = "silu") -> None:
        super().__init__()
        self.dense = Dense(2 * atom_features + edge_features, out_features, activation=activation)

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.dense(torch.cat([h.index_select(0, edge_index[0]), h.index_select(0, edge_index[1]), x], -1))


class BasisEmbedding(nn.Module):
    r"""Shared projection of a radial basis (and the weight tensor of the efficient bilinear layer):
    ``rad [E, R] -> [E, I]`` or, with ``num_spherical``, ``rad [E, R] -> [E, I, S]`` (the radial part
    :math:`\sum_r \mathrm{rbf}_r W_{r s i}`) to be contracted with a circular/spherical basis.

    Args:
        num_radial (int): :math:`R`. emb_size (int): :math:`I`.
        num_spherical (int, optional): :math:`S` (:math:`L` or :math:`L^2`). (default: :obj:`None`)
    """

    def __init__(self, num_radial: int, emb_size: int, num_spherical: int | None = None) -> None:
        super().__init__()
        self.num_spherical = num_spherical
        if num_spherical is None:
            self.weight = nn.Parameter(torch.empty(emb_size, num_radial))
            he_orthogonal_(self.weight)
        else:
            self.weight = nn.Parameter(torch.empty(num_radial, num_spherical, emb_size))
            he_orthogonal_(self.weight, fan_in_dims=2)
        self.grad_scale = 1.0  # > 1 when shared by several blocks (gradient divided by it)

    def forward(self, rad: Tensor) -> Tensor:
        weight = scale_grad(self.weight, self.grad_scale)
        if self.num_spherical is None:
            return rad @ weight.t()
        w = weight.permute(0, 2, 1).reshape(weight.size(0), -1)             # [R, I*S]
        return (rad @ w).view(rad.size(0), weight.size(2), self.num_spherical)

    def per_triplet(self, rad: Tensor, sph: Tensor, edge_of_triplet: Tensor) -> Tensor:
        """The basis of each triplet, ``[T, I]``: radial part of its edge contracted with its angular part."""
        rad_w = self.forward(rad).index_select(0, edge_of_triplet)           # [T, I, S]
        return torch.bmm(rad_w, sph.unsqueeze(-1)).squeeze(-1)

    def padded(self, rad: Tensor, sph: Tensor, buckets: SegmentBuckets,
               agg2: tuple[Tensor, Tensor, int, int] | None = None) -> tuple[Tensor, list[Tensor], SegmentBuckets, int]:
        """The two basis tensors of :class:`EfficientBilinear`, computed once per forward pass and shared by all
        interaction blocks (so the padded angular basis is materialised, and kept for the backward, once).

        Args:
            rad: ``[E, R]`` raw radial basis of the output edges.
            sph: ``[T, S]`` angular basis per triplet/quadruplet.
            buckets (SegmentBuckets): the padding layout of the triplets/quadruplets per output edge
                (:func:`sciml.sparse.index.segment_buckets`).
            agg2: ``(atom_of_edge, rank_in_atom, num_atoms, kmax_atoms)`` for a second sum over the edges of
                each atom (edge-to-atom interaction).

        Returns:
            ``(rad_w, sph_pads, buckets, E)``: the radial part ``[n_b, I, S]`` of the rows of each bucket (with
            ``agg2``: one ``[N, I, K_2 S]`` tensor, all edges padded per atom), one zero-padded ``[n_b, S, k_b]``
            angular block per bucket, the layout and the number of output edges (the arguments of
            :class:`EfficientBilinear`).
        """
        rad_w = self.forward(rad)                                            # [E, I, S]
        sph_pads = [blk.transpose(1, 2) for blk in pad_buckets(sph, buckets)]
        if agg2 is None:  # one block per bucket (split once here, so the blocks' backward concatenates once)
            rad_ws = list(rad_w.index_select(0, buckets.rows).split([n for n, _ in buckets.sizes]))
            return rad_ws, sph_pads, buckets, rad.size(0)
        atom, atom_rank, num_atoms, kmax2 = agg2
        e, i, s = rad_w.shape
        rad_w = pad_segments(rad_w, atom, atom_rank, num_atoms, kmax2)        # [N, K2, I, S]
        return rad_w.transpose(1, 2).reshape(num_atoms, i, kmax2 * s), sph_pads, buckets, e


class EfficientBilinear(nn.Module):
    r"""Bilinear combination of basis and neighbour embeddings summed over the neighbours, in the efficient order
    of GemNet: for each output edge :math:`e`,

    .. math::
        \mathbf{out}_e = \mathbf{W}\,\mathrm{vec}\Big(\mathbf{R}_e\,\big(\textstyle\sum_{k}
        \mathbf{s}_{ek}\,\mathbf{x}_{ek}^\top\big)\Big),
        \qquad \mathbf{R}_e \in \mathbb{R}^{I \times S},\ \mathbf{s}_{ek} \in \mathbb{R}^{S},\
        \mathbf{x}_{ek} \in \mathbb{R}^{F_\mathrm{in}},

    computed as batched matmuls on zero-padded ``[n_b, S, k_b]`` and ``[n_b, k_b, F_in]`` blocks, one per bucket
    of output edges of similar neighbour counts (:func:`sciml.sparse.index.segment_buckets`: little padding, no
    rows for edges without neighbours), then a batched matmul with :math:`\mathbf{R}_e` and one dense layer
    :math:`\mathbb{R}^{I F_\mathrm{in}} \to \mathbb{R}^{F_\mathrm{out}}` (no bias: an edge without neighbours
    gets exactly 0). With ``agg2`` the result is summed once more over the edges of each atom (edge-to-atom
    interaction), through padding per atom. The basis tensors come from :meth:`BasisEmbedding.padded` (once per
    forward pass, shared by the blocks).
    """

    def __init__(self, emb_size_in: int, emb_size_interm: int, emb_size_out: int) -> None:
        super().__init__()
        self.emb_size_in = emb_size_in
        self.bilinear = Dense(emb_size_in * emb_size_interm, emb_size_out)

    def forward(self, rad_w: list[Tensor] | Tensor, sph_pads: list[Tensor], buckets: SegmentBuckets, num_out: int,
                x: Tensor, agg2: tuple[Tensor, Tensor, int, int] | None = None) -> Tensor:
        """
        Args:
            rad_w: ``[n_b, I, S]`` radial part of the rows of each bucket (with ``agg2``: ``[N, I, K_2 S]``).
            sph_pads: ``[n_b, S, k_b]`` padded angular basis per bucket (:meth:`BasisEmbedding.padded`).
            buckets (SegmentBuckets): padding layout; num_out (int): number of output edges :math:`E`.
            x: ``[T, F_in]`` neighbour embeddings per triplet/quadruplet.
            agg2: ``(atom_of_edge, rank_in_atom, num_atoms, kmax_atoms)`` for a second sum over edges per atom.

        Returns:
            ``[E, F_out]`` (with ``agg2``: ``[N, F_out]``).
        """
        x_pads = pad_buckets(x, buckets)                                             # [n_b, k_b, F]
        parts = [torch.bmm(sp, xp) for sp, xp in zip(sph_pads, x_pads)]             # [n_b, S, F]
        if agg2 is None:
            outs = [self.bilinear(torch.bmm(rw, sx).flatten(1)) for rw, sx in zip(rad_w, parts)]  # [n_b, F_out]
            if not outs:  # no triplets/quadruplets at all
                return x.new_zeros(num_out, self.bilinear.linear.out_features)
            out = outs[0] if len(outs) == 1 else torch.cat(outs)                     # [R, F_out]
            full = out.new_zeros(num_out, out.size(1))                               # rows by bucket -> edges
            full.index_put_((buckets.rows,), out)
            return full
        if len(parts) == 1:
            sph_x = parts[0]
        elif parts:
            sph_x = torch.cat(parts)                                                 # [R, S, F]
        else:  # no triplets at all
            sph_x = x.new_zeros(0, rad_w.size(2) // agg2[3] if agg2[3] else 0, x.size(1))
        atom, atom_rank, num_atoms, kmax2 = agg2
        rows = buckets.rows
        sx_pad = pad_segments(sph_x, atom.index_select(0, rows), atom_rank.index_select(0, rows), num_atoms,
                              kmax2).reshape(num_atoms, kmax2 * sph_x.size(1), sph_x.size(2))  # [N, K2*S, F]
        out = torch.bmm(rad_w, sx_pad)                                               # [N, I, F]
        return self.bilinear(out.reshape(out.size(0), out.size(1) * out.size(2)))


# ------------------------------------------------------------------------------------------------ interactions
class TripletInteraction(nn.Module):
    r"""Triplet message passing into edges (or atoms): the input embedding of edge :math:`b \to a` is modulated
    by its radial basis, down-projected, and combined with the circular basis of :math:`(d_{ca}, \varphi_{cab})`
    by :class:`EfficientBilinear` summing over :math:`b`; then up-projected. Symmetric mode updates both
    directions: :math:`(\mathrm{up}_{ca}(\mathbf{x}) + \mathrm{up}_{ac}(\mathbf{x})[\mathrm{rev}]) / \sqrt 2`.

    Used for edge-to-edge (input = main edges), atom-to-edge (input = atoms expanded onto the atom-edge graph) and
    edge-to-atom (output aggregated a second time onto atoms) interactions.
    """

    def __init__(self, emb_size_in: int, emb_size_out: int, emb_size_trip_in: int, emb_size_trip_out: int,
                 emb_size_rbf: int, emb_size_cbf: int, *, symmetric: bool = True, swap_output: bool = True,
                 activation: str | None = "silu") -> None:
        super().__init__()
        self.symmetric, self.swap_output = symmetric, swap_output
        self.dense_ba = Dense(emb_size_in, emb_size_in, activation=activation)
        self.mlp_rbf = Dense(emb_size_rbf, emb_size_in)
        self.scale_rbf = ScaleFactor()
        self.bilinear = EfficientBilinear(emb_size_trip_in, emb_size_cbf, emb_size_trip_out)
        self.scale_cbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_in, emb_size_trip_in, activation=activation)
        self.up_projection_ca = Dense(emb_size_trip_out, emb_size_out, activation=activation)
        self.up_projection_ac = Dense(emb_size_trip_out, emb_size_out, activation=activation) if symmetric else None

    def forward(self, m: Tensor, rad_emb: Tensor, cbf: tuple, trip, reverse: Tensor | None,
                expand: Tensor | None = None, agg2: tuple | None = None) -> Tensor:
        x = self.dense_ba(m)
        if expand is not None:
            x = x.index_select(0, expand)
        x = self.scale_rbf(x * self.mlp_rbf(rad_emb), ref=x)
        x = self.down_projection(x).index_select(0, trip.edge_in)
        out = self.bilinear(*cbf, x, agg2=agg2)
        out = self.scale_cbf_sum(out, ref=x)
        if self.symmetric:
            return (self.up_projection_ca(out) + self.up_projection_ac(out).index_select(0, reverse)) * _INV_SQRT2
        if self.swap_output:
            out = out.index_select(0, reverse)
        return self.up_projection_ca(out)


class QuadrupletInteraction(nn.Module):
    r"""Quadruplet message passing :math:`d \to b \to a \leftarrow c`: the embedding of :math:`d \to b` is
    modulated by its radial basis, down-projected, gathered per input triplet and modulated by the circular basis
    of :math:`(d_{ba}, \varphi_{abd})`, gathered per quadruplet and combined with the spherical basis of
    :math:`(d_{ca}, \varphi_{cab}, \theta_{cabd})` summing over :math:`b, d`; symmetric up-projection."""

    def __init__(self, emb_size_edge: int, emb_size_quad_in: int, emb_size_quad_out: int, emb_size_rbf: int,
                 emb_size_cbf: int, emb_size_sbf: int, *, activation: str | None = "silu") -> None:
        super().__init__()
        self.dense_db = Dense(emb_size_edge, emb_size_edge, activation=activation)
        self.mlp_rbf = Dense(emb_size_rbf, emb_size_edge)
        self.scale_rbf = ScaleFactor()
        self.mlp_cbf = Dense(emb_size_cbf, emb_size_quad_in)
        self.scale_cbf = ScaleFactor()
        self.bilinear = EfficientBilinear(emb_size_quad_in, emb_size_sbf, emb_size_quad_out)
        self.scale_sbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_edge, emb_size_quad_in, activation=activation)
        self.up_projection_ca = Dense(emb_size_quad_out, emb_size_edge, activation=activation)
        self.up_projection_ac = Dense(emb_size_quad_out, emb_size_edge, activation=activation)

    def forward(self, m: Tensor, rad_emb: Tensor, cbf_emb: Tensor, sbf: tuple, quad,
                reverse: Tensor) -> Tensor:
        x = self.dense_db(m)
        x = self.scale_rbf(x * self.mlp_rbf(rad_emb), ref=x)
        x = self.down_projection(x).index_select(0, quad.triplet_in.edge_in)      # per input triplet
        x = self.scale_cbf(x * self.mlp_cbf(cbf_emb), ref=x)
        x = x.index_select(0, quad.triplet_in_of_quad)                           # per quadruplet
        out = self.bilinear(*sbf, x)
        out = self.scale_sbf_sum(out, ref=x)
        return (self.up_projection_ca(out) + self.up_projection_ac(out).index_select(0, reverse)) * _INV_SQRT2


class PairInteraction(nn.Module):
    r"""Atom-to-atom interaction over the large a2a graph: :math:`\mathbf{h}_a \leftarrow \mathrm{up}(\mathbf{W}\,
    \mathrm{vec}(\sum_b \mathbf{r}_{ba} \mathbf{x}_b^\top))` with :math:`\mathbf{x}_b` the down-projected atom
    embedding and :math:`\mathbf{r}_{ba}` the projected radial basis (padded per atom, one batched matmul)."""

    def __init__(self, emb_size_atom: int, emb_size_pair_in: int, emb_size_pair_out: int, emb_size_rbf: int,
                 *, activation: str | None = "silu") -> None:
        super().__init__()
        self.bilinear = Dense(emb_size_rbf * emb_size_pair_in, emb_size_pair_out)
        self.scale_rbf_sum = ScaleFactor()
        self.down_projection = Dense(emb_size_atom, emb_size_pair_in, activation=activation)
        self.up_projection = Dense(emb_size_pair_out, emb_size_atom, activation=activation)

    def forward(self, h: Tensor, rad_pad: Tensor, edge_index: Tensor, rank: Tensor, kmax: int) -> Tensor:
        n = h.size(0)
        x_ba = self.down_projection(h).index_select(0, edge_index[0])
        x_pad = pad_segments(x_ba, edge_index[1], rank, n, kmax)                    # [N, K, F]
        prod = torch.bmm(rad_pad, x_pad)                                           # rad_pad: [N, I, K]
        out = self.bilinear(prod.reshape(n, prod.size(1) * prod.size(2)))
        return self.up_projection(self.scale_rbf_sum(out, ref=x_ba))


class AtomUpdateBlock(nn.Module):
    r""":math:`\mathbf{h}'_a = \mathrm{MLP}(\sum_c \mathbf{m}_{ca} \odot \mathrm{Dense}(\mathrm{rbf}(d_{ca})))`:
    edge-to-atom sum (sorted segments of the target-sorted main graph) then Dense to the atom size and residual
    layers."""

    def __init__(self, emb_size_atom: int, emb_size_edge: int, emb_size_rbf: int, num_hidden: int,
                 *, activation: str | None = "silu") -> None:
        super().__init__()
        self.dense_rbf = Dense(emb_size_rbf, emb_size_edge)
        self.scale_sum = ScaleFactor()
        self.layers = _mlp(emb_size_edge, emb_size_atom, num_hidden, activation)

    def aggregate(self, m: Tensor, rbf: Tensor, target_ptr: Tensor) -> Tensor:
        x = segment_reduce(m * self.dense_rbf(rbf), target_ptr, "sum", validate=False)
        return self.scale_sum(x, ref=m)

    def forward(self, h: Tensor, m: Tensor, rbf: Tensor, target_ptr: Tensor) -> Tensor:
        return self.layers(self.aggregate(m, rbf, target_ptr))


class OutputBlock(AtomUpdateBlock):
    r"""Output block: the atom branch of :class:`AtomUpdateBlock`, merged with the atom embedding
    (:math:`(\mathbf{x} + \mathbf{h})/\sqrt 2`) and further residual layers (energy features ``[N, F_atom]``);
    with direct forces also an edge branch (residual layers on :math:`\mathbf{m}` modulated by the radial basis,
    force features ``[E, F_edge]``)."""

    def __init__(self, emb_size_atom: int, emb_size_edge: int, emb_size_rbf: int, num_hidden: int,
                 num_hidden_afteratom: int, *, direct_forces: bool = True, activation: str | None = "silu") -> None:
        super().__init__(emb_size_atom, emb_size_edge, emb_size_rbf, num_hidden, activation=activation)
        self.after_atom = (_mlp(emb_size_atom, emb_size_atom, num_hidden_afteratom, activation)
                           if num_hidden_afteratom >= 1 else None)
        self.direct_forces = direct_forces
        if direct_forces:
            self.seq_forces = _mlp(emb_size_edge, emb_size_edge, num_hidden, activation)
            self.dense_rbf_F = Dense(emb_size_rbf, emb_size_edge)
            self.scale_rbf_F = ScaleFactor()

    def forward(self, h: Tensor, m: Tensor, rbf: Tensor, target_ptr: Tensor) -> tuple[Tensor, Tensor | None]:
        x_e = self.layers(self.aggregate(m, rbf, target_ptr))
        if self.after_atom is not None:
            x_e = self.after_atom((x_e + h) * _INV_SQRT2)
        x_f = None
        if self.direct_forces:
            x = self.seq_forces(m)
            x_f = self.scale_rbf_F(x * self.dense_rbf_F(rbf), ref=x)
        return x_e, x_f


class InteractionBlock(nn.Module):
    r"""One GemNet-OC interaction block.

    .. math::
        \mathbf{x} &= [\mathrm{Dense}(\mathbf{m}) + \mathrm{Trip}(\mathbf{m}) + \mathrm{Quad}(\mathbf{m})
        + \mathrm{A2E}(\mathbf{h})] / \sqrt{2 + n_q + n_{ae}},\quad
        \mathbf{h} \leftarrow [\mathbf{h} + \mathrm{E2A}(\mathbf{m}) + \mathrm{A2A}(\mathbf{h})]
        / \sqrt{1 + n_{ea} + n_{aa}} \\
        \mathbf{m} &\leftarrow \mathrm{Res}^{n_a}((\mathbf{m} + \mathrm{Res}^{n_b}(\mathbf{x})) / \sqrt 2),\quad
        \mathbf{h} \leftarrow (\mathrm{Res}^{n_e}(\mathbf{h}) + \mathrm{AtomUpdate}(\mathbf{h}, \mathbf{m}))
        / \sqrt 2 \\
        \mathbf{m} &\leftarrow (\mathbf{m} + \mathrm{Res}^{n_c}(\mathrm{Dense}([\mathbf{h}_c \Vert \mathbf{h}_a
        \Vert \mathbf{m}_{ca}]))) / \sqrt 2
    """

    def __init__(self, *, emb_size_atom: int, emb_size_edge: int, emb_size_trip_in: int, emb_size_trip_out: int,
                 emb_size_quad_in: int, emb_size_quad_out: int, emb_size_a2a_in: int, emb_size_a2a_out: int,
                 emb_size_rbf: int, emb_size_cbf: int, emb_size_sbf: int, num_before_skip: int,
                 num_after_skip: int, num_concat: int, num_atom: int, num_atom_emb_layers: int = 0,
                 quad_interaction: bool = True, atom_edge_interaction: bool = True,
                 edge_atom_interaction: bool = True, atom_interaction: bool = True,
                 activation: str | None = "silu") -> None:
        super().__init__()
        act = dict(activation=activation)
        self.dense_ca = Dense(emb_size_edge, emb_size_edge, **act)
        self.trip_interaction = TripletInteraction(emb_size_edge, emb_size_edge, emb_size_trip_in,
                                                   emb_size_trip_out, emb_size_rbf, emb_size_cbf, **act)
        self.quad_interaction = (QuadrupletInteraction(emb_size_edge, emb_size_quad_in, emb_size_quad_out,
                                                       emb_size_rbf, emb_size_cbf, emb_size_sbf, **act)
                                 if quad_interaction else None)
        self.atom_edge_interaction = (TripletInteraction(emb_size_atom, emb_size_edge, emb_size_trip_in,
                                                         emb_size_trip_out, emb_size_rbf, emb_size_cbf, **act)
                                      if atom_edge_interaction else None)
        self.edge_atom_interaction = (TripletInteraction(emb_size_edge, emb_size_atom, emb_size_trip_in,
                                                         emb_size_trip_out, emb_size_rbf, emb_size_cbf,
                                                         symmetric=False, swap_output=False, **act)
                                      if edge_atom_interaction else None)
        self.atom_interaction = (PairInteraction(emb_size_atom, emb_size_a2a_in, emb_size_a2a_out, emb_size_rbf,
                                                 **act) if atom_interaction else None)
        self.layers_before_skip = nn.Sequential(*[ResidualLayer(emb_size_edge, **act)
                                                  for _ in range(num_before_skip)])
        self.layers_after_skip = nn.Sequential(*[ResidualLayer(emb_size_edge, **act) for _ in range(num_after_skip)])
        self.atom_emb_layers = nn.Sequential(*[ResidualLayer(emb_size_atom, **act)
                                               for _ in range(num_atom_emb_layers)])
        self.atom_update = AtomUpdateBlock(emb_size_atom, emb_size_edge, emb_size_rbf, num_atom, **act)
        self.concat_layer = EdgeEmbedding(emb_size_atom, emb_size_edge, emb_size_edge, **act)
        self.residual_m = nn.Sequential(*[ResidualLayer(emb_size_edge, **act) for _ in range(num_concat)])
        self.inv_sqrt_num_eint = 1.0 / math.sqrt(2.0 + quad_interaction + atom_edge_interaction)
        self.inv_sqrt_num_aint = 1.0 / math.sqrt(1.0 + edge_atom_interaction + atom_interaction)

    def forward(self, h: Tensor, m: Tensor, ctx: dict) -> tuple[Tensor, Tensor]:
        g = ctx["graphs"]
        x = self.dense_ca(m) + self.trip_interaction(m, ctx["rbf_e2e"], ctx["cbf_e2e"], g.triplets, g.reverse)
        if self.quad_interaction is not None:
            x = x + self.quad_interaction(m, ctx["rbf_qint"], ctx["cbf_qint"], ctx["sbf_qint"], g.quadruplets,
                                          g.reverse)
        if self.atom_edge_interaction is not None:
            x = x + self.atom_edge_interaction(h, ctx["rbf_a2e"], ctx["cbf_a2e"], g.triplets_a2e, g.reverse,
                                               expand=g.a2ee2a.edge_index[0])
        x = x * self.inv_sqrt_num_eint
        h_new = h
        if self.edge_atom_interaction is not None:
            agg2 = (g.a2ee2a.edge_index[1], g.a2ee2a_rank, h.size(0), g.a2ee2a_kmax)
            h_new = h_new + self.edge_atom_interaction(m, ctx["rbf_e2a"], ctx["cbf_e2a"], g.triplets_e2a, None,
                                                       agg2=agg2)
        if self.atom_interaction is not None:
            h_new = h_new + self.atom_interaction(h, ctx["rbf_a2a"], g.a2a.edge_index, g.a2a_rank, g.a2a_kmax)
        h = h_new * self.inv_sqrt_num_aint

        m = self.layers_after_skip((m + self.layers_before_skip(x)) * _INV_SQRT2)
        h = self.atom_emb_layers(h)
        h = (h + self.atom_update(h, m, ctx["rbf_h"], ctx["target_ptr"])) * _INV_SQRT2
        m2 = self.residual_m(self.concat_layer(h, m, g.main.edge_index))
        return h, (m + m2) * _INV_SQRT2
