"""Shared building blocks of the models: spectral convolution, pointwise MLP, positional
embeddings, padding, multigrid V-cycle convolution."""

from .multigrid import MultigridVCycle, SmoothingStep, normalize_smoothing, vcycle_level_sizes
from .padding import (
    PADDING_MODES,
    PaddedConvTranspose2d,
    avg_pool2x,
    check_padding_mode,
    pad2d,
    padded_conv2d,
    upsample,
)
from .pointwise import PointwiseMLP
from .positional import GridEmbedding, SpaceTimeEncoding, grid_coordinates
from .spectral_conv import SpectralConv

__all__ = [
    "SpectralConv",
    "PointwiseMLP",
    "GridEmbedding",
    "SpaceTimeEncoding",
    "grid_coordinates",
    "PADDING_MODES",
    "check_padding_mode",
    "pad2d",
    "padded_conv2d",
    "PaddedConvTranspose2d",
    "avg_pool2x",
    "upsample",
    "MultigridVCycle",
    "SmoothingStep",
    "normalize_smoothing",
    "vcycle_level_sizes",
]
