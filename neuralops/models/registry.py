"""One plain registry of model constructors, kept apart from any training code.

>>> from neuralops import models
>>> net = models.get("fno2d", in_channels=10, out_channels=1)
>>> models.available()
[...]
"""

from __future__ import annotations

from typing import Callable, Dict

import torch.nn as nn

_REGISTRY: Dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator that registers a model constructor under ``name``."""

    def wrap(ctor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key] is not ctor:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[key]!r}")
        _REGISTRY[key] = ctor
        return ctor

    return wrap


def available() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


def get(name: str, **config) -> nn.Module:
    """Build the model registered as ``name`` with keyword ``config``."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available models: {', '.join(available())}")
    return _REGISTRY[key](**config)


def constructor(name: str) -> Callable[..., nn.Module]:
    """The registered constructor itself (e.g. to inspect its signature)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available models: {', '.join(available())}")
    return _REGISTRY[key]
