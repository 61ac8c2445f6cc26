"""Physics-informed neural networks with adaptive collocation sampling (see docs/pinn.md).

* problems: :class:`Box`, :class:`PDEProblem` and the problems :class:`PoissonPeak2D`,
  :class:`PoissonExponential`, :class:`Burgers`, :class:`AllenCahn` (:func:`make_problem`);
* samplers: :class:`CollocationSampler` and uniform / Random-R / RAR-G / RAR-D / RAD (:func:`make_sampler`; the
  normalising-flow samplers DAS-G, DAS-R and AAS come from ``sciml.operators.pinn.flow_samplers``);
* training: :class:`MLP`, :class:`PINNTask` (a :class:`sciml.train.Task`), :class:`ClosureLBFGS`,
  :func:`train_pinn` (Adam then L-BFGS through :class:`sciml.train.Trainer`).
"""
from sciml.operators.pinn.problems import (PROBLEMS, AllenCahn, Box, Burgers, PDEProblem, PoissonExponential,
                                           PoissonPeak2D, gradient, laplacian, load_allen_cahn_reference,
                                           load_burgers_reference, make_problem, shared_data_root)
from sciml.operators.pinn.sampling import (CollocationSampler, RADSampler, RARDSampler, RARGSampler,
                                           ResidualSampler, UniformSampler, available_samplers, evaluate_residual,
                                           make_sampler, rad_density, register_sampler,
                                           weighted_sample_without_replacement)
from sciml.operators.pinn.training import MLP, ClosureLBFGS, PINNTask, train_pinn

__all__ = ["Box", "PDEProblem", "PoissonPeak2D", "PoissonExponential", "Burgers", "AllenCahn", "PROBLEMS",
           "make_problem", "load_burgers_reference", "load_allen_cahn_reference", "gradient", "laplacian",
           "shared_data_root",
           "CollocationSampler", "UniformSampler", "ResidualSampler", "RARGSampler", "RARDSampler", "RADSampler",
           "make_sampler", "register_sampler", "available_samplers", "evaluate_residual", "rad_density",
           "weighted_sample_without_replacement", "MLP", "PINNTask", "ClosureLBFGS", "train_pinn"]
