"""Shared pieces of the operator benchmarks (``operators_darcy``, ``operators_timedep``, ``operators_speed``): the
models at matched parameter counts (MgNO, SineNet, PDEArena U-Net, FNO), data loading through the project's
converters/generators and readers, training through :class:`sciml.train.Trainer`, and the PNG figures.

FNO is neuraloperator's ``neuralop.models.FNO`` when that package is importable, else our
``sciml.operators.fno.FNO2d`` (the same architecture: lifting, 4 Fourier layers, projection).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DOCS = Path(__file__).resolve().parents[1] / "docs"


def real_params(model: nn.Module) -> bool:
    """No complex parameters: the Trainer's fused non-finite check (``check_finite``) does not take complex
    gradients on the CPU (``_amp_foreach_non_finite_check_and_unscale_cpu`` is not implemented for ComplexFloat),
    so it is turned off for neuraloperator's FNO, whose spectral weights are complex."""
    return not any(p.is_complex() for p in model.parameters())


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------------------ FNO
def fno_backend() -> str | None:
    """``"neuraloperator <version>"``, ``"sciml.operators.fno"`` or None (no FNO available)."""
    import importlib.util

    if importlib.util.find_spec("neuralop") is not None:
        import neuralop
        return "neuraloperator " + getattr(neuralop, "__version__", "?")
    if importlib.util.find_spec("sciml.operators.fno") is not None:
        return "sciml.operators.fno"
    return None


def without_unavailable(models: list[str]) -> list[str]:
    """``models`` without ``"fno"`` when no FNO implementation is installed (with a note on stderr)."""
    if "fno" in models and fno_backend() is None:
        print("note: neuraloperator is not installed; the FNO runs are skipped (pip install neuraloperator)",
              file=sys.stderr)
        return [m for m in models if m != "fno"]
    return models


def make_fno(in_channels: int, out_channels: int, width: int, modes: int, n_layers: int = 4) -> nn.Module:
    """FNO with ``modes`` Fourier modes per axis counted the original way (``±modes`` kept on the full axis,
    ``modes`` on the half axis; neuraloperator's ``n_modes = 2 * modes``)."""
    try:
        from neuralop.models import FNO
    except ImportError:
        from sciml.operators.fno import FNO2d
        return FNO2d(in_channels, out_channels, width=width, modes=modes, num_layers=n_layers)
    return NeuralopFNO(FNO(n_modes=(2 * modes, 2 * modes), hidden_channels=width, in_channels=in_channels,
                           out_channels=out_channels, n_layers=n_layers))


class NeuralopFNO(nn.Module):
    """neuraloperator's FNO with a tensors-only ``state_dict``: neuraloperator adds a non-tensor ``_metadata`` entry
    (its constructor arguments) that the Trainer's best-weights copy (``restore_best``) cannot clone."""

    def __init__(self, fno: nn.Module) -> None:
        super().__init__()
        self.fno = fno

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        out = super().state_dict(*args, **kwargs)
        out.pop("_metadata", None)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fno(x)


def fno_for_budget(budget: int, in_channels: int, out_channels: int, modes: int) -> tuple[nn.Module, int]:
    """The FNO whose parameter count is closest to ``budget`` (searching the width)."""
    best = None
    for width in range(2, 257):
        n = count(make_fno(in_channels, out_channels, width, modes))
        if best is None or abs(n - budget) < abs(best[1] - budget):
            best = (width, n)
        if n > budget:
            break
    return make_fno(in_channels, out_channels, best[0], modes), best[0]


def unet_for_budget(budget: int, in_channels: int, out_channels: int, **kw: Any) -> tuple[nn.Module, int]:
    from sciml.operators.unet import ModernUNet, unet_hidden_for_budget

    hidden = unet_hidden_for_budget(budget, in_channels, out_channels, **kw)
    return ModernUNet(in_channels, out_channels, hidden_channels=hidden, **kw), hidden


# ------------------------------------------------------------------------------------------------------ data
def fields_from_h5(path: Path, split: str, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """All samples of a sciml-h5 ``fields`` split, stacked: ``{name: [N, T, C, H, W]}`` (channel-first)."""
    from sciml.datasets.reader import FieldDataset

    ds = FieldDataset(path, split, fields=list(names))
    out = {n: torch.stack([ds[i][n] for i in range(len(ds))]).permute(0, 1, 4, 2, 3).contiguous() for n in names}
    ds.close()
    return out


def convert_pt(pt: Path, cache: Path) -> Path:
    """neuraloperator ``.pt`` -> sciml-h5 through our converter (cached)."""
    from sciml.datasets.sources.torch_pt import convert_neuraloperator_pt
    from sciml.datasets.writer import write_spec

    out = cache / (pt.stem + ".h5")
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        write_spec(out, convert_neuraloperator_pt(pt))
    return out


def generate(name: str, cache: Path, **options: Any) -> Path:
    """Run one of our generators into a cached sciml-h5 file named after its options."""
    from sciml.datasets.generators import GENERATORS
    from sciml.datasets.writer import write_spec

    tag = "_".join(f"{k}{v}" for k, v in sorted(options.items()))
    out = cache / f"{name}_{tag}.h5"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        write_spec(out, GENERATORS.get(name)(**options))
    return out


def default_cache() -> Path:
    return Path(os.environ.get("SCIML_BENCH_CACHE", Path(tempfile.gettempdir()) / "sciml_operator_bench"))


# ------------------------------------------------------------------------------------------------------ timing
def timed_fit(trainer: Any) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    summary = trainer.fit()
    return summary, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------ figures
def figure(path: Path, title: str, panels: list[tuple[str, torch.Tensor]], ncols: int | None = None) -> None:
    """A row (or grid) of image panels ``(label, [H, W])`` with colour bars, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, img) in zip(axes.flat, panels):
        arr = img.detach().cpu().numpy()
        if "error" in label:  # diverging map centred at 0
            lim = float(abs(arr).max()) or 1.0
            im = ax.imshow(arr, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(arr, origin="lower", cmap="viridis")
        ax.set_title(label, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))


Builder = Callable[[], nn.Module]
