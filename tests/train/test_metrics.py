"""Metrics of train.metrics against independent numpy computations and exact identities."""

import math

import numpy as np
import pytest
import torch

from train import metrics as M


def _pair(shape=(5, 6, 2, 16, 12), seed=0, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=g, dtype=torch.float64)
    pred = target + noise * torch.randn(shape, generator=g, dtype=torch.float64)
    return pred, target


def test_fno_relative_l2_equals_direct_numpy():
    pred, target = _pair()
    p, t = pred.numpy(), target.numpy()
    expected = np.mean(
        [np.linalg.norm((p[n] - t[n]).ravel()) / np.linalg.norm(t[n].ravel()) for n in range(p.shape[0])]
    )
    assert M.fno_relative_l2(pred, target).item() == pytest.approx(expected, rel=1e-12)
    per = M.relative_l2_per_sample(pred, target).numpy()
    assert per.shape == (5,)
    # float32 inputs give the same number up to float32 rounding of the inputs
    assert M.fno_relative_l2(pred.float(), target.float()).item() == pytest.approx(expected, rel=1e-6)


def test_fno_metric_is_not_a_batch_norm_ratio():
    """The mean of per-sample ratios differs from ||all errors|| / ||all truths|| when sample
    norms differ: guards against the common pooled-norm bug."""
    pred, target = _pair(seed=1)
    target = target * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0], dtype=torch.float64)[:, None, None, None, None]
    pred = target + 0.1 * torch.randn_like(target)
    pooled = ((pred - target).norm() / target.norm()).item()
    assert abs(M.fno_relative_l2(pred, target).item() - pooled) > 0.01


def test_perfect_prediction_scores_zero():
    _, target = _pair()
    assert M.fno_relative_l2(target, target).item() == 0.0
    assert torch.all(M.relative_l2_per_step(target, target) == 0)
    assert torch.all(M.relative_l2_per_channel(target, target) == 0)
    assert torch.all(M.rmse(target, target) == 0)
    assert torch.all(M.nrmse(target, target) == 0)
    assert torch.all(M.max_error(target, target) == 0)
    _, big = _pair(shape=(2, 2, 1, 32, 32))  # 32^2 grid: every band holds energy
    assert torch.all(M.spectral_band_relative_error(big, big) == 0)
    assert torch.all(M.spectral_band_rmse(big, big) == 0)


def test_per_step_curve_consistent_with_trajectory_metric():
    pred, target = _pair(seed=2)
    r_t = M.relative_l2_per_step(pred, target)  # (N, T)
    a_t = target.pow(2).sum((2, 3, 4))  # ||true_n(t)||^2
    combined = torch.sqrt((r_t**2 * a_t).sum(1) / a_t.sum(1))
    torch.testing.assert_close(combined, M.relative_l2_per_sample(pred, target), rtol=1e-12, atol=0)
    # each entry against numpy
    p, t = pred.numpy(), target.numpy()
    n, s = 3, 4
    assert r_t[n, s].item() == pytest.approx(np.linalg.norm(p[n, s] - t[n, s]) / np.linalg.norm(t[n, s]), rel=1e-12)
    # per channel: same identity over channels
    r_c = M.relative_l2_per_channel(pred, target)
    a_c = target.pow(2).sum((1, 3, 4))
    torch.testing.assert_close(
        torch.sqrt((r_c**2 * a_c).sum(1) / a_c.sum(1)), M.relative_l2_per_sample(pred, target), rtol=1e-12, atol=0
    )
    assert r_c[1, 1].item() == pytest.approx(
        np.linalg.norm(p[1, :, 1] - t[1, :, 1]) / np.linalg.norm(t[1, :, 1]), rel=1e-12
    )


