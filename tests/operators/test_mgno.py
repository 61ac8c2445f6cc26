"""MgNO: the paper's parameter count, the V-cycle against an explicit functional computation, shape handling on
odd grids, and boundary conditions through the padding mode (periodic shift equivariance, constant inputs)."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.operators._conv import Prolongation
from sciml.operators.mgno import DARCY_ITERATIONS, MgConv, MgNO, parse_iterations


def test_paper_darcy_configuration_has_572661_parameters():
    # the paper's "0.57M": 6 levels, 24 channels, 4 layers, one input channel (official MgNO_DC)
    model = MgNO(1, 1, hidden_channels=24, num_layers=4, num_iterations=DARCY_ITERATIONS)
    assert sum(p.numel() for p in model.parameters()) == 572_661


def test_parameter_count_by_hand():
    # one layer, C_f=2 -> C_u=3, levels (2,1), (1,0), (1,0); restrict the residual
    cu, cf = 3, 2
    conv = MgConv(cf, cu, num_iterations=[(2, 1), 1, (1, 0)], restrict="residual", bias=True)
    smoother = (9 * cu * cf + cf) + (9 * cf * cu + cu)            # A and S with biases
    expected = (9 * cf * cu + cu)                                   # the initial S on the finest level
    expected += smoother                                            # level 0: one more pre-smoothing step
    expected += smoother                                            # level 0: one post-smoothing step
    expected += 2 * smoother                                        # levels 1 and 2: one step each
    expected += 2 * (9 * cu * cu + 9 * cf * cf + 9 * cu * cf + cf)  # Pi, R and the residual's A, twice
    expected += 2 * 16 * cu * cu                                    # 4x4 prolongations
    assert sum(p.numel() for p in conv.parameters()) == expected


def _conv(x, layer, stride=1):
    mode = layer.padding_mode
    xp = F.pad(x, (1, 1, 1, 1), mode="constant" if mode == "zeros" else mode)
    return F.conv2d(xp, layer.weight, layer.bias, stride=stride)


def _prolong(u, weight, size, mode):
    # periodic / zero extension written out: fine[o] += w[k] * coarse[i] for o = 2 i - 1 + k
    n1, n2 = u.shape[-2:]
    out = torch.zeros(u.shape[0], weight.shape[1], *size, dtype=u.dtype)
    for i1, i2, k1, k2 in itertools.product(range(-1, n1 + 1), range(-1, n2 + 1), range(4), range(4)):
        o1, o2 = 2 * i1 - 1 + k1, 2 * i2 - 1 + k2
        if not (0 <= o1 < size[0] and 0 <= o2 < size[1]):
            continue
        if mode == "circular":
            j1, j2 = i1 % n1, i2 % n2
        elif 0 <= i1 < n1 and 0 <= i2 < n2:
            j1, j2 = i1, i2
        else:
            continue
        out[:, :, o1, o2] += torch.einsum("bi,io->bo", u[:, :, j1, j2], weight[:, :, k1, k2])
    return out


@pytest.mark.parametrize("mode,size", [("zeros", (9, 12)), ("circular", (8, 12)), ("zeros", (8, 8))])
def test_two_level_cycle_against_explicit_computation(mode, size):
    torch.manual_seed(0)
    conv = MgConv(2, 3, num_iterations=[(1, 1), 2], padding_mode=mode).double()
    f = torch.randn(2, 2, *size, dtype=torch.double)
    u0 = _conv(f, conv.init_smoother)
    r = conv.restrictions[0]
    u1, f1 = _conv(u0, r.Pi, 2), _conv(f, r.R, 2)
    assert u1.shape[-2:] == ((size[0] + 1) // 2, (size[1] + 1) // 2)
    for sm in conv.pre[1]:
        u1 = u1 + _conv(f1 - _conv(u1, sm.A), sm.S)
    u = u0 + _prolong(u1, conv.prolongations[0].weight, size, mode)
    sm = conv.post[0][0]
    u = u + _conv(f - _conv(u, sm.A), sm.S)
    torch.testing.assert_close(conv(f), u, rtol=1e-10, atol=1e-10)


def test_prolongation_zeros_equals_conv_transpose_and_crops_odd_sizes():
    torch.manual_seed(1)
    p = Prolongation(3, 2, "zeros")
    ref = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, bias=False)
    ref.weight.data.copy_(p.weight.data)
    x = torch.randn(2, 3, 5, 6)
    full = ref(x)
    assert full.shape[-2:] == (10, 12)
    torch.testing.assert_close(p(x, (10, 12)), full)
    torch.testing.assert_close(p(x, (9, 11)), full[..., :9, :11])
    with pytest.raises(ShapeError, match="coarse grid of 5x6"):
        p(x, (12, 12))


def test_restriction_sizes_follow_the_actual_shapes_on_odd_grids():
    conv = MgConv(1, 2, num_iterations=[1, 1, 1, 1])
    seen = []
    for r in conv.restrictions:
        r.Pi.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    out = conv(torch.randn(1, 1, 17, 23))
    assert out.shape == (1, 2, 17, 23)
    # ceil(n / 2) per halving: 17 -> 9 -> 5 -> 3, 23 -> 12 -> 6 -> 3
    assert seen == [(9, 12), (5, 6), (3, 3)]
    assert conv.level_sizes(17, 23) == [(17, 23), (9, 12), (5, 6), (3, 3)]


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (33, 64), (5, 7), (40, 24)])
def test_shape_agnostic_forward(size):
    torch.manual_seed(0)
    model = MgNO(2, 3, hidden_channels=4, num_layers=2, num_iterations=[1, 1, 1, 2])
    x = torch.randn(2, 2, *size)
    y = model(x)
    assert y.shape == (2, 3, *size) and torch.isfinite(y).all()
    y.sum().backward()  # gradients flow through every kernel
    assert all(p.grad is not None for p in model.parameters())


def test_circular_padding_commutes_with_periodic_shifts():
    torch.manual_seed(0)
    kw = dict(hidden_channels=4, num_layers=2, num_iterations=[1, 1, 2])
    x = torch.randn(1, 1, 16, 24, dtype=torch.double)
    shift = (4, 8)  # multiples of the coarsest stride 2**(levels-1) = 4
    circ = MgNO(1, 1, padding_mode="circular", **kw).double()
    torch.testing.assert_close(circ(torch.roll(x, shift, (-2, -1))), torch.roll(circ(x), shift, (-2, -1)))
    zeros = MgNO(1, 1, padding_mode="zeros", **kw).double()
    zeros.load_state_dict(circ.state_dict())
    gap = (zeros(torch.roll(x, shift, (-2, -1))) - torch.roll(zeros(x), shift, (-2, -1))).abs().max()
    assert gap > 1e-3  # the walls break the symmetry
    # same weights, different boundary: the two models agree far from the walls only
    diff = (zeros(x) - circ(x)).abs()[0, 0]
    assert diff[:, 0].max() > 1e-3


@pytest.mark.parametrize("mode,constant", [("circular", True), ("reflect", True), ("zeros", False)])
def test_padding_mode_sets_the_boundary_of_every_convolution(mode, constant):
    # on one level every operator is a stride-1 3x3 convolution: circular and reflect padding map a constant
    # field to a constant field, zero padding changes the values next to the walls
    torch.manual_seed(0)
    model = MgNO(1, 1, hidden_channels=3, num_layers=2, num_iterations=[3], padding_mode=mode).double()
    y = model(torch.full((1, 1, 12, 10), 0.7, dtype=torch.double))[0, 0]
    assert torch.allclose(y, y[0, 0].expand_as(y), atol=1e-12) == constant
    # and on every level of a multigrid model, the transposed convolutions included
    deep = MgNO(1, 1, hidden_channels=3, num_layers=2, num_iterations=[1, 1, 1], padding_mode=mode)
    convs = [m for m in deep.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    prolongations = [m for m in deep.modules() if isinstance(m, Prolongation)]
    assert len(convs) == 2 * (1 + 2 * 2 + 2 * 2) and len(prolongations) == 4
    assert {m.padding_mode for m in convs} == {mode} and {m.padding_mode for m in prolongations} == {mode}


def test_residual_restriction_with_zero_A_equals_restricting_f():
    torch.manual_seed(0)
    kw = dict(hidden_channels=4, num_layers=2, num_iterations=[1, 1, 1])
    plain = MgNO(1, 1, **kw)
    res = MgNO(1, 1, restrict="residual", **kw)
    missing = res.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".A." in k for k in missing)
    x = torch.randn(2, 1, 12, 10)
    assert not torch.allclose(res(x), plain(x))
    with torch.no_grad():
        for layer in res.layers:
            for r in layer.restrictions:
                r.A.weight.zero_()
    torch.testing.assert_close(res(x), plain(x))


def test_navier_stokes_variant_learns_the_increment():
    torch.manual_seed(0)
    model = MgNO(1, 1, hidden_channels=4, num_layers=2, num_iterations=[1, 1, 2], padding_mode="circular",
                 linear_skip=False, norm="layer", residual_output=True)
    assert model.linears is None
    with torch.no_grad():
        model.output.weight.zero_()
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(model(x), x)
    # the layer norm has no size baked in: other grids work
    assert model(torch.randn(1, 1, 20, 12)).shape == (1, 1, 20, 12)


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="padding_mode"):
        MgNO(1, padding_mode="replicate")
    with pytest.raises(ConfigError, match=r"num_iterations\[0\]"):
        MgConv(1, 2, num_iterations=[(0, 1), 1])
    with pytest.raises(ConfigError, match=r"num_iterations\[1\]"):
        parse_iterations([1, (1, -1)])
    with pytest.raises(ConfigError, match="restrict"):
        MgConv(1, 2, restrict="residuals")
    with pytest.raises(ConfigError, match="residual_output"):
        MgNO(1, 2, residual_output=True)
    with pytest.raises(ShapeError, match=r"expected input \[B, 1, H, W\]"):
        MgNO(1)(torch.randn(1, 2, 8, 8))
    with pytest.raises(ShapeError, match="reflect padding"):
        MgNO(1, hidden_channels=2, num_layers=1, num_iterations=[1, 1, 1], padding_mode="reflect")(
            torch.randn(1, 1, 4, 4))
    assert parse_iterations([1, (2, 1)]) == ((1, 0), (2, 1))


def test_field_pairs_and_regression_task_on_a_generated_darcy_file(tmp_path):
    from sciml.datasets.generators import GENERATORS
    from sciml.datasets.reader import FieldDataset
    from sciml.datasets.writer import write_spec
    from sciml.operators.field_tasks import FieldRegressionTask, field_pairs
    from sciml.operators.losses import relative_h1, relative_l2

    path = tmp_path / "darcy.h5"
    write_spec(path, GENERATORS.get("darcy")(num_train=6, num_val=0, num_test=2, resolution=9, seed=0))
    data = field_pairs(str(path), val_split="test", num_val=0)
    raw = FieldDataset(path, "train")
    a = torch.stack([raw[i]["a"][0, :, :, 0] for i in range(6)])[:, None]
    u = torch.stack([raw[i]["u"][0, :, :, 0] for i in range(6)])[:, None]
    raw.close()
    x, y = data["train"].tensors
    torch.testing.assert_close(y, u)
    torch.testing.assert_close(x, (a - a.mean()) / a.std())  # one scalar mean/std (MgNO's GN)
    assert data["val"].tensors[0].shape == (2, 1, 9, 9)
    held = field_pairs(str(path), num_val=2)
    assert len(held["train"]) == 4 and torch.equal(held["val"].tensors[1], u[4:])
    model = MgNO(1, 1, hidden_channels=3, num_layers=1, num_iterations=[1, 1])
    yn = data["task_kwargs"]["y_normalizer"]
    task = FieldRegressionTask("l2", y_normalizer=yn)
    with torch.no_grad():
        out = task.validation_step(model, (x, y))
        pred = model(x) * (u.std() + 1e-8) + u.mean()  # one scalar mean/std of the training outputs
    assert float(out["rel_l2"]) == pytest.approx(float(relative_l2(pred, y)), rel=1e-6)
    assert float(out["rel_h1"]) == pytest.approx(float(relative_h1(pred, y)), rel=1e-6)
    assert float(out["loss"]) == float(out["rel_l2"])


def test_darcy_config_builds_the_paper_model_and_trains(tmp_path):
    """configs/mgno_darcy.yaml through the registries: the paper's 572,661-parameter model on a Darcy file our
    generator writes; six epochs on 4 samples run and reports the relative errors."""
    from pathlib import Path

    from sciml.config import load_config
    from sciml.datasets.cli import generate
    from sciml.experiment import build

    path = tmp_path / "darcy.h5"
    generate("darcy", path, ["num_train=4", "num_val=2", "num_test=2", "resolution=32"], progress="none")
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "mgno_darcy.yaml",
                      [f"data.path={path}", "trainer.max_epochs=6", "trainer.batch_size=4"])
    exp = build(cfg, handle_signals=False, progress="none")
    assert isinstance(exp.model, MgNO) and sum(p.numel() for p in exp.model.parameters()) == 572661
    summary = exp.trainer.fit()
    assert summary["epochs"] == 6
    metrics = exp.trainer.evaluate(exp.val_data)
    assert metrics["rel_l2"] > 0 and metrics["rel_h1"] >= metrics["rel_l2"] * 0.5
