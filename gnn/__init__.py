"""sciml.gnn: see docs/architecture.md."""
if __name__ != "sciml.gnn":  # imported as a top-level `gnn`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.gnn`, not a top-level `gnn` package. "
        "Import it as `sciml.gnn`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )

from sciml.gnn.aggregation import (AggrConv, GRUAggregation, LCMAggregation, SegmentAggregation,  # noqa: E402
                                   aggregation_from_name)
from sciml.gnn.baselines import APPNP, GCN, MLP, SGC  # noqa: E402
from sciml.gnn.convs import GATConv, GCNConv, SAGEConv  # noqa: E402
from sciml.gnn.dagnn import DAGNN  # noqa: E402
from sciml.gnn.forwardgnn import BackpropGNN, ForwardGNN, make_node_task, train_node_classifier  # noqa: E402
from sciml.gnn.forwardgnn_linkpred import ForwardLinkGNN, link_split, train_link_predictor  # noqa: E402
from sciml.gnn.gemnet_oc import GemNetOC  # noqa: E402
from sciml.gnn.graph_anomaly import (GINClassifier, GraphAnomalyTask, PackedGraphs,  # noqa: E402
                                     class_balanced_focal_loss, stratified_split, synthetic_anomaly_graphs,
                                     train_graph_anomaly)
from sciml.gnn.rqgnn import RQGNN, ChebyshevFilterBank, rayleigh_quotient  # noqa: E402
from sciml.gnn.node_data import node_graph  # noqa: E402
from sciml.gnn.tasks import NodeClassification  # noqa: E402

__all__ = ["APPNP", "DAGNN", "GCN", "MLP", "SGC", "NodeClassification", "node_graph",
           "AggrConv", "GRUAggregation", "LCMAggregation", "SegmentAggregation", "aggregation_from_name",
           "GCNConv", "SAGEConv", "GATConv",
           "ForwardGNN", "BackpropGNN", "make_node_task", "train_node_classifier",
           "ForwardLinkGNN", "link_split", "train_link_predictor",
           "GemNetOC",
           "RQGNN", "ChebyshevFilterBank", "rayleigh_quotient", "PackedGraphs", "GraphAnomalyTask", "GINClassifier",
           "class_balanced_focal_loss", "stratified_split", "synthetic_anomaly_graphs", "train_graph_anomaly"]
