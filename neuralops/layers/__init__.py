"""Shared building blocks of the models: spectral convolution, pointwise MLP, positional
embeddings, padding, multigrid V-cycle convolution."""
import importlib as _importlib

from .pointwise import PointwiseMLP  # noqa: F401
from .positional import GridEmbedding, SpaceTimeEncoding, grid_coordinates  # noqa: F401
from .spectral_conv import SpectralConv  # noqa: F401

__all__ = ["SpectralConv", "PointwiseMLP", "GridEmbedding", "SpaceTimeEncoding", "grid_coordinates"]

# Layers written in parallel by other modules: export their public names when the file exists,
# without breaking ``import neuralops.layers`` while it does not.
for _mod in ("padding", "multigrid"):
    try:
        _m = _importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _err:
        if _err.name != f"{__name__}.{_mod}":
            raise
        continue
    for _name in getattr(_m, "__all__", ()):
        globals()[_name] = getattr(_m, _name)
        __all__.append(_name)
