"""sciml.gnn: see docs/architecture.md."""
if __name__ != "sciml.gnn":  # imported as a top-level `gnn`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.gnn`, not a top-level `gnn` package. "
        "Import it as `sciml.gnn`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )

from sciml.gnn.baselines import APPNP, GCN, MLP, SGC  # noqa: E402
from sciml.gnn.dagnn import DAGNN  # noqa: E402
from sciml.gnn.tasks import NodeClassification  # noqa: E402

__all__ = ["APPNP", "DAGNN", "GCN", "MLP", "SGC", "NodeClassification"]
