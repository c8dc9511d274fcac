"""SFNO: the spatiotemporal Fourier neural operator of Spectral-Refiner (Cao et al., ICLR 2025),
built layer by layer as the authors' code builds it (scaomath/torch-cfd, ``fno/sfno.py``, 2025
revision; configured as its ``fno/train.py`` does for the FNO Navier-Stokes data).

Maps a trajectory of ``T_in`` snapshots to ``T_out`` snapshots of a scalar field (vorticity)::

    x: (B, T_in, X, Y)  ->  SFNO(x, t_out): (B, T_out, X, Y)

Internally a trajectory is ``(B, C, X, Y, T)`` and every spectral layer transforms over
``(x, y, t)`` (:class:`~neuralops.layers.SpectralConv`: real FFT in ``t``, the 4 ``(k_x, k_y)``
corners times the first ``modes_t`` temporal frequencies). As in the reference all FFTs use
``torch.fft``'s default ``norm="backward"``, so a layer that changes the number of frames scales its
output by ``n_in / n_out`` and the output layer's Fourier bias by ``1 / (X Y n_out)``
(``fft_norm="forward"`` is this toolkit's resolution-consistent alternative; see SpectralConv).

Architecture (``u`` = input as ``(B, 1, X, Y, T_in)``, ``sigma`` = activation, GELU in the recipe,
``W = width``, ``L = latent_steps``)::

    lifting:  p   = P N(u + E)                 E: encoding, W channels (x, y, t by linspace and
                                                  W - 3 harmonics exp(beta t) sin/cos(pi m t)),
                                                  N: GroupNorm(1 group, eps 1e-7), P: 1x1 W -> W
              v_0 = sigma( p[..., -1:] + M_0 K_0 p )
                                                  K_0: spectral conv W -> W, T_in -> L frames;
                                                  M_0: MLP W -> 4W -> W; p[..., -1:] is the last
                                                  frame, broadcast over the L frames (the skip)
    hidden:   v_{l+1} = sigma( M_l K_l v_l + S_l v_l ),  l = 0 .. n_hidden_layers - 1 (3)
                                                  M_l: MLP W -> 4W -> W (sigma inside), S_l: 1x1
    reduce:   z = R v                             R: 1x1 W -> 1, (B, 1, X, Y, L)
    output:   h = [u(T_in - 1), z]                one context frame, then the L latent frames
              w = (Q' pad(h))[-T_out:] + u(T_in - 1)
                                                  pad: h zero-padded in front to 2 (L + 1) frames;
                                                  Q': spectral conv 1 -> 1 with Fourier bias
                                                  (scale delta = 0.1), evaluated on
                                                  T_out + L + 2 frames (time resampling)

``lift_activation=False`` is the reference's ``--lift-linear``: ``sigma`` and ``M_0`` of the
lifting become the identity and a 1x1 convolution.

Refinement API (``train/refine``): ``model.output_layer`` is ``Q``, a spectral conv on the
*resampled* grid: ``Q'(pad h)`` = ``Q(rho(pad h))`` with ``rho`` the band-limited resampling of
the padded window from ``2 (L + 1)`` to ``N = T_out + L + 2`` frames (``irfft_N(rfft(.))``, which
is linear and parameter-free). ``model.latent(x, t_out)`` returns ``rho(pad h)``
``(B, 1, X, Y, N)`` (everything before ``Q``, frozen during refinement); ``model.head(latent, x)``
applies ``Q``, keeps the last ``T_out = N - L - 2`` frames and adds the last input frame, so
``model(x, t_out) == model.head(model.latent(x, t_out), x)`` and ``w`` is affine in ``Q``'s
parameters. This equals the reference's ``Q'`` to round-off whenever ``modes_t`` stays below the
Nyquist frequency of both time grids (``modes_t <= L + 1`` and ``2 (modes_t - 1) < N``: always for
the recipe's ``5 <= 11``). ``model.widen_output(mx, my, mt)`` swaps ``Q`` for a wider one with the
old weights in the low modes and zeros elsewhere; ``model.output_time_frequencies(t_out)`` is the
number of temporal frequencies ``Q`` can hold (``N // 2 + 1``).

Parameter count of ``SFNO(12, 12, 5, 20)`` (the reference's count, 9,242,461):

* four spectral convolutions W -> W (``K_0`` and three ``K_l``): 4 corners x 20 x 20 x 720 x 2 =
  2,304,000 each -> 9,216,000;
* lifting: GroupNorm 40 + 1x1 conv 420 + MLP (20*80 + 80) + (80*20 + 20) = 3,300 -> 3,760;
* per hidden layer: MLP 3,300 + skip 420 -> 3 x 3,720 = 11,160;
* reduction 21; output layer: 4 x 720 complex weights + as many complex bias coefficients = 11,520.

Time: frame ``k`` of a window sits at ``t_k = (k + 1) / max_time_steps`` in the encoding, as in
the reference (whose window always starts at frame 0 of its lattice).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.pointwise import DEFAULT_CHUNK_ELEMENTS, PointwiseMLP
from ..layers.positional import SpaceTimeEncoding
from ..layers.spectral_conv import SpectralConv
from .contract import DIRECT, ModelContract, single_field
from .registry import register

__all__ = ["SFNO", "resample_time"]


def resample_time(z: torch.Tensor, n_out: int) -> torch.Tensor:
    """Band-limited (Fourier) resampling of the last axis of ``z`` from its length to ``n_out``:
    the window is seen as one period; coefficients are ``rfft / n`` so amplitudes are preserved;
    the Nyquist frequency of the smaller grid (if even) is dropped."""
    n_in = z.shape[-1]
    if n_in == n_out:
        return z
    z_hat = torch.fft.rfft(z, norm="forward")
    n_min = min(n_in, n_out)
    if n_min % 2 == 0:
        # the Nyquist term of the smaller grid is a cosine only there: no unique resampling
        z_hat = z_hat[..., : n_min // 2]
    return torch.fft.irfft(z_hat, n=n_out, norm="forward")


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


@register("sfno")
class SFNO(nn.Module, ModelContract):
    """Spatiotemporal FNO ``(B, T_in, X, Y) -> (B, T_out, X, Y)`` (see the module docstring).

    Args:
        modes_x, modes_y: spatial Fourier modes per sign; modes_t: temporal modes (real FFT).
        width: hidden channels ``W`` (= the encoding's channel count, as in the reference).
        latent_steps: frames ``L`` of the hidden trajectory (independent of T_in / T_out).
        out_steps: default ``T_out`` when ``forward`` is called without ``t_out``.
        n_hidden_layers: spectral layers after the lifting (reference: ``num_spectral_layers=4``
            counts the lifting's, so 3 here).
        mlp_channels: hidden width of the pointwise MLPs; ``None``: ``4 * width`` (reference
            ``channel_expansion=4``).
        beta: growth rate of the encoding's temporal harmonics (reference recipe for the FNO data:
            0.02; its class default: -0.01).
        delta: scale of the output layer's Fourier bias (reference: 0.1).
        max_time_steps: frame lattice of the encoding ``t_k = (k + 1) / max_time_steps``.
        spatial_encoding: keep the ``x, y`` encoding rows (reference: yes). Without them the model
            is translation-equivariant on periodic grids.
        lift_activation: nonlinear lifting (MLP + activation, reference default) or linear.
        activation: "gelu" (reference training script), "relu" (reference class default), "silu",
            "tanh".
        fft_norm: "backward" (reference) or "forward" (see the module docstring).
        mlp_chunk_elements: memory bound of the MLPs (:class:`~neuralops.layers.PointwiseMLP`);
            ``None``: one piece.
    """

    context_frames = 1  # input frames put in front of the latent for the output layer (reference: 1)
    kinds = (DIRECT,)  # contract: t_out -> out_steps; any number of input frames; one field

    @classmethod
    def contract_arguments(cls, kind, in_channels, out_channels, t_in, t_out):
        single_field("sfno", in_channels, out_channels)
        return {"out_steps": int(t_out)}

    def __init__(
        self,
        modes_x: int = 12,
        modes_y: int = 12,
        modes_t: int = 5,
        width: int = 20,
        latent_steps: int = 10,
        out_steps: int = 40,
        n_hidden_layers: int = 3,
        mlp_channels: Optional[int] = None,
        beta: float = -0.01,
        delta: float = 0.1,
        max_time_steps: int = 100,
        spatial_encoding: bool = True,
        lift_activation: bool = True,
        activation: str = "gelu",
        fft_norm: str = "backward",
        mlp_chunk_elements: Optional[int] = DEFAULT_CHUNK_ELEMENTS,
    ):
        super().__init__()
        mlp_channels = 4 * int(width) if mlp_channels is None else int(mlp_channels)
        for name, value in (
            ("modes_x", modes_x),
            ("modes_y", modes_y),
            ("modes_t", modes_t),
            ("width", width),
            ("latent_steps", latent_steps),
            ("out_steps", out_steps),
            ("mlp_channels", mlp_channels),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if int(width) < 4:
            raise ValueError(f"width must be >= 4 (the encoding has x, y, t and harmonics), got {width}")
        if n_hidden_layers < 0:
            raise ValueError(f"n_hidden_layers must be >= 0, got {n_hidden_layers}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(_ACTIVATIONS)}")
        if fft_norm not in ("backward", "forward"):
            raise ValueError(f"fft_norm must be 'backward' (reference) or 'forward', got {fft_norm!r}")
        modes = (int(modes_x), int(modes_y), int(modes_t))
        self.width = int(width)
        self.latent_steps = int(latent_steps)
        self.out_steps = int(out_steps)
        act = _ACTIVATIONS[activation]

        def spectral(c_in, c_out, **kw):
            # the reference initialises every spectral weight uniform in [0, 0.5 / (c_in c_out))
            return SpectralConv(c_in, c_out, modes, dim=3, norm=fft_norm, init_scale=0.5 / (c_in * c_out), **kw)

        def mlp():
            return PointwiseMLP(3, width, mlp_channels, width, act(), mlp_chunk_elements)

        self.encoding = SpaceTimeEncoding(width, max_time_steps, beta, spatial=spatial_encoding)
        self.lift_norm = nn.GroupNorm(1, width, eps=1e-7)
        self.lift = nn.Conv3d(width, width, 1)
        self.lift_spectral = spectral(width, width)
        self.lift_mlp = mlp() if lift_activation else nn.Conv3d(width, width, 1)
        self.lift_activation = act() if lift_activation else nn.Identity()
        self.spectral = nn.ModuleList(spectral(width, width) for _ in range(n_hidden_layers))
        self.mlp = nn.ModuleList(mlp() for _ in range(n_hidden_layers))
        self.skip = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(n_hidden_layers))
        self.activation = act()
        self.reduce = nn.Conv3d(width, 1, 1)
        self.output_layer = spectral(1, 1, bias=True, bias_scale=delta)

    # ------------------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if not ((x.dim() == 4 or (x.dim() == 5 and x.shape[2] == 1)) and x.shape[1] >= 1):
            raise ValueError(
                f"SFNO expects x of shape (B, T_in, X, Y) or the data layout (B, T_in, 1, X, Y) "
                f"with T_in >= 1, got {tuple(x.shape)}"
            )

    def latent_length(self, t_out: int) -> int:
        """Frames ``N = t_out + L + 2`` of the output layer's (resampled) input."""
        return int(t_out) + self.latent_steps + 2

    def output_time_frequencies(self, t_out: int) -> int:
        """Temporal frequencies of the output layer's grid for ``t_out`` output frames."""
        return self.latent_length(t_out) // 2 + 1

    def latent(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        """Everything before the output layer: ``(B, T_in, X, Y)`` (or the data layout
        ``(B, T_in, 1, X, Y)``) ``-> (B, 1, X, Y, t_out + L + 2)`` (context frame + latent, zero-padded
        in front, resampled to the output layer's grid)."""
        self._check_input(x)
        t_out = self.out_steps if t_out is None else int(t_out)
        if t_out < 1:
            raise ValueError(f"t_out must be >= 1, got {t_out}")
        nx, ny = x.shape[-2:]
        # (B, 1, X, Y, T_in): the data layout's field axis is the model's channel axis
        u = x.movedim(1, -1) if x.dim() == 5 else x.movedim(1, -1).unsqueeze(1)
        p = self.lift(self.lift_norm(self.encoding(u)))
        w = self.lift_mlp(self.lift_spectral(p, out_shape=(nx, ny, self.latent_steps)))
        v = self.lift_activation(p[..., -1:] + w)
        for spectral, mlp, skip in zip(self.spectral, self.mlp, self.skip):
            v = self.activation(mlp(spectral(v)) + skip(v))
        h = torch.cat([u[..., -self.context_frames :], self.reduce(v)], dim=-1)
        padded = F.pad(h, (h.shape[-1], 0))
        # band-limited resampling of the padded window onto the output grid, with the reference's
        # backward-normalised amplitudes (its output layer resamples inside its inverse FFT);
        # FFTs run in float32/float64 with autocast off
        with torch.autocast(device_type=padded.device.type, enabled=False):
            padded = padded if padded.dtype == torch.float64 else padded.float()
            return torch.fft.irfft(torch.fft.rfft(padded), n=self.latent_length(t_out))

    def head(self, latent: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output layer + last input frame: ``latent (B, 1, X, Y, t_out + L + 2)``, ``x (B, T_in, X, Y)``
        -> ``(B, t_out, X, Y)``; ``x (B, T_in, 1, X, Y)`` -> ``(B, t_out, 1, X, Y)``."""
        t_out = latent.shape[-1] - self.latent_steps - 2
        if latent.dim() != 5 or latent.shape[1] != 1 or t_out < 1:
            raise ValueError(
                f"latent must be (B, 1, X, Y, t_out + {self.latent_steps + 2}) as returned "
                f"by SFNO.latent, got {tuple(latent.shape)}"
            )
        w = self.output_layer(latent)[..., -t_out:]
        if x.dim() == 5:
            return w.movedim(-1, 1) + x[:, -1:]
        return w.squeeze(1).movedim(-1, 1) + x[:, -1:]

    def forward(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        return self.head(self.latent(x, t_out), x)

    @torch.no_grad()
    def widen_output(self, modes_x: int, modes_y: int, modes_t: int) -> None:
        """Replace the output layer by one with ``(modes_x, modes_y, modes_t)`` modes (each >= the
        current ones); old weights and bias go into the low modes, new modes start at zero."""
        self.output_layer = self.output_layer.widened((modes_x, modes_y, modes_t))
