"""Baselines of the operator benchmarks: the PDEArena U-Net (parameter count by hand, shapes, boundary handling) and
FNO's spectral convolution measured as a black box against the dense 2D DFT (which Fourier modes it keeps, and
that it acts as one channel-mixing matrix per kept mode)."""
from __future__ import annotations

import importlib.util
import itertools
import math

import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.operators.unet import ModernUNet, unet_hidden_for_budget


def _conv(cin, cout, k):
    return cin * cout * k * k + cout


def _res(cin, cout):
    return 2 * cin + 2 * cout + _conv(cin, cout, 3) + _conv(cout, cout, 3) + (_conv(cin, cout, 1) if cin != cout else 0)


def test_unet_parameter_count_by_hand():
    # hidden 4, ch_mults (1, 2), one block per level: channels 4 -> 4 -> 8
    model = ModernUNet(3, 2, hidden_channels=4, ch_mults=(1, 2), num_blocks=1)
    expected = _conv(3, 4, 3)                                   # lift
    expected += _res(4, 4) + _conv(4, 4, 3) + _res(4, 8)        # down: level 0 block, downsample, level 1 block
    expected += 2 * _res(8, 8)                                  # middle
    # up, level 1: one block with the skip (8 + 8 -> 8), the last block reduces (8 + 4 (downsample skip) -> 4)
    expected += _res(16, 8) + _res(12, 4)
    expected += 4 * 4 * 16 + 4                                  # 4x4 transposed conv with bias
    # up, level 0: (4 + 4 -> 4) twice (skips: the level-0 block and the lift)
    expected += 2 * _res(8, 4)
    expected += 2 * 4 + _conv(4, 2, 3)                          # final GroupNorm and output conv
    assert model.num_parameters() == expected


@pytest.mark.parametrize("size", [(16, 16), (24, 40), (19, 13)])
def test_unet_shapes_including_odd_grids(size):
    model = ModernUNet(2, 1, hidden_channels=8, ch_mults=(1, 2, 2), num_blocks=1)
    assert model(torch.randn(2, 2, *size)).shape == (2, 1, *size)
    x5 = torch.randn(2, 2, 1, 16, 16)
    torch.testing.assert_close(model(x5), model(x5.reshape(2, 2, 16, 16)))


def test_unet_circular_padding_commutes_with_periodic_shifts():
    torch.manual_seed(0)
    kw = dict(hidden_channels=8, ch_mults=(1, 2, 2), num_blocks=1)
    circ = ModernUNet(1, 1, padding_mode="circular", **kw).double()
    zeros = ModernUNet(1, 1, padding_mode="zeros", **kw).double()
    zeros.load_state_dict(circ.state_dict())
    x = torch.randn(1, 1, 16, 24, dtype=torch.double)
    s = (4, 8)  # multiples of 2**(resolutions - 1)
    torch.testing.assert_close(circ(torch.roll(x, s, (-2, -1))), torch.roll(circ(x), s, (-2, -1)))
    assert (zeros(torch.roll(x, s, (-2, -1))) - torch.roll(zeros(x), s, (-2, -1))).abs().max() > 1e-4


def test_unet_budget_search_and_errors():
    budget = 400_000
    hidden = unet_hidden_for_budget(budget, 1, 1, ch_mults=(1, 2, 2))
    counts = {c: ModernUNet(1, 1, hidden_channels=c, ch_mults=(1, 2, 2)).num_parameters()
              for c in (hidden - 1, hidden, hidden + 1)}
    assert min(counts, key=lambda c: abs(counts[c] - budget)) == hidden
    with pytest.raises(ConfigError, match="ch_mults"):
        ModernUNet(1, 1, ch_mults=())
    with pytest.raises(ShapeError, match="expected"):
        ModernUNet(2, 1, hidden_channels=8)(torch.randn(1, 3, 16, 16))


