"""The GemNet-OC stop of ``sciml demo``: EMT slab + adsorbate relaxations generated to HDF5, read back, and a tiny
GemNet-OC trained on them through the shared Trainer (needs the optional package ``ase``)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

__all__ = ["emt_demo"]

#: A GemNet-OC small enough for a demo on 2 CPU cores (all four interaction types on, OC20 graph rules).
DEMO_MODEL = dict(num_blocks=2, emb_size_atom=32, emb_size_edge=32, emb_size_trip_in=16, emb_size_trip_out=16,
                  emb_size_quad_in=8, emb_size_quad_out=8, emb_size_aint_in=16, emb_size_aint_out=16,
                  emb_size_rbf=8, emb_size_cbf=8, emb_size_sbf=8, num_radial=16, num_spherical=5, num_atom=1,
                  num_output_afteratom=1, num_atom_emb_layers=1, num_global_out_layers=1, num_before_skip=1,
                  num_after_skip=1, cutoff=5.0, max_neighbors=12, max_neighbors_qint=4, max_neighbors_aeaint=8,
                  max_neighbors_aint=24)


def emt_demo(root: str | Path, *, num_train: int = 6, num_test: int = 2, num_steps: int = 3, max_steps: int = 60,
             seed: int = 0, verbose: bool = True) -> dict[str, dict[str, float]]:
    """Generate ``num_train + num_test`` EMT relaxations (``sciml data generate catalyst``) into
    ``root/catalyst.h5``, read them back, fit the per-element energy baseline and the scale factors, train a tiny
    GemNet-OC for ``max_steps`` steps, and return OC20's S2EF metrics on the test trajectories for the linear
    baseline and GemNet-OC."""
    from torch_geometric.data import Batch

    from sciml.datasets.cli import generate
    from sciml.datasets.reader import AtomsDataset
    from sciml.gnn.gemnet_oc import GemNetOC, fit_scale_factors
    from sciml.gnn.gemnet_oc.task import EnergyForceTask, fit_energy_normalizer, s2ef_metrics
    from sciml.train import Trainer

    def say(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    Path(root).mkdir(parents=True, exist_ok=True)
    path = Path(root) / "catalyst.h5"
    t0 = time.perf_counter()
    options = [f"num_train={num_train}", "num_val=0", f"num_test={num_test}", f"num_steps={num_steps}", "layers=3",
               "fixed_layers=1", f"seed={seed}"]
    generate("catalyst", path, options, progress="none", overwrite=True)
    say(f"sciml data generate catalyst {path} {' '.join(options)}  ({time.perf_counter() - t0:.1f} s)")
    frames = {}
    for split in ("train", "test"):
        ds = AtomsDataset(path, split)
        frames[split] = [ds[i] for i in range(len(ds))]
        ds.close()
    train, test = frames["train"], frames["test"]
    say(f"{len(train)} train / {len(test)} test frames of {train[0].num_nodes}-{max(f.num_nodes for f in train)} "
        f"atoms; tags 0/1/2 (sub-surface, surface, adsorbate) as OC20")

    torch.manual_seed(seed)
    ref, mean, std = fit_energy_normalizer(train)
    test_batch = Batch.from_data_list(test)
    results = {}

    def linear(batch):
        e = torch.zeros(batch.ptr.numel() - 1, dtype=torch.float64).index_add_(0, batch.batch, ref[batch.z]) + mean
        return {"energy": e, "forces": torch.zeros_like(batch.forces)}

    results["linear"] = s2ef_metrics(None, [test_batch], predict=linear)
    model = GemNetOC(**DEMO_MODEL)
    model.set_normalizer(mean, std, ref)
    fit_scale_factors(model, [Batch.from_data_list(train)], num_batches=1)
    t0 = time.perf_counter()
    trainer = Trainer(model, EnergyForceTask(), train_data=train, batch_size=min(8, len(train)), max_steps=max_steps,
                      optimizer="adamw", lr=2e-3, optimizer_kwargs={"amsgrad": True}, ema=0.99, grad_clip=10.0,
                      seed=seed, progress="none", run_dir=Path(root) / "gemnet_oc", checkpoint_every=0)
    trainer.fit()
    model.eval()
    trainer.ema.swap()
    results["gemnet_oc"] = s2ef_metrics(model, [test_batch])
    trainer.ema.swap()
    say(f"GemNet-OC ({sum(p.numel() for p in model.parameters())} parameters, "
        f"{len(model.scale_factors())} fitted scale factors): {max_steps} steps in {time.perf_counter() - t0:.1f} s")
    say(f"{'model':<10} {'energy MAE':>11} {'force MAE':>10} {'force cos':>10} {'EFwT':>6}   (test trajectories)")
    for name, m in results.items():
        say(f"{name:<10} {m['energy_mae']:>11.3f} {m['force_mae']:>10.3f} {m['force_cos']:>10.3f} {m['efwt']:>6.2f}")
    return results
