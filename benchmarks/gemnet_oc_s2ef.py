"""S2EF on CPU: GemNet-OC against a per-element linear energy baseline and SchNet, on OC20 relaxation trajectories
(train on some systems, test on unseen ones) and on EMT slab + adsorbate relaxations generated here.

Data:
* ``oc20``: the 20 OC20 debug relaxations in ``../shared/data/molecular/oc20_relaxation_trajs`` (``--data-root`` or
  ``SCIML_SHARED_DATA``), read with our ASE converter (``tags="auto"``: the OC20 tag rule, since the files store
  none). Energies are total DFT energies and almost every system has its own metals, so the ``--oc20-test`` test
  systems are the first ones (sorted by file name) whose elements all occur in the remaining training systems
  (:func:`covered_split`; otherwise no model could have a reference energy for them). Every
  ``--frame-stride``-th frame is used.
* ``emt``: :func:`sciml.datasets.generators.catalyst.catalyst_trajectory` (ASE EMT; 2x2x3 slabs of
  Al/Cu/Ag/Au/Ni/Pd/Pt with O/H/N/C/OH/CO/NH/CH), ``--emt-train``/``--emt-test`` trajectories of ``--emt-steps``
  BFGS steps; test trajectories have seeds disjoint from the training ones.

Models (same runs, same splits):
* ``linear``: per-element reference energies by least squares on the training frames (:func:`fit_energy_normalizer`),
  zero forces.
* ``schnet``: PyG's ``SchNet`` with our periodic radius graph as its interaction graph, conservative forces.
* ``gemnet_oc``: :class:`sciml.gnn.gemnet_oc.GemNetOC`, small CPU configuration (``GEMNET_SMALL``), direct forces,
  scale factors fitted on the first training batches, normaliser = the linear baseline + residual mean/std.

Training: :class:`sciml.train.Trainer` with :class:`EnergyForceTask` (energy x1 + force L2-MAE x``--force-weight``
on free atoms), AdamW (amsgrad), ``--lr``, EMA ``--ema`` (0.99: OC20's 0.999 averages over ~1000 steps, longer than
a CPU run), gradient clipping 10, ``--steps`` steps of ``--batch-size`` structures. Metrics on the test frames with
the EMA weights (and, under ``raw_weights``, with the last weights): OC20's energy MAE, force MAE, force cosine and
EFwT (:func:`s2ef_metrics`).

usage: python benchmarks/gemnet_oc_s2ef.py [--quick] [--datasets oc20 emt] [--models linear schnet gemnet_oc]
       [--steps 300] [--threads 1] [--out benchmarks/results/gemnet_oc_s2ef.json] [--fresh]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log  # noqa: E402

from sciml.gnn.atomistic_graph import edge_vectors, radius_graph_pbc  # noqa: E402
from sciml.gnn.gemnet_oc import GemNetOC, fit_scale_factors  # noqa: E402
from sciml.gnn.gemnet_oc.task import EnergyForceTask, fit_energy_normalizer, s2ef_metrics  # noqa: E402

DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))

#: GemNet-OC for CPU runs: the base architecture at small width and cutoff.
GEMNET_SMALL = dict(num_blocks=3, emb_size_atom=64, emb_size_edge=64, emb_size_trip_in=32, emb_size_trip_out=32,
                    emb_size_quad_in=16, emb_size_quad_out=16, emb_size_aint_in=32, emb_size_aint_out=32,
                    emb_size_rbf=16, emb_size_cbf=16, emb_size_sbf=16, num_radial=32, num_spherical=7,
                    num_atom=2, num_output_afteratom=2, cutoff=6.0, max_neighbors=20, max_neighbors_qint=6,
                    max_neighbors_aeaint=12, max_neighbors_aint=40)
SCHNET = dict(hidden_channels=64, num_filters=64, num_interactions=3, num_gaussians=50, cutoff=6.0)


# ---------------------------------------------------------------------------------------------------- data
def covered_split(elements: list[set], num_test: int) -> list[int]:
    """Indices of up to ``num_test`` test systems (in order) such that every element of every test system occurs
    in some training system, so that reference energies exist for it."""
    test: list[int] = []
    for k in range(len(elements)):
        if len(test) == num_test:
            break
        trial = test + [k]
        seen = set().union(*[e for i, e in enumerate(elements) if i not in trial]) if len(trial) < len(elements) \
            else set()
        if all(elements[i] <= seen for i in trial):
            test = trial
    return test


def load_oc20(root: str, num_test: int, stride: int, limit: int | None) -> tuple[list, list, list[str]]:
    """Frames of the OC20 trajectories, split by system (:func:`covered_split`); also the test file names."""
    from sciml.datasets.sources.ase_atoms import atoms_to_data
    import ase.io

    folder = Path(root) / "molecular" / "oc20_relaxation_trajs"
    files = sorted(folder.glob("*.traj"))[:limit] if limit else sorted(folder.glob("*.traj"))
    if not files:
        raise SystemExit(f"{folder} has no .traj files (set SCIML_SHARED_DATA or --data-root)")
    frames = [ase.io.read(f, f"::{stride}") for f in files]
    test = covered_split([set(fr[0].numbers.tolist()) for fr in frames], num_test) or [len(files) - 1]
    splits: tuple[list, list] = ([], [])
    for k, (f, frs) in enumerate(zip(files, frames)):
        for atoms in frs:
            d = atoms_to_data(atoms, tags="auto", where=str(f))
            d.pos, d.cell, d.forces = d.pos.float(), d.cell.float(), d.forces.float()
            splits[1 if k in test else 0].append(d)
    return splits[0], splits[1], [files[k].name for k in test]


def make_emt(num_train: int, num_test: int, steps: int, seed: int) -> tuple[list, list]:
    from sciml.datasets.generators.catalyst import catalyst_trajectory

    def frames(split: int, n: int) -> list:
        out = []
        for k in range(n):
            rng = np.random.default_rng([seed, split, k])
            out += catalyst_trajectory(rng, k, num_steps=steps, size=2, layers=3, fixed_layers=1)
        return out

    return frames(0, num_train), frames(1, num_test)


# ---------------------------------------------------------------------------------------------------- models
def as_batch(data):
    """A PyG ``Batch`` (the Trainer passes a one-structure dataset through as a plain ``Data``)."""
    from torch_geometric.data import Batch

    return data if getattr(data, "ptr", None) is not None else Batch.from_data_list([data])


class LinearBaseline(nn.Module):
    """Per-element reference energies, zero forces."""

    def __init__(self, atom_ref: torch.Tensor, mean: float) -> None:
        super().__init__()
        self.register_buffer("atom_ref", atom_ref)
        self.mean = mean

    def forward(self, batch) -> dict:
        batch = as_batch(batch)
        e = torch.zeros(batch.ptr.numel() - 1, dtype=torch.float64).index_add_(
            0, batch.batch, self.atom_ref[batch.z]) + self.mean
        return {"energy": e, "forces": torch.zeros_like(batch.pos)}


class PeriodicSchNet(nn.Module):
    """PyG SchNet on our periodic radius graph (distances differentiable in ``pos``), energy normaliser as GemNet-OC,
    forces = -dE/dpos."""

    def __init__(self, atom_ref: torch.Tensor, mean: float, std: float, **kw) -> None:
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.cutoff = kw["cutoff"]
        self._batch = None
        self.schnet = SchNet(**kw, interaction_graph=self._graph)
        self.register_buffer("atom_ref", atom_ref)
        self.register_buffer("energy_std", torch.tensor(std, dtype=torch.float64))
        self.mean = mean

    def _graph(self, pos, batch):
        b = self._batch
        g = radius_graph_pbc(pos, self.cutoff, ptr=b.ptr, cell=b.cell, pbc=b.pbc, max_neighbors=32)
        _, dist = edge_vectors(pos, g, b.cell.to(pos.dtype), ptr=b.ptr)
        return g.edge_index, dist

    def forward(self, batch) -> dict:
        self._batch = batch = as_batch(batch)
        with torch.enable_grad():
            pos = batch.pos if batch.pos.requires_grad else batch.pos.detach().requires_grad_(True)
            e = self.schnet(batch.z, pos, batch.batch).view(-1) * self.energy_std.float()
            e = e + torch.zeros_like(e).index_add_(0, batch.batch, self.atom_ref[batch.z].float()) + self.mean
            (grad,) = torch.autograd.grad(e.sum(), pos, create_graph=torch.is_grad_enabled() and self.training)
        return {"energy": e, "forces": -grad}


# ---------------------------------------------------------------------------------------------------- runs
def train_and_test(name: str, train: list, test: list, args) -> dict:
    from torch_geometric.data import Batch
    from sciml.train import Trainer

    torch.manual_seed(args.seed)
    ref, mean, std = fit_energy_normalizer(train)
    batches = [Batch.from_data_list(test[i:i + args.batch_size]) for i in range(0, len(test), args.batch_size)]
    t0 = time.perf_counter()
    if name == "linear":
        model = LinearBaseline(ref, mean)
        return {**s2ef_metrics(model, batches), "train_s": 0.0, "params": 0}
    if name == "schnet":
        model = PeriodicSchNet(ref, mean, std, **SCHNET)
    else:
        model = GemNetOC(**GEMNET_SMALL)
        model.set_normalizer(mean, std, ref)
        fit = [Batch.from_data_list(train[i:i + args.batch_size])
               for i in range(0, min(len(train), args.fit_batches * args.batch_size), args.batch_size)]
        fit_scale_factors(model, fit, num_batches=len(fit))
    trainer = Trainer(model, EnergyForceTask(force_weight=args.force_weight), train_data=train,
                      batch_size=args.batch_size, max_steps=args.steps, optimizer="adamw", lr=args.lr,
                      optimizer_kwargs={"amsgrad": True}, ema=args.ema, grad_clip=10.0, seed=args.seed,
                      progress="log", log_every=max(1, args.steps // 10))
    summary = trainer.fit()
    train_s = time.perf_counter() - t0
    model.eval()
    raw = s2ef_metrics(model, batches)
    trainer.ema.swap()
    metrics = s2ef_metrics(model, batches)
    trainer.ema.swap()
    return {**metrics, "raw_weights": raw, "train_s": train_s, "steps": summary.get("step", args.steps),
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    p.add_argument("--datasets", nargs="+", default=["oc20", "emt"], choices=["oc20", "emt"])
    p.add_argument("--models", nargs="+", default=["linear", "schnet", "gemnet_oc"],
                   choices=["linear", "schnet", "gemnet_oc"])
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--oc20-test", type=int, default=5, help="test systems (unseen in training)")
    p.add_argument("--frame-stride", type=int, default=5)
    p.add_argument("--emt-train", type=int, default=40)
    p.add_argument("--emt-test", type=int, default=10)
    p.add_argument("--emt-steps", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--force-weight", type=float, default=100.0)
    p.add_argument("--fit-batches", type=int, default=16, help="batches for the scale-factor fit")
    p.add_argument("--ema", type=float, default=0.99, help="EMA decay (OC20 configs: 0.999 over ~1e5+ steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "gemnet_oc_s2ef.json"))
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    limit = None
    if args.quick:
        args.steps, args.batch_size, args.frame_stride, args.fit_batches = 2, 2, 50, 1
        args.emt_train, args.emt_test, args.emt_steps, args.oc20_test = 1, 1, 1, 1
        limit = 3
        global GEMNET_SMALL, SCHNET
        GEMNET_SMALL = {**GEMNET_SMALL, "num_blocks": 1, "emb_size_atom": 8, "emb_size_edge": 8, "num_radial": 8,
                        "cutoff": 4.0, "max_neighbors": 6, "max_neighbors_qint": 3, "max_neighbors_aeaint": 4,
                        "max_neighbors_aint": 8}
        SCHNET = {**SCHNET, "hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "cutoff": 4.0}
    config = {k: v for k, v in vars(args).items() if k not in ("out", "fresh", "threads", "data_root")}
    config.update(gemnet=GEMNET_SMALL, schnet=SCHNET)  # the data folder is where the files are, not a setting
    results = ResultFile(args.out, config, fresh=args.fresh)
    for dataset in args.datasets:
        if dataset == "oc20":
            train, test, names = load_oc20(args.data_root, args.oc20_test, args.frame_stride, limit)
            log(f"oc20 test systems: {names}")
        else:
            train, test = make_emt(args.emt_train, args.emt_test, args.emt_steps, args.seed)
        log(f"{dataset}: {len(train)} train / {len(test)} test frames")
        for name in args.models:
            key = f"{dataset}/{name}"
            if results.done(key):
                continue
            record = train_and_test(name, train, test, args)
            record.update(num_train=len(train), num_test=len(test))
            log(f"{key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in record.items()))
            results.add(key, record)
    results.write()


if __name__ == "__main__":
    main()
