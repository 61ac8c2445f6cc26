"""Relative L2 and H1 against dense numpy computations (an explicit DFT matrix, np.gradient) and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.operators.losses import RelativeH1Loss, RelativeL2Loss, relative_h1, relative_l2, relative_lp


def _rand(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def test_relative_l2_by_hand():
    p, t = _rand(3, 2, 5, 4, seed=1), _rand(3, 2, 5, 4, seed=2)
    pn, tn = p.numpy(), t.numpy()
    per = [np.sqrt(((pn[i] - tn[i]) ** 2).sum()) / np.sqrt((tn[i] ** 2).sum()) for i in range(3)]
    np.testing.assert_allclose(relative_l2(p, t, reduction="none").numpy(), per, rtol=1e-12)
    np.testing.assert_allclose(float(relative_l2(p, t)), np.mean(per), rtol=1e-12)
    np.testing.assert_allclose(float(RelativeL2Loss("sum")(p, t)), np.sum(per), rtol=1e-12)
    per1 = [np.abs(pn[i] - tn[i]).sum() / np.abs(tn[i]).sum() for i in range(3)]
    np.testing.assert_allclose(relative_lp(p, t, p=1, reduction="none").numpy(), per1, rtol=1e-12)


def _dft(n):
    j = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(j, j) / n) / np.sqrt(n)


def _h1_dense(x, a, trunc):
    """sqrt(sum |F x|^2 (1 + a^2 (kx^2 + ky^2))) with an explicit DFT matrix and hand-listed wavenumbers."""
    h, w = x.shape[-2:]
    fx = np.einsum("ij,...jk,lk->...il", _dft(h), x, _dft(w))
    kx = np.array([k if k <= (h - 1) // 2 else k - h for k in range(h)], float)   # 0, 1, .., -1
    ky = np.array([k if k <= (w - 1) // 2 else k - w for k in range(w)], float)
    if h % 2 == 0:
        kx[h // 2] = -h // 2
    if w % 2 == 0:
        ky[w // 2] = -w // 2
    kx, ky = np.abs(kx), np.abs(ky)
    if trunc is not None:
        kx[kx >= trunc] = 0
        ky[ky >= trunc] = 0
    weight = 1 + a ** 2 * (kx[:, None] ** 2 + ky[None, :] ** 2)
    return np.sqrt((np.abs(fx) ** 2 * weight).reshape(x.shape[0], -1).sum(1))


@pytest.mark.parametrize("shape,a,trunc", [((7, 10), 1.0, 3), ((8, 8), 2.0, None), ((5, 6), 0.5, 20)])
def test_spectral_h1_against_a_dense_dft(shape, a, trunc):
    p, t = _rand(4, 2, *shape, seed=3), _rand(4, 2, *shape, seed=4)
    ref = _h1_dense((p - t).numpy(), a, trunc) / _h1_dense(t.numpy(), a, trunc)
    got = relative_h1(p, t, a=a, truncation=trunc, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)


def test_spectral_h1_of_orthogonal_sines_closed_form():
    # target sin(2 pi x), error sin(2 pi 3 x) on the periodic grid: ratio sqrt((1 + 9 a^2) / (1 + a^2))
    n, a = 32, 1.5
    x = torch.arange(n, dtype=torch.double) / n
    target = torch.sin(2 * math.pi * x)[:, None].expand(n, n)[None, None]
    error = torch.sin(2 * math.pi * 3 * x)[:, None].expand(n, n)[None, None]
    got = float(relative_h1(target + error, target, a=a, truncation=None))
    assert got == pytest.approx(math.sqrt((1 + 9 * a * a) / (1 + a * a)), rel=1e-12)
    # truncation at 3: the k = 3 error mode keeps only its L2 weight
    got = float(relative_h1(target + error, target, a=a, truncation=3))
    assert got == pytest.approx(math.sqrt(1 / (1 + a * a)), rel=1e-12)


def test_finite_difference_h1_against_numpy_gradient():
    p, t = _rand(3, 1, 9, 6, seed=5), _rand(3, 1, 9, 6, seed=6)

    def norm(x, dx, dy):
        gx, gy = np.gradient(x, dx, dy, axis=(-2, -1))
        return np.sqrt((x ** 2 + gx ** 2 + gy ** 2).reshape(x.shape[0], -1).sum(1))

    e, tn = (p - t).numpy(), t.numpy()
    ref = norm(e, 1 / 8, 1 / 5) / norm(tn, 1 / 8, 1 / 5)
    np.testing.assert_allclose(relative_h1(p, t, method="fd", reduction="none").numpy(), ref, rtol=1e-12)
    ref = norm(e, 0.1, 0.3) / norm(tn, 0.1, 0.3)
    got = RelativeH1Loss(method="fd", spacing=(0.1, 0.3), reduction="none")(p, t)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_finite_difference_h1_converges_to_the_continuous_norm():
    # u = sin(pi x) sin(pi y), e = sin(2 pi x) sin(pi y) on [0,1]^2: |u|_H1^2 = 1/4 + pi^2/2,
    # |e|_H1^2 = 1/4 + 5 pi^2 / 4 (L2 part 1/4, gradient part (4 + 1) pi^2 / 4)
    n = 257
    s = torch.linspace(0, 1, n, dtype=torch.double)
    u = (torch.sin(math.pi * s)[:, None] * torch.sin(math.pi * s)[None, :])[None, None]
    e = (torch.sin(2 * math.pi * s)[:, None] * torch.sin(math.pi * s)[None, :])[None, None]
    exact = math.sqrt((0.25 + 5 * math.pi ** 2 / 4) / (0.25 + math.pi ** 2 / 2))
    assert float(relative_h1(u + e, u, method="fd")) == pytest.approx(exact, rel=2e-2)


def test_bad_input():
    with pytest.raises(ShapeError, match="differ in shape"):
        relative_l2(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="method"):
        relative_h1(torch.zeros(1, 4, 4), torch.ones(1, 4, 4), method="fft")
    with pytest.raises(ConfigError, match="reduction"):
        relative_l2(torch.zeros(1, 4), torch.ones(1, 4), reduction="avg")
