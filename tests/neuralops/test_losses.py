"""Lp and Sobolev norms/errors against analytic values and independent computations."""

import math

import pytest
import torch

from neuralops.losses import (
    LpLoss,
    SobolevLoss,
    lp_error,
    lp_norm,
    relative_lp_error,
    relative_sobolev_error,
    sine_coefficients,
    sobolev_error,
    sobolev_norm,
)

S_VALUES = [-2, -1, -0.5, 0, 1, 2]
F64 = torch.float64


def periodic_grid(n, box, dim):
    axes = [torch.arange(n, dtype=F64) * box / n for _ in range(dim)]
    return torch.meshgrid(*axes, indexing="ij")


@pytest.mark.parametrize("s", S_VALUES)
@pytest.mark.parametrize("box", [1.0, 2 * math.pi])
def test_periodic_single_fourier_modes(s, box):
    # u = cos(2 pi m.x / L): coefficients 1/2 at +-m, so ||u||^2 = |Omega| / 2 (1 + 4 pi^2 |m/L|^2)^s
    for dim, m in ((1, (3,)), (2, (2, -5)), (3, (1, 0, 4))):
        x = periodic_grid(16, box, dim)
        phase = sum(mi * xi for mi, xi in zip(m, x))
        k2 = sum(mi**2 for mi in m) / box**2
        volume = box**dim
        for wave in (torch.cos, torch.sin):
            u = wave(2 * math.pi * phase / box)[None]
            expected = volume / 2 * (1 + 4 * math.pi**2 * k2) ** s
            got = sobolev_norm(u, s, dim=dim, box=box, squared=True)
            assert got.item() == pytest.approx(expected, rel=1e-12)
    # the constant mode and the Nyquist mode (-1)^j are single coefficients of size 1
    u = torch.full((1, 8, 8), 3.0, dtype=F64)
    assert sobolev_norm(u, s, box=box, squared=True).item() == pytest.approx(9 * box**2, rel=1e-12)
    j = torch.arange(8, dtype=F64)
    u = ((-1.0) ** j)[None, None, :].expand(1, 8, 8)
    expected = box**2 * (1 + 4 * math.pi**2 * 16 / box**2) ** s
    assert sobolev_norm(u, s, box=box, squared=True).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("s", S_VALUES)
@pytest.mark.parametrize("box", [1.0, 3.0])
def test_dirichlet_single_sine_modes(s, box):
    # u = sin(pi m x / L) sin(pi n y / L) on interior nodes: b = 1 at (m, n),
    # ||u||^2 = |Omega| / 4 (1 + pi^2 (m^2 + n^2) / L^2)^s
    m_int = 15
    x = torch.arange(1, m_int + 1, dtype=F64) * box / (m_int + 1)
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    for m, n in ((1, 1), (3, 7), (15, 2)):
        u = (torch.sin(math.pi * m * gx / box) * torch.sin(math.pi * n * gy / box))[None]
        expected = box**2 / 4 * (1 + math.pi**2 * (m**2 + n**2) / box**2) ** s
        got = sobolev_norm(u, s, box=box, boundary="dirichlet", squared=True)
        assert got.item() == pytest.approx(expected, rel=1e-12)
        # the same data with its (zero) boundary nodes
        full = torch.nn.functional.pad(u, (1, 1, 1, 1))
        got = sobolev_norm(full, s, box=box, boundary="dirichlet", includes_boundary=True, squared=True)
        assert got.item() == pytest.approx(expected, rel=1e-12)
    # 1-d
    u = torch.sin(math.pi * 4 * x / box)[None]
    expected = box / 2 * (1 + math.pi**2 * 16 / box**2) ** s
    assert sobolev_norm(u, s, dim=1, box=box, boundary="dirichlet", squared=True).item() == pytest.approx(
        expected, rel=1e-12
    )


def test_sine_coefficients_match_the_dst_matrix():
    torch.manual_seed(0)
    u = torch.randn(3, 7, 9, dtype=F64)
    b = sine_coefficients(u, dim=2)

    # independent: invert u = S_x b S_y^T with the explicit DST-I synthesis matrices
    def synthesis(m):
        j = torch.arange(1, m + 1, dtype=F64)
        return torch.sin(math.pi * j[:, None] * j[None, :] / (m + 1))

    sx, sy = synthesis(7), synthesis(9)
    torch.testing.assert_close(sx @ b @ sy.T, u, rtol=1e-12, atol=1e-12)


def test_h0_is_the_l2_norm():
    torch.manual_seed(0)
    u = torch.randn(4, 3, 12, 10, dtype=F64)
    for box in (1.0, (2.0, 0.5)):
        torch.testing.assert_close(sobolev_norm(u, 0.0, box=box), lp_norm(u, 2, box=box))
    # Dirichlet: Parseval for DST-I = rectangle rule with h = L/(M+1) on the interior nodes
    h2 = (2.0 / 13) * (2.0 / 11)
    expected = (h2 * (u**2).sum(dim=(1, 2, 3))).sqrt()
    torch.testing.assert_close(sobolev_norm(u, 0.0, box=2.0, boundary="dirichlet"), expected)


def test_sobolev_norms_are_ordered_in_s():
    torch.manual_seed(0)
    u = torch.randn(2, 16, 16, dtype=F64)
    values = [sobolev_norm(u, s) for s in S_VALUES]
    for lower, higher in zip(values, values[1:]):
        assert torch.all(lower < higher)


