"""GemNet-OC configs and data: the shipped base/large configs hold fairchem's hyper-parameters (values written out
from ../shared/reference/gnn.md §5.5), the ``atoms`` data builder against hand computations on trajectories this
test writes (ASE EMT), scale files, and a tiny override of the base config trained for 2 steps through
``sciml.experiment.run``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.config import load_config
from sciml.errors import ConfigError

pytest.importorskip("ase")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY = ["model.num_blocks=1", "model.emb_size_atom=8", "model.emb_size_edge=8", "model.emb_size_trip_in=4",
        "model.emb_size_trip_out=4", "model.emb_size_quad_in=4", "model.emb_size_quad_out=4",
        "model.emb_size_aint_in=4", "model.emb_size_aint_out=4", "model.emb_size_rbf=4", "model.emb_size_cbf=4",
        "model.emb_size_sbf=4", "model.num_radial=8", "model.num_spherical=3", "model.num_atom=1",
        "model.num_output_afteratom=1", "model.num_atom_emb_layers=1", "model.num_global_out_layers=1",
        "model.num_before_skip=1", "model.num_after_skip=1", "model.cutoff=4.0", "model.max_neighbors=6",
        "model.max_neighbors_qint=3", "model.max_neighbors_aeaint=4", "model.max_neighbors_aint=10",
        "trainer.batch_size=4", "trainer.log_every=1", "trainer.progress=none", "trainer.device=cpu",
        "trainer.checkpoint_every=0"]


def write_trajectories(folder: Path, frames: int = 12) -> list[list]:
    """Two EMT 'relaxations' (random displacements of a Cu(111) slab with O, and with O + H), one .traj and one
    .extxyz, lower layer fixed, tags all 0 (as the OC20 files)."""
    from ase.build import add_adsorbate, fcc111
    from ase.calculators.emt import EMT
    from ase.constraints import FixAtoms
    from ase.io import write

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, (ads, suffix) in enumerate([(["O"], "traj"), (["O", "H"], "extxyz")]):
        slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
        for j, a in enumerate(ads):
            add_adsorbate(slab, a, 1.8 + 0.9 * j, "fcc")
        slab.info.pop("adsorbate_info", None)   # a dict extxyz cannot store
        fixed = [a.index for a in slab if a.tag == 2]
        slab.set_tags(0)
        slab.set_constraint(FixAtoms(indices=fixed))
        rng = np.random.default_rng(k)
        traj = []
        for i in range(frames):
            a = slab.copy()
            a.positions += rng.normal(0.0, 0.05, a.positions.shape)
            a.calc = EMT()
            a.get_potential_energy()
            a.get_forces()
            traj.append(a)
        write(folder / f"sys{k}.{suffix}", traj)
        out.append(traj)
    return out


# ------------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", ["base", "large"])
def test_configs_hold_fairchems_hyperparameters(name):
    cfg = load_config(CONFIGS / f"gemnet_oc_{name}.yaml")
    m, t = cfg.model.kwargs(), cfg.trainer
    common = dict(num_spherical=7, num_radial=128, emb_size_atom=256, emb_size_trip_in=64, emb_size_aint_in=64,
                  emb_size_aint_out=64, emb_size_cbf=16, num_before_skip=2, num_after_skip=2, num_atom=3,
                  num_output_afteratom=3, num_atom_emb_layers=2, num_global_out_layers=2, cutoff=12.0,
                  max_neighbors=30, max_neighbors_qint=8, max_neighbors_aeaint=20, max_neighbors_aint=1000,
                  rbf="gaussian", envelope_exponent=5, cbf="spherical_harmonics", sbf="legendre_outer",
                  direct_forces=True, forces_coupled=False, quad_interaction=True, atom_edge_interaction=True,
                  edge_atom_interaction=True, atom_interaction=True, qint_tags=(1, 2), energy_mean=-0.7554,
                  energy_std=2.8873)
    size = (dict(num_blocks=4, emb_size_edge=512, emb_size_trip_out=64, emb_size_quad_in=32, emb_size_quad_out=32,
                 emb_size_rbf=16, emb_size_sbf=32, num_concat=1) if name == "base" else
            dict(num_blocks=6, emb_size_edge=1024, emb_size_trip_out=128, emb_size_quad_in=64, emb_size_quad_out=32,
                 emb_size_rbf=32, emb_size_sbf=64, num_concat=4))
    for key, value in {**common, **size}.items():
        assert m[key] == value, key
    assert (t.lr, t.batch_size) == ((5e-4, 16) if name == "base" else (2e-4, 4))
    assert (t.optimizer, t.optimizer_kwargs, t.weight_decay, t.ema, t.grad_clip) == ("adamw", {"amsgrad": True},
                                                                                     0.0, 0.999, 10.0)
    assert t.scheduler == "plateau" and t.scheduler_kwargs == {"factor": 0.8, "patience": 3}
    assert t.batch_sampler["name"] == "balanced"
    assert (cfg.task.energy_weight, cfg.task.force_weight) == (1.0, 100.0)


# ------------------------------------------------------------------------------------------------ data


def test_block_split_by_hand():
    from sciml.gnn.gemnet_oc.data import block_split

    # 14 frames, blocks of 3, every 2nd block (offset 0) validation: val blocks 0 (0-2), 2 (6-8), 4 (12-13);
    # gap 1 drops 3, 5, 9, 11
    train, val = block_split(14, block=3, val_every=2, gap=1)
    assert val == [0, 1, 2, 6, 7, 8, 12, 13]
    assert train == [4, 10]
    assert block_split(5, block=2, val_every=3, gap=0) == ([2, 3, 4], [0, 1])
    with pytest.raises(ConfigError, match="val_every"):
        block_split(5, block=2, val_every=1)


def test_covered_split_by_hand():
    from sciml.gnn.gemnet_oc.data import covered_split

    elements = [{1, 8}, {29, 8}, {29, 1}, {47, 8}]
    # from the last backwards: 3 has Ag (47) only there -> skip; 2 ({Cu, H}) is covered by 0 and 1 -> held;
    # 1 ({Cu, O}) with 2 held: Cu only in 1 and 2 -> skip; 0 ({H, O}): H only in 0 and 2 -> skip
    assert covered_split(elements, 2) == [2]
    assert covered_split([{1}, {1}, {1}], 2) == [1, 2]


def test_atoms_data_reads_files_splits_and_references(tmp_path):
    from sciml.gnn.gemnet_oc.data import atoms_data, block_split

    trajs = write_trajectories(tmp_path / "trajs")
    out = atoms_data(str(tmp_path / "trajs"), block=2, val_every=3, gap=1)
    tr, va = block_split(12, block=2, val_every=3, gap=1)
    assert len(out["train"]) == 2 * len(tr) and len(out["val"]) == 2 * len(va)
    assert out["train"].sources == ["sys0.traj"] * len(tr) + ["sys1.extxyz"] * len(tr)
    expect_total = [trajs[k][i].get_potential_energy() for k in range(2) for i in tr]
    got_total = [float(d.energy_total) for d in out["train"]]
    assert np.allclose(got_total, expect_total, atol=1e-9)
    # per-element references: least squares on the training compositions (numpy, minimum norm)
    counts = np.array([np.bincount(t[i].numbers, minlength=84) for t in trajs for i in tr], dtype=float)
    ref = np.zeros(84)
    present = counts.sum(0) > 0
    ref[present] = np.linalg.lstsq(counts[:, present], np.array(expect_total), rcond=None)[0]
    residual = np.array(expect_total) - counts @ ref
    assert np.allclose([float(d.energy) for d in out["train"]], residual, atol=1e-6)
    d = out["train"][0]
    assert d.pos.dtype == torch.float32 and d.forces.dtype == torch.float32 and d.energy.dtype == torch.float64
    assert out["train"].sizes.tolist() == [t[0].get_global_number_of_atoms() for t in trajs for _ in tr]
    # the .traj keeps FixAtoms: OC20 tags rebuilt (0 fixed, 2 the trailing O, 1 the free Cu layer)
    assert int(d.fixed.sum()) == 4 and not bool(d.fixed[-1])
    assert d.tags.tolist() == [0 if f else 1 for f in d.fixed.tolist()[:-1]] + [2]
    files = atoms_data(str(tmp_path / "trajs"), split="files", val_files=1, reference="none")
    assert files["val"].sources == ["sys0.traj"] * 12    # sys1 has H, seen nowhere else
    assert float(files["val"][3].energy) == pytest.approx(trajs[0][3].get_potential_energy())
    with pytest.raises(ConfigError, match="data.path"):
        atoms_data(str(tmp_path / "missing"))


def test_scale_file_round_trip_and_mismatch(tmp_path):
    from torch_geometric.data import Batch

    from sciml.gnn.gemnet_oc import GemNetOC, fit_scale_factors, save_scale_factors
    from sciml.gnn.gemnet_oc.data import atoms_data

    kw = {k.split("=")[0][6:]: json.loads(k.split("=")[1]) for k in TINY if k.startswith("model.")}
    write_trajectories(tmp_path / "t", frames=4)
    frames = atoms_data(str(tmp_path / "t"), block=1, val_every=2, gap=0)
    torch.manual_seed(0)
    model = GemNetOC(**kw)
    fitted = fit_scale_factors(model, [Batch.from_data_list(frames["train"][:4])], num_batches=1)
    save_scale_factors(model, tmp_path / "s.json")
    again = GemNetOC(**kw, scale_file=str(tmp_path / "s.json"))
    for name, m in again.scale_factors().items():
        assert bool(m.fitted) == (fitted[name] == fitted[name])           # nan (never reached) stays unfitted
        if bool(m.fitted):
            assert float(m.scale) == pytest.approx(fitted[name])
    with pytest.raises(ConfigError, match="does not match"):
        GemNetOC(**{**kw, "num_blocks": 2}, scale_file=str(tmp_path / "s.json"))
    with pytest.raises(ConfigError, match="does not exist"):
        GemNetOC(**kw, scale_file=str(tmp_path / "none.json"))


def test_base_config_trains_two_steps_on_a_written_file(tmp_path):
    from sciml.experiment import run
    from sciml.gnn.gemnet_oc.data import fit_scale_file

    write_trajectories(tmp_path / "trajs", frames=6)
    overrides = TINY + [f"data.path={tmp_path / 'trajs'}", "data.block=1", "data.val_every=3", "data.gap=0",
                        "trainer.max_steps=2", "trainer.val_every=1"]
    scales = fit_scale_file(CONFIGS / "gemnet_oc_base.yaml", tmp_path / "scales.json", overrides=overrides,
                            num_batches=1)
    assert sum(v is not None for v in scales.values()) >= 5
    cfg = load_config(CONFIGS / "gemnet_oc_base.yaml", overrides + [f"model.scale_file={tmp_path / 'scales.json'}"])
    summary = run(cfg, run_dir=tmp_path / "run")
    assert summary["steps"] == 2
    assert np.isfinite(summary["last_val"]["val_loss"]) and "val_force_mae" in summary["last_val"]
    assert (tmp_path / "run" / "config.yaml").is_file() and list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    with pytest.raises(ConfigError, match="data.split"):
        load_config(CONFIGS / "gemnet_oc_base.yaml", overrides + ["data.split=random"])


def test_config_run_fits_scale_factors_before_training_and_resume_does_not_refit(tmp_path, monkeypatch):
    """``model.fit_scales``: a config run fits the factors on random training batches before the trainer (and its
    EMA copy) exist; on those batches every fitted factor then gives its output the variance of its reference
    (fairchem's criterion, recomputed here with forward hooks); a resumed run does not fit again."""
    from sciml.experiment import build, run
    from sciml.gnn.gemnet_oc import GemNetOC, layers
    from sciml.gnn.gemnet_oc.layers import ScaleFactor, scale_fit_batches
    from sciml.train import find_latest_checkpoint

    calls = []
    real = layers.fit_scale_factors
    monkeypatch.setattr(layers, "fit_scale_factors", lambda *a, **k: calls.append(1) or real(*a, **k))
    write_trajectories(tmp_path / "trajs", frames=6)
    overrides = TINY + [f"data.path={tmp_path / 'trajs'}", "data.block=1", "data.val_every=3", "data.gap=0",
                        "model.fit_scales={batches: 2, batch_size: 3, seed: 1}", "trainer.ema=0.5",
                        "trainer.checkpoint_every=1", "trainer.val_every=1"]
    cfg = load_config(CONFIGS / "gemnet_oc_base.yaml", overrides + ["trainer.max_steps=1"])
    exp = build(cfg, run_dir=tmp_path / "run")     # the config path of `sciml train`: fitted here, before training
    assert len(calls) == 1
    model = exp.model
    factors = {n: m for n, m in model.named_modules() if isinstance(m, ScaleFactor)}
    fitted = [n for n, m in factors.items() if bool(m.fitted)]
    assert len(fitted) >= 8 and all(float(factors[n].scale) != 1.0 for n in fitted)

    # unit variance ratio on the fitted batches, per factor: sum_b n_b var(out_b) / sum_b n_b var(ref_b) = 1
    stats = {n: [0.0, 0.0] for n in fitted}

    def hook(module, args, kwargs, output):
        ref = kwargs.get("ref")
        if module.name in stats and output.size(0) > 1 and ref.size(0) > 1:
            stats[module.name][0] += float(output.double().var(0).mean()) * output.size(0)
            stats[module.name][1] += float(ref.double().var(0).mean()) * output.size(0)

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in factors.values()]
    model.eval()
    with torch.no_grad():
        for batch in scale_fit_batches(exp.train_data, 2, 3, seed=1):
            model(batch, compute_forces=False)
    model.train()
    for h in handles:
        h.remove()
    for name, (out, ref) in stats.items():
        assert out / ref == pytest.approx(1.0, rel=1e-6), name
    values = {n: float(m.scale) for n, m in factors.items()}

    exp.fit()
    _, payload = find_latest_checkpoint(tmp_path / "run" / "checkpoints")
    state = payload["model"]
    assert all(float(state[n + ".scale"]) == v for n, v in values.items())        # stored with the model
    # the EMA copy was taken after the fit (buffers are averaged too: an unfitted copy would drift)
    assert all(float(payload["ema"]["shadow"][n + ".scale"]) == v for n, v in values.items())

    # resume: the checkpoint holds the factors, no second fit
    cfg2 = load_config(CONFIGS / "gemnet_oc_base.yaml", overrides + ["trainer.max_steps=2"])
    summary = run(cfg2, run_dir=tmp_path / "run")
    assert summary["steps"] == 2 and summary["resumed_from"] and len(calls) == 1
    _, payload2 = find_latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert all(float(payload2["model"][n + ".scale"]) == v for n, v in values.items())
    with pytest.raises(ConfigError, match="fit_scales"):
        GemNetOC(**{**cfg.model.kwargs(), "fit_scales": {"batch": 2}})


