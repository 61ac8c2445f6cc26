"""Sparse node features (sciml.gnn.features): dropout on stored values, the first linear layer on the CSR pattern,
equal to the dense path with the same mask (forward and gradients), and the dense dropout's distribution."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sciml.errors import ShapeError
from sciml.gnn.features import dropout, feature_matrix, is_sparse, linear, sparse_dropout

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def sparse_x(n=30, f=40, density=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < density) + 0.0


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_dropout_drops_stored_values_with_scaling(layout):
    x = sparse_x(200, 300, density=0.2)
    xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
    torch.manual_seed(0)
    out = sparse_dropout(xs, 0.3, training=True)
    assert out.layout == xs.layout and out.shape == xs.shape
    dense_out = out.to_dense()
    stored = x != 0
    kept = dense_out != 0
    assert not bool((kept & ~stored).any())                          # nothing appears outside the pattern
    torch.testing.assert_close(dense_out[kept], x[kept] / 0.7)       # survivors scaled by 1 / (1 - p)
    frac = kept.sum().item() / stored.sum().item()
    n = stored.sum().item()
    assert abs(frac - 0.7) < 5 * (0.21 / n) ** 0.5                   # 5 sigma of a binomial proportion
    assert sparse_dropout(xs, 0.3, training=False) is xs
    assert sparse_dropout(xs, 0.0, training=True) is xs


def test_dense_dropout_distribution_and_gradient():
    torch.manual_seed(1)
    x = torch.rand(400, 500) + 0.5
    out = dropout(x, 0.8, training=True)
    kept = out != 0
    n = x.numel()
    assert abs(kept.float().mean().item() - 0.2) < 5 * (0.16 / n) ** 0.5
    torch.testing.assert_close(out[kept], x[kept] * 5.0)
    assert dropout(x, 0.8, training=False) is x
    h = torch.rand(50, 8, requires_grad=True)
    y = dropout(h, 0.5, training=True)
    y.sum().backward()
    torch.testing.assert_close(h.grad, (y != 0).float() * 2.0)        # gradient = the mask, scaled
    with pytest.raises(ShapeError, match=r"\[0, 1\)"):
        dropout(x, 1.0, training=True)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_linear_on_sparse_equals_dense_with_the_same_mask(layout):
    x = sparse_x()
    xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
    torch.manual_seed(3)
    layer = nn.Linear(40, 6)
    # eval: exactly the dense layer, forward and gradients
    out_s = linear(xs, layer)
    out_s.square().sum().backward()
    gs = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    out_d = layer(x)
    out_d.square().sum().backward()
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-6)
    for a, p in zip(gs, layer.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
    # training: linear() drops the stored values (in CSR order) with the RNG state it is given; rebuilding that
    # mask densely and applying the dense layer gives the same output and gradients
    layer.zero_grad()
    torch.manual_seed(11)
    out_s = linear(xs, layer, dropout=0.5, training=True)
    out_s.square().sum().backward()
    gs = [p.grad.clone() for p in layer.parameters()]
    torch.manual_seed(11)
    adj = feature_matrix(xs)
    values = dropout(adj.value, 0.5, training=True)
    x_dropped = torch.zeros_like(x).index_put_((adj.row, adj.col), values, accumulate=True)
    assert 0 < int((x_dropped != 0).sum()) < int((x != 0).sum())
    layer.zero_grad()
    out_d = layer(x_dropped)
    out_d.square().sum().backward()
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-6)
    for a, p in zip(gs, layer.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
    # and without the bias
    torch.testing.assert_close(linear(xs, layer, bias=False), x @ layer.weight.T, rtol=1e-5, atol=1e-6)


def test_uncoalesced_coo_sums_duplicates():
    idx = torch.tensor([[0, 0, 1, 2], [1, 1, 0, 3]])
    xs = torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0, 3.0, 4.0]), (3, 4), check_invariants=False)
    layer = nn.Linear(4, 2)
    torch.testing.assert_close(linear(xs, layer), layer(xs.to_dense()))


def test_feature_matrix_is_cached_per_tensor():
    x = sparse_x()
    xs = x.to_sparse_csr()
    a = feature_matrix(xs)
    assert feature_matrix(xs) is a
    assert a.shape == (30, 40)
    torch.testing.assert_close(a.to_dense(), x)
    assert feature_matrix(x.to_sparse_csr()) is not a
    assert is_sparse(xs) and is_sparse(x.to_sparse()) and not is_sparse(x)


def test_errors():
    layer = nn.Linear(40, 3)
    xs = sparse_x().to_sparse_csr()
    with pytest.raises(ShapeError, match="expects 40"):
        linear(sparse_x(f=12).to_sparse_csr(), layer)
    with pytest.raises(ShapeError, match="requires_grad"):
        linear(sparse_x().to_sparse().requires_grad_(), layer)
    with pytest.raises(ShapeError, match="floating"):
        feature_matrix(torch.ones(3, 3, dtype=torch.long).to_sparse())
    with pytest.raises(ShapeError, match="sparse"):
        feature_matrix(torch.ones(3, 3))
    with pytest.raises(ShapeError, match=r"\[0, 1\)"):
        linear(xs, layer, dropout=-0.1)