# ------------------------------------------------------------------------------------------------ FNO
def _spectral_convs():
    out = []
    if importlib.util.find_spec("sciml.operators.fno") is not None:
        from sciml.operators.fno import SpectralConv2d

        out.append(pytest.param(lambda cin, cout, m: SpectralConv2d(cin, cout, m, m), "original", id="sciml"))
    if importlib.util.find_spec("neuralop") is not None:
        def make(cin, cout, m):
            from neuralop.layers.spectral_convolution import SpectralConv
            return SpectralConv(cin, cout, n_modes=(2 * m, 2 * m))
        out.append(pytest.param(make, "neuralop", id="neuraloperator"))
    if not out:
        out.append(pytest.param(None, None, marks=pytest.mark.skip(reason="no FNO implementation installed")))
    return out


@pytest.mark.parametrize("make,convention", _spectral_convs())
def test_spectral_conv_against_the_dense_dft(make, convention):
    """The layer, minus its response to 0 (a bias), must be a circular convolution: in the dense 2D DFT basis
    (explicit DFT matrices) one ``C_out x C_in`` matrix per wavenumber, nonzero exactly on the kept modes, whose
    set tells the implementation's mode convention (checked below)."""
    torch.manual_seed(0)
    h = w = 12
    cin, cout, m = 2, 3, 3
    # neuraloperator keeps complex float32 weights (casting the module would drop their imaginary parts)
    dtype, tol = (torch.double, 1e-9) if convention == "original" else (torch.float32, 1e-4)
    layer = make(cin, cout, m)
    if dtype == torch.double:
        layer = layer.double()

    def lin(x):
        return layer(x) - layer(torch.zeros_like(x))

    # dense matrix of the map, column by column (impulses)
    n = cin * h * w
    eye = torch.eye(n, dtype=dtype).reshape(n, cin, h, w)
    with torch.no_grad():
        cols = lin(eye).reshape(n, cout * h * w).T.double()   # [cout*h*w, cin*h*w]
    j = torch.arange(h, dtype=torch.double)
    fh = torch.exp(-2j * math.pi * torch.outer(j, j) / h)     # dense DFT matrices
    fw = torch.exp(-2j * math.pi * torch.outer(j, j) / w)
    f2 = torch.kron(fh, fw)                                   # acts on flattened [h, w]
    ident_out, ident_in = torch.eye(cout, dtype=torch.cdouble), torch.eye(cin, dtype=torch.cdouble)
    fo, fi = torch.kron(ident_out, f2), torch.kron(ident_in, f2)
    sym = fo @ cols.to(torch.cdouble) @ torch.linalg.inv(fi)  # the operator in Fourier coordinates
    sym = sym.reshape(cout, h * w, cin, h * w)
    # diagonal in the wavenumber: no coupling between different (kx, ky)
    off = sym.clone()
    for k in range(h * w):
        off[:, k, :, k] = 0
    scale = sym.abs().max()
    assert off.abs().max() < tol * scale
    # which modes are kept: energy of each wavenumber's C_out x C_in block
    energy = torch.stack([sym[:, k, :, k].abs().max() for k in range(h * w)]).reshape(h, w)
    kept = {(kx if kx <= h // 2 else kx - h, ky if ky <= w // 2 else ky - w)
            for kx, ky in itertools.product(range(h), range(w)) if energy[kx, ky] > tol * scale}
    # a real map: the kept set is closed under k -> -k (no Nyquist mode is involved at h = 12, m = 3)
    assert kept == {(-a, -b) for a, b in kept}
    # the half-axis (rfft) modes each implementation keeps; the others follow by conjugate symmetry
    if convention == "original":   # FNO (Li et al.): rows 0..m-1 and the last m, columns 0..m-1
        half = {(kx, ky) for kx in range(-m, m) for ky in range(0, m)}
    else:                          # neuraloperator: n_modes = (2m, 2m) keeps ±m rows and m + 1 columns
        half = {(kx, ky) for kx in range(-m, m) for ky in range(0, m + 1)}
    expected = half | {(-a, -b) for a, b in half}
    assert kept == expected, (convention, sorted(kept - expected), sorted(expected - kept))
