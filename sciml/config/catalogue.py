"""The built-in names of the global registries, declared lazily: nothing here imports model code.

A name is imported on its first lookup. ``runtime`` lists constructor parameters that are filled in code when
an experiment is built (for models: the input/output sizes read off the data), so they are not config keys.
"""
from __future__ import annotations

from sciml.config.registry import DATA, MODELS, TASKS

GRAPH_DIMS = ("in_channels", "out_channels")

MODELS.register_lazy("mlp", "sciml.gnn.baselines:MLP", runtime=GRAPH_DIMS)
MODELS.register_lazy("gcn", "sciml.gnn.baselines:GCN", runtime=GRAPH_DIMS)
MODELS.register_lazy("appnp", "sciml.gnn.baselines:APPNP", runtime=GRAPH_DIMS)
MODELS.register_lazy("sgc", "sciml.gnn.baselines:SGC", runtime=GRAPH_DIMS)
MODELS.register_lazy("dagnn", "sciml.gnn.dagnn:DAGNN", runtime=GRAPH_DIMS)
MODELS.register_lazy("forwardgnn", "sciml.gnn.forwardgnn:ForwardGNN", runtime=("in_channels", "num_classes"))
MODELS.register_lazy("backprop_gnn", "sciml.gnn.forwardgnn:BackpropGNN", runtime=GRAPH_DIMS)
MODELS.register_lazy("rqgnn", "sciml.gnn.rqgnn:RQGNN", runtime=GRAPH_DIMS)
MODELS.register_lazy("gin_classifier", "sciml.gnn.graph_anomaly:GINClassifier", runtime=GRAPH_DIMS)
MODELS.register_lazy("gemnet_oc", "sciml.gnn.gemnet_oc:GemNetOC")
MODELS.register_lazy("mgno", "sciml.operators.mgno:MgNO")
MODELS.register_lazy("sinenet", "sciml.operators.sinenet:SineNet")
MODELS.register_lazy("modern_unet", "sciml.operators.unet:ModernUNet")
DATA.register_lazy("community_graph", "sciml.datasets.synthetic:community_graph")
DATA.register_lazy("node_graph", "sciml.gnn.node_data:node_graph")
DATA.register_lazy("graph_anomaly", "sciml.gnn.graph_anomaly:graph_anomaly_data")
DATA.register_lazy("atoms", "sciml.gnn.gemnet_oc.data:atoms_data")
DATA.register_lazy("field_pairs", "sciml.operators.field_tasks:field_pairs")
DATA.register_lazy("field_trajectories", "sciml.operators.field_tasks:field_trajectories")
TASKS.register_lazy("node_classification", "sciml.gnn.tasks:NodeClassification")
TASKS.register_lazy("forwardgnn_node", "sciml.gnn.forwardgnn:make_node_task")
TASKS.register_lazy("graph_anomaly", "sciml.gnn.graph_anomaly:GraphAnomalyTask", runtime=("class_counts", "monitor"))
TASKS.register_lazy("energy_force", "sciml.gnn.gemnet_oc.task:EnergyForceTask")
TASKS.register_lazy("field_regression", "sciml.operators.field_tasks:FieldRegressionTask", runtime=("y_normalizer",))
TASKS.register_lazy("one_step", "sciml.operators.field_tasks:OneStepTask", runtime=("normalizer",))