def test_frequency_cutoff():
    (x,) = periodic_grid(32, 1.0, 1)
    low, high = torch.cos(2 * math.pi * 2 * x), torch.sin(2 * math.pi * 9 * x)
    u = (low + high)[None]
    for s in (-1, 1):
        cut = sobolev_norm(u, s, dim=1, k_max=3, squared=True)
        torch.testing.assert_close(cut, sobolev_norm(low[None], s, dim=1, squared=True))
    # radial cut-off in 2-d: |(3, 4)| = 5
    gx, gy = periodic_grid(16, 1.0, 2)
    u = torch.cos(2 * math.pi * (3 * gx + 4 * gy))[None]
    assert sobolev_norm(u, 1, k_max=5).item() > 0
    assert sobolev_norm(u, 1, k_max=4.99).item() < 1e-12 * sobolev_norm(u, 1, k_max=5).item()
    j = torch.arange(1, 16, dtype=F64) / 16
    u = torch.sin(math.pi * 6 * j)[None]
    assert sobolev_norm(u, 1, dim=1, boundary="dirichlet", k_max=5).item() == pytest.approx(0, abs=1e-12)


def test_pooling_and_reduction_are_explicit():
    torch.manual_seed(0)
    target = torch.randn(3, 5, 8, 8, dtype=F64)  # (B, T, X, Y)
    pred = target + 0.1 * torch.randn_like(target)
    per_frame = sobolev_error(pred, target, 1.0, pool=None, reduction="none")
    assert per_frame.shape == (3, 5)
    per_sample = sobolev_error(pred, target, 1.0, pool="all", reduction="none")
    torch.testing.assert_close(per_sample, (per_frame**2).sum(dim=1).sqrt())  # sum, no 1/n_t
    assert sobolev_error(pred, target, 1.0, pool=(1,), reduction="sum").item() == pytest.approx(per_sample.sum().item())
    # a pooled norm of T identical frames is sqrt(T) times a frame's norm (no hidden sqrt(n_t))
    frame = torch.randn(1, 1, 8, 8, dtype=F64)
    assert lp_norm(frame.expand(1, 4, 8, 8)).item() == pytest.approx(2 * lp_norm(frame).item())
    # relative error of pred = (1 + eps) target is eps whatever the pooling
    for pool in (None, "all", 1):
        rel = relative_sobolev_error(1.03 * target, target, -0.5, pool=pool, reduction="none")
        torch.testing.assert_close(rel, torch.full_like(rel, 0.03))
        rel = relative_lp_error(1.03 * target, target, 2, pool=pool, reduction="none")
        torch.testing.assert_close(rel, torch.full_like(rel, 0.03))


def test_lp_norms_analytic():
    u = torch.full((2, 6, 6), -2.0, dtype=F64)
    for p in (1, 2, 3.5):
        assert lp_norm(u, p, box=3.0)[0].item() == pytest.approx(2 * 9 ** (1 / p))
    assert lp_norm(u, math.inf)[0].item() == 2.0
    (x,) = periodic_grid(64, 1.0, 1)
    u = torch.sin(2 * math.pi * x)[None]
    assert lp_norm(u, 2, dim=1).item() == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert lp_norm(u, 1, dim=1).item() == pytest.approx(2 / math.pi, rel=1e-3)


@pytest.mark.parametrize(
    "loss",
    [
        LpLoss(),
        LpLoss(p=1),
        LpLoss(pool=None),
        SobolevLoss(s=1),
        SobolevLoss(s=-1),
        SobolevLoss(s=2, boundary="dirichlet"),
        SobolevLoss(s=0.5, k_max=4),
    ],
)
def test_relative_errors_zero_for_equal_inputs_and_scale_invariant(loss):
    torch.manual_seed(0)
    target = torch.randn(3, 2, 12, 12, dtype=F64)
    pred = target + 0.2 * torch.randn_like(target)
    assert loss(target, target).item() == 0.0
    base = loss(pred, target)
    for scale in (1e-3, 7.0, -2.5):
        torch.testing.assert_close(loss(scale * pred, scale * target), base, rtol=1e-12, atol=0)


def test_absolute_errors_and_modules_agree_with_functions():
    torch.manual_seed(0)
    target = torch.randn(3, 12, 12, dtype=F64)
    pred = target + 0.2 * torch.randn_like(target)
    torch.testing.assert_close(LpLoss(relative=False, box=2.0)(pred, target), lp_error(pred, target, box=2.0))
    torch.testing.assert_close(
        SobolevLoss(s=-1, relative=False, squared=True)(pred, target), sobolev_error(pred, target, -1, squared=True)
    )
    assert lp_error(pred, pred).item() == 0.0
    # absolute errors scale linearly
    torch.testing.assert_close(lp_error(3 * pred, 3 * target), 3 * lp_error(pred, target))


def test_gradients_flow():
    torch.manual_seed(0)
    target = torch.randn(2, 16, 16)
    pred = torch.zeros(2, 16, 16, requires_grad=True)
    for loss in (LpLoss(), SobolevLoss(s=1), SobolevLoss(s=-1, boundary="dirichlet")):
        pred.grad = None
        loss(pred, target).backward()
        assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_bad_arguments_raise_clear_errors():
    u = torch.randn(2, 8, 8)
    with pytest.raises(ValueError, match="reduction must be one of"):
        lp_norm(u, reduction="avg")
    with pytest.raises(ValueError, match="p must be >= 1"):
        lp_norm(u, p=0.5)
    with pytest.raises(ValueError, match="boundary must be one of"):
        sobolev_norm(u, boundary="neumann")
    with pytest.raises(ValueError, match="pool axis 3"):
        sobolev_norm(u, pool=(3,))
    with pytest.raises(ValueError, match="same shape"):
        relative_lp_error(u, u[:, :4])
    with pytest.raises(ValueError, match="box must be"):
        sobolev_norm(u, box=-1.0)
    with pytest.raises(ValueError, match="k_max"):
        sobolev_norm(u, k_max=-2)
    with pytest.raises(ValueError, match="grid axes"):
        lp_norm(torch.randn(8), dim=2)