def test_atoms_data_validation_block_offset(tmp_path):
    """``val_offset``: by default the first block of every trajectory is validation; an integer moves it, and
    ``"random"`` draws one offset per trajectory from ``seed`` (numpy's generator, replayed here)."""
    from sciml.gnn.gemnet_oc.data import atoms_data

    trajs = write_trajectories(tmp_path / "t", frames=12)
    energy = {round(a.get_potential_energy(), 9): (k, i) for k, t in enumerate(trajs) for i, a in enumerate(t)}

    def frames(split):   # (trajectory, frame) of every structure, from its total energy
        return sorted(energy[round(float(d.energy_total), 9)] for d in split)

    kw = dict(block=2, val_every=3, gap=0)
    default = atoms_data(str(tmp_path / "t"), **kw)
    assert frames(default["val"]) == [(k, i) for k in (0, 1) for i in (0, 1, 6, 7)]
    moved = atoms_data(str(tmp_path / "t"), val_offset=2, **kw)
    assert frames(moved["val"]) == [(k, i) for k in (0, 1) for i in (4, 5, 10, 11)]
    assert frames(moved["train"]) == [(k, i) for k in (0, 1) for i in (0, 1, 2, 3, 6, 7, 8, 9)]
    rng = np.random.default_rng(7)
    offsets = [int(rng.integers(3)) for _ in range(2)]
    drawn = atoms_data(str(tmp_path / "t"), val_offset="random", seed=7, **kw)
    assert frames(drawn["val"]) == [(k, i) for k in (0, 1) for i in range(12) if (i // 2) % 3 == offsets[k]]
    with pytest.raises(ConfigError, match="val_offset"):
        atoms_data(str(tmp_path / "t"), val_offset=-1, **kw)
