"""Neural ODEs/SDEs with solver-heuristic regularisation (``sciml.operators.ode``).

* :mod:`~sciml.operators.ode.tableaus`: Tsit5, Dopri5, Bosh3 Butcher tableaus with dense output.
* :mod:`~sciml.operators.ode.integrate`: our embedded Runge–Kutta integrator (``odeint`` with torchdiffeq's
  signature, ``solve`` with per-step differentiable diagnostics), an NFE counter, and a torchdiffeq adapter.
* :mod:`~sciml.operators.ode.regularizers`: ERNODE, SRNODE, ER+SR, local (unbiased/biased) regularisation,
  TayNODE, RNODE, STEER, λ schedules, and the :class:`NeuralODE` layer.
* :mod:`~sciml.operators.ode.sde`: the Lamba–Euler–Heun one-step local error regulariser for torchsde SDEs.
* :mod:`~sciml.operators.ode.interpolation`: control paths of irregular series (Hermite cubic with backward
  differences, natural cubic spline) and :class:`CubicPath`.
* :mod:`~sciml.operators.ode.stable_sde`: stable neural SDEs (LSDE, LNSDE, GSDE, naive SDE) on torchsde, with the
  GRU-Δt and neural CDE baselines.
* :mod:`~sciml.operators.ode.timeseries_task`: the UEA irregular-classification protocol (missing rates, splits,
  normalisation, training recipe).

See docs/neural_ode.md and docs/neural_sde.md.
"""
from sciml.operators.ode.integrate import (NFECounter, ODESolution, SolverError, SolverStats, StepResult,
                                           initial_step, odeint, register_torchdiffeq, rk_step, rms_norm, solve)
from sciml.operators.ode.regularizers import (REGULARIZERS, ConstantSchedule, ExponentialDecay, NeuralODE,
                                              error_regularizer, error_stiffness_regularizer,
                                              jacobian_frobenius_estimate, kinetic_energy, local_error_regularizer,
                                              steer_end_time, stiffness_regularizer, taynode_integrand,
                                              total_derivative)
from sciml.operators.ode.sde import lamba_euler_heun_step, local_sde_regularizer, sde_initial_step
from sciml.operators.ode.interpolation import (INTERPOLATIONS, CubicPath, fill_linear, hermite_cubic_coeffs,
                                               hermite_cubic_coeffs_with_backward_differences, interpolation_coeffs,
                                               natural_cubic_coeffs)
from sciml.operators.ode.stable_sde import (SDE_KINDS, TIMESERIES_MODELS, ClassifierHead, GRUDeltaT,
                                            NeuralCDEClassifier, NeuralSDEClassifier, StableSDEFunc,
                                            build_timeseries_model, grid_brownian)
from sciml.operators.ode.task import RegularizedODETask
from sciml.operators.ode.timeseries_task import (UEADataset, batch_size_rule, control_coeffs, drop_observations,
                                                 evaluate_classifier, fit_classifier, load_uea,
                                                 normalize_from_train, stratified_split)
from sciml.operators.ode.tableaus import (BOSH3, DOPRI5, TABLEAUS, TSIT5, ButcherTableau, get_tableau,
                                          stability_region_size)

__all__ = [
    "odeint", "solve", "rk_step", "StepResult", "SolverStats", "ODESolution", "NFECounter", "initial_step",
    "rms_norm", "register_torchdiffeq", "SolverError",
    "ButcherTableau", "TSIT5", "DOPRI5", "BOSH3", "TABLEAUS", "get_tableau", "stability_region_size",
    "error_regularizer", "stiffness_regularizer", "error_stiffness_regularizer", "local_error_regularizer",
    "total_derivative", "taynode_integrand", "kinetic_energy", "jacobian_frobenius_estimate", "steer_end_time",
    "ExponentialDecay", "ConstantSchedule", "NeuralODE", "REGULARIZERS",
    "lamba_euler_heun_step", "sde_initial_step", "local_sde_regularizer", "RegularizedODETask",
    "CubicPath", "fill_linear", "hermite_cubic_coeffs", "hermite_cubic_coeffs_with_backward_differences",
    "natural_cubic_coeffs", "interpolation_coeffs", "INTERPOLATIONS",
    "StableSDEFunc", "NeuralSDEClassifier", "GRUDeltaT", "NeuralCDEClassifier", "ClassifierHead", "SDE_KINDS",
    "TIMESERIES_MODELS", "build_timeseries_model", "grid_brownian",
    "UEADataset", "load_uea", "drop_observations", "stratified_split", "normalize_from_train", "control_coeffs",
    "batch_size_rule", "fit_classifier", "evaluate_classifier",
]
