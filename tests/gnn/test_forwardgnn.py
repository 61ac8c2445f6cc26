"""ForwardGNN node classification: the details that change numbers, each against an independent reference
(hand-written loops following the official code's schedule, dense recomputation), on small synthetic graphs."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from torch_geometric.data import Data

from sciml.errors import ConfigError
from sciml.gnn.forwardgnn import (BackpropGNN, FFLabelAppendingTask, FFVirtualNodeTask, ForwardGNN,
                                  SFTop2InputTask, SFTop2LossTask, SingleForwardTask, train_node_classifier)
from sciml.gnn.forwardgnn_common import ff_goodness, ff_logits, ff_loss, l2_normalize_rows
from sciml.train import EarlyStopping, Trainer, detach_tree


def make_graph(n=40, c=3, f=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    x = torch.rand(n, f, generator=g) + F.one_hot(y, f).float()
    x = x / x.sum(1, keepdim=True)
    same = y[:, None] == y[None, :]
    a = torch.rand(n, n, generator=g) < torch.where(same, 0.25, 0.03)
    a = (a | a.T) & ~torch.eye(n, dtype=torch.bool)
    perm = torch.randperm(n, generator=g)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][perm[: n // 2]] = True
    masks[1][perm[n // 2: 3 * n // 4]] = True
    masks[2][perm[3 * n // 4:]] = True
    return Data(x=x, y=y, edge_index=a.nonzero().T.contiguous(), train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2])


def trainer(model, task, data, mode="greedy", **kw):
    args = dict(train_data=[data], val_data=[data], optimizer="adam", lr=1e-2, weight_decay=5e-4,
                strategy="layer_local", layer_local_mode=mode, progress="none", device="cpu", val_every=2)
    args.update(kw)
    return Trainer(model, task, **args)


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


# ---------------------------------------------------------------------------------------------- layer isolation
@pytest.mark.parametrize("variant,task_cls", [("sf", SingleForwardTask), ("ff_la", FFLabelAppendingTask),
                                              ("ff_vn", FFVirtualNodeTask)])
def test_training_layer_l_leaves_other_layers_untouched(variant, task_cls):
    """Between two consecutive steps of phase k only block k's parameters change, and the other blocks'
    gradients stay exactly as they were (None above k)."""
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant=variant, hidden_channels=16, num_layers=3)
    snaps = []

    class Spy(task_cls):
        def local_step(self, model, k, block, inputs, batch):
            snaps.append((k, [params(b) for b in model.blocks],
                          [[None if p.grad is None else p.grad.clone() for p in b.parameters()]
                           for b in model.blocks]))
            return super().local_step(model, k, block, inputs, batch)

    trainer(model, Spy(), data, max_steps=3).fit()
    assert [k for k, _, _ in snaps] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for (k, p0, g0), (k1, p1, g1) in zip(snaps, snaps[1:]):
        if k1 != k:
            continue
        for j in range(3):
            same = all(torch.equal(p0[j][n], p1[j][n]) for n in p0[j])
            assert same == (j != k), (k, j)
            if j != k:
                assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g0[j], g1[j]))
                if j > k:
                    assert all(g is None for g in g1[j])


def test_local_loss_gradients_stay_in_their_layer():
    torch.manual_seed(0)
    data = make_graph()
    for variant, task in (("sf", SingleForwardTask()), ("ff_la", FFLabelAppendingTask()),
                          ("ff_vn", FFVirtualNodeTask()), ("sf_top2loss", SFTop2LossTask()),
                          ("sf_top2input", SFTop2InputTask())):
        model = ForwardGNN(8, 3, variant=variant, hidden_channels=16, num_layers=3)
        inputs = task.block_input(model, data)
        for k, block in enumerate(model.blocks):
            model.zero_grad(set_to_none=True)
            metrics, outputs = task.local_step(model, k, block, inputs, data)
            metrics["loss"].backward()
            for j, other in enumerate(model.blocks):
                grads = [p.grad for p in other.parameters()]
                if j == k:
                    assert all(g is not None for g in grads), (variant, k)
                else:
                    assert all(g is None for g in grads), (variant, k, j)
            inputs = detach_tree(outputs)


def test_inputs_reaching_a_layer_are_detached():
    torch.manual_seed(0)
    data = make_graph()
    seen = []

    class Spy(SingleForwardTask):
        def local_step(self, model, k, block, inputs, batch):
            seen.append((k, inputs.requires_grad, inputs.grad_fn))
            return super().local_step(model, k, block, inputs, batch)

    model = ForwardGNN(8, 3, variant="sf", hidden_channels=16, num_layers=2)
    trainer(model, Spy(), data, max_steps=2).fit()
    assert {k for k, _, _ in seen} == {0, 1}
    assert all(not rg and fn is None for _, rg, fn in seen)


# ---------------------------------------------------------------------------------------------- FF details
def test_goodness_sum_in_training_mean_at_inference_theta_2():
    h = torch.tensor([[1.0, 2.0, 0.0, 1.0]])
    assert FFLabelAppendingTask().theta == 2.0 and FFVirtualNodeTask().theta == 2.0
    torch.testing.assert_close(ff_logits(h, 2.0), torch.tensor([6.0 - 2.0]))
    torch.testing.assert_close(ff_goodness(h, 2.0), torch.tensor([1.5 - 2.0]))
    pos, neg = torch.tensor([[1.0, 1.0]]), [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])]
    ref = -torch.log(torch.sigmoid(torch.tensor(0.0))) + 0.5 * (-torch.log(1 - torch.sigmoid(torch.tensor(2.0)))
                                                            - torch.log(1 - torch.sigmoid(torch.tensor(-2.0))))
    torch.testing.assert_close(ff_loss(pos, neg, 2.0), ref)


def test_ff_la_uses_c_minus_1_negatives_and_label_columns():
    data = make_graph(c=4)
    model = ForwardGNN(8, 4, variant="ff_la", hidden_channels=16, num_layers=1)
    task = FFLabelAppendingTask()  # num_negs=100 -> capped at C-1
    prep = task.prepare(model, data)
    pos, *negs = prep["inputs"]
    assert len(negs) == 3
    neg_classes = prep["neg_classes"]
    assert (neg_classes != data.y[:, None]).all()
    assert (neg_classes.sort(1).values.unique(dim=0).shape[0] >= 1)
    assert all(len(set(row.tolist())) == 3 for row in neg_classes)  # distinct wrong classes per node
    train = data.train_mask
    torch.testing.assert_close(pos[train, 8:], F.one_hot(data.y[train], 4).float())
    torch.testing.assert_close(pos[~train, 8:], torch.full(((~train).sum(), 4), 0.25))
    for k, neg in enumerate(negs):
        torch.testing.assert_close(neg[train, 8:], F.one_hot(neg_classes[train, k], 4).float())
        torch.testing.assert_close(neg[~train, 8:], torch.full(((~train).sum(), 4), 0.25))
        torch.testing.assert_close(neg[:, :8], data.x)


def test_ff_la_scores_accumulate_mean_goodness_over_layers():
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="ff_la", hidden_channels=16, num_layers=3).eval()
    task = FFLabelAppendingTask()
    scores = task.class_scores(model, data, depth=2, which="test")
    labelled = data.train_mask | data.val_mask
    for c in range(3):
        lab = torch.full((data.num_nodes, 3), 1 / 3)
        lab[labelled] = F.one_hot(data.y[labelled], 3).float()
        lab[data.test_mask] = F.one_hot(torch.tensor(c), 3).float()
        h = torch.cat([data.x, lab], 1)
        total = 0
        for block in model.blocks[:2]:
            h = F.relu(block.conv(l2_normalize_rows(h), data.edge_index))
            total = total + (h.pow(2).mean(1) - 2.0)
        torch.testing.assert_close(scores[:, c], total)


def test_virtual_nodes_frozen_random_and_linked_only_to_training_nodes():
    torch.manual_seed(0)
    data = make_graph()
    n, c = data.num_nodes, 3
    for variant, task in (("sf", SingleForwardTask()), ("ff_vn", FFVirtualNodeTask())):
        model = ForwardGNN(8, c, variant=variant, hidden_channels=16, num_layers=2)
        assert "virtual_x" in dict(model.named_buffers()) and "virtual_x" not in dict(model.named_parameters())
        vx = model.virtual_x.clone()
        prep = task.prepare(model, data)
        ei = prep["edge_index"] if variant == "sf" else prep["graphs"][0][0]
        extra = ei[:, data.edge_index.size(1):]
        num_train = int(data.train_mask.sum())
        assert extra.size(1) == 2 * num_train
        real_end = torch.where(extra[0] < n, extra[0], extra[1])
        virt_end = torch.where(extra[0] < n, extra[1], extra[0])
        assert set(real_end.tolist()) == set(data.train_mask.nonzero().view(-1).tolist())
        assert ((virt_end >= n) & (virt_end < n + c)).all()
        fwd = extra[:, extra[0] < n]
        assert (fwd[1] - n == data.y[fwd[0]]).all()  # linked to its own class (positive graph)
        assert {tuple(e) for e in extra.T.tolist()} == {(b, a) for a, b in extra.T.tolist()}  # both directions
        trainer(model, task, data, max_steps=3, early_stopping=EarlyStopping(monitor="val_acc", mode="max",
                                                                             patience=5)).fit()
        torch.testing.assert_close(model.virtual_x, vx, rtol=0, atol=0)
        torch.testing.assert_close(prep["x"][n:], vx)


def test_ff_vn_negative_graphs_link_wrong_classes_and_eval_graphs_link_eval_nodes():
    data = make_graph()
    n = data.num_nodes
    model = ForwardGNN(8, 3, variant="ff_vn", hidden_channels=16, num_layers=1)
    task = FFVirtualNodeTask()
    prep = task.prepare(model, data)
    assert len(prep["graphs"]) == 3  # positive + C-1 negatives
    for k, (ei, _) in enumerate(prep["graphs"][1:]):
        extra = ei[:, data.edge_index.size(1):]
        fwd = extra[:, extra[0] < n]
        assert (fwd[1] - n == prep["neg_classes"][fwd[0], k]).all()
        assert (fwd[1] - n != data.y[fwd[0]]).all()
    task.eval_chains(model, prep, "val")
    for c, (ei, _) in enumerate(prep["eval_val"]):
        extra = ei[:, data.edge_index.size(1):]
        fwd = extra[:, extra[0] < n]
        linked = torch.zeros(n, dtype=torch.bool)
        linked[fwd[0]] = True
        assert torch.equal(linked, data.train_mask | data.val_mask)
        assert (fwd[1][data.val_mask[fwd[0]]] - n == c).all()


# ---------------------------------------------------------------------------------------------- SF details
def test_sf_scores_accumulate_per_layer_softmax_and_prefix_evaluation():
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf", hidden_channels=16, num_layers=3)
    task = SingleForwardTask()
    trainer(model, task, data, max_steps=4).fit()
    n = data.num_nodes
    ei = task.prepare(model, data)["edge_index"]
    h, probs = torch.cat([data.x, model.virtual_x]), []
    with torch.no_grad():
        for block in model.blocks:
            h = F.relu(block.conv(l2_normalize_rows(h), ei))
            probs.append((h[:n] @ h[n:].T).softmax(1))
    for depth in (1, 2, 3):
        pred = task.predict(model, data, depth=depth)
        assert torch.equal(pred, sum(probs[:depth]).argmax(1))
        # a model truncated to `depth` layers gives the same prediction (depth results are prefixes of one run)
        short = copy.deepcopy(model)
        short.blocks = short.blocks[:depth]
        assert torch.equal(SingleForwardTask().predict(short, data), pred)


def test_sf_greedy_trainer_matches_hand_written_reference_loop():
    """Layer 0 then layer 1, each with its own Adam, input detached, fixed number of epochs (no early stop)."""
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf", hidden_channels=16, num_layers=2)
    ref = copy.deepcopy(model)
    trainer(model, SingleForwardTask(), data, max_epochs=5).fit()
    n, train = data.num_nodes, data.train_mask
    ei = SingleForwardTask().build(ref, data)["edge_index"]
    h = torch.cat([data.x, ref.virtual_x])
    for block in ref.blocks:
        opt = torch.optim.Adam(block.parameters(), lr=1e-2, weight_decay=5e-4)
        for _ in range(5):
            opt.zero_grad()
            out = block(h.detach(), ei)
            F.cross_entropy(out[:n][train] @ out[n:].T, data.y[train]).backward()
            opt.step()
        with torch.no_grad():
            h = block(h, ei)
    for (k, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, msg=k)


def test_greedy_early_stopping_restores_best_layer_and_memo_is_exact():
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf", hidden_channels=16, num_layers=2)
    task = SingleForwardTask()
    summary = trainer(model, task, data, max_epochs=40, early_stopping=EarlyStopping(
        monitor="val_acc", mode="max", patience=3)).fit()
    assert [p["phase"] for p in summary["phases"]] == [0, 1]
    for phase in summary["phases"]:
        depth = phase["phase"] + 1
        assert task.evaluate(model, data, depth=depth, which="val")["acc"] == pytest.approx(phase["best"])
    fresh = SingleForwardTask()  # no memo
    for depth in (1, 2):
        assert torch.equal(fresh.predict(model, data, depth=depth), task.predict(model, data, depth=depth))


# ---------------------------------------------------------------------------------------------- top-down variants
def _top2input_reference(model, data, steps, lr, alternating=True):
    """The official schedule: even layers from the previous step's states, each stepping its own optimizer at once,
    then odd layers from the fresh even states."""
    task = SFTop2InputTask(alternating=alternating)
    prep = task.build(model, data)
    n, train = data.num_nodes, data.train_mask
    blocks = list(model.blocks)
    num_layers = len(blocks)
    opts = [torch.optim.Adam(b.parameters(), lr=lr, weight_decay=5e-4) for b in blocks]
    states = task.bottom_up(model, prep)
    groups = ([[j for j in range(num_layers) if j % 2 == 0], [j for j in range(num_layers) if j % 2 == 1]]
              if alternating else [list(range(num_layers))])
    for _ in range(steps):
        new = [states[0]] + [None] * num_layers + [None]
        for group in groups:
            for j in group:
                prev = new[j] if (alternating and new[j] is not None) else states[j]
                nxt = new[j + 2] if (alternating and new[j + 2] is not None) else states[j + 2]
                inp = torch.cat([l2_normalize_rows(prev), l2_normalize_rows(nxt)], 1).detach()
                opts[j].zero_grad()
                out = blocks[j](inp, prep["adj"])
                F.cross_entropy(out[:n][train] @ out[n:].T, data.y[train]).backward()
                opts[j].step()
                new[j + 1] = out.detach()
        new[-1] = states[-1]
        states = new


@pytest.mark.parametrize("alternating", [True, False])
@pytest.mark.parametrize("num_layers", [1, 3, 4])
def test_top2input_trainer_matches_official_schedule(alternating, num_layers):
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf_top2input", hidden_channels=16, num_layers=num_layers)
    ref = copy.deepcopy(model)
    trainer(model, SFTop2InputTask(alternating=alternating), data, mode="simultaneous", max_steps=4).fit()
    _top2input_reference(ref, data, 4, 1e-2, alternating)
    for (k, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, msg=k)


def test_top2loss_trainer_matches_official_schedule_with_clipping():
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf_top2loss", hidden_channels=16, num_layers=3)
    ref = copy.deepcopy(model)
    trainer(model, SFTop2LossTask(), data, mode="simultaneous", max_steps=4, grad_clip=1.0).fit()
    task = SFTop2LossTask()
    prep = task.build(ref, data)
    n, train, blocks = data.num_nodes, data.train_mask, list(ref.blocks)
    opts = [torch.optim.Adam(b.parameters(), lr=1e-2, weight_decay=5e-4) for b in blocks]
    states = task.bottom_up(ref, prep)
    for _ in range(4):
        new = [states[0]] + [None] * len(blocks)
        for j, block in enumerate(blocks):
            opts[j].zero_grad()
            o = block(states[j].detach(), prep["adj"])
            e = torch.stack([o] + states[j + 2:]).mean(0)
            F.cross_entropy(e[:n][train] @ e[n:].T, data.y[train]).backward()
            torch.nn.utils.clip_grad_norm_(block.parameters(), 1.0)
            opts[j].step()
            new[j + 1] = l2_normalize_rows(o).detach()
        states = new
    for (k, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, msg=k)


def test_top2input_inference_accumulates_steps_2_to_9():
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf_top2input", hidden_channels=16, num_layers=2).eval()
    task = SFTop2InputTask()
    assert task.accumulate_steps == list(range(2, 10))
    prep = task.prepare(model, data)
    n = data.num_nodes
    states = task.bottom_up(model, prep)
    total = 0
    with torch.no_grad():
        for t in range(10):
            new = [states[0], None, None, states[-1]]
            for j in (0, 1):
                nxt = states[j + 2] if j == 0 else states[3]
                prev = states[0] if j == 0 else new[1]
                h = model.blocks[j](torch.cat([l2_normalize_rows(prev), l2_normalize_rows(nxt)], 1), prep["adj"])
                new[j + 1] = h
                if t >= 2:
                    total = total + (h[:n] @ h[n:].T).softmax(1)
            states = new
    torch.testing.assert_close(task.class_probabilities(model, data), total)
    with pytest.raises(ConfigError, match="accumulate_steps"):
        SFTop2InputTask(accumulate_steps=[10])


def test_top_down_states_are_checkpointed_and_resume(tmp_path):
    torch.manual_seed(0)
    data = make_graph()
    model = ForwardGNN(8, 3, variant="sf_top2input", hidden_channels=16, num_layers=2)
    ref = copy.deepcopy(model)
    trainer(ref, SFTop2InputTask(), data, mode="simultaneous", max_steps=6).fit()
    trainer(model, SFTop2InputTask(), data, mode="simultaneous", max_steps=3, run_dir=tmp_path,
            checkpoint_every=3).fit()
    model2 = copy.deepcopy(model)
    trainer(model2, SFTop2InputTask(), data, mode="simultaneous", max_steps=6, run_dir=tmp_path).fit()
    for (k, a), (_, b) in zip(model2.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a, b, msg=k)


# ---------------------------------------------------------------------------------------------- baselines, API
def test_backprop_baseline_and_runner_report_every_depth():
    torch.manual_seed(0)
    data = make_graph()
    bp = BackpropGNN(8, 3, conv="gat", hidden_channels=16, num_layers=2)
    assert bp(data.x, data.edge_index).shape == (data.num_nodes, 3)
    assert bp.convs[0].concat and not bp.convs[1].concat
    r = train_node_classifier(data, variant="sf", num_layers=3, hidden_channels=16, max_epochs=6, patience=2)
    assert sorted(r["depths"]) == [1, 2, 3] and all(0 <= m["test_acc"] <= 1 for m in r["depths"].values())
    r = train_node_classifier(data, variant="bp", num_layers=2, hidden_channels=16, max_epochs=6, patience=2)
    assert sorted(r["depths"]) == [2]


def test_errors_are_typed():
    data = make_graph()
    with pytest.raises(ConfigError, match="unknown variant"):
        ForwardGNN(8, 3, variant="ff")
    with pytest.raises(ConfigError, match="variant"):
        SingleForwardTask().prepare(ForwardGNN(8, 3, variant="ff_la", num_layers=1), data)
    with pytest.raises(ConfigError, match="depth"):
        SingleForwardTask().predict(ForwardGNN(8, 3, num_layers=2), data, depth=3)


# ---------------------------------------------------------------------------------------------- data
def test_fraction_node_split_is_64_16_20_with_disjoint_test_folds():
    from sciml.gnn.node_data import fraction_node_split

    n = 1003
    tests = []
    for i in range(5):
        train, val, test = fraction_node_split(n, i)
        assert not (train & val).any() and not (train & test).any() and not (val & test).any()
        assert bool((train | val | test).all())
        assert int(test.sum()) in (n // 5, n // 5 + 1)
        assert int(val.sum()) == -(-(n - int(test.sum())) * 2 // 10)
        tests.append(test)
        again = fraction_node_split(n, i)
        assert all(torch.equal(a, b) for a, b in zip(again, (train, val, test)))
    assert bool(torch.stack(tests).sum(0).eq(1).all())  # the 5 test folds partition the nodes
    with pytest.raises(ConfigError, match="split_index"):
        fraction_node_split(n, 5)


def test_shared_datasets_load_with_the_forwardgnn_split(tmp_path):
    """The reproduction's loader (benchmarks/_forwardgnn_data.py): node_graph(split="fraction") on a converted file
    gives fraction_node_split's masks."""
    import importlib.util

    from sciml.gnn.node_data import fraction_node_split

    spec = importlib.util.spec_from_file_location(
        "_forwardgnn_data", Path(__file__).resolve().parents[2] / "benchmarks" / "_forwardgnn_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (mod.shared_data_dir() / "planetoid" / "Cora").exists():
        pytest.skip(f"{mod.shared_data_dir()} (the shared raw data) is absent")
    data = mod.forwardgnn_dataset("cora", split_index=2, cache_dir=tmp_path)
    for got, want in zip((data.train_mask, data.val_mask, data.test_mask), fraction_node_split(2708, 2)):
        assert torch.equal(got, want)
    assert data.num_nodes == 2708 and data.x.shape == (2708, 1433) and int(data.y.max()) == 6
    assert data.x.layout == torch.sparse_csr                     # 1.3 % non-zero: stored sparse
    x = data.x.to_dense()
    torch.testing.assert_close(x.sum(1)[x.sum(1) > 0], torch.ones(int((x.sum(1) > 0).sum())))
    assert int(data.train_mask.sum()) + int(data.val_mask.sum()) + int(data.test_mask.sum()) == 2708
    assert abs(int(data.test_mask.sum()) - 0.2 * 2708) < 1
