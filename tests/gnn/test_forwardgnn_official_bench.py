"""The parts of benchmarks/forwardgnn_official.py that run without the official code: our splits written in the
official DataSplit layout read back as the same masks, and the working copy gets the data and exactly one Planetoid
loader branch (the official run itself needs its own environment and is not part of the suite)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from sciml.gnn.node_data import fraction_node_split

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SHARED = Path(os.environ.get("SCIML_SHARED_DATA", str(BENCH.parents[1] / "shared" / "data")))


def _load():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("_sciml_bench_fgnn_official", BENCH / "forwardgnn_official.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


def test_splits_in_the_official_layout_read_back_as_our_masks(tmp_path):
    mod = _load()
    masks = {i: fraction_node_split(103, i) for i in (0, 3)}
    folder = mod.write_official_splits(tmp_path, "Planetoid-Cora", masks)
    assert folder == tmp_path / "datasplits" / "Planetoid-Cora" / "node-5splits"
    for i, split in masks.items():
        for kind, mask in zip(("train", "val", "test"), split):
            ids = torch.load(folder / f"{kind}-node-index-split{i}.pt")
            assert ids.dtype == torch.int32 and torch.equal(ids, ids.sort().values)
            back = torch.zeros(103, dtype=torch.bool)
            back[ids.long()] = True              # what the official load_node_classification_data does
            assert torch.equal(back, mask)
    assert mod.run_seed(3) == 100 * 101 + 9


def test_working_copy_gets_data_and_one_planetoid_branch(tmp_path):
    if not (SHARED / "planetoid" / "Cora").is_dir():
        pytest.skip(f"needs the shared data at {SHARED}")
    mod = _load()
    repo = tmp_path / "official"
    (repo / "src" / "datasets").mkdir(parents=True)
    (repo / "src" / "train_forward.py").write_text("")
    loader = ('def load_dataset(dataset):\n    if dataset.startswith("Amazon"):\n        pass\n'
              '    elif dataset == "GitHub":\n        pass\n')
    (repo / "src" / "datasets" / "dataloader.py").write_text(loader)
    work = mod.prepare_official(repo, tmp_path / "work", "cora", SHARED)
    text = (work / "src" / "datasets" / "dataloader.py").read_text()
    assert text.count('dataset.startswith("Planetoid")') == 1 and text.index("Planetoid") < text.index("GitHub")
    compile(text, "dataloader.py", "exec")
    assert sorted(p.name for p in (work / "data" / "Planetoid" / "Cora" / "raw").iterdir())[0].startswith("ind.cora")
    assert (repo / "src" / "datasets" / "dataloader.py").read_text() == loader   # the checkout is untouched
    (repo / "src" / "datasets" / "dataloader.py").write_text("def load_dataset(d):\n    return d\n")
    with pytest.raises(SystemExit, match="layout changed"):
        mod.prepare_official(repo, tmp_path / "work2", "cora", SHARED)
