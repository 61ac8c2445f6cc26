r"""Stable neural SDEs for irregular time series (Oh, Lim, Kim, *Stable Neural Stochastic Differential Equations in
Analyzing Irregular Time Series Data*, ICLR 2024), with the GRU-Δt and neural CDE baselines of its benchmark.

A latent state :math:`z(t)\in\mathbb R^H` starts at :math:`z(0) = \mathrm{Linear}(X(t_0))` from the control path
:math:`X` (a cubic interpolation of the observed series, :mod:`~sciml.operators.ode.interpolation`) and follows an
Itô SDE with diagonal noise; a head classifies :math:`z(T)`. With :math:`\tilde z(t) = \zeta(t, z(t), X(t))`:

===========  ==================================================================  =============================
``kind``     paper equation                                                      official code (paper time)
===========  ==================================================================  =============================
``"sde"``    :math:`dz = f(t, z)\,dt + g(t, z)\,dW` (naive neural SDE)            ``neuralsde_1_18``
``"lsde"``   :math:`dz = \gamma(\tilde z)\,dt + \sigma(t)\,dW` (Langevin-type)    ``neuralsde_2_16``
``"lnsde"``  :math:`dz = \gamma(t, \tilde z)\,dt + \sigma(t)\,z\,dW` (linear noise)  ``neuralsde_4_17``
``"gsde"``   :math:`dz = z\,\gamma(t, \tilde z)\,dt + z\,\sigma(t)\,dW` (geometric)  ``neuralsde_6_17``
===========  ==================================================================  =============================

``form="code"`` (default; what the paper's numbers were produced with, commit ``0ab6139`` of
``yongkyung-oh/Stable-Neural-SDEs``): time enters as :math:`(\sin t, \cos t)`; the drift is
:math:`\tanh(\mathrm{MLP}(\tilde z))` and the diffusion is clipped, :math:`g = \tanh(\mathrm{sigmoid}(\theta)\,
\mathrm{ReLU}(\mathrm{MLP}_2(\sin t, \cos t))\,[\cdot z])` with a learnable scalar :math:`\theta` (start 1); the
geometric drift is **not** :math:`z\gamma`: the MLP output is multiplied by :math:`1 - \mathrm{sigmoid}(z)`
(``geometric_factor="sigmoid"``; ``"tanh"``: :math:`\tanh(z)`, the code since commit ``30f968b``, 2024-11) before
the ``tanh``, and its diffusion is the LNSDE's. ``form="paper"``: the equations of the table as written: time enters
as :math:`t`, no outer ``tanh`` on the diffusion, the GSDE drift and diffusion are :math:`z\gamma` and
:math:`z\sigma(t)` (positivity is then exact for the SDE, though not for Euler–Maruyama steps). In both forms
:math:`\gamma = \tanh(\mathrm{MLP})` (a bounded, Lipschitz drift, as the theory assumes) and
:math:`\tilde z = \mathrm{Linear}([\mathrm{Linear}(z \,[, t\text{-features}]);\ \mathrm{Linear}(X(t))])`; the naive
SDE sees no control path (as in the code).

Solver: :func:`torchsde.sdeint`, Itô, ``method="euler"`` (Euler–Maruyama, as the UEA runs of the code), fixed
:math:`dt = \max(\min_i (t_{i+1} - t_i), 10^{-3})`, direct backpropagation (``adjoint=True``: torchsde's adjoint).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError
from sciml.operators.ode.interpolation import CubicPath

__all__ = ["StableSDEFunc", "NeuralSDEClassifier", "grid_brownian", "GRUDeltaT", "NeuralCDEClassifier",
           "ClassifierHead", "SDE_KINDS", "TIMESERIES_MODELS", "build_timeseries_model"]

SDE_KINDS = ("sde", "lsde", "lnsde", "gsde")
#: the official ``neuralsde_{input_option}_{noise_option}`` names (paper time).
CODE_NAMES = {"sde": "neuralsde_1_18", "lsde": "neuralsde_2_16", "lnsde": "neuralsde_4_17", "gsde": "neuralsde_6_17"}


def _time_column(t: Tensor, z: Tensor) -> Tensor:
    """``t`` (0-dim or ``[B]``) as a ``[B, 1]`` column in ``z``'s dtype."""
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    return t.expand(z.shape[0]).unsqueeze(-1) if t.dim() == 0 else t.reshape(-1, 1)


