"""The neural-ODE stop of ``sciml demo``: the same small neural ODE trained without and with ERNODE (and local
regularisation), then solved at prediction time; prints the loss and the NFE the solver needed."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from sciml.operators.ode.regularizers import ExponentialDecay, NeuralODE

__all__ = ["regularized_node_demo"]


class _Field(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(z ** 3)


def regularized_node_demo(steps: int = 80, seed: int = 0, tol: float = 1e-5,
                          methods: tuple[str, ...] = ("none", "ernode", "local_unbiased"),
                          print_fn: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Fit ``z(1)`` of the cubic spiral ``dz/dt = (z**3) A`` from 128 random starts with each regulariser (λ
    10 -> 1 for ERNODE, 100 -> 10 for local, as in benchmarks/node_regularization.py), then report the test MSE
    and the prediction NFE of our Tsit5 at rtol = atol = ``tol``. Returns ``{method: {"mse", "nfe",
    "train_s"}}``."""
    from sciml.operators.ode.integrate import odeint

    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    x = torch.rand(192, 2, generator=g) * 3.0 - 1.5
    with torch.no_grad():
        y = odeint(lambda t, z: (z ** 3) @ a, x, torch.tensor([0.0, 1.0]), rtol=1e-8, atol=1e-8)[-1]
    xtr, ytr, xte, yte = x[:128], y[:128], x[128:], y[128:]
    out = {}
    for method in methods:
        torch.manual_seed(seed)
        node = NeuralODE(_Field(), 0.0, 1.0, rtol=tol, atol=tol, regularizer=method, seed=seed)
        opt = torch.optim.Adam(node.parameters(), lr=1e-2)
        lam = ExponentialDecay(100.0, 10.0, steps) if method.startswith("local") else ExponentialDecay(10.0, 1.0,
                                                                                                       steps)
        t0 = time.perf_counter()
        for step in range(steps):
            loss = (node(xtr) - ytr).pow(2).mean()
            opt.zero_grad()
            (loss + lam(step) * node.last_reg).backward()
            opt.step()
        train_s = time.perf_counter() - t0
        node.eval()
        with torch.no_grad():
            mse = float((node(xte) - yte).pow(2).mean())
        out[method] = {"mse": mse, "nfe": node.last_nfe, "train_s": train_s}
        print_fn(f"{method:<15} test mse {mse:.4f}  prediction NFE {node.last_nfe:4d}  ({train_s:.1f} s training)")
    return out
