"""The ``fno`` stepper's cached per-chunk views (issue 17, NS at the FFT floor) give exactly the step of
its definition, ``w <- decay w + advect adv(w) + source`` with ``adv`` from :func:`advection_hat`,
also when the state tensor, ``dt`` or the batch layout change between steps."""

import pytest
import torch

from datagen.navier_stokes.spectral import AdvectionBuffers, SpectralGrid, advection_hat, fno_forcing
from datagen.navier_stokes.steppers import EulerCrankNicolson


def reference_step(stepper, w_hat):
    """One step written from the definition (advection_hat's buffered path, then the update), out of place."""
    w = w_hat.clone()
    buffers = AdvectionBuffers(stepper.grid, stepper.batch_shape, chunk=stepper.buffers.chunk)
    adv = advection_hat(w, stepper.grid, buffers, dealias=False).view(-1, *stepper.grid.spectral_shape)
    flat = w.view(-1, *stepper.grid.spectral_shape)
    decay = stepper.decay.expand_as(flat) if stepper.decay.ndim <= 2 else stepper.decay
    advect = stepper.advect.expand_as(flat) if stepper.advect.ndim <= 2 else stepper.advect
    if stepper.source is not None:
        source = stepper.source.expand_as(flat) if stepper.source.ndim <= 2 else stepper.source
        torch.addcmul(source, decay, flat, out=flat)
    else:
        flat.mul_(decay)
    flat.addcmul_(adv, advect)
    return w


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_cached_views_give_the_defined_step(dtype, chunk):
    n, batch = 32, 5
    grid = SpectralGrid(n, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    stepper = EulerCrankNicolson(grid, 1e-3, (batch,), fno_forcing(grid))
    stepper.buffers = AdvectionBuffers(grid, (batch,), chunk=chunk)
    a = torch.fft.rfft2(torch.randn(batch, n, n, generator=gen, dtype=dtype)).contiguous()
    b = torch.fft.rfft2(torch.randn(batch, n, n, generator=gen, dtype=dtype)).contiguous()
    stepper.set_dt(1e-3)
    for dt in (1e-3, torch.tensor([1e-3, 0.0, 2e-3, 5e-4, 1e-3], dtype=torch.float64), 4e-3):
        stepper.set_dt(dt)  # new coefficients: the cached views must follow
        for state in (a, b, a):  # two states alternating on one stepper
            expected = reference_step(stepper, state)
            stepper.step(state)
            assert torch.equal(state, expected)
    # a sample with dt = 0 stays exactly where it was (per-sample dt through the cached rows)
    stepper.set_dt(torch.tensor([0.0, 1e-3, 0.0, 1e-3, 0.0], dtype=torch.float64))
    before = a.clone()
    stepper.step(a)
    assert torch.equal(a[0], before[0]) and torch.equal(a[2], before[2]) and not torch.equal(a[1], before[1])


def test_wrong_state_is_still_refused():
    grid = SpectralGrid(16, dtype=torch.float32)
    stepper = EulerCrankNicolson(grid, 1e-3, (2,), None)
    stepper.set_dt(1e-3)
    with pytest.raises(ValueError, match="state must be"):
        stepper.step(torch.zeros(3, 16, 9, dtype=torch.complex64))
