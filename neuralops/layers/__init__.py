"""Shared building blocks of the models: spectral convolution, pointwise MLP, positional
embeddings, padding, multigrid V-cycle convolution."""
from . import multigrid as _multigrid
from . import padding as _padding
from .pointwise import PointwiseMLP  # noqa: F401
from .positional import GridEmbedding, SpaceTimeEncoding, grid_coordinates  # noqa: F401
from .spectral_conv import SpectralConv  # noqa: F401

__all__ = ["SpectralConv", "PointwiseMLP", "GridEmbedding", "SpaceTimeEncoding", "grid_coordinates"]

# the padding and multigrid modules export every name of their own ``__all__`` from here
for _m in (_padding, _multigrid):
    for _name in _m.__all__:
        globals()[_name] = getattr(_m, _name)
        __all__.append(_name)
