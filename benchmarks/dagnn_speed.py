"""DAGNN full-batch training epoch (forward + loss + backward) time: ours against the same model written with PyG.

Peers, measured in one run on the same graph, features and weights (outputs checked equal in eval mode first):
  ours           sciml.gnn.DAGNN: CSRAdjacency SpMM (built once per graph, cached transpose for the backward)
  ours_sparse_x  the same with the features as a torch sparse CSR tensor (what node_graph gives for bag-of-words
                 features under 10 % density), only where the features are that sparse
  pyg_mp         the official code's formulation: PyG gcn_norm (computed once, as GCNConv(cached=True)) and a
                 MessagePassing layer on edge_index (message = norm * x_j, aggr "add"), nn.Linear + F.dropout
  pyg_csr        the same MessagePassing layer called with a torch.sparse CSR ``adj_t`` (PyG's sparse path:
                 message_and_aggregate = torch_geometric.utils.spmm); torch_sparse's SparseTensor is used instead
                 when torch_sparse is installed
One epoch = zero_grad, forward in train mode (dropout on), NLL on the training nodes, backward. Medians over
interleaved rounds (benchmarks/_common.py). JSON: benchmarks/results/dagnn_speed_cpu.json (machine info, versions).

Usage: python benchmarks/dagnn_speed.py [--graphs cora,citeseer,photo] [--repeats 30] [--threads 1]
                                        [--data-root ../shared/data] [--cache-dir DIR] [--out FILE] [--quick]
Graphs come from the shared data (converted once with our converters); without it, a synthetic graph is used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import interleaved, machine_info  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "dagnn_speed_cpu.json"
#: graph -> (raw path under the data root, converter, node_graph options, DAGNN K, dropout)
GRAPHS = {
    "cora": ("planetoid/Cora", "planetoid", {"split": "public"}, 10, 0.8),
    "citeseer": ("planetoid/CiteSeer", "planetoid", {"split": "public"}, 10, 0.5),
    "photo": ("amazon_coauthor/amazon-photo.zip", "npz_graph", {"split": "per_class", "lcc": True}, 5, 0.5),
    "cs": ("amazon_coauthor/coauthor-cs.zip", "npz_graph", {"split": "per_class"}, 5, 0.8),
}


class OfficialProp(torch.nn.Module):
    """DAGNN's propagation as the official code writes it, on PyG MessagePassing (edge_index or adj_t)."""

    def __init__(self, num_classes: int, K: int) -> None:
        from torch_geometric.nn import MessagePassing
        from torch_geometric.utils import spmm

        class Prop(MessagePassing):
            def __init__(self) -> None:
                super().__init__(aggr="add")

            def forward(self, x, graph, norm=None):
                return self.propagate(graph, x=x, norm=norm)

            def message(self, x_j, norm):
                return norm.view(-1, 1) * x_j

            def message_and_aggregate(self, adj_t, x):
                return spmm(adj_t, x, reduce="sum")

        super().__init__()
        self.K, self.prop, self.proj = K, Prop(), nn.Linear(num_classes, 1)

    def forward(self, x, graph, norm=None):
        preds = [x]
        for _ in range(self.K):
            x = self.prop(x, graph, norm)
            preds.append(x)
        pps = torch.stack(preds, dim=1)
        score = torch.sigmoid(self.proj(pps)).view(pps.size(0), 1, -1)
        return torch.matmul(score, pps).view(pps.size(0), -1)


class OfficialDAGNN(torch.nn.Module):
    """The official Net: dropout, Linear, ReLU, dropout, Linear, Prop, log_softmax (weights copied from ``ours``)."""

    def __init__(self, ours, K: int, dropout: float) -> None:
        super().__init__()
        self.lin1 = nn.Linear(ours.lin1.in_features, ours.lin1.out_features)
        self.lin2 = nn.Linear(ours.lin2.in_features, ours.lin2.out_features)
        self.prop = OfficialProp(ours.lin2.out_features, K)
        self.lin1.load_state_dict(ours.lin1.state_dict())
        self.lin2.load_state_dict(ours.lin2.state_dict())
        self.prop.proj.load_state_dict(ours.proj.state_dict())
        self.dropout = dropout

    def forward(self, x, graph, norm=None):
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, self.dropout, self.training)
        return F.log_softmax(self.prop(self.lin2(x), graph, norm), dim=1)


def load_graph(name: str, data_root: Path, cache_dir: Path, synthetic_nodes: int):
    """(data, K, dropout, source) for ``name``: the shared data converted with our converter, or a synthetic
    stand-in when it is absent."""
    from sciml.gnn.node_data import node_graph

    raw, conv, opts, K, p = GRAPHS[name]
    src = data_root / raw
    if src.exists():
        from sciml.datasets.sources import CONVERTERS
        from sciml.datasets.writer import write_spec

        h5 = cache_dir / f"{name}.h5"
        if not h5.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_spec(h5, CONVERTERS.get(conv)(src))
        return node_graph(h5, **opts), K, p, f"<data root>/{raw}"   # no machine path in the results
    from sciml.datasets.synthetic import community_graph

    data = community_graph(synthetic_nodes, num_classes=7, num_features=256, p_in=0.01, p_out=0.001, seed=0)
    return data, K, p, f"synthetic community_graph({synthetic_nodes})"


