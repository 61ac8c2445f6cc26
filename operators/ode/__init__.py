"""Neural ODEs/SDEs with solver-heuristic regularisation (``sciml.operators.ode``).

* :mod:`~sciml.operators.ode.tableaus`: Tsit5, Dopri5, Bosh3 Butcher tableaus with dense output.
* :mod:`~sciml.operators.ode.integrate`: our embedded Runge–Kutta integrator (``odeint`` with torchdiffeq's
  signature, ``solve`` with per-step differentiable diagnostics), an NFE counter, and a torchdiffeq adapter.
* :mod:`~sciml.operators.ode.regularizers`: ERNODE, SRNODE, ER+SR, local (unbiased/biased) regularisation,
  TayNODE, RNODE, STEER, λ schedules, and the :class:`NeuralODE` layer.
* :mod:`~sciml.operators.ode.sde`: the Lamba–Euler–Heun one-step local error regulariser for torchsde SDEs.

See docs/neural_ode.md.
"""
from sciml.operators.ode.integrate import (NFECounter, ODESolution, SolverError, SolverStats, StepResult,
                                           initial_step, odeint, register_torchdiffeq, rk_step, rms_norm, solve)
from sciml.operators.ode.regularizers import (REGULARIZERS, ConstantSchedule, ExponentialDecay, NeuralODE,
                                              error_regularizer, error_stiffness_regularizer,
                                              jacobian_frobenius_estimate, kinetic_energy, local_error_regularizer,
                                              steer_end_time, stiffness_regularizer, taynode_integrand,
                                              total_derivative)
from sciml.operators.ode.sde import lamba_euler_heun_step, local_sde_regularizer, sde_initial_step
from sciml.operators.ode.task import RegularizedODETask
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
]
