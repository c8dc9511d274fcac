"""Initial conditions, recipes, resampling, datasets and the CLI of the Navier-Stokes generator."""

import math

import numpy as np
import pytest
import torch

from datagen.dataset import open_dataset, validate
from datagen.navier_stokes import generator as G
from datagen.navier_stokes import spectral as S
from datagen.navier_stokes.cli import add_arguments
from datagen.navier_stokes.initial import fno_grf, from_file, mcwilliams
from datagen.navier_stokes.recipes import recipe, snapshot_times
from datagen.navier_stokes.resample import spectral_truncation, subsample


def _tiny_fno(**over):
    """The fno recipe shrunk for tests: 32^2 solver grid, 16^2 stored, dt 1e-3, T = 0.4."""
    base = dict(resolution=32, store_resolution=16, dt=1e-3, snapshot_interval=0.2, t_end=0.4)
    base.update(over)
    return recipe("fno", base)


# ------------------------------------------------------------------------ initial conditions
def test_fno_grf_has_the_specified_covariance_spectrum():
    """Mean |fft(w)_k|^2 / n^4 over M samples against 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha, per shell.

    For each mode |fft_k|^2 is exponential with mean lambda_k^2 (a complex Gaussian), and k, -k carry
    the same value, so a shell with N_s modes holds N_s / 2 independent draws per sample: the shell
    mean of the ratio to lambda_k^2 has standard deviation 1 / sqrt(M N_s / 2). Tolerance: 5 of those.
    """
    n, M = 32, 200
    w = fno_grf(n, seed=7, indices=range(M))
    assert np.abs(w.mean(axis=(1, 2))).max() < 1e-12  # zero mean exactly
    power = (np.abs(np.fft.fft2(w)) ** 2).mean(axis=0) / n**4
    m = np.fft.fftfreq(n, 1.0 / n)
    mx, my = np.meshgrid(m, m, indexing="ij")
    k2 = mx**2 + my**2
    expected = 2 * (7.0**1.5) ** 2 * (4 * math.pi**2 * k2 + 49.0) ** (-2.5)
    shells = np.round(np.sqrt(k2)).astype(int)
    checked = 0
    for s in range(1, n // 2):
        sel = (shells == s) & (np.abs(mx) < n // 2) & (np.abs(my) < n // 2)
        ratio = (power[sel] / expected[sel]).mean()
        sd = 1.0 / math.sqrt(M * sel.sum() / 2)
        assert abs(ratio - 1) < 5 * sd, (s, ratio, sd)
        checked += 1
    assert checked == n // 2 - 1
    # and the draws are the per-sample rule's: sample 5 alone equals row 5 of the batch
    assert np.array_equal(fno_grf(n, 7, [5])[0], w[5])


def test_mcwilliams_unit_energy_peak_wavenumber_and_band_limit():
    n, box = 64, 2 * math.pi
    w = mcwilliams(n, seed=0, indices=range(40), box=box, peak_wavenumber=4)
    g = S.SpectralGrid(n, box)
    w_hat = S.to_spectral(torch.from_numpy(w))
    assert torch.allclose(S.kinetic_energy(w_hat, g), torch.ones(40, dtype=torch.float64), rtol=1e-12)
    assert np.abs(w.mean(axis=(1, 2))).max() < 1e-12
    spectrum = S.energy_spectrum(w_hat, g).mean(0)
    assert int(spectrum.argmax()) == 4
    assert w_hat[:, ~g.dealias].abs().max() < 1e-9 * w_hat.abs().max()  # resolved: inside the 2/3 band
    w6 = mcwilliams(n, seed=0, indices=range(40), box=box, peak_wavenumber=6)
    assert int(S.energy_spectrum(S.to_spectral(torch.from_numpy(w6)), g).mean(0).argmax()) == 6


def test_user_supplied_initial_fields(tmp_path):
    g = S.SpectralGrid(16)
    X, Y = g.coordinates()
    w = torch.stack([torch.sin(2 * math.pi * X), torch.cos(2 * math.pi * (X + Y))]).numpy()
    np.save(tmp_path / "w0.npy", w)
    assert np.allclose(from_file(str(tmp_path / "w0.npy"), [1, 0], 16), w[[1, 0]])
    # a band-limited field is carried exactly to a finer grid by Fourier interpolation
    fine = from_file(str(tmp_path / "w0.npy"), [0], 32)[0]
    gf = S.SpectralGrid(32)
    Xf, _ = gf.coordinates()
    assert np.allclose(fine, np.sin(2 * math.pi * Xf.numpy()), atol=1e-13)
    with pytest.raises(ValueError, match="holds 2 initial fields, sample 2"):
        from_file(str(tmp_path / "w0.npy"), [2], 16)


# ------------------------------------------------------------------------ resampling
def test_resampling_subsample_and_spectral_truncation():
    g = S.SpectralGrid(32)
    X, Y = g.coordinates()
    low = torch.sin(2 * math.pi * X) * torch.cos(2 * math.pi * 3 * Y)
    high = 0.1 * torch.cos(2 * math.pi * 12 * X)
    w = low + high
    coarse = S.SpectralGrid(8)
    Xc, Yc = coarse.coordinates()
    exact_low = torch.sin(2 * math.pi * Xc) * torch.cos(2 * math.pi * 3 * Yc)
    # truncation keeps |m| < 4 exactly and drops the high mode
    assert (spectral_truncation(S.to_spectral(w), 32, 8) - exact_low).abs().max() < 1e-13
    # subsampling takes point values: the high mode (12 = 8 + 4) aliases onto the Nyquist of 8 points
    assert torch.equal(subsample(w, 8), w[::4, ::4])
    assert (subsample(w, 8) - exact_low).abs().max() > 0.09


# ------------------------------------------------------------------------ recipes
def test_recipes_and_fno_final_times():
    for nu, T in ((1e-3, 50), (1e-4, 30), (1e-5, 20)):
        spec = recipe("fno", {"viscosity": nu})
        t = snapshot_times(spec)
        assert len(t) == T and t[0] == 1.0 and t[-1] == T
        assert spec["dt"] == 1e-4 and spec["resolution"] == 256 and spec["store_resolution"] == 64
        assert spec["resample"] == "subsample" and spec["stepper"] == "fno"
    sr = recipe("spectral-refiner")
    t = snapshot_times(sr)
    assert len(t) == 100 and t[0] == pytest.approx(30.2) and t[-1] == pytest.approx(50.0)
    assert (sr["stepper"], sr["dt"], sr["resample"]) == ("fno", 1e-3, "bilinear")
    assert recipe("spectral-refiner-rk4cn")["stepper"] == "rk4cn"
    for name in ("mcwilliams", "mcwilliams1984"):
        mw = recipe(name)
        t = snapshot_times(mw)
        assert len(t) == 100 and t[-1] == pytest.approx(10.0) and mw["box"] == pytest.approx(2 * math.pi)
    mw = recipe("mcwilliams")
    assert (mw["dt_mode"], mw["dt"], mw["resample"], mw["initial"]["energy"], mw["initial"]["law"]) == (
        "fixed",
        1e-3,
        "bilinear",
        0.25,
        "amplitude",
    )
    assert recipe("kolmogorov")["drag"] == 0.1


@pytest.mark.parametrize(
    "name, over, message",
    [
        ("fno", {"viscosity": -1e-3}, "viscosity must be >= 0.0, got -0.001"),
        (
            "navier",
            {},
            "unknown recipe 'navier'; allowed: fno, spectral-refiner, spectral-refiner-rk4cn, "
            "mcwilliams, mcwilliams1984, kolmogorov",
        ),
        ("fno", {"viscosty": 1e-4}, "navier-stokes recipe 'fno': unknown key 'viscosty' (did you mean 'viscosity'"),
        ("fno", {"viscosity": 2e-3}, "for viscosity 0.002 give t_end or n_snapshots"),
        ("fno", {"resolution": 256, "store_resolution": 48}, "48 does not divide 256"),
        ("fno", {"stepper": "euler"}, "unknown stepper 'euler'"),
        ("mcwilliams1984", {"cfl": 1.6}, "above the stability limit 1.5 of stepper .rk4cn."),
        ("fno", {"fields": ["vorticity", "pressure"]}, "unknown field"),
        ("fno", {"initial": {"type": "grf", "alpha": 2}}, "unknown initial condition 'grf'"),
    ],
)
def test_bad_recipe_input(name, over, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe(name, over)


# ------------------------------------------------------------------------ datasets
def test_dataset_contents_follow_the_contract(tmp_path):
    spec = _tiny_fno(fields=["vorticity", "velocity", "stream"])
    out = str(tmp_path / "ns.h5")
    stats = G.generate(spec, out, 3, seed=4, batch_size=2, progress=False, log=None)
    assert stats == {"written": 3, "invalid": 0, "skipped": 0}
    assert validate(out) == []
    ds = open_dataset(out)
    assert ds.pde == "navier_stokes_2d" and ds.seed == 4 and len(ds) == 3
    assert ds.field_shape("vorticity") == (2, 16, 16) and ds.role("vorticity") == "state"
    assert ds.field_shape("velocity") == (2, 2, 16, 16)
    assert np.allclose(ds.grid.coords["t"], [0.2, 0.4]) and ds.grid.boundary["x"] == "periodic"
    assert ds.spec["physics"]["viscosity"] == 1e-3 and ds.spec["solver"]["compute_dtype"] == "float64"
    assert ds.valid.all() and (ds.solver("steps") == 400).all()
    # velocity and stream function are those of the stored vorticity's fine field, subsampled
    w0 = fno_grf(32, 4, [1])
    solver = G.make_solver(spec)
    res = solver.run(w0, snapshot_times(spec))
    fine = res.snapshots[-1][0]
    assert np.allclose(ds.read("vorticity", 1)[-1], fine[::2, ::2].numpy(), atol=1e-6)
    vel = S.velocity(fine, solver.grid)[:, ::2, ::2].numpy()
    assert np.allclose(ds.read("velocity", 1)[-1], vel, atol=1e-6)
    psi = S.stream_function(fine, solver.grid)[::2, ::2].numpy()
    assert np.allclose(ds.read("stream", 1)[-1], psi, atol=1e-6)
    # the refinement residual's physics comes back from the file
    ph = S.physics_from_spec(ds.spec, ds.grid)
    assert ph.viscosity == 1e-3 and ph.dt == pytest.approx(0.2)
    assert torch.allclose(ph.forcing_field(16), S.fno_forcing(S.SpectralGrid(16)))
    ds.close()


def test_fno_recipe_at_t1_agrees_with_half_the_time_step_to_first_order():
    """Stored vorticity at t = 1 with dt, dt/2, dt/4: differences shrink by 2 (the scheme's order 1)."""
    spec = recipe("fno", dict(resolution=64, store_resolution=32, t_end=1.0))
    w0 = fno_grf(64, 0, [0, 1])
    out = {}
    for dt in (2e-3, 1e-3, 5e-4):
        solver = G.make_solver({**spec, "dt": dt})
        out[dt] = solver.run(w0, [1.0]).snapshots[0][:, ::2, ::2]
    d1 = (out[2e-3] - out[1e-3]).abs().max()
    d2 = (out[1e-3] - out[5e-4]).abs().max()
    assert 1.8 < float(d1 / d2) < 2.2
    assert float(d2 / out[5e-4].abs().max()) < 1e-3


@pytest.mark.slow
def test_fno_recipe_full_resolution_t1_half_time_step():
    """The real fno recipe (256^2, dt = 1e-4) against dt = 5e-5 at t = 1, stored 64^2 (slow)."""
    spec = recipe("fno", {"t_end": 1.0})
    w0 = fno_grf(256, 0, [0])
    a = G.make_solver(spec).run(w0, [1.0]).snapshots[0][:, ::4, ::4]
    b = G.make_solver({**spec, "dt": 5e-5}).run(w0, [1.0]).snapshots[0][:, ::4, ::4]
    assert float((a - b).abs().max() / b.abs().max()) < 1e-4


def test_samples_identical_across_batch_sizes_and_run_sizes(tmp_path):
    for name, spec in (
        ("fno", _tiny_fno()),
        (
            "mcw",
            recipe(
                "mcwilliams1984",
                dict(resolution=32, store_resolution=16, t_start=0.0, snapshot_interval=0.1, n_snapshots=2),
            ),
        ),
    ):
        a, b = str(tmp_path / f"{name}a.h5"), str(tmp_path / f"{name}b.h5")
        G.generate(spec, a, 3, seed=1, batch_size=1, progress=False, log=None)
        G.generate(spec, b, 4, seed=1, batch_size=3, progress=False, log=None)
        with open_dataset(a) as da, open_dataset(b) as db:
            va, vb = da.read("vorticity", slice(0, 3)), db.read("vorticity", slice(0, 3))
            assert np.abs(va - vb).max() <= 1e-6 * np.abs(va).max()  # float32 storage
            assert np.array_equal(da.solver("steps"), db.solver("steps")[:3])


def test_float32_compute_agrees_with_float64():
    spec = _tiny_fno()
    w0 = fno_grf(32, 0, [0, 1])
    v64 = G.make_solver(spec, dtype=torch.float64).run(w0, [0.2]).snapshots[0]
    v32 = G.make_solver(spec, dtype=torch.float32).run(w0, [0.2]).snapshots[0]
    assert v32.dtype == torch.float32
    assert float((v32.double() - v64).abs().max() / v64.abs().max()) < 1e-5


def test_resume_by_batch_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    spec = _tiny_fno()
    full, part = str(tmp_path / "full.h5"), str(tmp_path / "part.h5")
    G.generate(spec, full, 4, seed=2, batch_size=2, progress=False, log=None)
    real = G.initial_vorticity
    calls = {"n": 0}

    def crash_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(G, "initial_vorticity", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        G.generate(spec, part, 4, seed=2, batch_size=2, progress=False, log=None)
    monkeypatch.setattr(G, "initial_vorticity", real)
    stats = G.generate(spec, part, 4, seed=2, batch_size=2, resume=True, progress=False, log=None)
    assert stats["skipped"] == 2 and stats["written"] == 2
    with open_dataset(full) as a, open_dataset(part) as b:
        assert np.array_equal(a.read("vorticity"), b.read("vorticity"))


def test_blown_up_trajectories_are_recorded_invalid(tmp_path):
    # inviscid forward-Euler advection at CFL ~ 0.4: unstable, every trajectory must be flagged
    w0 = fno_grf(32, 0, range(2))
    speed = float(S.max_velocity(S.to_spectral(torch.from_numpy(w0)), S.SpectralGrid(32)).max())
    dt = 1.0 / math.ceil(1.0 / (0.4 * (1 / 32) / speed))
    spec = recipe(
        "fno",
        dict(
            viscosity=0.0,
            resolution=32,
            store_resolution=16,
            dt=dt,
            snapshot_interval=100 * dt,
            n_snapshots=3,
            forcing={"type": "none"},
        ),
    )
    out = str(tmp_path / "blow.h5")
    stats = G.generate(spec, out, 2, seed=0, batch_size=2, progress=False, log=None)
    assert stats["invalid"] == 2
    assert [p for p in validate(out) if "no valid sample" not in p] == []  # nothing to train on: refused
    with open_dataset(out, include_invalid=True) as ds:
        assert not ds.valid.any() and not ds.solver("converged").any()
        assert all(("CFL" in r) or ("non-finite" in r) for r in ds.invalid_reasons.values())
        assert np.isnan(ds.read("vorticity", 0)[-1]).all()


# ------------------------------------------------------------------------ CLI
def _parse(argv):
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


def test_cli_generates_a_dataset(tmp_path):
    from datagen.cli import main

    out = str(tmp_path / "cli.h5")
    rc = main(
        [
            "navier-stokes",
            "--recipe",
            "fno",
            "--viscosity",
            "1e-3",
            "--n",
            "2",
            "--out",
            out,
            "--resolution",
            "32",
            "--store-resolution",
            "16",
            "--dt",
            "1e-3",
            "--t-end",
            "0.2",
            "--snapshot-interval",
            "0.1",
            "--batch-size",
            "2",
            "--dtype",
            "float32",
            "--no-progress",
        ]
    )
    assert rc == 0 and validate(out) == []
    with open_dataset(out) as ds:
        assert ds.field_shape("vorticity") == (2, 16, 16) and ds.spec["solver"]["compute_dtype"] == "float32"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--viscosity=-1e-3"], "viscosity must be >= 0.0, got -0.001"),
        (["--recipe", "burgers"], "unknown recipe 'burgers'"),
        (
            ["--dt", "0.5", "--resolution", "32", "--store-resolution", "16", "--t-end", "1"],
            "violates the stability limit of the 'fno' scheme",
        ),
    ],
)
def test_cli_bad_input_ends_with_a_clear_message(tmp_path, capsys, argv, message):
    from datagen.navier_stokes.cli import run

    args = _parse(["--n", "1", "--out", str(tmp_path / "x.h5"), "--no-progress"] + argv)
    assert run(args) == 2  # the elliptic families' status and format for bad input
    err = capsys.readouterr().err
    assert err.startswith("neuralops-datagen navier-stokes: error: ") and message in err, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_same_trajectories_on_cpu_and_cuda(dtype, tol):
    for spec in (
        _tiny_fno(),
        recipe(
            "mcwilliams", dict(resolution=32, store_resolution=16, t_start=0.0, snapshot_interval=0.1, n_snapshots=2)
        ),
    ):
        w0 = G.initial_vorticity(spec["initial"], 32, spec["box"], 0, [0, 1, 2])
        t = snapshot_times(spec)
        cpu = G.make_solver(spec, "cpu", dtype).run(w0, t).vorticity()
        gpu = G.make_solver(spec, "cuda", dtype).run(w0, t).vorticity()
        assert float((gpu.cpu() - cpu).abs().max() / cpu.abs().max()) < tol