def bench_graph(name: str, args) -> dict:
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    from sciml.gnn import DAGNN
    from sciml.gnn.node_data import to_sparse_features

    data, K, p, source = load_graph(name, args.data_root, args.cache_dir, args.synthetic_nodes)
    x_sparse = data.x if data.x.layout == torch.sparse_csr else None
    x = data.x.to_dense() if x_sparse is not None else data.x
    n, ei, y, mask = x.size(0), data.edge_index, data.y, data.train_mask
    num_classes = int(y.max()) + 1
    torch.manual_seed(0)
    ours = DAGNN(x.size(1), num_classes, K=K, dropout=p)
    official = OfficialDAGNN(ours, K, p)
    idx, norm = gcn_norm(ei, None, n, add_self_loops=True)
    try:
        from torch_sparse import SparseTensor
        adj_t = SparseTensor(row=idx[1], col=idx[0], value=norm, sparse_sizes=(n, n))
        csr_kind = "torch_sparse.SparseTensor"
    except ImportError:
        adj_t = torch.sparse_coo_tensor(torch.stack([idx[1], idx[0]]), norm, (n, n)).coalesce().to_sparse_csr()
        csr_kind = "torch.sparse_csr"

    ours.eval(), official.eval()
    with torch.no_grad():
        ref = ours(x, ei)
        for label, out in (("pyg_mp", official(x, idx, norm)), ("pyg_csr", official(x, adj_t))):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name} {label}: {m}")
        if x_sparse is not None:
            torch.testing.assert_close(ours(x_sparse, ei), ref, rtol=1e-4, atol=1e-5)
    ours.train(), official.train()

    def epoch(model, *inputs):
        def run():
            model.zero_grad(set_to_none=True)
            out = model(*inputs)
            F.nll_loss(out[mask], y[mask]).backward()
        return run

    fns = {"ours": epoch(ours, x, ei), "pyg_mp": epoch(official, x, idx, norm),
           "pyg_csr": epoch(official, x, adj_t)}
    if x_sparse is not None:
        fns["ours_sparse_x"] = epoch(ours, to_sparse_features(x_sparse), ei)
    res = interleaved(fns, reps=args.repeats, warmup=args.warmup, budget_s=args.budget_s)
    times = {k: round(v["median_s"] * 1000, 3) for k, v in res.items()}
    best_peer = min(times["pyg_mp"], times["pyg_csr"])
    row = {"graph": name, "source": source, "num_nodes": n, "num_edges": int(ei.size(1)),
           "num_features": int(x.size(1)), "num_classes": num_classes, "K": K, "dropout": p,
           "pyg_csr_kind": csr_kind, "median_ms": times, "runs": {k: v["runs"] for k, v in res.items()},
           "ratio_best_pyg_over_ours": round(best_peer / times["ours"], 3),
           "ratio_pyg_mp_over_ours": round(times["pyg_mp"] / times["ours"], 3),
           "ratio_pyg_csr_over_ours": round(times["pyg_csr"] / times["ours"], 3)}
    if "ours_sparse_x" in times:
        row["ratio_best_pyg_over_ours_sparse_x"] = round(best_peer / times["ours_sparse_x"], 3)
    return row


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", default="cora,citeseer,photo", help=f"comma-separated of {', '.join(GRAPHS)}")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=120.0, help="stop repeating a graph after this many seconds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("SCIML_SHARED_DATA", HERE.parent.parent / "shared" / "data")))
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "sciml_dagnn_data")
    p.add_argument("--synthetic-nodes", type=int, default=3000, help="size of the stand-in graph without data")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    graphs = [g for g in args.graphs.split(",") if g]
    for g in graphs:
        if g not in GRAPHS:
            p.error(f"unknown graph {g!r}; choose from {', '.join(GRAPHS)}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    rows = []
    for g in graphs:
        row = bench_graph(g, args)
        rows.append(row)
        t = row["median_ms"]
        print(f"{g:9s} N={row['num_nodes']:6d} E={row['num_edges']:7d}  " +
              "  ".join(f"{k} {v:.2f} ms" for k, v in t.items()) +
              f"  best PyG / ours = {row['ratio_best_pyg_over_ours']:.2f}", flush=True)
    result = {"benchmark": "dagnn_speed", "machine": machine_info("cpu", threads=args.threads),
              "repeats": args.repeats, "quick": args.quick, "results": rows}
    from sciml.io import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