def test_rmse_nrmse_match_numpy():
    pred, target = _pair(seed=3)
    p, t = pred.numpy(), target.numpy()
    rm = np.sqrt(((p - t) ** 2).mean(axis=(-2, -1)))
    np.testing.assert_allclose(M.rmse(pred, target).numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(M.nrmse(pred, target).numpy(), rm / np.sqrt((t**2).mean(axis=(-2, -1))), rtol=1e-12)
    np.testing.assert_allclose(M.max_error(pred, target).numpy(), np.abs(p - t).max(axis=(-2, -1)), rtol=0)


def test_band_energies_partition_by_parseval():
    field = torch.randn(3, 4, 2, 32, 24, dtype=torch.float64)
    bands = M.band_energies(field, M.DEFAULT_BAND_EDGES)
    assert bands.shape == (3, 4, 2, 3)
    torch.testing.assert_close(bands.sum(-1), field.pow(2).mean((-2, -1)), rtol=1e-12, atol=0)
    # a finer partition sums to the same total, and merging adjacent bands adds their energies
    fine = M.band_energies(field, (0, 2, 4, 8, 12, 20, math.inf))
    torch.testing.assert_close(fine.sum(-1), bands.sum(-1), rtol=1e-12, atol=0)
    torch.testing.assert_close(fine[..., 2] + fine[..., 3], bands[..., 1], rtol=1e-12, atol=0)
    # band RMSE squares add to the pointwise MSE
    pred, target = _pair(shape=(2, 3, 1, 32, 32), seed=4)
    torch.testing.assert_close(
        M.spectral_band_rmse(pred, target).pow(2).sum(-1), M.rmse(pred, target).pow(2), rtol=1e-12, atol=0
    )


def test_band_error_localises_a_high_frequency_error():
    x = torch.arange(64, dtype=torch.float64) / 64
    X, Y = torch.meshgrid(x, x, indexing="ij")
    target = (torch.sin(2 * math.pi * 2 * X) + torch.cos(2 * math.pi * (5 * X + 3 * Y)))[None, None, None]
    pred = target + 0.1 * torch.cos(2 * math.pi * (20 * X + 1 * Y))  # shell round(sqrt(401)) = 20: high band
    rel = M.spectral_band_relative_error(pred, target)[0]
    assert rel[0].item() == pytest.approx(0.0, abs=1e-12)
    assert rel[1].item() == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(rel[2].item())  # the truth has no high-band energy: no ratio is defined
    absolute = M.spectral_band_rmse(pred, target)[0, 0, 0]
    assert absolute[2].item() == pytest.approx(0.1 / math.sqrt(2), rel=1e-12)


@pytest.mark.parametrize("kx,ky,n", [(3, 4, 64), (0, 7, 32), (-5, 12, 48), (1, 1, 16)])
def test_single_mode_spectrum_lands_in_its_shell(kx, ky, n):
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    amp = 1.7
    u = amp * torch.cos(2 * math.pi * (kx * X + ky * Y) + 0.3)
    spec = M.isotropic_energy_spectrum(u)
    shell = int(math.floor(math.hypot(kx, ky) + 0.5))
    expected = amp**2 / 4  # 1/2 * mean(u^2) = 1/2 * amp^2 / 2
    assert spec[shell].item() == pytest.approx(expected, rel=1e-12)
    assert spec.sum().item() == pytest.approx(expected, rel=1e-12)
    assert int(torch.argmax(spec)) == shell


def test_spectrum_uses_grid_lengths_and_parseval():
    # on (0, 2 pi)^2 the mode numbers are the same integers: lengths do not change shells
    n = 32
    x = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    u = torch.sin(4 * X)
    spec = M.isotropic_energy_spectrum(u, grid=M.as_grid({"x": x.numpy(), "y": x.numpy()}))
    assert int(torch.argmax(spec)) == 4
    # rectangular domain: Ly = 2 Lx, so ky = 2 is the x-fundamental's wavenumber 1
    y = torch.arange(n, dtype=torch.float64) * (2.0 / n)
    xu = torch.arange(n, dtype=torch.float64) / n
    Xr, Yr = torch.meshgrid(xu, y, indexing="ij")
    v = torch.cos(2 * math.pi * 2 * Yr / 2.0)
    spec_r = M.isotropic_energy_spectrum(v, grid=M.as_grid({"x": xu.numpy(), "y": y.numpy()}))
    assert int(torch.argmax(spec_r)) == 1
    f = torch.randn(2, 3, 20, 20, dtype=torch.float64)
    torch.testing.assert_close(
        M.isotropic_energy_spectrum(f).sum(-1), 0.5 * f.pow(2).mean((-2, -1)), rtol=1e-12, atol=0
    )


def test_layout_conversion_and_bad_input():
    a = torch.zeros(2, 7, 8, 8)
    assert M.to_canonical(a, "trajectory").shape == (2, 7, 1, 8, 8)
    assert M.to_canonical(a, "steady").shape == (2, 1, 7, 8, 8)
    with pytest.raises(ValueError, match="unknown layout 'video'"):
        M.to_canonical(a, "video")
    with pytest.raises(ValueError, match="5-D"):
        M.to_canonical(a, "trajectory_channels")
    with pytest.raises(ValueError, match="differs from target shape"):
        M.fno_relative_l2(torch.zeros(1, 2, 1, 4, 4), torch.zeros(1, 3, 1, 4, 4))
    with pytest.raises(ValueError, match="band edges"):
        M.band_energies(torch.zeros(4, 4), (0, 5, 3))
    with pytest.raises(ValueError, match="grid axis 'x' has 5 points"):
        M.isotropic_energy_spectrum(torch.zeros(4, 4), grid=M.as_grid({"x": np.arange(5), "y": np.arange(4)}))


def test_every_metric_has_a_definition():
    for name in (
        "relative_l2",
        "relative_l2_per_step",
        "relative_l2_per_channel",
        "relative_h1",
        "rmse",
        "nrmse",
        "max_error",
        "spectral_band_relative_error",
        "spectral_band_rmse",
        "energy_spectrum",
    ):
        assert len(M.METRIC_DEFINITIONS[name]) > 40


def _modes(n, endpoint=False):
    x = torch.linspace(0, 1, n, dtype=torch.float64) if endpoint else torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return x, X, Y


def test_relative_h1_periodic_matches_analytic_ratio():
    n = 32
    x, X, Y = _modes(n)
    target = torch.sin(2 * math.pi * (1 * X + 2 * Y))[None, None, None]
    bump = torch.cos(2 * math.pi * (5 * X - 3 * Y))[None, None, None]
    eps = 0.01
    rel = M.relative_h1_per_sample(target + eps * bump, target, grid=M.as_grid({"x": x.numpy(), "y": x.numpy()}))
    expected = eps * math.sqrt((1 + 4 * math.pi**2 * 34) / (1 + 4 * math.pi**2 * 5))
    assert rel.shape == (1,)
    assert rel.item() == pytest.approx(expected, rel=1e-10)
    # the L2 ratio of the same pair is just eps: H1 weights the high-frequency error up
    assert M.relative_l2_per_sample(target + eps * bump, target).item() == pytest.approx(eps, rel=1e-10)


@pytest.mark.parametrize("endpoint", [True, False])
def test_relative_h1_dirichlet_with_and_without_boundary_nodes(endpoint):
    n = 31
    if endpoint:
        x, X, Y = _modes(n, endpoint=True)  # nodes 0, h, ..., 1 (boundary included)
    else:
        x = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)  # interior nodes only
        X, Y = torch.meshgrid(x, x, indexing="ij")
    target = torch.sin(math.pi * X) * torch.sin(2 * math.pi * Y)
    bump = torch.sin(3 * math.pi * X) * torch.sin(1 * math.pi * Y)
    eps = 0.02
    grid = M.as_grid({"x": x.numpy(), "y": x.numpy(), "boundary": {"x": "dirichlet", "y": "dirichlet"}})
    assert grid.includes_walls == endpoint and grid.lengths() == pytest.approx((1.0, 1.0), rel=1e-12)
    rel = M.relative_h1_per_sample((target + eps * bump)[None, None, None], target[None, None, None], grid=grid)
    expected = eps * math.sqrt((1 + math.pi**2 * 10) / (1 + math.pi**2 * 5))
    assert rel.item() == pytest.approx(expected, rel=1e-9)


