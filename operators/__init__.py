"""sciml.operators: see docs/architecture.md."""
if __name__ != "sciml.operators":  # imported as a top-level `operators`: the checkout root is on sys.path
    raise ImportError(
        f"{__file__} is the source of `sciml.operators`, not a top-level `operators` package. "
        "Import it as `sciml.operators`, and run Python from outside the checkout root "
        "or with `python -P` / PYTHONSAFEPATH=1."
    )

from sciml.operators.field_tasks import (FieldNormalizer, FieldRegressionTask, OneStepTask, field_pairs,  # noqa: E402
                                         field_trajectories, rollout, rollout_error, teacher_forcing_pairs)
from sciml.operators.losses import RelativeH1Loss, RelativeL2Loss, relative_h1, relative_l2  # noqa: E402
from sciml.operators.mgno import DARCY_ITERATIONS, MgConv, MgNO  # noqa: E402
from sciml.operators.sinenet import SineNet, sinenet_multiplier, sinenet_num_parameters  # noqa: E402
from sciml.operators.unet import ModernUNet  # noqa: E402

__all__ = ["MgNO", "MgConv", "DARCY_ITERATIONS", "SineNet", "sinenet_multiplier", "sinenet_num_parameters",
           "ModernUNet", "RelativeL2Loss", "RelativeH1Loss", "relative_l2", "relative_h1", "FieldNormalizer",
           "FieldRegressionTask", "OneStepTask", "field_pairs", "field_trajectories", "rollout", "rollout_error",
           "teacher_forcing_pairs"]
