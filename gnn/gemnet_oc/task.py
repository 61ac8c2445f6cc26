r"""Training and evaluation of energy + force models (OC20 S2EF style) with :class:`sciml.train.Trainer`.

* :class:`EnergyForceTask`: loss :math:`w_E\,\mathrm{MAE}(E)/\sigma + w_F\,\text{L2-MAE}(\mathbf{F})/\sigma` with
  the L2-MAE :math:`\frac{1}{|A|}\sum_{a \in A}\lVert\mathbf{F}_a - \hat{\mathbf{F}}_a\rVert_2` over the free
  (not fixed) atoms :math:`A` and :math:`\sigma` the model's energy normaliser (OC20: energy ×1, force ×100).
* :func:`s2ef_metrics`: OC20's S2EF metrics over a dataset: energy MAE, force MAE (per component, free atoms),
  force cosine (per free atom), EFwT (share of structures with :math:`|\Delta E| < 0.02` eV and every free-atom
  force component within 0.03 eV/Å).
* :func:`fit_energy_normalizer`: per-element linear reference energies (least squares) plus mean/std of the
  residual, for :meth:`GemNetOC.set_normalizer` -- also the per-element linear baseline model.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn

from sciml.train import Task, unwrap

__all__ = ["EnergyForceTask", "s2ef_metrics", "fit_energy_normalizer", "free_atom_mask"]


def free_atom_mask(batch: Any) -> Tensor:
    """``~batch.fixed`` if the batch has a ``fixed`` mask, else all atoms."""
    fixed = getattr(batch, "fixed", None)
    n = batch.pos.size(0)
    return torch.ones(n, dtype=torch.bool, device=batch.pos.device) if fixed is None else ~fixed.bool().view(-1)


def _errors(out: dict[str, Tensor], batch: Any) -> dict[str, Tensor]:
    free = free_atom_mask(batch)
    e_err = out["energy"].double() - batch.energy.double().view(-1)
    f_err = (out["forces"].double() - batch.forces.double())[free]
    cos = torch.cosine_similarity(out["forces"].double()[free], batch.forces.double()[free], dim=-1)
    return {"e_err": e_err, "f_err": f_err, "cos": cos, "free": free}


class EnergyForceTask(Task):
    r"""Energy + force regression on batches of atomistic structures (``energy [B]``, ``forces [N, 3]``,
    optional ``fixed [N]``).

    Args:
        energy_weight (float): :math:`w_E`. (default: ``1.0``)
        force_weight (float): :math:`w_F`. (default: ``100.0``)
    """

    def __init__(self, energy_weight: float = 1.0, force_weight: float = 100.0) -> None:
        self.energy_weight, self.force_weight = float(energy_weight), float(force_weight)

    def _step(self, model: nn.Module, batch: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        out = model(batch)
        std = unwrap(model).energy_std
        err = _errors(out, batch)
        loss_e = err["e_err"].abs().mean() / std
        loss_f = (err["f_err"].norm(dim=-1).mean() if err["f_err"].numel() else err["e_err"].sum() * 0) / std
        loss = self.energy_weight * loss_e + self.force_weight * loss_f
        return {"loss": loss.to(out["energy"].dtype), "energy_mae": err["e_err"].abs().mean().detach(),
                "force_l2mae": (loss_f * std).detach()}, err

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        return self._step(model, batch)[0]

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        metrics, err = self._step(model, batch)
        metrics["force_mae"] = err["f_err"].abs().mean() if err["f_err"].numel() else 0.0
        metrics["force_cos"] = err["cos"].mean() if err["cos"].numel() else 0.0
        return {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in metrics.items()}

    def batch_size(self, batch: Any) -> int:
        return int(batch.energy.numel())


@torch.no_grad()
def s2ef_metrics(model: nn.Module | None, batches: Iterable[Any], *, predict=None) -> dict[str, float]:
    """OC20 S2EF metrics accumulated exactly over ``batches`` (see the module doc).

    Args:
        model: an energy/force model called as ``model(batch)`` (eval mode is the caller's business), or
            :obj:`None` with ``predict``.
        batches: PyG batches with ``energy``, ``forces`` and optionally ``fixed``.
        predict (callable, optional): ``predict(batch) -> {"energy", "forces"}`` instead of the model.
    """
    e_abs, f_abs, cos, n_struct, n_comp, n_atoms, success = 0.0, 0.0, 0.0, 0, 0, 0, 0
    for batch in batches:
        out = predict(batch) if predict is not None else model(batch)
        err = _errors(out, batch)
        e_abs += float(err["e_err"].abs().sum())
        f_abs += float(err["f_err"].abs().sum())
        cos += float(err["cos"].sum())
        n_struct += err["e_err"].numel()
        n_comp += err["f_err"].numel()
        n_atoms += err["cos"].numel()
        ptr = batch.ptr if getattr(batch, "ptr", None) is not None else torch.tensor([0, batch.pos.size(0)])
        f_all = (out["forces"].double() - batch.forces.double()).abs().amax(-1)
        f_all = torch.where(err["free"], f_all, torch.zeros_like(f_all))
        for b in range(ptr.numel() - 1):
            lo, hi = int(ptr[b]), int(ptr[b + 1])
            fmax = float(f_all[lo:hi].max()) if hi > lo else 0.0
            success += int(abs(float(err["e_err"][b])) < 0.02 and fmax < 0.03)
    return {"energy_mae": e_abs / max(n_struct, 1), "force_mae": f_abs / max(n_comp, 1),
            "force_cos": cos / max(n_atoms, 1), "efwt": success / max(n_struct, 1), "num_structures": n_struct}


@torch.no_grad()
def fit_energy_normalizer(structures: Iterable[Any], num_elements: int = 83) -> tuple[Tensor, float, float]:
    r"""Per-element reference energies :math:`e_Z` minimising :math:`\sum_s (E_s - \sum_{a \in s} e_{Z_a})^2`
    (minimum-norm least squares over the elements present), and the mean and std of the residual energies.

    Returns:
        (atom_ref ``[num_elements + 1]`` float64, mean, std)
    """
    counts, energies = [], []
    for data in structures:
        counts.append(torch.bincount(data.z.long().view(-1), minlength=num_elements + 1).double())
        energies.append(data.energy.double().view(-1))
    a = torch.stack(counts)
    y = torch.cat(energies)
    present = a.sum(0) > 0
    ref = torch.zeros(num_elements + 1, dtype=torch.float64)
    sol = torch.linalg.lstsq(a[:, present], y[:, None], driver="gelsd").solution.view(-1)
    ref[present] = sol
    residual = y - a @ ref
    std = float(residual.std()) if residual.numel() > 1 else 1.0
    return ref, float(residual.mean()), std if std > 0 else 1.0