class StableSDEFunc(nn.Module):
    r"""Drift and diffusion of the (stable) neural SDEs, as a torchsde SDE (``sde_type="ito"``,
    ``noise_type="diagonal"``). Set the control path with :meth:`set_path` before solving.

    Args:
        kind (str): ``"sde"``, ``"lsde"``, ``"lnsde"`` or ``"gsde"`` (see the module docstring).
        control_channels (int): channels ``C`` of the control path ``X``.
        hidden (int): latent size ``H``.
        hidden_hidden (int): width of the drift MLP. (default: ``hidden``)
        num_layers (int): layers of the drift MLP after the input map (the code's ``num_hidden_layers``; 1 = no
            hidden-to-hidden layer). (default: ``2``)
        form (str): ``"code"`` (the official code's stabilised forms) or ``"paper"`` (the equations).
            (default: ``"code"``)
        geometric_factor (str): the code-form GSDE drift factor, ``"sigmoid"`` (:math:`1 - \mathrm{sigmoid}(z)`,
            paper time) or ``"tanh"`` (:math:`\tanh z`, later code). (default: ``"sigmoid"``)
        theta (float): start value of the diffusion scale :math:`\theta` (used as :math:`\mathrm{sigmoid}(\theta)`).
            (default: ``1.0``)
    """

    sde_type = "ito"
    noise_type = "diagonal"

    def __init__(self, kind: str, control_channels: int, hidden: int, hidden_hidden: int | None = None, *,
                 num_layers: int = 2, form: str = "code", geometric_factor: str = "sigmoid",
                 theta: float = 1.0) -> None:
        super().__init__()
        if kind not in SDE_KINDS:
            raise ConfigError(f"StableSDEFunc: kind must be one of {SDE_KINDS}, got {kind!r}")
        if form not in ("code", "paper"):
            raise ConfigError(f"StableSDEFunc: form must be 'code' or 'paper', got {form!r}")
        if geometric_factor not in ("sigmoid", "tanh"):
            raise ConfigError(f"StableSDEFunc: geometric_factor must be 'sigmoid' or 'tanh', got {geometric_factor!r}")
        if num_layers < 1:
            raise ConfigError(f"StableSDEFunc: num_layers must be >= 1, got {num_layers}")
        hh = hidden_hidden or hidden
        self.kind, self.form, self.geometric_factor = kind, form, geometric_factor
        self.hidden = hidden
        self.tdim = 2 if form == "code" else 1
        # the drift sees time for lnsde/gsde (code options 4, 6); the naive SDE sees it only in the paper form
        self.drift_time = kind in ("lnsde", "gsde") or (kind == "sde" and form == "paper")
        self.uses_control = kind != "sde"
        self.latent_in = nn.Linear(hidden + (self.tdim if self.drift_time else 0), hh)
        if self.uses_control:
            self.control_in = nn.Linear(control_channels, hidden)
            self.combine = nn.Linear(hh + hidden, hh)
        self.hidden_layers = nn.ModuleList(nn.Linear(hh, hh) for _ in range(num_layers - 1))
        self.drift_out = nn.Linear(hh, hidden)
        noise_in = self.tdim + (hidden if kind == "sde" else 0)  # the naive SDE's noise also sees z (option 18)
        self.noise_net = nn.Sequential(nn.Linear(noise_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.theta = nn.Parameter(torch.tensor(float(theta)))
        self.path: CubicPath | None = None

    def set_path(self, path: CubicPath) -> None:
        """The control path ``X`` of the current batch."""
        self.path = path

    def time_features(self, t: Tensor, z: Tensor) -> Tensor:
        col = _time_column(t, z)
        return torch.cat([col.sin(), col.cos()], dim=-1) if self.form == "code" else col

    def gamma(self, t: Tensor, z: Tensor) -> Tensor:
        r""":math:`\tanh(\mathrm{MLP}(\tilde z))` (with the code-form GSDE factor inside the ``tanh``)."""
        inp = torch.cat([self.time_features(t, z), z], dim=-1) if self.drift_time else z
        h = self.latent_in(inp)
        if self.uses_control:
            if self.path is None:
                raise ConfigError("StableSDEFunc: no control path; call set_path(CubicPath(...)) first")
            x = self.path.evaluate(t)
            if x.shape[0] != z.shape[0]:
                raise ShapeError(f"StableSDEFunc: the control path has batch {x.shape[0]}, the state {z.shape[0]}")
            h = self.combine(torch.cat([h, self.control_in(x)], dim=-1))
        h = h.relu()
        for lin in self.hidden_layers:
            h = lin(h).relu()
        h = self.drift_out(h)
        if self.kind == "gsde" and self.form == "code":
            zz = torch.nan_to_num(z)
            h = h * (1 - zz.sigmoid() if self.geometric_factor == "sigmoid" else zz.tanh())
        return h.tanh()

    def sigma(self, t: Tensor, z: Tensor) -> Tensor:
        r""":math:`\mathrm{sigmoid}(\theta)\,\mathrm{ReLU}(\mathrm{MLP}_2(\cdot))` (before the ``z`` factor and the
        code form's clipping)."""
        feats = self.time_features(t, z)
        if self.kind == "sde":
            feats = torch.cat([feats, z], dim=-1)
        return self.theta.sigmoid() * self.noise_net(feats).relu()

    def f(self, t: Tensor, z: Tensor) -> Tensor:
        """Drift, ``[B, H]``."""
        g = self.gamma(t, z)
        return z * g if (self.kind == "gsde" and self.form == "paper") else g

    def g(self, t: Tensor, z: Tensor) -> Tensor:
        """Diagonal diffusion, ``[B, H]``."""
        s = self.sigma(t, z)
        if self.kind in ("lnsde", "gsde"):
            s = s * z
        if self.form == "code":
            s = torch.nan_to_num(s).tanh()
        return s


class ClassifierHead(nn.Module):
    """The official classifier on the final latent state: ``Linear -> BatchNorm -> ReLU -> Dropout -> Linear``
    (Xavier-uniform weights, biases 0.01), the last layer's gradients multiplied by ``grad_scale`` (the code's
    ``×100`` hook; ``1`` turns it off)."""

    def __init__(self, hidden: int, num_classes: int, *, dropout: float = 0.1, grad_scale: float = 100.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.01)
        if grad_scale != 1.0:
            scale = float(grad_scale)
            self.net[-1].weight.register_hook(lambda grad: grad * scale)
            self.net[-1].bias.register_hook(lambda grad: grad * scale)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


def _grid_brownian_class():
    from torchsde._brownian.brownian_base import BaseBrownian  # torchsde's public classes derive from it

    class GridBrownian(BaseBrownian):
        r"""Brownian increments for a fixed-step solve: the step starting at :math:`t_0 + k\,dt` gets
        :math:`\sqrt{t_b - t_a}\,\xi_k`, :math:`\xi_k \sim N(0, I)` drawn once (so a repeated query returns the same
        increment). Exactly the increments Euler–Maruyama needs, without the binary-tree bookkeeping of
        ``torchsde.BrownianInterval`` (about 40 % of a forward solve here). Only queries that start on the grid are
        answered; use ``BrownianInterval`` for adaptive or adjoint solves."""

        __slots__ = ("t0", "dt", "_shape", "_dtype", "_device", "_xi", "_gen")

        def __init__(self, t0: float, t1: float, dt: float, shape: tuple[int, int], dtype: torch.dtype,
                     device: torch.device) -> None:
            self.t0, self.dt = float(t0), float(dt)
            self._shape, self._dtype, self._device = torch.Size(shape), dtype, device
            steps = int(math.ceil((float(t1) - self.t0) / self.dt)) + 2
            self._gen = torch.Generator(device=device).manual_seed(int(torch.randint(0, 2 ** 62, ()).item()))
            self._xi = torch.randn((steps, *shape), generator=self._gen, dtype=dtype, device=device)

        def __call__(self, ta, tb=None, return_U=False, return_A=False):  # noqa: N803 - torchsde's signature
            if tb is None or return_U or return_A:
                raise ConfigError("GridBrownian answers increments W(tb) - W(ta) only (no values, no Levy area)")
            pos = (float(ta) - self.t0) / self.dt
            k = int(round(pos))
            if abs(pos - k) > 1e-3 or not 0 <= k < self._xi.shape[0]:
                raise ConfigError(f"GridBrownian: query [{float(ta)}, {float(tb)}] does not start on the grid "
                                  f"t0={self.t0} + k*{self.dt}; use a torchsde.BrownianInterval")
            return self._xi[k] * math.sqrt(max(float(tb) - float(ta), 0.0))

        def __repr__(self) -> str:
            return f"GridBrownian(t0={self.t0}, dt={self.dt}, shape={tuple(self._shape)})"

        @property
        def dtype(self):
            return self._dtype

        @property
        def device(self):
            return self._device

        @property
        def shape(self):
            return self._shape

        @property
        def levy_area_approximation(self):
            return "none"

    return GridBrownian


def grid_brownian(t0: float, t1: float, dt: float, shape: tuple[int, int], *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> Any:
    """A torchsde Brownian motion for fixed-step Euler–Maruyama solves on ``t0 + k dt`` (see ``GridBrownian``);
    its increments come from a generator seeded from torch's global RNG."""
    return _grid_brownian_class()(t0, t1, dt, shape, dtype, torch.device(device))


def _fixed_dt(times: Tensor, dt: float | None, dt_min: float) -> float:
    return float(dt) if dt is not None else max(float((times[1:] - times[:-1]).min()), dt_min)


class _PathModel(nn.Module):
    """Shared input handling: ``forward(coeffs [B, L-1, 4, C], times=None)``."""

    interpolation = "hermite"
    intensity = False

    def _path(self, coeffs: Tensor, times: Tensor | None) -> CubicPath:
        if coeffs.dim() != 4 or coeffs.shape[-2] != 4:
            raise ShapeError(f"{type(self).__name__}: coeffs must be [B, L - 1, 4, C], got {tuple(coeffs.shape)}")
        if coeffs.shape[-1] != self.control_channels:
            raise ShapeError(f"{type(self).__name__}: expected {self.control_channels} control channels, got "
                             f"{coeffs.shape[-1]}")
        return CubicPath(coeffs, times)


class NeuralSDEClassifier(_PathModel):
    r"""(Stable) neural SDE classifier of irregular time series: :math:`z_0 = \mathrm{Linear}(X(t_0))`, the SDE of
    :class:`StableSDEFunc` solved by torchsde to :math:`t_{L-1}`, then the code's readout
    ``Tanh -> Linear -> ReLU -> Linear`` and :class:`ClassifierHead`. One sample path per forward pass (the code
    also evaluates with a single path).

    Args:
        control_channels (int): channels of the control path (``1 + D``: time and the ``D`` values).
        num_classes (int): classes.
        hidden (int): latent size. (default: ``32``)
        num_layers (int): drift MLP layers. (default: ``2``)
        kind (str): ``"sde"``, ``"lsde"``, ``"lnsde"``, ``"gsde"``. (default: ``"lsde"``)
        form (str): ``"code"`` or ``"paper"``. (default: ``"code"``)
        geometric_factor (str): code-form GSDE factor. (default: ``"sigmoid"``)
        method (str): torchsde method. (default: ``"euler"``)
        dt (float, optional): fixed step (default: :math:`\max(\min \Delta t, \mathrm{dt\_min})`).
        dt_min (float): floor of the default step. (default: ``1e-3``)
        adjoint (bool): solve with ``torchsde.sdeint_adjoint`` (torchsde's default adjoint method: Milstein for
            Itô diagonal noise). (default: :obj:`False`)
        brownian (str): ``"grid"``: the increments of a fixed-step Euler solve drawn directly (:func:`grid_brownian`,
            cheaper); ``"interval"``: ``torchsde.BrownianInterval`` (torchsde's default; always used for other
            methods and the adjoint). Both give independent :math:`N(0, dt)` increments. (default: ``"grid"``)
        dropout (float): head dropout. (default: ``0.1``)
        head_grad_scale (float): gradient multiplier of the last layer. (default: ``100.0``)
    """

    interpolation = "hermite"

    def __init__(self, control_channels: int, num_classes: int, *, hidden: int = 32, num_layers: int = 2,
                 kind: str = "lsde", form: str = "code", geometric_factor: str = "sigmoid", method: str = "euler",
                 dt: float | None = None, dt_min: float = 1e-3, adjoint: bool = False, brownian: str = "grid",
                 dropout: float = 0.1, head_grad_scale: float = 100.0) -> None:
        super().__init__()
        if brownian not in ("grid", "interval"):
            raise ConfigError(f"NeuralSDEClassifier: brownian must be 'grid' or 'interval', got {brownian!r}")
        self.brownian = brownian
        self.control_channels = control_channels
        self.initial = nn.Linear(control_channels, hidden)
        self.func = StableSDEFunc(kind, control_channels, hidden, num_layers=num_layers, form=form,
                                  geometric_factor=geometric_factor)
        self.readout = nn.Sequential(nn.Tanh(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.head = ClassifierHead(hidden, num_classes, dropout=dropout, grad_scale=head_grad_scale)
        self.method, self.dt, self.dt_min, self.adjoint = method, dt, dt_min, adjoint

    def latent(self, coeffs: Tensor, times: Tensor | None = None, *, bm: Any = None) -> Tensor:
        """:math:`z(t)` at the first and last knot, ``[2, B, H]``."""
        import torchsde

        path = self._path(coeffs, times)
        self.func.set_path(path)
        z0 = self.initial(path.evaluate(path.times[0]))
        ts = path.times[[0, -1]]
        dt = _fixed_dt(path.times, self.dt, self.dt_min)
        if bm is None and self.brownian == "grid" and not self.adjoint and self.method == "euler":
            bm = grid_brownian(float(ts[0]), float(ts[-1]), dt, tuple(z0.shape), dtype=z0.dtype, device=z0.device)
        solve = torchsde.sdeint_adjoint if self.adjoint else torchsde.sdeint
        return solve(self.func, z0, ts, bm=bm, method=self.method, dt=dt)

    def forward(self, coeffs: Tensor, times: Tensor | None = None) -> Tensor:
        return self.head(self.readout(self.latent(coeffs, times)[-1]))


class GRUDeltaT(_PathModel):
    r"""GRU-Δt baseline (Kidger et al., NeurIPS 2020, as in the Stable Neural SDE benchmark): the control path is the
    natural cubic spline of ``[t, cumulative observation count (D), values (D)]``; at every knot where some channel
    was observed, a GRU cell reads ``[Δt since the last update, observed mask (D), values (D)]``; otherwise the state
    is kept. The final state goes through ``Linear`` and :class:`ClassifierHead`.

    Args:
        control_channels (int): ``1 + 2 D``.
        num_classes (int): classes.
        hidden (int): GRU size. (default: ``32``)
        dropout (float): head dropout. (default: ``0.1``)
        head_grad_scale (float): last-layer gradient multiplier. (default: ``100.0``)
    """

    interpolation = "natural"
    intensity = True

    def __init__(self, control_channels: int, num_classes: int, *, hidden: int = 32, dropout: float = 0.1,
                 head_grad_scale: float = 100.0) -> None:
        super().__init__()
        if control_channels % 2 != 1:
            raise ConfigError(f"GRUDeltaT: control_channels must be 1 + 2 D (time, counts, values), got "
                              f"{control_channels}")
        self.control_channels = control_channels
        self.cell = nn.GRUCell(control_channels, hidden)
        self.linear = nn.Linear(hidden, hidden)
        self.head = ClassifierHead(hidden, num_classes, dropout=dropout, grad_scale=head_grad_scale)
        self.hidden = hidden

    def forward(self, coeffs: Tensor, times: Tensor | None = None) -> Tensor:
        path = self._path(coeffs, times)
        X = path.knot_values()  # [B, L, 1 + 2D]
        D = (self.control_channels - 1) // 2
        counts = X[..., 1:1 + D]
        observed = torch.cat([counts[:, :1], counts[:, 1:] - counts[:, :-1]], dim=1)  # count increments
        dts = torch.cat([path.times[:1] - path.times[0], path.times[1:] - path.times[:-1]])
        h = X.new_zeros(X.shape[0], self.hidden)
        since = X.new_zeros(X.shape[0])
        for k in range(X.shape[1]):
            since = since + dts[k]
            hit = observed[:, k].max(dim=-1).values > 0.5  # some channel observed at this knot
            inp = torch.cat([since.unsqueeze(-1), observed[:, k], X[:, k, 1 + D:]], dim=-1)
            h = torch.where(hit.unsqueeze(-1), self.cell(inp, h), h)
            since = torch.where(hit, torch.zeros_like(since), since)
        return self.head(self.linear(h))


class _CDEField(nn.Module):
    """Kidger's ``FinalTanh``: ``tanh(MLP(z))`` reshaped to ``[H, C]``, multiplied by ``dX/dt``."""

    def __init__(self, channels: int, hidden: int, hidden_hidden: int, num_layers: int) -> None:
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.inp = nn.Linear(hidden, hidden_hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden_hidden, hidden_hidden) for _ in range(num_layers - 1))
        self.out = nn.Linear(hidden_hidden, hidden * channels)
        self.path: CubicPath | None = None
        self.nfe = 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        h = self.inp(z).relu()
        for lin in self.layers:
            h = lin(h).relu()
        F = self.out(h).tanh().view(z.shape[0], self.hidden, self.channels)
        return (F @ self.path.derivative(t).unsqueeze(-1)).squeeze(-1)


class NeuralCDEClassifier(_PathModel):
    r"""Neural CDE baseline (Kidger et al., NeurIPS 2020): :math:`dz = \tanh(\mathrm{MLP}(z))\,dX`,
    :math:`z_0 = \mathrm{Linear}(X(t_0))`, on the natural cubic spline of ``[t, values]``; solved as the ODE
    :math:`\dot z = F(z)\,\dot X(t)` by torchdiffeq's fixed-step ``method`` (``"euler"`` as the benchmark code,
    ``"rk4"``) with the step :math:`\max(\min \Delta t, 10^{-3})`, or by our adaptive integrator for
    ``"tsit5"``/``"dopri5"``/``"bosh3"`` (``rtol``/``atol``). Readout ``Linear`` and :class:`ClassifierHead`.

    Args:
        control_channels (int): ``1 + D``.
        num_classes (int): classes.
        hidden (int): latent size. (default: ``32``)
        num_layers (int): vector-field MLP layers. (default: ``2``)
        method (str): solver. (default: ``"euler"``)
        rtol (float): adaptive solvers' rtol. (default: ``1e-3``)
        atol (float): adaptive solvers' atol. (default: ``1e-4``)
    """

    interpolation = "natural"

    def __init__(self, control_channels: int, num_classes: int, *, hidden: int = 32, num_layers: int = 2,
                 method: str = "euler", rtol: float = 1e-3, atol: float = 1e-4, dt_min: float = 1e-3,
                 dropout: float = 0.1, head_grad_scale: float = 100.0) -> None:
        super().__init__()
        self.control_channels = control_channels
        self.initial = nn.Linear(control_channels, hidden)
        self.field = _CDEField(control_channels, hidden, hidden, num_layers)
        self.linear = nn.Linear(hidden, hidden)
        self.head = ClassifierHead(hidden, num_classes, dropout=dropout, grad_scale=head_grad_scale)
        self.method, self.rtol, self.atol, self.dt_min = method, rtol, atol, dt_min

    def forward(self, coeffs: Tensor, times: Tensor | None = None) -> Tensor:
        path = self._path(coeffs, times)
        self.field.path = path
        z0 = self.initial(path.evaluate(path.times[0]))
        ts = path.times[[0, -1]]
        if self.method in ("tsit5", "dopri5", "bosh3"):
            from sciml.operators.ode.integrate import odeint
            zs = odeint(self.field, z0, ts, rtol=self.rtol, atol=self.atol, method=self.method,
                        options={"diagnostics": False})
        else:
            import torchdiffeq
            zs = torchdiffeq.odeint(self.field, z0, ts, method=self.method,
                                    options={"step_size": _fixed_dt(path.times, None, self.dt_min)})
        return self.head(self.linear(zs[-1]))


#: benchmark name -> (class, fixed keyword arguments).
TIMESERIES_MODELS: dict[str, tuple[type, dict[str, Any]]] = {
    "sde": (NeuralSDEClassifier, {"kind": "sde"}),
    "lsde": (NeuralSDEClassifier, {"kind": "lsde"}),
    "lnsde": (NeuralSDEClassifier, {"kind": "lnsde"}),
    "gsde": (NeuralSDEClassifier, {"kind": "gsde"}),
    "gru_dt": (GRUDeltaT, {}),
    "ncde": (NeuralCDEClassifier, {}),
}


def build_timeseries_model(name: str, num_values: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """A classifier of :data:`TIMESERIES_MODELS` for series with ``num_values`` channels; its ``interpolation``
    and ``intensity`` attributes say which control path it reads (:func:`~sciml.operators.ode.timeseries_task.
    control_coeffs`). ``kwargs`` go to the constructor (``hidden``, ``num_layers``, ``form``, ...)."""
    if name not in TIMESERIES_MODELS:
        raise ConfigError(f"model: unknown time-series model {name!r}; expected one of {sorted(TIMESERIES_MODELS)}")
    cls, fixed = TIMESERIES_MODELS[name]
    channels = 1 + (2 if cls.intensity else 1) * num_values
    return cls(channels, num_classes, **{**fixed, **kwargs})