def test_relative_h1_rejects_unsupported_boundaries():
    a = torch.zeros(1, 1, 1, 8, 8)
    x = np.arange(8) / 8
    with pytest.raises(ValueError, match="the same on x and y"):
        M.relative_h1_per_sample(a, a + 1, M.as_grid({"x": x, "y": x, "boundary": {"x": "periodic", "y": "dirichlet"}}))
    with pytest.raises(ValueError, match="'neumann'"):
        M.relative_h1_per_sample(a, a + 1, M.as_grid({"x": x, "y": x, "boundary": {"x": "neumann", "y": "neumann"}}))
    with pytest.raises(TypeError, match="as_grid"):
        M.relative_h1_per_sample(a, a + 1, {"x": x, "y": x})


def test_relative_h1_node_convention_comes_from_the_grid_not_the_data():
    """Interior nodes x_j = (j+1)/(n+1) with a truth that vanishes on the outer ring of nodes: the
    former rule (outer ring zero -> the walls are stored) would take box (n-1) h; the grid says
    interior nodes, box 1, and the metric equals neuralops' Sobolev error with that box."""
    from neuralops.losses import relative_sobolev_error

    n = 31
    x = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    h = 1.0 / (n + 1)
    ring_zero = torch.sin(math.pi * (X - h) / (1 - 2 * h)) * torch.sin(2 * math.pi * (Y - h) / (1 - 2 * h))
    target = ring_zero[None, None, None]
    pred = target + 0.02 * (torch.sin(3 * math.pi * X) * torch.sin(math.pi * Y))[None, None, None]
    assert target[..., 0, :].abs().max() < 1e-12 and target[..., :, -1].abs().max() < 1e-12
    grid = M.as_grid({"x": x.numpy(), "y": x.numpy(), "boundary": {"x": "dirichlet", "y": "dirichlet"}})
    assert grid["x"].nodes == "nodes-without-walls" and not grid.includes_walls
    got = M.relative_h1_per_sample(pred, target, grid)
    want = relative_sobolev_error(
        pred,
        target,
        s=1.0,
        dim=2,
        box=(1.0, 1.0),
        boundary="dirichlet",
        includes_boundary=False,
        pool="all",
        reduction="none",
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    stated = M.relative_h1_per_sample(
        pred,
        target,
        M.as_grid(
            {
                "x": x.numpy(),
                "y": x.numpy(),
                "boundary": {"x": "dirichlet", "y": "dirichlet"},
                "includes_boundary": False,
            }
        ),
    )
    assert stated.item() == pytest.approx(got.item(), rel=1e-12)
    walls = M.as_grid(
        {"x": x.numpy(), "y": x.numpy(), "boundary": {"x": "dirichlet", "y": "dirichlet"}, "includes_boundary": True}
    )
    assert walls.includes_walls
    assert abs(M.relative_h1_per_sample(pred, target, walls).item() - got.item()) > 1e-4 * got.item()


def test_relative_l2_agrees_with_the_training_loss_of_neuralops_losses():
    """The evaluation metric and the training loss (neuralops.losses, FNO-style pooling) are the
    same quantity, so a validation curve and a final report are comparable."""
    from neuralops.losses import relative_lp_error

    pred, target = _pair(seed=7)
    torch.testing.assert_close(
        relative_lp_error(pred, target, p=2, dim=2, pool="all", reduction="none"),
        M.relative_l2_per_sample(pred, target),
        rtol=1e-12,
        atol=0,
    )
