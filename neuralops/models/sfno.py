"""SFNO: the spatiotemporal Fourier neural operator of Spectral-Refiner (Cao et al., ICLR 2025).

Maps a trajectory of ``T_in`` snapshots to ``T_out`` snapshots of a scalar field (vorticity)::

    x: (B, T_in, X, Y)  ->  SFNO(x, t_out): (B, T_out, X, Y)

``T_in``, ``T_out`` and the grid are free at call time: time is resampled spectrally, space is
handled by spectral layers with fixed modes. Internally a trajectory is ``(B, C, X, Y, T)`` and every
spectral layer transforms over ``(x, y, t)`` (real FFT in ``t``; 4 ``(k_x, k_y)`` corners times the
first ``modes_t`` temporal frequencies; :class:`~neuralops.layers.SpectralConv`).

Architecture (``u`` = input trajectory as ``(B, 1, X, Y, T_in)``)::

    lifting:  v_0 = K_0 W_p N(u + E)                  E: space-time encoding (x, y, t, width damped
                                                        harmonics in t; 3 + width channels),
                                                        N: GroupNorm(1 group), W_p: 1x1 to width,
                                                        K_0: spectral conv T_in -> latent_steps frames
    hidden:   v_{l+1} = GELU( MLP_l(K_l v_l) + W_l v_l ),  l = 0, 1, 2
                                                        MLP_l: 1x1 width -> 128 -> width (GELU;
                                                        evaluated in slabs, PointwiseMLP),
                                                        W_l: 1x1 skip
    reduce:   z = resample_t( R v_3 , T_out )           R: 1x1 width -> 1, then spectral resampling
                                                        of the latent frames onto T_out frames
    latent:   h = [u(-c..-1), z]                         the last c = 2 input frames, then z
    output:   w = (Q pad_t(h))[-T_out:] + u(-1)          Q: spectral conv 1 -> 1 over (x, y, t) with
                                                        a Fourier-space bias, on h zero-padded in time
                                                        to twice its length (the wrap-around of the
                                                        non-periodic window falls in the discarded
                                                        half); the last input frame is added.

Refinement API (``train/refine``): ``model.output_layer`` is ``Q``; ``model.latent(x, t_out)``
returns ``h`` ``(B, 1, X, Y, c + T_out)`` (everything before ``Q``, frozen during refinement);
``model.head(h, x)`` applies ``Q``, crops and adds the last input frame, so
``model(x, t_out) == model.head(model.latent(x, t_out), x)``. ``w`` is affine in ``Q``'s
parameters. ``model.widen_output(mx, my, mt)`` swaps ``Q`` for a wider one with the old weights in
the low modes and zeros elsewhere: the output is unchanged to round-off until it is trained.

Parameter count of the FNO-data configuration (modes 12 x 12 x 5, width 20): **9,245,131**:

* four spectral convolutions width -> width (``K_0`` and three ``K_l``), each
  4 corners x 20 x 20 x (12 x 12 x 5) complex = 2,304,000 real -> 9,216,000;
* lifting: GroupNorm(23) 46 + 1x1 conv 23 -> 20: 480;
* per hidden layer MLP 20*128+128 + 128*20+20 = 5,268 and skip 20*20+20 = 420 -> 3 x 5,688 = 17,064;
* reduction 20 -> 1: 21; output layer 1 -> 1: 4 x 12 x 12 x 5 complex weights + as many complex
  bias coefficients = 11,520.

The paper's "~9.2M" is this count (dominated by the four 2.304M spectral convolutions).

Differences from the authors' code, on purpose: FFTs use ``norm="forward"`` (Fourier coefficients
of the function on the unit torus) so that changing ``T_in``/``T_out`` resamples the same function
instead of rescaling it by a ratio of lengths; the latent is resampled to ``T_out`` frames before the
output layer (the authors resample inside it), which makes the output layer's input -- and hence
the convex refinement problem -- explicit; the Fourier-space bias has no extra 0.1 factor (it only
rescaled the bias's learning rate).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.pointwise import PointwiseMLP
from ..layers.positional import SpaceTimeEncoding
from ..layers.spectral_conv import SpectralConv
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
class SFNO(nn.Module):
    """Spatiotemporal FNO ``(B, T_in, X, Y) -> (B, T_out, X, Y)`` (see the module docstring).

    Args:
        modes_x, modes_y: spatial Fourier modes per sign; modes_t: temporal modes (real FFT).
        width: hidden channels.
        latent_steps: number of frames of the hidden trajectory (independent of T_in / T_out).
        out_steps: default ``T_out`` when ``forward`` is called without ``t_out``.
        n_hidden_layers: spectral layers after the lifting (paper: 3).
        mlp_channels: hidden width of the pointwise MLPs (paper: 128).
        context_frames: last input frames put in front of the latent for the output layer (2).
        max_time_steps, time_decay: frame lattice ``t_j = (j+1)/max_time_steps`` and damping rate of
            the temporal harmonics of the encoding.
        spatial_encoding: include the ``x, y`` coordinate channels in the encoding (paper: yes).
            Without them the model is translation-equivariant on periodic grids.
        activation: "gelu" (paper), "relu", "silu" or "tanh".
        mlp_chunk_elements: memory bound of the 128-channel MLPs
            (:class:`~neuralops.layers.PointwiseMLP`); ``None``: one piece.
    """

    def __init__(self, modes_x: int = 12, modes_y: int = 12, modes_t: int = 5, width: int = 20,
                 latent_steps: int = 10, out_steps: int = 40, n_hidden_layers: int = 3,
                 mlp_channels: int = 128, context_frames: int = 2, max_time_steps: int = 100,
                 time_decay: float = -0.01, spatial_encoding: bool = True,
                 activation: str = "gelu", mlp_chunk_elements: Optional[int] = 2 ** 22):
        super().__init__()
        for name, value in (("modes_x", modes_x), ("modes_y", modes_y), ("modes_t", modes_t),
                            ("width", width), ("latent_steps", latent_steps),
                            ("out_steps", out_steps), ("mlp_channels", mlp_channels)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if n_hidden_layers < 0 or context_frames < 1:
            raise ValueError(f"n_hidden_layers must be >= 0 and context_frames >= 1, got "
                             f"{n_hidden_layers}, {context_frames}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(_ACTIVATIONS)}")
        modes = (int(modes_x), int(modes_y), int(modes_t))
        self.width = int(width)
        self.latent_steps = int(latent_steps)
        self.out_steps = int(out_steps)
        self.context_frames = int(context_frames)

        self.encoding = SpaceTimeEncoding(width, max_time_steps, time_decay, spatial=spatial_encoding)
        self.lift_norm = nn.GroupNorm(1, self.encoding.channels)
        self.lift = nn.Conv3d(self.encoding.channels, width, 1)
        self.lift_spectral = SpectralConv(width, width, modes, dim=3)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes, dim=3)
                                      for _ in range(n_hidden_layers))
        self.mlp = nn.ModuleList(PointwiseMLP(3, width, mlp_channels, width, nn.GELU(), mlp_chunk_elements)
                                 for _ in range(n_hidden_layers))
        self.skip = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(n_hidden_layers))
        self.activation = _ACTIVATIONS[activation]()
        self.reduce = nn.Conv3d(width, 1, 1)
        self.output_layer = SpectralConv(1, 1, modes, dim=3, bias=True)

    # ------------------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"SFNO expects x of shape (B, T_in, X, Y), got {tuple(x.shape)}")
        if x.shape[1] < self.context_frames:
            raise ValueError(f"SFNO needs at least context_frames={self.context_frames} input frames, "
                             f"got T_in={x.shape[1]}")

    def latent(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        """Everything before the output layer: ``(B, T_in, X, Y) -> (B, 1, X, Y, c + t_out)``
        (the last ``c = context_frames`` input frames followed by the latent resampled to
        ``t_out`` frames)."""
        self._check_input(x)
        t_out = self.out_steps if t_out is None else int(t_out)
        if t_out < 1:
            raise ValueError(f"t_out must be >= 1, got {t_out}")
        _, _, nx, ny = x.shape
        u = x.movedim(1, -1).unsqueeze(1)  # (B, 1, X, Y, T_in)
        v = self.lift(self.lift_norm(self.encoding(u)))
        v = self.lift_spectral(v, out_shape=(nx, ny, self.latent_steps))
        for spectral, mlp, skip in zip(self.spectral, self.mlp, self.skip):
            v = self.activation(mlp(spectral(v)) + skip(v))
        z = resample_time(self.reduce(v), t_out)
        return torch.cat([u[..., -self.context_frames:], z], dim=-1)

    def head(self, latent: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output layer + last input frame: ``latent (B, 1, X, Y, c + t_out)``, ``x (B, T_in, X, Y)``
        -> ``(B, t_out, X, Y)``."""
        t_out = latent.shape[-1] - self.context_frames
        if latent.dim() != 5 or latent.shape[1] != 1 or t_out < 1:
            raise ValueError(f"latent must be (B, 1, X, Y, {self.context_frames} + t_out) as returned "
                             f"by SFNO.latent, got {tuple(latent.shape)}")
        # zero block in front: the periodic wrap-around of the (non-periodic) window lands in the
        # half that is cut off again
        padded = F.pad(latent, (latent.shape[-1], 0))
        w = self.output_layer(padded)[..., -t_out:]
        return w.squeeze(1).movedim(-1, 1) + x[:, -1:]

    def forward(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        return self.head(self.latent(x, t_out), x)

    @torch.no_grad()
    def widen_output(self, modes_x: int, modes_y: int, modes_t: int) -> None:
        """Replace the output layer by one with ``(modes_x, modes_y, modes_t)`` modes (each >= the
        current ones); old weights and bias go into the low modes, new modes start at zero."""
        self.output_layer = self.output_layer.widened((modes_x, modes_y, modes_t))
